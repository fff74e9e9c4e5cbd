package whip

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
	"github.com/relaycast/relaycast/ingest/whip/signal"
	"github.com/relaycast/relaycast/ingest/whip/whipclient"
)

// testAuth admits the keys it knows.
type testAuth struct {
	keys     map[string]string // key -> stream id
	released atomic.Int32
}

func (a *testAuth) Authorize(_ context.Context, req ingest.Request) (ingest.Grant, error) {
	if req.Protocol != ingest.ProtocolWHIP {
		return ingest.Grant{}, fmt.Errorf("protocol %s: %w", req.Protocol, ingest.ErrForbidden)
	}
	id, ok := a.keys[req.Key]
	if !ok {
		return ingest.Grant{}, fmt.Errorf("unknown key: %w", ingest.ErrUnauthorized)
	}
	return ingest.Grant{StreamID: id, Name: "test " + id}, nil
}

func (a *testAuth) Release(ingest.Grant) { a.released.Add(1) }

var _ ingest.Authorizer = (*testAuth)(nil)

// testAPI builds a pion API that gathers loopback candidates only.
func testAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := signal.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

type fixture struct {
	hub  *bus.Hub
	auth *testAuth
	srv  *Server
	http *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{
		hub:  bus.New(bus.Config{Logger: slog.New(slog.DiscardHandler)}),
		auth: &testAuth{keys: map[string]string{"live_good": "pub_stream1"}},
	}
	srv, err := New(Config{Hub: f.hub, Auth: f.auth, API: testAPI(t),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = srv
	f.http = httptest.NewServer(srv)
	t.Cleanup(func() {
		f.http.Close()
		_ = f.srv.Close()
		f.hub.Close()
	})
	return f
}

func (f *fixture) url(key string) string {
	return f.http.URL + "/api/stream/" + key + "/webrtc/whip"
}

func post(t *testing.T, url, ct, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", ct)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// checkError asserts an error response in relaycast's JSON shape.
func checkError(t *testing.T, resp *http.Response, status int) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	checkErrorBody(t, resp.StatusCode, b, status)
}

// checkStatus asserts that err is the endpoint's refusal with status, in relaycast's
// JSON error shape.
func checkStatus(t *testing.T, err error, status int) {
	t.Helper()
	var se *whipclient.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a refusal with status %d", err, status)
	}
	checkErrorBody(t, se.StatusCode, se.Body, status)
	if se.Message == "" {
		t.Fatalf("refusal %v without a message", se)
	}
}

func checkErrorBody(t *testing.T, code int, body []byte, status int) {
	t.Helper()
	if code != status {
		t.Fatalf("status %d, want %d: %s", code, status, body)
	}
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if e.Status != status || e.Error == "" {
		t.Fatalf("error body %+v, want status %d and a message", e, status)
	}
}

// dial publishes to key with a loopback-only client.
func (f *fixture) dial(t *testing.T, ctx context.Context, key string) (*whipclient.Publisher, error) {
	t.Helper()
	p, err := whipclient.Dial(ctx, f.url(key), whipclient.Options{API: testAPI(t)})
	if err == nil {
		t.Cleanup(func() { _ = p.Close() })
	}
	return p, err
}

func TestPublishH264Opus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := whipclient.Generate(ctx, t.TempDir(), whipclient.GenerateOptions{})
	if err != nil {
		t.Fatalf("test media (ffmpeg is required; the README's test command installs it): %v", err)
	}
	if len(m.Video) < 60 || len(m.Audio) < 100 {
		t.Fatalf("test media: %d video, %d audio units", len(m.Video), len(m.Audio))
	}
	f := newFixture(t)

	rd, err := f.hub.Subscribe(ctx, "pub_stream1", bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	p, err := f.dial(t, ctx, "live_good")
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if !strings.HasPrefix(p.Resource(), f.http.URL+"/api/stream/") {
		t.Fatalf("Location %q", p.Resource())
	}

	// A second publisher of the same stream is busy.
	_, err = f.dial(t, ctx, "live_good")
	checkStatus(t, err, http.StatusConflict)

	sendCtx, stopSend := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.Stream(sendCtx, m, whipclient.StreamOptions{Speed: 2})
	}()
	defer func() {
		stopSend()
		wg.Wait()
	}()

	var (
		video, audio  int
		lastV, lastA  time.Duration
		firstV, first = true, true
	)
	for video < 20 || audio < 40 {
		u, err := rd.Next(ctx)
		if err != nil {
			t.Fatalf("bus: %v (video %d, audio %d)", err, video, audio)
		}
		switch u.Track.Codec {
		case bus.CodecH264:
			if firstV {
				firstV = false
				if !u.Key {
					t.Fatal("first video unit is not a keyframe")
				}
				sps, _, err := bus.ParseAVCConfig(u.Track.Config)
				if err != nil {
					t.Fatalf("avc config: %v", err)
				}
				var s h264.SPS
				if err := s.Unmarshal(sps[0]); err != nil {
					t.Fatal(err)
				}
				if s.Width() != 320 || s.Height() != 240 || u.Track.Width != 320 || u.Track.Height != 240 {
					t.Fatalf("SPS %dx%d, track %dx%d, want 320x240", s.Width(), s.Height(), u.Track.Width, u.Track.Height)
				}
			} else if u.DTS <= lastV {
				t.Fatalf("video DTS went back: %v after %v", u.DTS, lastV)
			}
			if _, err := bus.SplitNALUs(u.Payload); err != nil {
				t.Fatalf("video payload is not AVCC: %v", err)
			}
			lastV = u.DTS
			video++
		case bus.CodecOpus:
			if u.Track.ClockRate != 48000 || u.Track.Channels != 2 {
				t.Fatalf("opus track %+v", u.Track)
			}
			// OpusHead per RFC 7845 §5.1: little-endian input sample rate.
			if c := u.Track.Config; len(c) != 19 || string(c[:8]) != "OpusHead" || c[9] != 2 ||
				binary.LittleEndian.Uint32(c[12:]) != 48000 {
				t.Fatalf("OpusHead %x", c)
			}
			if !first && u.DTS <= lastA {
				t.Fatalf("audio DTS went back: %v after %v", u.DTS, lastA)
			}
			first = false
			lastA = u.DTS
			audio++
		default:
			t.Fatalf("unexpected codec %v", u.Track.Codec)
		}
	}
	// Audio and video share one timeline: both started at about the same time.
	if d := lastV - lastA; d > time.Second || d < -time.Second {
		t.Fatalf("audio %v and video %v are far apart", lastA, lastV)
	}

	// DELETE ends the session: the stream goes idle and the grant is released.
	if err := p.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if st := f.hub.Stream("pub_stream1").State(); st != bus.StateIdle {
		t.Fatalf("stream state after DELETE: %v", st)
	}
	if n := f.auth.released.Load(); n != 2 { // the busy attempt and the session
		t.Fatalf("Release called %d times, want 2", n)
	}
	// The resource is gone.
	req, _ := http.NewRequest(http.MethodDelete, p.Resource(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkError(t, resp, http.StatusNotFound)
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := whipclient.New(ctx, whipclient.Options{API: testAPI(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	offer := p.Offer()

	checkError(t, post(t, f.url("live_good"), "application/sdp", "v=0\r\nthis is not sdp"), http.StatusBadRequest)
	checkError(t, post(t, f.url("live_good"), "application/sdp", ""), http.StatusBadRequest)
	checkError(t, post(t, f.url("live_good"), "text/plain", offer), http.StatusUnsupportedMediaType)
	checkError(t, post(t, f.url("live_nope"), "application/sdp", offer), http.StatusUnauthorized)
	// The client reports the refusal.
	_, err = f.dial(t, ctx, "live_nope")
	checkStatus(t, err, http.StatusUnauthorized)
	// An offer with only unsupported codecs.
	pcmu := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n" +
		"a=fingerprint:sha-256 00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00\r\n" +
		"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=rtpmap:0 PCMU/8000\r\n"
	checkError(t, post(t, f.url("live_good"), "application/sdp", pcmu), http.StatusBadRequest)

	// Unknown session resources and methods.
	req, _ := http.NewRequest(http.MethodDelete, f.url("live_good")+"/0123", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkError(t, resp, http.StatusNotFound)
	req, _ = http.NewRequest(http.MethodGet, f.url("live_good"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	checkError(t, resp, http.StatusMethodNotAllowed)

	req, _ = http.NewRequest(http.MethodOptions, f.url("live_good"), nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Accept-Patch") != "application/trickle-ice-sdpfrag" {
		t.Fatalf("OPTIONS: %d %v", resp.StatusCode, resp.Header)
	}
	if n := f.auth.released.Load(); n != 0 {
		t.Fatalf("Release called %d times for refused requests", n)
	}
}

func TestTrickleAndCloseWithOpenSessions(t *testing.T) {
	before := runtime.NumGoroutine()
	hub := bus.New(bus.Config{Logger: slog.New(slog.DiscardHandler)})
	auth := &testAuth{keys: map[string]string{"live_a": "pub_a", "live_b": "pub_b"}}
	srv, err := New(Config{Hub: hub, Auth: auth, API: testAPI(t), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var pubs []*whipclient.Publisher
	for _, key := range []string{"live_a", "live_b"} {
		p, err := whipclient.Dial(ctx, hs.URL+"/api/stream/"+key+"/webrtc/whip", whipclient.Options{API: testAPI(t)})
		if err != nil {
			t.Fatalf("publish %s: %v", key, err)
		}
		pubs = append(pubs, p)
		offer := p.Offer()

		// Trickle: a candidate for the session's ufrag is accepted; another ufrag is an
		// ICE restart, which is refused with 422.
		ufrag := ""
		for line := range strings.Lines(offer) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=ice-ufrag:"); ok {
				ufrag = v
				break
			}
		}
		frag := "a=ice-ufrag:" + ufrag + "\r\na=ice-pwd:x\r\nm=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n" +
			"a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
		patch := func(body string) int {
			req, _ := http.NewRequest(http.MethodPatch, p.Resource(), strings.NewReader(body))
			req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := patch(frag); code != http.StatusNoContent {
			t.Fatalf("PATCH: %d", code)
		}
		if code := patch(strings.Replace(frag, ufrag, "other", 1)); code != http.StatusUnprocessableEntity {
			t.Fatalf("PATCH restart: %d", code)
		}
	}
	done := make(chan struct{})
	go func() {
		_ = srv.Close()
		_ = srv.Close() // safe twice
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if n := auth.released.Load(); n != 2 {
		t.Fatalf("Release called %d times, want 2", n)
	}
	hs.Close()
	for _, p := range pubs {
		_ = p.Close() // the DELETE fails: the server is gone
	}
	hub.Close()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
