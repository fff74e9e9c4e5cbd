package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

func (fakeAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	if n, ok := strings.CutPrefix(req.Key, "live_key"); ok && n != "" {
		return ingest.Grant{StreamID: "s" + n}, nil
	}
	return ingest.Grant{}, ingest.ErrUnauthorized
}

func (fakeAuth) Release(ingest.Grant) {}

// targets is a TargetSource the tests edit.
type targets struct {
	mu sync.Mutex
	m  map[string][]Target
	n  int // calls
}

func (ts *targets) RelayTargets(_ context.Context, stream string) ([]Target, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.n++
	return append([]Target(nil), ts.m[stream]...), nil
}

func (ts *targets) set(stream string, t ...Target) {
	ts.mu.Lock()
	ts.m[stream] = t
	ts.mu.Unlock()
}

// node is a hub with an RTMP/RTMPS ingest: the source (A) or a destination (B).
type node struct {
	hub *bus.Hub
	in  *ingestrtmp.Server
}

func newNode(t testing.TB, log *slog.Logger, cfg bus.Config) *node {
	t.Helper()
	cfg.Logger = log
	n := &node{hub: bus.New(cfg)}
	in, err := ingestrtmp.New(ingestrtmp.Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: testTLSConfig(t),
		Hub: n.hub, Auth: fakeAuth{}, PlainEnabled: true, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.in = in
	t.Cleanup(func() {
		_ = in.Close()
		n.hub.Close()
	})
	return n
}

func (n *node) url(scheme, key string) string {
	addr := n.in.Addr()
	if scheme == "rtmps" {
		addr = n.in.TLSAddr()
	}
	return fmt.Sprintf("%s://%s/live/%s", scheme, addr, key)
}

type env struct {
	log     *slog.Logger
	a       *node
	targets *targets
	m       *Manager
}

// newEnv starts source node A and a Manager on its hub (cfg's Hub and Targets are set).
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := &env{log: log, a: newNode(t, log, bus.Config{ReconnectGrace: 2 * time.Second}),
		targets: &targets{m: make(map[string][]Target)}}
	cfg.Hub, cfg.Targets, cfg.Logger = e.a.hub, e.targets, log
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	t.Cleanup(func() { _ = m.Close() })
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relaycast test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func requireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (the README's test command installs it): %v", tool, err)
		}
	}
}

// ffmpegPublish publishes a generated H.264+AAC clip (-g 30) of secs seconds in real time.
func ffmpegPublish(t testing.TB, url string, secs int, bitrate string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-c:a", "aac",
		"-t", fmt.Sprint(secs), "-f", "flv", url)
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

// sink is an `ffmpeg -listen 1` RTMP server that copies what it receives into an FLV file.
type sink struct {
	t    testing.TB
	addr string
	dir  string
	n    int
	cmd  *exec.Cmd
	out  string
}

func newSink(t testing.TB) *sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	s := &sink{t: t, addr: addr, dir: t.TempDir()}
	t.Cleanup(s.kill)
	return s
}

func (s *sink) url() string { return "rtmp://" + s.addr + "/live/sinkkey" }

// start runs a new ffmpeg listening on the sink's address (a relay dialing before it
// listens is refused and retries).
func (s *sink) start() {
	s.t.Helper()
	s.n++
	s.out = filepath.Join(s.dir, fmt.Sprintf("out%d.flv", s.n))
	s.cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-listen", "1", "-analyzeduration", "500000", "-i", s.url(), "-c", "copy", "-flush_packets", "1", "-f", "flv", s.out)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sink) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// videoFrames returns the codec and number of video frames ffprobe reads from file.
func videoFrames(t testing.TB, file string) (codec string, frames int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	if len(f) < 2 {
		t.Fatalf("ffprobe %s: %q", file, out)
	}
	_, _ = fmt.Sscan(f[1], &frames)
	return f[0], frames
}

// waitLive waits until stream id is live on hub and has received n units.
func waitLive(t testing.TB, hub *bus.Hub, id string, n uint64, d time.Duration) {
	t.Helper()
	waitFor(t, d, func() bool {
		st := hub.Stream(id)
		return st != nil && st.State() == bus.StateLive && st.Stats().UnitsIn >= n
	})
}

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

// waitState waits until relay id is in state s and returns its status.
func (e *env) waitState(t testing.TB, id int64, s State, d time.Duration) Status {
	t.Helper()
	var st Status
	deadline := time.Now().Add(d)
	for {
		st, _ = e.m.Status(id)
		if st.State == s {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay %d: state %s (last error %q), want %s within %s", id, st.State, st.LastError, s, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// throttle starts a TCP proxy to addr that forwards what clients send at most rate bytes
// per second, with a small receive buffer so that the client feels it at once. It returns
// the proxy's address.
func throttle(t testing.TB, addr string, rate int) string {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", addr)
			if err != nil {
				_ = c.Close()
				continue
			}
			// The test's end closes both sides (not to drain what the kernel holds).
			t.Cleanup(func() { _ = c.Close(); _ = up.Close() })
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, up)
				_ = c.Close()
			}()
			go func() {
				defer wg.Done()
				defer up.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						if _, err := up.Write(buf[:n]); err != nil {
							return
						}
						time.Sleep(time.Duration(n) * time.Second / time.Duration(rate))
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().String()
}
