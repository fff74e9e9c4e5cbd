package rtmp

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPlayFFmpeg: ffmpeg publishes H.264+AAC to the ingest server; ffprobe finds h264 and
// aac through RTMP and RTMPS playback, and ffmpeg decodes 3 s of each without an error.
func TestPlayFFmpeg(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, nil)
	ffmpegPublish(t, fmt.Sprintf("rtmp://%s/live/live_key1", e.in.Addr()), 12)
	waitLive(t, e.hub, "s1", 10)

	for _, tc := range []struct{ scheme, addr string }{
		{"rtmp", e.in.Addr().String()},
		{"rtmps", e.in.TLSAddr().String()},
	} {
		url := fmt.Sprintf("%s://%s/live/pub_1?token=secret", tc.scheme, tc.addr)
		t.Run(tc.scheme, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
				"stream=codec_name,width,height,sample_rate", "-of", "compact", url).CombinedOutput()
			if err != nil {
				t.Fatalf("ffprobe: %v\n%s", err, out)
			}
			probed := time.Since(start)
			s := string(out)
			if !strings.Contains(s, "codec_name=h264|width=640|height=360") || !strings.Contains(s, "codec_name=aac") ||
				!strings.Contains(s, "sample_rate=48000") {
				t.Fatalf("ffprobe found:\n%s", s)
			}
			start = time.Now()
			cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-xerror",
				"-i", url, "-t", "3", "-f", "null", "-")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || strings.TrimSpace(stderr.String()) != "" {
				t.Fatalf("ffmpeg decode: %v\n%s", err, stderr.String())
			}
			t.Logf("%s: ffprobe took %s; ffmpeg decoded 3 s in %s", tc.scheme,
				probed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		})
	}
	t.Cleanup(func() {
		e.res.mu.Lock()
		defer e.res.mu.Unlock()
		for _, tok := range e.res.tokens {
			if tok != "secret" {
				t.Errorf("resolver got token %q", tok)
			}
		}
	})
}

// TestFirstFrame: a new reader of a live stream gets its first video frame — a keyframe,
// after metadata and sequence headers — within 100 ms of its play command.
func TestFirstFrame(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, nil)
	ffmpegPublish(t, fmt.Sprintf("rtmp://%s/live/live_key2", e.in.Addr()), 8)
	waitLive(t, e.hub, "s2", 45) // past the first keyframe: the GOP cache is not empty

	var worst time.Duration
	for i, secure := range []bool{false, false, true, false, true} {
		addr := e.in.Addr().String()
		if secure {
			addr = e.in.TLSAddr().String()
		}
		p := dialPlay(t, addr, secure, "pub_2")
		m, err := p.readMedia(5*time.Second, 1)
		if err != nil {
			t.Fatal(err)
		}
		if m.video != 1 || !m.firstVideoKey || !m.meta || m.seqVideo != 1 || m.seqAudio != 1 {
			t.Fatalf("reader %d: %+v", i, m)
		}
		if len(m.statuses) < 2 || m.statuses[1] != "NetStream.Play.Start" {
			t.Fatalf("statuses %v", m.statuses)
		}
		t.Logf("reader %d (secure %v): first video frame %s after play", i, secure, m.firstVideo.Round(10*time.Microsecond))
		worst = max(worst, m.firstVideo)
		p.close()
		// The second reader joins while the first one's feed may still run, the others
		// start new feeds: both paths are measured.
		time.Sleep(time.Duration(i) * 150 * time.Millisecond)
	}
	if worst > 100*time.Millisecond {
		t.Fatalf("time to first frame %s > 100 ms", worst)
	}
	t.Logf("worst time to first video frame: %s", worst.Round(10*time.Microsecond))
}

// TestFanout: 20 readers of one stream all receive it from its keyframes, the stream's
// messages are serialized once (not once per reader), and a reader that stops reading is
// skipped forward, then disconnected, without the others missing anything.
func TestFanout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *Config) {
		c.MaxQueuedBytes = 512 << 10
		c.SendBuffer = 64 << 10
		c.WriteTimeout = 1500 * time.Millisecond
		c.SkipLogInterval = time.Hour
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	sp := startSynth(t, ctx, e.hub, "s3", 12_000_000, 1)
	waitFor(t, 5*time.Second, func() bool { return sp.units.Load() > 10 })

	// The stalled reader: it plays, then never reads; small socket buffers make it stall
	// soon.
	stalled, err := dialPlayWith(smallBuffers, e.in.Addr().String(), false, "pub_3")
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.close()

	// The slow reader reads about 2 Mbps of a 12 Mbps stream.
	slow, err := dialPlayWith(smallBuffers, e.in.Addr().String(), false, "pub_3")
	if err != nil {
		t.Fatal(err)
	}
	defer slow.close()
	slowDone := make(chan int)
	go func() {
		buf, n := make([]byte, 4096), 0
		for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
			k, err := slow.conn.Read(buf)
			n += k
			if err != nil {
				break
			}
			time.Sleep(15 * time.Millisecond) // the reader is slow: that is the point
		}
		slowDone <- n
	}()

	const readers = 20
	var wg sync.WaitGroup
	results := make([]*media, readers)
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr, secure := e.in.Addr().String(), i%5 == 4
			if secure {
				addr = e.in.TLSAddr().String()
			}
			p, err := tryDialPlay(addr, secure, "pub_3")
			if err != nil {
				errs[i] = err
				return
			}
			defer p.close()
			results[i], errs[i] = p.readMedia(2500*time.Millisecond, 0)
		}()
	}
	wg.Wait()
	for i := range readers {
		m := results[i]
		if errs[i] != nil || m == nil {
			t.Fatalf("reader %d: %v", i, errs[i])
		}
		// 2.5 s at 30 fps (75 frames), from the cached keyframe; less under -race.
		if m.video < 50 || m.audio < 75 || m.keyframes < 2 || !m.firstVideoKey {
			t.Fatalf("reader %d got %+v", i, m)
		}
	}
	// The slow reader was skipped forward, the stalled one cut off.
	slowBytes := <-slowDone
	waitFor(t, 5*time.Second, func() bool { return e.out.Stats().Disconnected >= 1 })
	st := e.out.Stats()
	if st.Skips == 0 {
		t.Fatalf("slow reader never skipped: %+v", st)
	}
	// Serialized once per unit of the stream, however many readers.
	cancel()
	<-sp.done
	units := sp.units.Load()
	if st.Serialized > units {
		t.Fatalf("%d messages serialized for %d units and %d readers", st.Serialized, units, readers)
	}
	if d := e.hub.Stream("s3"); d != nil {
		t.Logf("bus drops: %d", d.Stats().Dropped)
	}
	t.Logf("%d readers: %d units written, %d messages serialized, %.1f MB sent; slow reader read %d kB, %d skips (%d units); %d disconnect (stalled reader)",
		readers, units, st.Serialized, float64(st.BytesOut)/1e6, slowBytes/1000, st.Skips, st.SkippedUnits, st.Disconnected)
}

