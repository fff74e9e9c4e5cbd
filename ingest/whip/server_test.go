package whip

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
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
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, reg); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(reg),
		webrtc.WithSettingEngine(se))
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
	if resp.StatusCode != status {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, b)
	}
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("error body: %v", err)
	}
	if e.Status != status || e.Error == "" {
		t.Fatalf("error body %+v, want status %d and a message", e, status)
	}
}

// publisher is a pion WHIP client.
type publisher struct {
	pc       *webrtc.PeerConnection
	video    *webrtc.TrackLocalStaticSample
	audio    *webrtc.TrackLocalStaticSample
	location string
}

// newOffer creates a client peer connection with H.264 and Opus tracks and its offer.
func newPublisher(t *testing.T, api *webrtc.API) (*publisher, string) {
	t.Helper()
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	p := &publisher{pc: pc}
	p.video, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}, "video", "relaycast")
	p.audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "relaycast")
	for _, tr := range []webrtc.TrackLocal{p.video, p.audio} {
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go func() { // drain RTCP (PLI) so the interceptors run
			for {
				if _, _, err := sender.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return p, pc.LocalDescription().SDP
}

func (p *publisher) accept(t *testing.T, resp *http.Response) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/sdp" {
		t.Fatalf("answer content type %q", ct)
	}
	p.location = resp.Header.Get("Location")
	if !strings.HasPrefix(p.location, "/api/stream/") {
		t.Fatalf("Location %q", p.location)
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer,
		SDP: string(b)}); err != nil {
		t.Fatal(err)
	}
}

// testMedia makes an H.264 Annex-B file and an Ogg Opus file with ffmpeg.
func testMedia(t *testing.T) (h264Path, oggPath string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
	dir := t.TempDir()
	h264Path, oggPath = filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.ogg")
	run := func(args ...string) {
		out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "3", "-c:v", "libx264",
		"-profile:v", "baseline", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-f", "h264", h264Path)
	run("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-ac", "2",
		"-c:a", "libopus", "-b:a", "64k", "-page_duration", "20000", oggPath)
	return h264Path, oggPath
}

// readAccessUnits splits an Annex-B file into access units (Annex-B, one slice each, as
// libx264 writes by default).
func readAccessUnits(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var aus [][]byte
	var cur []byte
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cur = append(cur, 0, 0, 0, 1)
		cur = append(cur, nal.Data...)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			aus = append(aus, cur)
			cur = nil
		}
	}
	return aus
}

// readOpusPackets returns the packets of an Ogg Opus file written with one packet per page.
func readOpusPackets(t *testing.T, path string) [][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := oggreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		payload, hdr, err := r.ParseNextPage()
		if err != nil {
			break
		}
		if hdr.GranulePosition == 0 || bytes.HasPrefix(payload, []byte("OpusTags")) {
			continue
		}
		out = append(out, payload)
	}
	return out
}

// send paces the media at twice real time until ctx ends or the media runs out.
func (p *publisher) send(ctx context.Context, aus, opus [][]byte) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	vi, ai := 0, 0
	for vi < len(aus) || ai < len(opus) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		media2x := 2 * time.Since(start)
		for vi < len(aus) && time.Duration(vi)*time.Second/30 <= media2x {
			_ = p.video.WriteSample(media.Sample{Data: aus[vi], Duration: time.Second / 30})
			vi++
		}
		for ai < len(opus) && time.Duration(ai)*20*time.Millisecond <= media2x {
			_ = p.audio.WriteSample(media.Sample{Data: opus[ai], Duration: 20 * time.Millisecond})
			ai++
		}
	}
}

func TestPublishH264Opus(t *testing.T) {
	h264Path, oggPath := testMedia(t)
	aus, opus := readAccessUnits(t, h264Path), readOpusPackets(t, oggPath)
	if len(aus) < 60 || len(opus) < 100 {
		t.Fatalf("test media: %d video, %d audio units", len(aus), len(opus))
	}
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	rd, err := f.hub.Subscribe(ctx, "pub_stream1", bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	p, offer := newPublisher(t, testAPI(t))
	p.accept(t, post(t, f.url("live_good"), "application/sdp", offer))

	// A second publisher of the same stream is busy.
	_, offer2 := newPublisher(t, testAPI(t))
	checkError(t, post(t, f.url("live_good"), "application/sdp", offer2), http.StatusConflict)

	sendCtx, stopSend := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.send(sendCtx, aus, opus)
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
	req, _ := http.NewRequest(http.MethodDelete, f.http.URL+p.location, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	if st := f.hub.Stream("pub_stream1").State(); st != bus.StateIdle {
		t.Fatalf("stream state after DELETE: %v", st)
	}
	if n := f.auth.released.Load(); n != 2 { // the busy attempt and the session
		t.Fatalf("Release called %d times, want 2", n)
	}
	// The resource is gone.
	resp, err = http.DefaultClient.Do(req.Clone(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	checkError(t, resp, http.StatusNotFound)
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	_, offer := newPublisher(t, testAPI(t))

	checkError(t, post(t, f.url("live_good"), "application/sdp", "v=0\r\nthis is not sdp"), http.StatusBadRequest)
	checkError(t, post(t, f.url("live_good"), "application/sdp", ""), http.StatusBadRequest)
	checkError(t, post(t, f.url("live_good"), "text/plain", offer), http.StatusUnsupportedMediaType)
	checkError(t, post(t, f.url("live_nope"), "application/sdp", offer), http.StatusUnauthorized)
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
	var pcs []*webrtc.PeerConnection
	for _, key := range []string{"live_a", "live_b"} {
		p, offer := newPublisher(t, testAPI(t))
		p.accept(t, post(t, hs.URL+"/api/stream/"+key+"/webrtc/whip", "application/sdp", offer))
		pcs = append(pcs, p.pc)

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
			req, _ := http.NewRequest(http.MethodPatch, hs.URL+p.location, strings.NewReader(body))
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
	for _, pc := range pcs {
		_ = pc.Close()
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
