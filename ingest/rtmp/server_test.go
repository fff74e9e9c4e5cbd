package rtmp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// fakeAuth admits the keys it knows, each to one stream, and counts its calls.
type fakeAuth struct {
	mu       sync.Mutex
	keys     map[string]string // key → stream id
	granted  map[string]int    // stream id → grants
	released map[string]int    // stream id → releases
	protos   []ingest.Protocol
}

var _ ingest.Authorizer = (*fakeAuth)(nil)

func newFakeAuth(keys map[string]string) *fakeAuth {
	return &fakeAuth{keys: keys, granted: map[string]int{}, released: map[string]int{}}
}

func (a *fakeAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.protos = append(a.protos, req.Protocol)
	id, ok := a.keys[req.Key]
	if !ok {
		return ingest.Grant{}, fmt.Errorf("%w: unknown stream key", ingest.ErrUnauthorized)
	}
	a.granted[id]++
	return ingest.Grant{StreamID: id, Name: "test " + id}, nil
}

func (a *fakeAuth) Release(g ingest.Grant) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.released[g.StreamID]++
}

func (a *fakeAuth) counts(id string) (granted, released int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.granted[id], a.released[id]
}

// logBuffer collects log output for assertions and mirrors it to the test log.
type logBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	out io.Writer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Write(p)
	return l.out.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testEnv struct {
	srv  *Server
	hub  *bus.Hub
	auth *fakeAuth
	logs *logBuffer
}

// Stream keys the tests use; testKeys[i] maps to the stream id streamID(i).
var testKeys = []string{"live_key1abcdef", "live_key2abcdef", "live_key3abcdef", "live_key4abcdef"}

func startServer(t *testing.T, mod func(*Config)) *testEnv {
	t.Helper()
	logs := &logBuffer{out: t.Output()}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	keys := map[string]string{}
	for i, k := range testKeys {
		keys[k] = streamID(i)
	}
	env := &testEnv{
		hub:  bus.New(bus.Config{ReconnectGrace: -1, Logger: log}),
		auth: newFakeAuth(keys),
		logs: logs,
	}
	cfg := Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: testTLSConfig(t),
		Hub: env.hub, Auth: env.auth, PlainEnabled: true, Logger: log,
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env.srv = srv
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		env.hub.Close()
	})
	return env
}

func streamID(i int) string { return fmt.Sprintf("stream-%d", i) }

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relaycast test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func requireFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
}

// ffmpeg starts publishing a generated H.264+AAC clip of secs seconds, in real time, to url.
func ffmpeg(t *testing.T, url string, secs, bframes int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-bf", fmt.Sprint(bframes), "-c:a", "aac", "-t", fmt.Sprint(secs), "-f", "flv", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if s := strings.TrimSpace(stderr.String()); s != "" {
			t.Logf("ffmpeg %s: %s", redactURL(url), strings.ReplaceAll(s, url, redactURL(url)))
		}
	})
	return cmd
}

func redactURL(u string) string {
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[:i+1] + ingest.RedactKey(u[i+1:])
	}
	return u
}

// waitExit waits for cmd to end, at most d.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("ffmpeg still running after %s", d)
		return nil
	}
}

func publishURL(scheme string, addr net.Addr, key string) string {
	return fmt.Sprintf("%s://%s/live/%s", scheme, addr, key)
}

func subscribe(t *testing.T, hub *bus.Hub, id string) *bus.Reader {
	t.Helper()
	r, err := hub.Subscribe(t.Context(), id, bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard) // go-rtmp's client in these tests logs through it
	os.Exit(m.Run())
}