// TestRefusals: an unknown playback id, an offline stream and a forbidden stream are
// refused at once with the right status; ffprobe gives up quickly.
func TestRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for _, tc := range []struct{ name, code string }{
		{"nosuchid", "NetStream.Play.StreamNotFound"},
		{"pub_9", "NetStream.Play.StreamNotFound"}, // known, offline
		{"pub_forbidden", "NetStream.Play.Failed"},
	} {
		start := time.Now()
		p := dialPlay(t, e.in.Addr().String(), false, tc.name)
		m, err := p.readMedia(2*time.Second, 0)
		took := time.Since(start)
		if len(m.statuses) == 0 || m.statuses[0] != tc.code || m.video > 0 {
			t.Fatalf("%s: %+v (%v)", tc.name, m, err)
		}
		if err == nil || took > time.Second {
			t.Fatalf("%s: connection not closed at once (%v after %s)", tc.name, err, took)
		}
		t.Logf("%s refused with %s in %s", tc.name, tc.code, took.Round(time.Millisecond))
	}
	if _, err := exec.LookPath("ffprobe"); err == nil {
		start := time.Now()
		out, err := exec.Command("ffprobe", "-v", "error", fmt.Sprintf("rtmp://%s/live/nosuchid", e.in.Addr())).CombinedOutput()
		if err == nil {
			t.Fatalf("ffprobe of an unknown id succeeded: %s", out)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("ffprobe took %s to give up", took)
		}
		t.Logf("ffprobe: %s", strings.TrimSpace(string(out)))
	}
	if st := e.out.Stats(); st.Refused != 4 && st.Refused != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// TestStreamEnd: viewers of a stream that ends get UnpublishNotify and are closed; the
// feed goes away.
func TestStreamEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	sp := startSynth(t, ctx, e.hub, "s4", 2_000_000, 1)
	waitFor(t, 5*time.Second, func() bool { return sp.units.Load() > 5 })
	p := dialPlay(t, e.in.Addr().String(), false, "pub_4")
	if _, err := p.readMedia(5*time.Second, 5); err != nil {
		t.Fatal(err)
	}
	cancel() // the publisher leaves; without grace the stream ends
	m, err := p.readMedia(5*time.Second, 0)
	if err == nil || !slicesContains(m.statuses, "NetStream.Play.UnpublishNotify") {
		t.Fatalf("after the end: %+v, %v", m, err)
	}
	waitFor(t, 5*time.Second, func() bool { st := e.out.Stats(); return st.Feeds == 0 && st.Viewers == 0 })
}

// TestClose: Close with viewers connected returns promptly and leaves no goroutine.
// Not parallel: it counts goroutines.
func TestClose(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		tb := &closeTB{TB: t}
		e := newEnv(tb, nil)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		startSynth(tb, ctx, e.hub, "s5", 2_000_000, 1)
		var ps []*playClient
		for range 3 {
			p, err := tryDialPlay(e.in.Addr().String(), false, "pub_5")
			if err != nil {
				t.Fatal(err)
			}
			defer p.close()
			ps = append(ps, p)
		}
		for _, p := range ps {
			if _, err := p.readMedia(5*time.Second, 2); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		_ = e.out.Close()
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("Close took %s", took)
		}
		for _, p := range ps {
			if _, err := p.readMedia(3*time.Second, 0); err == nil {
				t.Fatal("viewer still connected after Close")
			}
		}
		// A play after Close is refused.
		p, err := tryDialPlay(e.in.Addr().String(), false, "pub_5")
		if err == nil {
			if m, err := p.readMedia(2*time.Second, 0); err == nil || m.video > 0 {
				t.Fatalf("play after Close: %+v %v", m, err)
			}
			p.close()
		}
		cancel()
		tb.cleanup()
	}()
	var now int
	waitFor(t, 5*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= before })
	t.Logf("goroutines %d before, %d after", before, now)
}

// closeTB runs the cleanups it is given when the test asks, not at the test's end.
type closeTB struct {
	testing.TB
	fns []func()
}

func (c *closeTB) Cleanup(f func()) { c.fns = append(c.fns, f) }

func (c *closeTB) cleanup() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
