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
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/ingest"
	ingestrtmp "github.com/relaycast/relaycast/ingest/rtmp"
)

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	if os.Getenv(readerProcEnv) != "" {
		os.Exit(readerProcess())
	}
	os.Exit(m.Run())
}

// fakeResolver maps playback ids "pub_N" to stream ids "sN"; "pub_forbidden" is forbidden.
type fakeResolver struct {
	mu     sync.Mutex
	tokens []string
}

var _ egress.Resolver = (*fakeResolver)(nil)

func (r *fakeResolver) Resolve(_ context.Context, req egress.Request) (string, error) {
	r.mu.Lock()
	r.tokens = append(r.tokens, req.Token)
	r.mu.Unlock()
	if req.Protocol != "rtmp" {
		return "", fmt.Errorf("protocol %q", req.Protocol)
	}
	if req.ID == "pub_forbidden" {
		return "", fmt.Errorf("%w: private stream", egress.ErrForbidden)
	}
	if n, ok := strings.CutPrefix(req.ID, "pub_"); ok && n != "" {
		return "s" + n, nil
	}
	return "", egress.ErrNotFound
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

// player adapts a Server to ingest/rtmp's Player, as cmd/relaycast wires them.
func player(s *Server) ingestrtmp.Player {
	return ingestrtmp.PlayerFunc(func(ctx context.Context, r ingestrtmp.PlayRequest, c net.Conn) error {
		return s.Play(ctx, PlayRequest(r), c)
	})
}

type env struct {
	hub *bus.Hub
	in  *ingestrtmp.Server
	out *Server
	res *fakeResolver
	log *slog.Logger
}

// newEnv starts a hub, an RTMP playback server and the ingest server that hands it players.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	var log *slog.Logger
	if _, bench := t.(*testing.B); bench {
		log = slog.New(slog.DiscardHandler)
	} else {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	e := &env{hub: bus.New(bus.Config{ReconnectGrace: -1, Logger: log}), res: &fakeResolver{}, log: log}
	cfg := Config{Hub: e.hub, Resolver: e.res, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	out, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.out = out
	in, err := ingestrtmp.New(ingestrtmp.Config{
		Addr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0", TLSConfig: testTLSConfig(t),
		Hub: e.hub, Auth: fakeAuth{}, PlainEnabled: true, Logger: log, Player: player(out),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.in = in
	t.Cleanup(func() {
		_ = in.Close()
		_ = out.Close()
		_ = out.Close()
		e.hub.Close()
	})
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
func ffmpegPublish(t testing.TB, url string, secs int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30",
		"-b:v", "1500k", "-c:a", "aac", "-t", fmt.Sprint(secs), "-f", "flv", url)
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

// waitLive waits until stream id is live on hub and has received n units.
func waitLive(t testing.TB, hub *bus.Hub, id string, n uint64) {
	t.Helper()
	waitFor(t, 15*time.Second, func() bool {
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

// playClient is a test RTMP player: the package's client connection, a play command, and
// go-rtmp's chunk reader for what comes back.
type playClient struct {
	*clientConn
	msid uint32
	// played is when the play command was sent.
	played time.Time
}

func dialPlay(t testing.TB, addr string, secure bool, name string) *playClient {
	t.Helper()
	p, err := tryDialPlay(addr, secure, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

func tryDialPlay(addr string, secure bool, name string) (*playClient, error) {
	return dialPlayWith(nil, addr, secure, name)
}

// smallBuffers is a dialer whose sockets have a 4 KiB receive buffer from the start, so
// that a client that reads slowly pushes back at once.
var smallBuffers = &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
	return rc.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
	})
}}

func dialPlayWith(d *net.Dialer, addr string, secure bool, name string) (*playClient, error) {
	scheme := "rtmp"
	if secure {
		scheme = "rtmps"
	}
	tg, err := parseURL(fmt.Sprintf("%s://%s/live/%s", scheme, addr, name))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, msid, err := dialClient(ctx, d, tg, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	p := &playClient{clientConn: c, msid: msid}
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	c.wbuf = appendCommand(c.wbuf[:0], csidData, msid, "play", 0, nil, tg.name)
	p.played = time.Now()
	if err := c.send(); err != nil {
		c.close()
		return nil, err
	}
	return p, nil
}

// media is what a playClient read.
type media struct {
	video, audio  int
	keyframes     int
	seqVideo      int
	seqAudio      int
	meta          bool
	firstVideo    time.Duration // from the play command to the first coded video frame
	firstVideoKey bool
	statuses      []string
	bytes         int
}

// readMedia reads until d passed, n coded video frames arrived, or the connection ended.
func (p *playClient) readMedia(d time.Duration, n int) (*media, error) {
	m := &media{}
	_ = p.conn.SetReadDeadline(time.Now().Add(d))
	for n <= 0 || m.video < n {
		msg, err := p.read()
		if err != nil {
			if isTimeout(err) {
				return m, nil
			}
			return m, err
		}
		switch msg := msg.(type) {
		case *message.VideoMessage:
			b, _ := io.ReadAll(msg.Payload)
			m.bytes += len(b)
			if len(b) < 2 {
				return m, fmt.Errorf("short video message")
			}
			if b[1] == 0 {
				m.seqVideo++
				continue
			}
			if m.video == 0 {
				m.firstVideo = time.Since(p.played)
				m.firstVideoKey = b[0]>>4 == 1
			}
			m.video++
			if b[0]>>4 == 1 {
				m.keyframes++
			}
		case *message.AudioMessage:
			b, _ := io.ReadAll(msg.Payload)
			m.bytes += len(b)
			if len(b) >= 2 && b[1] == 0 {
				m.seqAudio++
				continue
			}
			m.audio++
		case *message.DataMessage:
			if msg.Name == "onMetaData" {
				m.meta = true
			}
		case *message.CommandMessage:
			if msg.CommandName == "onStatus" {
				code, _ := infoObject(DecodeCommandArgs(msg.Body))["code"].(string)
				m.statuses = append(m.statuses, code)
			}
		default:
			if err := p.control(msg); err != nil {
				return m, err
			}
		}
	}
	return m, nil
}

// synthTracks are an H.264 and an AAC track with well-formed configuration records (the
// payloads are not decodable: playback does not look into them).
func synthTracks() []*bus.Track {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	cfg, _ := bus.AVCConfig(sps, pps)
	return []*bus.Track{
		{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg, Width: 1280, Height: 720},
		{Codec: bus.CodecAAC, ClockRate: 48000, Config: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2},
	}
}

// synthPublisher writes a 30 fps video + 46.875 fps audio stream of about bitrate bits per
// second to the bus, in real time (speed 1) or faster, until ctx ends. It returns the
// number of units written when done is closed.
type synthPublisher struct {
	units atomic.Uint64
	done  chan struct{}
}

func startSynth(t testing.TB, ctx context.Context, hub *bus.Hub, id string, bitrate int, speed float64) *synthPublisher {
	t.Helper()
	pub, err := hub.Publish(id, synthTracks())
	if err != nil {
		t.Fatal(err)
	}
	sp := &synthPublisher{done: make(chan struct{})}
	tracks := pub.Tracks()
	frame := bitrate / 8 / 30
	key := make([]byte, 4*frame)
	inter := make([]byte, frame*9/10)
	for _, b := range [][]byte{key, inter} {
		for i := range b {
			b[i] = byte(i)
		}
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	}
	key[4], inter[4] = 0x65, 0x41
	aac := make([]byte, 256)
	go func() {
		defer close(sp.done)
		defer pub.Close()
		start := time.Now()
		var v, a int
		for ctx.Err() == nil {
			vt := time.Duration(v) * time.Second / 30
			at := time.Duration(a) * 1024 * time.Second / 48000
			next := min(vt, at)
			if wait := time.Duration(float64(next)/speed) - time.Since(start); wait > 0 {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return
				}
			}
			if vt <= at {
				p := inter
				if v%30 == 0 {
					p = key
				}
				pub.Write(&bus.Unit{Track: tracks[0], PTS: vt, DTS: vt, Key: v%30 == 0, Payload: p, Arrival: time.Now()})
				v++
			} else {
				pub.Write(&bus.Unit{Track: tracks[1], PTS: at, DTS: at, Key: true, Payload: aac, Arrival: time.Now()})
				a++
			}
			sp.units.Add(1)
		}
	}()
	t.Cleanup(func() { <-sp.done })
	return sp
}
