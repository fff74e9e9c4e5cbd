package vod

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// checkChunks verifies the chunks of one session: layout names, both streams and a
// duration in each, clean decoding, and a timeline that continues from chunk to chunk
// within one frame. It returns the sum of the durations (s).
func checkChunks(t *testing.T, dir string, chunks []Chunk, codecs string) float64 {
	t.Helper()
	var sum, prevEnd float64
	for i, c := range chunks {
		rel, err := filepath.Rel(dir, c.Path)
		if err != nil || !relRe.MatchString(filepath.ToSlash(rel)) {
			t.Fatalf("chunk path %q does not match the layout", rel)
		}
		if want := fmt.Sprintf("%d/%s", c.Owner, c.Rel); filepath.ToSlash(rel) != want {
			t.Fatalf("chunk %d: path %s, Rel %s", i, rel, c.Rel)
		}
		if c.Seq != FirstSeq+i || !strings.HasSuffix(c.Rel, fmt.Sprintf("chunk_%03d.mkv", c.Seq)) {
			t.Fatalf("chunk %d is %s (seq %d)", i, c.Rel, c.Seq)
		}
		if c.Final != (i == len(chunks)-1) {
			t.Fatalf("chunk %d: Final %v", i, c.Final)
		}
		st, err := os.Stat(c.Path)
		if err != nil || st.Size() != c.Size {
			t.Fatalf("chunk %d: stat %v, size %d, reported %d", i, err, st.Size(), c.Size)
		}
		p := ffprobe(t, c.Path)
		if p.codecs() != codecs {
			t.Fatalf("chunk %d: streams %s, want %s", i, p.codecs(), codecs)
		}
		d := p.duration()
		if d <= 0 || math.Abs(d-c.Duration.Seconds()) > 0.002 {
			t.Fatalf("chunk %d: ffprobe duration %v, reported %v", i, d, c.Duration)
		}
		if msg := decode(t, c.Path); msg != "" {
			t.Fatalf("chunk %d does not decode cleanly: %s", i, msg)
		}
		if i > 0 && math.Abs(p.start()-prevEnd) > 1.0/30+0.002 {
			t.Fatalf("chunk %d starts at %.3f s, chunk %d ended at %.3f s", i, p.start(), i-1, prevEnd)
		}
		t.Logf("%s: start %.3f s, duration %.3f s, %d bytes", c.Rel, p.start(), d, c.Size)
		prevEnd = p.start() + d
		sum += d
	}
	return sum
}

// TestRecordChunks: ffmpeg publishes 12 s of H.264 (GOP 1 s, B-frames) + AAC over RTMP;
// with 4 s chunks the recorder writes 3–4 Matroska chunks that each show both streams and
// a duration, decode without an error, continue each other's timeline, and add up to the
// published duration within one GOP.
func TestRecordChunks(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, -1, func(c *Config) { c.ChunkDuration = 4 * time.Second })
	addr := e.startIngest(t)
	ffmpegPublish(t, fmt.Sprintf("rtmp://%s/live/live_key1", addr), 12)
	s := e.waitEnded(t, 40*time.Second)

	chunks := e.chunks()
	if len(chunks) < 3 || len(chunks) > 4 {
		t.Fatalf("%d chunks: %+v", len(chunks), chunks)
	}
	for _, f := range spoolFiles(t, e.dir) {
		if !relRe.MatchString(f) {
			t.Fatalf("spool holds %s", f)
		}
	}
	sum := checkChunks(t, e.dir, chunks, "audio:aac,video:h264")
	if math.Abs(sum-12) > 1 {
		t.Fatalf("chunk durations add up to %.3f s, published 12 s", sum)
	}
	st := s.Stats()
	if st.Chunks != len(chunks) || st.Current != "" || st.Units == 0 || s.Err() != nil {
		t.Fatalf("stats %+v, err %v", st, s.Err())
	}
	if !strings.HasPrefix(s.Rel(), "Test Stream_s1/") || chunks[0].Session != s.Rel() {
		t.Fatalf("session %q, chunk session %q", s.Rel(), chunks[0].Session)
	}
	t.Logf("%d chunks, %.3f s in all; stats %+v", len(chunks), sum, st)
}

