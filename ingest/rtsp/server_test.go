package rtsp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os/exec"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
	rtspegress "github.com/relaycast/relaycast/egress/rtsp"
	"github.com/relaycast/relaycast/ingest"
)

// The playback side implements Player without importing this package; cmd wires them.
var _ Player = (*rtspegress.Server)(nil)

// fakeAuth admits the keys it knows; it records releases.
type fakeAuth struct {
	mu       sync.Mutex
	keys     map[string]string // key -> stream id
	released []ingest.Grant
	last     ingest.Request
}

var _ ingest.Authorizer = (*fakeAuth)(nil)

func (a *fakeAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = req
	id, ok := a.keys[req.Key]
	if !ok {
		return ingest.Grant{}, fmt.Errorf("key %s: %w", ingest.RedactKey(req.Key), ingest.ErrUnauthorized)
	}
	return ingest.Grant{StreamID: id, Name: "test " + id}, nil
}

func (a *fakeAuth) Release(g ingest.Grant) {
	a.mu.Lock()
	a.released = append(a.released, g)
	a.mu.Unlock()
}

func (a *fakeAuth) releases() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.released)
}

func (a *fakeAuth) lastProtocol() ingest.Protocol {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last.Protocol
}

// fakeResolver maps playback ids to stream ids.
type fakeResolver struct{ ids map[string]string }

func (r fakeResolver) Resolve(_ context.Context, req egress.Request) (string, error) {
	if req.ID == "pub_secret" {
		return "", egress.ErrForbidden
	}
	if id, ok := r.ids[req.ID]; ok {
		return id, nil
	}
	return "", egress.ErrNotFound
}

type testEnv struct {
	hub    *bus.Hub
	auth   *fakeAuth
	srv    *Server
	player *rtspegress.Server
}

const (
	testKey      = "live_testkey_0123456789"
	testStream   = "s1"
	testPlayback = "pub_s1"
)

func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (the README's test command installs it): %v", tool, err)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func newTestEnv(t *testing.T, cfg Config) *testEnv {
	t.Helper()
	e := &testEnv{
		hub:  bus.New(bus.Config{ReconnectGrace: -1, Logger: testLogger(t)}),
		auth: &fakeAuth{keys: map[string]string{testKey: testStream, "live_otherkey_0123": "s2"}},
	}
	p, err := rtspegress.New(rtspegress.Config{
		Hub: e.hub, Resolver: fakeResolver{ids: map[string]string{testPlayback: testStream}},
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.player = p
	if cfg.Addr == "" && cfg.TLSAddr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Hub, cfg.Auth, cfg.Player, cfg.Logger = e.hub, e.auth, p, testLogger(t)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		e.srv.Close()
		e.player.Close()
		e.hub.Close()
	})
	return e
}

func (e *testEnv) url(scheme, path string) string {
	addr := e.srv.Addr()
	if scheme == "rtsps" {
		addr = e.srv.TLSAddr()
	}
	return scheme + "://" + addr.String() + "/live/" + path
}

// publish runs ffmpeg publishing a test pattern and a tone for dur; the returned channel
// gets ffmpeg's result.
func publish(t *testing.T, url, transport string, dur time.Duration) (<-chan error, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dur+20*time.Second)
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-bf", "0",
		"-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
		"-t", fmt.Sprint(dur.Seconds()), "-f", "rtsp", "-rtsp_transport", transport, url)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- cmd.Wait()
		cancel()
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done, &out
}

// receive subscribes to the stream (waiting for its publisher) and reads units until it has
// seen an H.264 keyframe and some AAC, and checks what it got.
func receive(t *testing.T, hub *bus.Hub, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := hub.Subscribe(ctx, id, bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var video, audio int
	var lastVideoDTS time.Duration = -1 << 62
	for video < 30 || audio < 20 {
		u, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d video and %d audio units: %v", video, audio, err)
		}
		switch u.Track.Codec {
		case bus.CodecH264:
			if video == 0 {
				if !u.Key {
					t.Fatal("first video unit is not a keyframe")
				}
				if u.Track.Width != 320 || u.Track.Height != 240 {
					t.Fatalf("SPS says %dx%d, want 320x240", u.Track.Width, u.Track.Height)
				}
				sps, pps, err := bus.ParseAVCConfig(u.Track.Config)
				if err != nil || len(sps) == 0 || len(pps) == 0 {
					t.Fatalf("track config: %v", err)
				}
			}
			if _, err := bus.SplitNALUs(u.Payload); err != nil {
				t.Fatalf("video payload is not AVCC: %v", err)
			}
			if u.DTS <= lastVideoDTS {
				t.Fatalf("video DTS not increasing: %v after %v", u.DTS, lastVideoDTS)
			}
			if u.PTS != u.DTS || u.Track.BFrames {
				t.Fatalf("no B-frames published but PTS %v DTS %v bframes=%v", u.PTS, u.DTS, u.Track.BFrames)
			}
			lastVideoDTS = u.DTS
			video++
		case bus.CodecAAC:
			if u.Track.SampleRate != 48000 || len(u.Payload) == 0 {
				t.Fatalf("aac track %+v payload %d bytes", u.Track, len(u.Payload))
			}
			audio++
		default:
			t.Fatalf("unexpected codec %v", u.Track.Codec)
		}
	}
}