// TestPublish publishes H.264+AAC with ffmpeg over RTMP and RTMPS and reads it off the bus.
func TestPublish(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	env := startServer(t, nil)
	for i, tc := range []struct {
		scheme string
		addr   net.Addr
		proto  ingest.Protocol
	}{
		{"rtmp", env.srv.Addr(), ingest.ProtocolRTMP},
		{"rtmps", env.srv.TLSAddr(), ingest.ProtocolRTMPS},
	} {
		t.Run(tc.scheme, func(t *testing.T) {
			t.Parallel()
			key, id := testKeys[i], streamID(i)
			r := subscribe(t, env.hub, id)
			start := time.Now()
			cmd := ffmpeg(t, publishURL(tc.scheme, tc.addr, key), 3, 0)

			ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
			defer cancel()
			var (
				video, audio int
				first        *bus.Unit
				firstAt      time.Time
				last         = map[bus.Codec]time.Duration{}
			)
			for {
				u, err := r.Next(ctx)
				if err != nil {
					if !errors.Is(err, bus.ErrEnded) {
						t.Fatalf("reader: %v (after %d video, %d audio units)", err, video, audio)
					}
					break
				}
				if first == nil {
					first, firstAt = u, time.Now()
				}
				if d, ok := last[u.Track.Codec]; ok && u.DTS <= d {
					t.Fatalf("%s DTS %v after %v", u.Track.Codec, u.DTS, d)
				}
				last[u.Track.Codec] = u.DTS
				switch u.Track.Codec {
				case bus.CodecH264:
					video++
					if _, err := bus.SplitNALUs(u.Payload); err != nil {
						t.Fatalf("video payload: %v", err)
					}
				case bus.CodecAAC:
					audio++
					if !u.Key || u.Track.SampleRate != 48000 {
						t.Fatalf("audio unit %+v", u)
					}
				default:
					t.Fatalf("unexpected codec %s", u.Track.Codec)
				}
			}
			if err := waitExit(t, cmd, 10*time.Second); err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			if first == nil || first.Track.Codec != bus.CodecH264 || !first.Key {
				t.Fatalf("first unit %+v", first)
			}
			sps, pps, err := bus.ParseAVCConfig(first.Track.Config)
			if err != nil || len(sps) == 0 || len(pps) == 0 {
				t.Fatalf("track config: %v", err)
			}
			if first.Track.Width != 640 || first.Track.Height != 360 || first.Track.BFrames {
				t.Fatalf("video track %+v", first.Track)
			}
			// 3 s at 30 fps and 48000/1024 fps.
			if video < 80 || audio < 130 {
				t.Fatalf("got %d video and %d audio units", video, audio)
			}
			if g, rel := env.auth.counts(id); g != 1 || rel != 1 {
				t.Fatalf("granted %d, released %d", g, rel)
			}
			t.Logf("%s: %d video, %d audio units; ffmpeg start → first bus unit %s",
				tc.scheme, video, audio, firstAt.Sub(start).Round(time.Millisecond))
		})
	}
	t.Cleanup(func() {
		env.auth.mu.Lock()
		defer env.auth.mu.Unlock()
		if len(env.auth.protos) != 2 || env.auth.protos[0] == env.auth.protos[1] {
			t.Errorf("protocols seen by the authorizer: %v", env.auth.protos)
		}
		if logs := env.logs.String(); strings.Contains(logs, testKeys[0]) || strings.Contains(logs, testKeys[1]) {
			t.Error("a full stream key was logged")
		}
	})
}

// TestRefusals: a wrong key, a second publisher of a live stream, and plain RTMP when it is
// disabled are refused at once, with a log line, and nothing reaches the bus.
func TestRefusals(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()

	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		env := startServer(t, nil)
		start := time.Now()
		cmd := ffmpeg(t, publishURL("rtmp", env.srv.Addr(), "live_wrongwrongwrong"), 3, 0)
		if err := waitExit(t, cmd, 15*time.Second); err == nil {
			t.Fatal("ffmpeg succeeded with a wrong key")
		}
		took := time.Since(start)
		if took > 2500*time.Millisecond {
			t.Fatalf("refusal took %s", took)
		}
		if n := len(env.hub.Streams()); n != 0 {
			t.Fatalf("%d streams on the bus", n)
		}
		logs := env.logs.String()
		if !strings.Contains(logs, "refused: not authorized") || strings.Contains(logs, "live_wrongwrongwrong") {
			t.Fatalf("log:\n%s", logs)
		}
		for i := range testKeys {
			if g, rel := env.auth.counts(streamID(i)); g != 0 || rel != 0 {
				t.Fatal("grant or release for a wrong key")
			}
		}
		t.Logf("wrong key refused in %s", took.Round(time.Millisecond))
	})

	t.Run("second publisher", func(t *testing.T) {
		t.Parallel()
		env := startServer(t, nil)
		key, id := testKeys[0], streamID(0)
		r := subscribe(t, env.hub, id)
		first := ffmpeg(t, publishURL("rtmp", env.srv.Addr(), key), 4, 0)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if _, err := r.Next(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		second := ffmpeg(t, publishURL("rtmps", env.srv.TLSAddr(), key), 2, 0)
		if err := waitExit(t, second, 5*time.Second); err == nil {
			t.Fatal("second publisher succeeded")
		}
		took := time.Since(start)
		// The first publisher goes on.
		n := 0
		for ; n < 30; n++ {
			if _, err := r.Next(ctx); err != nil {
				t.Fatalf("after the refusal: %v", err)
			}
		}
		if err := waitExit(t, first, 10*time.Second); err != nil {
			t.Fatalf("first publisher: %v", err)
		}
		waitFor(t, 5*time.Second, func() bool { g, rel := env.auth.counts(id); return g == 2 && rel == 2 })
		if !strings.Contains(env.logs.String(), "refused: stream already has a publisher") {
			t.Fatalf("log:\n%s", env.logs.String())
		}
		t.Logf("second publisher refused in %s", took.Round(time.Millisecond))
	})

	t.Run("unknown app", func(t *testing.T) {
		t.Parallel()
		env := startServer(t, nil)
		cmd := ffmpeg(t, fmt.Sprintf("rtmp://%s/other/%s", env.srv.Addr(), testKeys[0]), 3, 0)
		if err := waitExit(t, cmd, 15*time.Second); err == nil {
			t.Fatal("unknown application accepted")
		}
		logs := env.logs.String()
		if !strings.Contains(logs, "refused: unknown application") || strings.Contains(logs, testKeys[0]) {
			t.Fatalf("log:\n%s", logs)
		}
	})

	t.Run("plain disabled", func(t *testing.T) {
		t.Parallel()
		env := startServer(t, func(c *Config) { c.PlainEnabled = false })
		cmd := ffmpeg(t, publishURL("rtmp", env.srv.Addr(), testKeys[0]), 3, 0)
		if err := waitExit(t, cmd, 15*time.Second); err == nil {
			t.Fatal("plain RTMP accepted")
		}
		if !strings.Contains(env.logs.String(), "refused: plain RTMP is disabled") {
			t.Fatalf("log:\n%s", env.logs.String())
		}
		if g, _ := env.auth.counts(streamID(0)); g != 0 {
			t.Fatal("authorized over disabled plain RTMP")
		}
	})
}