// TestReconnectContinuesSession: a publisher that comes back within the bus's reconnect
// grace continues the same session: same directory, chunk numbers and timeline continue.
func TestReconnectContinuesSession(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, 3*time.Second, func(c *Config) { c.ChunkDuration = 2 * time.Second })
	addr := e.startIngest(t)
	url := fmt.Sprintf("rtmp://%s/live/live_key2", addr)
	first := ffmpegPublish(t, url, 5)
	if err := first.Wait(); err != nil {
		t.Fatalf("first publisher: %v", err)
	}
	var s *Session
	for _, x := range e.rec.Sessions() {
		s = x
	}
	if s == nil || s.ID() != "s2" {
		t.Fatalf("no session after the first publisher: %v", e.rec.Sessions())
	}
	before := s.Stats()
	second := ffmpegPublish(t, url, 5)
	if err := second.Wait(); err != nil {
		t.Fatalf("second publisher: %v", err)
	}
	if got := e.waitEnded(t, 20*time.Second); got != s {
		t.Fatalf("ended session %v, want %v", got, s)
	}
	chunks := e.chunks()
	sum := checkChunks(t, e.dir, chunks, "audio:aac,video:h264")
	if len(chunks) < 4 || before.Chunks == 0 || len(chunks) <= before.Chunks {
		t.Fatalf("%d chunks, %d before the reconnect", len(chunks), before.Chunks)
	}
	dirs := map[string]bool{}
	for _, c := range chunks {
		dirs[filepath.Dir(c.Path)] = true
	}
	if len(dirs) != 1 {
		t.Fatalf("chunks in %d directories: %v", len(dirs), dirs)
	}
	if math.Abs(sum-10) > 1 {
		t.Fatalf("chunk durations add up to %.3f s, published 2×5 s", sum)
	}
	if n := len(e.ends); n != 1 {
		t.Fatalf("%d sessions ended", n)
	}
	t.Logf("%d chunks (%d before the reconnect), %.3f s", len(chunks), before.Chunks, sum)
}

// TestRecoverCrashedChunk copies the chunk being written, as a SIGKILL would leave it, into
// another spool (once as is, once cut inside a cluster); Recover repairs both into chunks
// that declare their duration — all but at most about a second of what was recorded —
// decode cleanly, and are returned with the finished chunks, sorted.
func TestRecoverCrashedChunk(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, -1, func(c *Config) { c.ChunkDuration = 3 * time.Second })
	addr := e.startIngest(t)
	ffmpegPublish(t, fmt.Sprintf("rtmp://%s/live/live_key3", addr), 6)
	var st SessionStats
	waitFor(t, 20*time.Second, func() bool {
		if s := e.rec.Session("s3"); s != nil {
			st = s.Stats()
		}
		return st.Chunks == 1 && st.Recorded > 5*time.Second
	})
	src := filepath.Join(e.dir, "42", filepath.FromSlash(st.Current)) + recSuffix
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	e.waitEnded(t, 20*time.Second)
	finished := e.chunks()[0]
	// What chunk 2 held when it was copied (chunk 1 starts at 0).
	recorded := st.Recorded - finished.Duration

	spool := t.TempDir()
	copyFile(t, finished.Path, filepath.Join(spool, "42", filepath.FromSlash(finished.Rel)))
	asIs := filepath.Join(spool, "42", filepath.FromSlash(st.Current)) + recSuffix
	cut := filepath.Join(spool, "7", "Other", "2024-01-02_03-04-05", "chunk_001.mkv") + recSuffix
	writeFile(t, asIs, data)
	writeFile(t, cut, data[:len(data)-1000])
	empty := filepath.Join(spool, "7", "Other", "2024-01-02_03-04-05", "chunk_002.mkv") + recSuffix
	writeFile(t, empty, data[:300])

	hub := bus.New(bus.Config{})
	defer hub.Close()
	r, err := New(Config{Hub: hub, SpoolDir: spool, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Recover(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Owner != 7 || got[1].Rel != finished.Rel || got[2].Rel != st.Current ||
		got[1].Final || !got[0].Final || !got[2].Final {
		t.Fatalf("recovered %+v", got)
	}
	if math.Abs(got[1].Duration.Seconds()-finished.Duration.Seconds()) > 0.001 {
		t.Fatalf("finished chunk: duration %v, recorded as %v", got[1].Duration, finished.Duration)
	}
	for i, c := range []Chunk{got[2], got[0]} {
		p := ffprobe(t, c.Path)
		if p.codecs() != "audio:aac,video:h264" || p.duration() <= 0 ||
			math.Abs(p.duration()-c.Duration.Seconds()) > 0.002 {
			t.Fatalf("%s: streams %s, duration %v (reported %v)", c.Rel, p.codecs(), p.Format.Duration, c.Duration)
		}
		if msg := decode(t, c.Path); msg != "" {
			t.Fatalf("%s does not decode cleanly: %s", c.Rel, msg)
		}
		// The file as the crash left it lacks at most the buffered cluster (≤ 1 s); the
		// one cut inside a cluster also lacks that cluster.
		if lost := recorded - c.Duration; lost > time.Duration(i+1)*1100*time.Millisecond {
			t.Fatalf("%s: %v recovered of %v recorded", c.Rel, c.Duration, recorded)
		}
		t.Logf("%s: recovered %v of %v recorded, %d bytes", c.Rel, c.Duration, recorded, c.Size)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a .rec without media was kept: %v", err)
	}
	for _, f := range spoolFiles(t, spool) {
		if strings.HasSuffix(f, recSuffix) {
			t.Fatalf("%s left", f)
		}
	}
	// Recovering again finds the same finished chunks.
	again, err := r.Recover(t.Context())
	if err != nil || len(again) != 3 || again[0].Size != got[0].Size || again[2].Duration != got[2].Duration {
		t.Fatalf("second Recover: %+v, %v", again, err)
	}
}

// waitFor polls cond until it holds or d passed.
func waitFor(t testing.TB, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o640); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, data)
}