func TestPublishTCP(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{})
	done, out := publish(t, e.url("rtsp", testKey), "tcp", 4*time.Second)
	receive(t, e.hub, testStream)
	if p := e.auth.lastProtocol(); p != ingest.ProtocolRTSP {
		t.Fatalf("protocol %q", p)
	}
	if err := <-done; err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	waitFor(t, 5*time.Second, "publisher released", func() bool {
		return e.auth.releases() == 1 && e.srv.Stats().Publishers == 0
	})
}

func TestPublishUDP(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{UDP: true, UDPRTPAddr: "127.0.0.1:0"})
	if e.srv.UDPRTPAddr() == "" {
		t.Fatal("no UDP address")
	}
	done, out := publish(t, e.url("rtsp", testKey), "udp", 4*time.Second)
	receive(t, e.hub, testStream)
	if err := <-done; err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
}

func TestPublishRTSPS(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{TLSAddr: "127.0.0.1:0", TLSConfig: selfSigned(t)})
	if e.srv.Addr() != nil {
		t.Fatal("plain listener on although Addr is empty")
	}
	done, out := publish(t, e.url("rtsps", testKey), "tcp", 3*time.Second)
	receive(t, e.hub, testStream)
	if p := e.auth.lastProtocol(); p != ingest.ProtocolRTSPS {
		t.Fatalf("protocol %q", p)
	}
	if err := <-done; err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
}

func TestWrongKeyRefusedFast(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{})
	start := time.Now()
	done, out := publish(t, e.url("rtsp", "live_wrong_key_000000"), "tcp", 4*time.Second)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("ffmpeg published with a wrong key")
		}
		if !strings.Contains(out.String(), "401") {
			t.Errorf("ffmpeg output does not mention 401: %s", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wrong key not refused within 5 s")
	}
	t.Logf("refused after %v", time.Since(start).Round(time.Millisecond))
	if e.srv.Stats().Refused == 0 {
		t.Fatal("refusal not counted")
	}
	if e.hub.Stream(testStream) != nil {
		t.Fatal("a stream was created")
	}
}

func TestSecondPublisherRefused(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{})
	first, _ := publish(t, e.url("rtsp", testKey), "tcp", 10*time.Second)
	waitFor(t, 10*time.Second, "first publisher live", func() bool {
		st := e.hub.Stream(testStream)
		return st != nil && st.State() == bus.StateLive
	})
	second, out := publish(t, e.url("rtsp", testKey), "tcp", 3*time.Second)
	select {
	case err := <-second:
		if err == nil {
			t.Fatal("second publisher was accepted")
		}
		if !strings.Contains(out.String(), "409") {
			t.Errorf("ffmpeg output does not mention 409: %s", out)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second publisher not refused within 5 s")
	}
	select {
	case err := <-first:
		t.Fatalf("first publisher ended: %v", err)
	default:
	}
	if st := e.hub.Stream(testStream); st.State() != bus.StateLive || st.Stats().Publishes != 1 {
		t.Fatalf("stream state %v publishes %d", st.State(), st.Stats().Publishes)
	}
}

type probeResult struct {
	Streams []struct {
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
}

func ffprobe(t *testing.T, url string, args ...string) (probeResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args = append(args, "-v", "error", "-show_streams", "-of", "json", url)
	cmd := exec.CommandContext(ctx, "ffprobe", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var res probeResult
	if err != nil {
		return res, fmt.Errorf("%v: %s", err, stderr.String())
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return res, fmt.Errorf("ffprobe output: %v: %s", err, out)
	}
	return res, nil
}

// TestRead publishes over RTSP and reads the stream back: ffprobe over TCP and UDP finds
// H.264 and AAC, and two ffmpeg readers decode without errors while sharing one bus reader.
func TestRead(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{UDP: true, UDPRTPAddr: "127.0.0.1:0"})
	publish(t, e.url("rtsp", testKey), "tcp", 15*time.Second)
	waitFor(t, 10*time.Second, "stream live", func() bool {
		st := e.hub.Stream(testStream)
		return st != nil && st.State() == bus.StateLive
	})
	url := e.url("rtsp", testPlayback)
	for _, transport := range []string{"tcp", "udp"} {
		res, err := ffprobe(t, url, "-rtsp_transport", transport)
		if err != nil {
			t.Fatalf("ffprobe %s: %v", transport, err)
		}
		var codecs []string
		for _, s := range res.Streams {
			codecs = append(codecs, s.CodecName)
			if s.CodecName == "h264" && (s.Width != 320 || s.Height != 240) {
				t.Fatalf("h264 %dx%d", s.Width, s.Height)
			}
		}
		if strings.Join(codecs, ",") != "h264,aac" {
			t.Fatalf("ffprobe %s found %v, want h264 and aac", transport, codecs)
		}
	}

	// Two readers at once: one bus reader, one ServerStream.
	before := e.player.Stats().BusReaders
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, transport := range []string{"tcp", "udp"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- decode(url, transport)
		}()
	}
	waitFor(t, 10*time.Second, "two players", func() bool { return e.player.Stats().Players == 2 })
	if v := e.hub.Stream(testStream).Stats().Viewers; v != 2 {
		t.Errorf("viewers %d, want 2", v)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := e.player.Stats()
	if st.BusReaders-before != 1 || st.Feeds != 1 {
		t.Fatalf("two readers used %d bus readers and %d feeds, want 1 and 1", st.BusReaders-before, st.Feeds)
	}
}

// decode reads url with ffmpeg for 2 s and fails on any decoding error.
func decode(url, transport string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-rtsp_transport", transport, "-i", url, "-t", "2", "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffmpeg read %s: %v: %s", transport, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		return fmt.Errorf("ffmpeg read %s reported errors:\n%s", transport, s)
	}
	return nil
}