// TestBFrames: video with B-frames is flagged on its track from the first unit.
func TestBFrames(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	env := startServer(t, nil)
	id := streamID(0)
	r := subscribe(t, env.hub, id)
	ffmpeg(t, publishURL("rtmp", env.srv.Addr(), testKeys[0]), 2, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	u, err := r.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Track.Codec != bus.CodecH264 || !u.Track.BFrames {
		t.Fatalf("first unit's track %+v", u.Track)
	}
	reordered := false
	for range 60 {
		u, err := r.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Track.Codec == bus.CodecH264 && u.PTS != u.DTS {
			reordered = true
		}
	}
	if !reordered {
		t.Fatal("no unit with PTS != DTS")
	}
}

// TestMalformed: garbage after a handshake and a malformed AVC sequence header close their
// connections only; a publisher on another stream goes on.
func TestMalformed(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	env := startServer(t, nil)
	goodID := streamID(0)
	r := subscribe(t, env.hub, goodID)
	ffmpeg(t, publishURL("rtmp", env.srv.Addr(), testKeys[0]), 4, 0)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := r.Next(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("garbage after handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", env.srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
			t.Fatal(err)
		}
		garbage := make([]byte, 8192)
		_, _ = rand.Read(garbage)
		garbage[0] = 0x03 // chunk stream 3, type 0 header: a message header follows
		_, _ = c.Write(garbage)
		// The server closes the connection: reads end in EOF (or a reset), not a timeout.
		_, err = io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("server kept the connection open")
		}
	})

	t.Run("malformed avc sequence header", func(t *testing.T) {
		badKey, badID := testKeys[1], streamID(1)
		pub := dialPublisher(t, env.srv.Addr().String(), badKey)
		// Publish does not wait for the answer: wait for the server to admit it.
		waitFor(t, 5*time.Second, func() bool { g, _ := env.auth.counts(badID); return g == 1 })
		bad := avcTag(true, 0, 0, []byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 40, 0x67})
		_ = pub.Write(6, 0, &message.VideoMessage{Payload: bytes.NewReader(bad)})
		// The connection is closed: the grant is released and nothing was published.
		waitFor(t, 5*time.Second, func() bool { _, rel := env.auth.counts(badID); return rel == 1 })
		if st := env.hub.Stream(badID); st != nil && st.State() == bus.StateLive {
			t.Fatal("malformed publisher is live")
		}
	})

	// The good publisher still delivers.
	for range 30 {
		if _, err := r.Next(ctx); err != nil {
			t.Fatalf("good publisher after the bad ones: %v", err)
		}
	}
	logs := env.logs.String()
	if !strings.Contains(logs, "malformed") {
		t.Fatalf("no log line about the malformed header:\n%s", logs)
	}
}

