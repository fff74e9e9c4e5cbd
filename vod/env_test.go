package vod

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
	ingestrtmp "github.com/relaycast/relaycast/ingest/rtmp"
)

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// fakeAuth admits keys "live_keyN" to stream "sN".
type fakeAuth struct{}

var _ ingest.Authorizer = fakeAuth{}

func (fakeAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	if n, ok := strings.CutPrefix(req.Key, "live_key"); ok && n != "" {
		return ingest.Grant{StreamID: "s" + n}, nil
	}
	return ingest.Grant{}, ingest.ErrUnauthorized
}

func (fakeAuth) Release(ingest.Grant) {}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	if _, bench := t.(*testing.B); bench {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// env is a hub, an RTMP ingest server and a recorder that records every stream that goes
// live (as cmd/relaycast will wire them), collecting the chunks and ended sessions.
type env struct {
	hub  *bus.Hub
	in   *ingestrtmp.Server
	rec  *Recorder
	dir  string
	mu   sync.Mutex
	got  []Chunk
	ends []*Session
	// ended receives every ended session.
	ended chan *Session
}

func newEnv(t testing.TB, grace time.Duration, mod func(*Config)) *env {
	t.Helper()
	log := testLogger(t)
	e := &env{hub: bus.New(bus.Config{ReconnectGrace: grace, Logger: log}), dir: t.TempDir(),
		ended: make(chan *Session, 16)}
	cfg := Config{Hub: e.hub, SpoolDir: e.dir, Logger: log,
		OnChunk: func(c Chunk) {
			e.mu.Lock()
			e.got = append(e.got, c)
			e.mu.Unlock()
		},
		OnSessionEnd: func(s *Session) {
			e.mu.Lock()
			e.ends = append(e.ends, s)
			e.mu.Unlock()
			e.ended <- s
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	rec, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.rec = rec
	e.hub.Watch(func(ev bus.Event) {
		if ev.Type == bus.EventLive && !ev.Resumed {
			if _, err := rec.Start(ev.Stream.ID(), SessionInfo{StreamName: "Test Stream/" + ev.Stream.ID(), Owner: 42}); err != nil {
				t.Errorf("Start: %v", err)
			}
		}
	})
	t.Cleanup(func() {
		_ = rec.Close()
		_ = rec.Close()
		e.hub.Close()
	})
	return e
}

// startIngest starts the RTMP ingest server on the env's hub.
func (e *env) startIngest(t testing.TB) string {
	t.Helper()
	in, err := ingestrtmp.New(ingestrtmp.Config{Addr: "127.0.0.1:0", Hub: e.hub, Auth: fakeAuth{},
		PlainEnabled: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	t.Cleanup(func() { _ = in.Close() })
	return in.Addr().String()
}

func (e *env) chunks() []Chunk {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Chunk(nil), e.got...)
}

// waitEnded waits for the next ended session.
func (e *env) waitEnded(t testing.TB, d time.Duration) *Session {
	t.Helper()
	select {
	case s := <-e.ended:
		select {
		case <-s.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done not closed after OnSessionEnd")
		}
		return s
	case <-time.After(d):
		t.Fatalf("no session ended within %s", d)
		return nil
	}
}

func requireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (the README's test command installs it): %v", tool, err)
		}
	}
}

// ffmpegPublish publishes a generated 640x360 30 fps H.264 (GOP 1 s, B-frames) + AAC clip
// of secs seconds in real time to url.
func ffmpegPublish(t testing.TB, url string, secs int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "1500k",
		"-c:a", "aac", "-t", strconv.Itoa(secs), "-f", "flv", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			t.Logf("ffmpeg publisher: %s", s)
		}
	})
	return cmd
}

type probeStream struct {
	CodecType  string `json:"codec_type"`
	CodecName  string `json:"codec_name"`
	StartTime  string `json:"start_time"`
	Duration   string `json:"duration"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
	Width      int    `json:"width"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Format  struct {
		StartTime  string `json:"start_time"`
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
}

func (p probeResult) start() float64 {
	f, _ := strconv.ParseFloat(p.Format.StartTime, 64)
	return f
}

func (p probeResult) duration() float64 {
	f, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return f
}

func (p probeResult) codecs() string {
	var c []string
	for _, s := range p.Streams {
		c = append(c, s.CodecType+":"+s.CodecName)
	}
	sort.Strings(c)
	return strings.Join(c, ",")
}

func ffprobe(t testing.TB, path string) probeResult {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var p probeResult
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return p
}

// decode decodes path with ffmpeg and returns what it printed at level error.
func decode(t testing.TB, path string) string {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", path, "-f", "null", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("%v: %s", err, stderr.String())
	}
	return strings.TrimSpace(stderr.String())
}

// relRe is the layout of a chunk path relative to the spool.
var relRe = regexp.MustCompile(`^\d+/[A-Za-z0-9 _.-]+/\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}/chunk_\d{3}\.mkv$`)

// spoolFiles lists the files under dir, relative to it.
func spoolFiles(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
