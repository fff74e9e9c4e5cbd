package thumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"log/slog"
	"os"
	"os/exec"
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

type fakeAuth struct{}

func (fakeAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	if n, ok := strings.CutPrefix(req.Key, "live_key"); ok && n != "" {
		return ingest.Grant{StreamID: "s" + n}, nil
	}
	return ingest.Grant{}, ingest.ErrUnauthorized
}

func (fakeAuth) Release(ingest.Grant) {}

// TestJPEG: a live H.264 stream (ffmpeg → RTMP ingest → bus) gets a JPEG thumbnail of its
// newest keyframe, scaled to the width asked for; concurrent callers share one run; the
// cache serves it for the TTL; an unknown stream is ErrOffline.
func TestJPEG(t *testing.T) {
	for _, tool := range []string{"ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (the README's test command installs it)", tool)
		}
	}
	log := slog.New(slog.DiscardHandler)
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: log})
	defer hub.Close()
	in, err := ingestrtmp.New(ingestrtmp.Config{Addr: "127.0.0.1:0", Hub: hub, Auth: fakeAuth{}, PlainEnabled: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc=size=1280x720:rate=30", "-c:v", "libx264", "-preset", "ultrafast",
		"-g", "30", "-t", "20", "-f", "flv", fmt.Sprintf("rtmp://%s/live/live_key1", in.Addr()))
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ff.Process.Kill(); _ = ff.Wait() }()

	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	m, err := New(Config{Hub: hub, Width: 320, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := m.JPEG(context.Background(), "s9"); !errors.Is(err, ErrOffline) {
		t.Fatalf("unknown stream: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for hub.Stream("s1") == nil || hub.Stream("s1").Stats().UnitsIn < 5 {
		if time.Now().After(deadline) {
			t.Fatal("the stream did not go live")
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _, err := m.JPEG(context.Background(), "s1")
			if err != nil {
				t.Error(err)
			}
			results[i] = b
		}()
	}
	wg.Wait()
	t.Logf("8 concurrent requests: %s", time.Since(start).Round(time.Millisecond))
	for _, b := range results[1:] {
		if !bytes.Equal(b, results[0]) {
			t.Fatal("concurrent requests got different thumbnails: more than one ffmpeg run")
		}
	}
	img, err := jpeg.Decode(bytes.NewReader(results[0]))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 180 {
		t.Fatalf("thumbnail %v, want 320x180", b)
	}
	again, at, _ := m.JPEG(context.Background(), "s1")
	if !bytes.Equal(again, results[0]) || !at.Equal(now) {
		t.Fatal("not served from the cache within the TTL")
	}
	mu.Lock()
	now = now.Add(16 * time.Second)
	mu.Unlock()
	if _, at, err := m.JPEG(context.Background(), "s1"); err != nil || !at.Equal(clock()) {
		t.Fatalf("after the TTL: made at %v (%v), want a new one", at, err)
	}
}