// dialPublisher connects with go-rtmp's client and publishes key. go-rtmp's client calls
// can wait forever, so they run under a timeout.
func dialPublisher(t *testing.T, addr, key string) *gortmp.Stream {
	t.Helper()
	cc, err := gortmp.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "rtmp", addr, &gortmp.ConnConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	type result struct {
		st  *gortmp.Stream
		err error
	}
	done := make(chan result, 1)
	go func() {
		err := cc.Connect(&message.NetConnectionConnect{Command: message.NetConnectionConnectCommand{
			App: "live", TCURL: "rtmp://" + addr + "/live",
		}})
		if err != nil {
			done <- result{err: err}
			return
		}
		st, err := cc.CreateStream(nil, 4096)
		if err == nil {
			err = st.Publish(&message.NetStreamPublish{PublishingName: key, PublishingType: "live"})
		}
		done <- result{st, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.st
	case <-time.After(5 * time.Second):
		_ = cc.Close()
		t.Fatal("go-rtmp client setup timed out")
		return nil
	}
}

// TestClose: Close with a publisher connected returns promptly, releases the grant, and
// leaves no goroutine behind. Not parallel: it counts goroutines.
func TestClose(t *testing.T) {
	requireFFmpeg(t)
	before := runtime.NumGoroutine()
	logs := &logBuffer{out: t.Output()}
	log := slog.New(slog.NewTextHandler(logs, nil))
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: log})
	auth := newFakeAuth(map[string]string{testKeys[0]: "s1"})
	srv, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: testTLSConfig(t),
		Hub: hub, Auth: auth, PlainEnabled: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	r, err := hub.Subscribe(t.Context(), "s1", bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	cmd := ffmpeg(t, publishURL("rtmps", srv.TLSAddr(), testKeys[0]), 10, 0)
	// An idle connection too (handshake not even started).
	idle, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := r.Next(ctx); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats(); st.Connections != 2 || st.Publishers != 1 || st.BytesIn == 0 {
		t.Fatalf("stats %+v", st)
	}
	start := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if err := srv.Close(); err != nil { // twice
		t.Fatal(err)
	}
	if took > 2*time.Second {
		t.Fatalf("Close took %s", took)
	}
	if g, rel := auth.counts("s1"); g != 1 || rel != 1 {
		t.Fatalf("granted %d released %d", g, rel)
	}
	if st := srv.Stats(); st.Connections != 0 || st.Publishers != 0 {
		t.Fatalf("stats after close %+v", st)
	}
	_ = waitExit(t, cmd, 10*time.Second) // ffmpeg fails: its server went away
	r.Close()
	hub.Close()
	_ = idle.Close()
	var now int
	waitFor(t, 5*time.Second, func() bool { now = runtime.NumGoroutine(); return now <= before })
	t.Logf("Close with a live publisher took %s; goroutines %d before, %d after", took.Round(time.Millisecond), before, now)
}

// TestTimeouts: a connection that does not finish its setup, and a publisher that sends no
// media, are closed after their timeouts.
func TestTimeouts(t *testing.T) {
	t.Parallel()
	env := startServer(t, func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.IdleTimeout = 500 * time.Millisecond
	})

	c, err := net.Dial("tcp", env.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("silent connection: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("silent connection closed after %s", took)
	}

	id := streamID(2)
	dialPublisher(t, env.srv.Addr().String(), testKeys[2])
	waitFor(t, 5*time.Second, func() bool { g, _ := env.auth.counts(id); return g == 1 })
	start = time.Now()
	waitFor(t, 5*time.Second, func() bool { _, rel := env.auth.counts(id); return rel == 1 })
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Fatalf("idle publisher closed after %s only", took)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, "handshake not finished") || !strings.Contains(logs, "no media for 500ms") {
		t.Fatalf("log:\n%s", logs)
	}
}

// TestNew covers the configuration errors and undoing a partial start.
func TestNew(t *testing.T) {
	hub := bus.New(bus.Config{})
	defer hub.Close()
	auth := newFakeAuth(nil)
	if _, err := New(Config{Hub: hub}); err == nil {
		t.Fatal("no Auth accepted")
	}
	if _, err := New(Config{Hub: hub, Auth: auth, TLSAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("TLSAddr without TLSConfig accepted")
	}
	// The RTMPS port is taken: the plain listener must be released again.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plainAddr := probe.Addr().String()
	_ = probe.Close()
	_, err = New(Config{Addr: plainAddr, TLSAddr: taken.Addr().String(), TLSConfig: &tls.Config{},
		Hub: hub, Auth: auth})
	if err == nil {
		t.Fatal("bound a taken address")
	}
	ln, err := net.Listen("tcp", plainAddr)
	if err != nil {
		t.Fatalf("plain listener not released: %v", err)
	}
	_ = ln.Close()
	// Both off.
	srv, err := New(Config{Hub: hub, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != nil || srv.TLSAddr() != nil {
		t.Fatal("addresses of disabled listeners")
	}
	_ = srv.Close()
}

func waitFor(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
