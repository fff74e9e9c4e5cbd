package rtmp

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestPlayHandOff: a play request reaches the Player with its fields and the socket; the
// connection closes when Play returns. Without a Player, play is refused.
func TestPlayHandOff(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is required (the README's test command installs it): %v", err)
	}
	t.Parallel()
	var (
		mu   sync.Mutex
		reqs []PlayRequest
	)
	player := PlayerFunc(func(ctx context.Context, req PlayRequest, conn net.Conn) error {
		mu.Lock()
		reqs = append(reqs, req)
		mu.Unlock()
		if conn == nil || ctx == nil {
			return fmt.Errorf("no conn")
		}
		return nil // ends the connection without answering: the client fails
	})
	env := startServer(t, func(c *Config) { c.Player = player })
	for _, url := range []string{
		fmt.Sprintf("rtmp://%s/live/pub_abc?token=tok1", env.srv.Addr()),
		fmt.Sprintf("rtmps://%s/live/pub_def", env.srv.TLSAddr()),
	} {
		start := time.Now()
		out, err := exec.Command("ffprobe", "-v", "error", "-rw_timeout", "5000000", url).CombinedOutput()
		if err == nil {
			t.Fatalf("ffprobe succeeded: %s", out)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("connection not closed after Play: %s", took)
		}
	}
	mu.Lock()
	got := append([]PlayRequest(nil), reqs...)
	mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("requests %+v", got)
	}
	if r := got[0]; r.App != "live" || r.Name != "pub_abc" || r.Token() != "tok1" || r.Secure || r.StreamID == 0 ||
		!strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") {
		t.Fatalf("request %+v", r)
	}
	if r := got[1]; r.Name != "pub_def" || r.Query != "" || !r.Secure {
		t.Fatalf("request %+v", r)
	}
	waitFor(t, 5*time.Second, func() bool { st := env.srv.Stats(); return st.Players == 0 && st.Connections == 0 })

	// No Player: refused.
	plain := startServer(t, nil)
	out, err := exec.Command("ffprobe", "-v", "error", fmt.Sprintf("rtmp://%s/live/pub_abc", plain.srv.Addr())).CombinedOutput()
	if err == nil {
		t.Fatalf("play accepted without a Player: %s", out)
	}
	if !strings.Contains(plain.logs.String(), "refused: play is not served") {
		t.Fatalf("log:\n%s", plain.logs.String())
	}
}