func TestReadRefusals(t *testing.T) {
	requireTools(t)
	t.Parallel()
	e := newTestEnv(t, Config{})
	for _, tc := range []struct{ id, want string }{
		{"pub_unknown", "404"},
		{testPlayback, "404"}, // known but offline
		{"pub_secret", "403"},
	} {
		_, err := ffprobe(t, e.url("rtsp", tc.id), "-rtsp_transport", "tcp")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %s", tc.id, err, tc.want)
		}
	}
	// A path outside live/ is unknown too.
	_, err := ffprobe(t, "rtsp://"+e.srv.Addr().String()+"/other/x", "-rtsp_transport", "tcp")
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("other path: %v", err)
	}
}

// relevantGoroutines returns the stacks of goroutines running gortsplib's or this
// repository's RTSP code.
func relevantGoroutines() []string {
	var b bytes.Buffer
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "gortsplib") || strings.Contains(g, "relaycast/ingest/rtsp.") ||
			strings.Contains(g, "relaycast/egress/rtsp.") {
			// Test helpers (the ffmpeg waiters) are not the servers' goroutines.
			if !strings.Contains(g, "_test.go") {
				out = append(out, g)
			}
		}
	}
	return out
}

// TestCloseWithSessionsOpen closes the servers while a publisher and a reader are
// connected: Close returns, and no goroutine is left. It does not run in parallel, so
// that other tests' goroutines are not counted.
func TestCloseWithSessionsOpen(t *testing.T) {
	requireTools(t)
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: testLogger(t)})
	defer hub.Close()
	auth := &fakeAuth{keys: map[string]string{testKey: testStream}}
	player, err := rtspegress.New(rtspegress.Config{
		Hub: hub, Resolver: fakeResolver{ids: map[string]string{testPlayback: testStream}}, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: selfSigned(t),
		UDP: true, UDPRTPAddr: "127.0.0.1:0", Hub: hub, Auth: auth, Player: player, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	url := "rtsp://" + srv.Addr().String() + "/live/"
	publish(t, url+testKey, "tcp", 20*time.Second)
	waitFor(t, 10*time.Second, "stream live", func() bool {
		st := hub.Stream(testStream)
		return st != nil && st.State() == bus.StateLive
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	reader := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-loglevel", "quiet",
		"-rtsp_transport", "tcp", "-i", url+testPlayback, "-f", "null", "-")
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	defer reader.Wait()
	defer cancel()
	waitFor(t, 10*time.Second, "reader playing", func() bool { return player.Stats().Players == 1 })

	closed := make(chan struct{})
	go func() {
		srv.Close()
		player.Close()
		srv.Close()
		player.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if auth.releases() != 1 {
		t.Errorf("grant released %d times, want 1", auth.releases())
	}
	waitFor(t, 2*time.Second, "goroutines gone", func() bool { return len(relevantGoroutines()) == 0 })
}

func TestNewRejectsBadConfig(t *testing.T) {
	hub := bus.New(bus.Config{})
	defer hub.Close()
	auth := &fakeAuth{}
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:0", Auth: auth},
		{Addr: "127.0.0.1:0", Hub: hub},
		{Hub: hub, Auth: auth},
		{TLSAddr: "127.0.0.1:0", Hub: hub, Auth: auth},
		{Addr: "127.0.0.1:0", UDP: true, UDPRTPAddr: "127.0.0.1:8001", Hub: hub, Auth: auth},
		{Addr: "256.0.0.1:0", Hub: hub, Auth: auth},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	// A failing second listener closes the first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := New(Config{Addr: "127.0.0.1:0", TLSAddr: ln.Addr().String(), TLSConfig: selfSigned(t),
		Hub: hub, Auth: auth}); err == nil {
		t.Fatal("TLS listener on a used port accepted")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// selfSigned returns a TLS config with a fresh self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
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
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}
