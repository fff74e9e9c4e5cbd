package whep

import (
	"context"
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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

// testResolver knows a fixed set of playback ids.
type testResolver map[string]string

func (r testResolver) Resolve(_ context.Context, req egress.Request) (string, error) {
	if req.Protocol != "whep" {
		return "", fmt.Errorf("protocol %q: %w", req.Protocol, egress.ErrForbidden)
	}
	id, ok := r[req.ID]
	if !ok {
		return "", fmt.Errorf("playback id: %w", egress.ErrNotFound)
	}
	return id, nil
}

var _ egress.Resolver = testResolver(nil)

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

// clip is an H.264 + AAC clip made by ffmpeg, as bus units.
type clip struct {
	video       *bus.Track
	audio       *bus.Track
	vUnits      [][]byte // AVCC
	vKey        []bool
	aUnits      [][]byte // raw AAC
	aSampleRate int
}

func makeClip(t *testing.T) *clip {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
	dir := t.TempDir()
	vPath, aPath := filepath.Join(dir, "v.h264"), filepath.Join(dir, "a.aac")
	run := func(args ...string) {
		out, err := exec.Command("ffmpeg", append([]string{"-hide_banner", "-loglevel", "error", "-y"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	run("-f", "lavfi", "-i", "testsrc=size=640x360:rate=30", "-t", "4", "-c:v", "libx264",
		"-profile:v", "high", "-bf", "0", "-g", "30", "-pix_fmt", "yuv420p", "-f", "h264", vPath)
	run("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "4", "-ac", "2",
		"-c:a", "aac", "-b:a", "128k", "-f", "adts", aPath)

	c := &clip{}
	f, err := os.Open(vPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := h264reader.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var sps, pps []byte
	var cur [][]byte
	key := false
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data := append([]byte(nil), nal.Data...)
		switch nal.UnitType {
		case h264reader.NalUnitTypeSPS:
			sps = data
			continue // the bus carries them in the track's record (as RTMP does)
		case h264reader.NalUnitTypePPS:
			pps = data
			continue
		case h264reader.NalUnitTypeCodedSliceIdr:
			key = true
		}
		cur = append(cur, data)
		if nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr {
			c.vUnits = append(c.vUnits, bus.JoinNALUs(cur))
			c.vKey = append(c.vKey, key)
			cur, key = nil, false
		}
	}
	cfg, err := bus.AVCConfig(sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	c.video = &bus.Track{Index: 0, Codec: bus.CodecH264, ClockRate: 90000, Config: cfg, Width: 640, Height: 360}

	b, err := os.ReadFile(aPath)
	if err != nil {
		t.Fatal(err)
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	asc := mpeg4audio.AudioSpecificConfig{Type: pkts[0].Type, SampleRate: pkts[0].SampleRate,
		ChannelConfig: pkts[0].ChannelConfig}
	ascb, err := asc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c.aSampleRate = pkts[0].SampleRate
	c.audio = &bus.Track{Index: 1, Codec: bus.CodecAAC, ClockRate: c.aSampleRate, Config: ascb,
		SampleRate: c.aSampleRate, Channels: 2}
	for _, p := range pkts {
		c.aUnits = append(c.aUnits, p.AU)
	}
	if len(c.vUnits) < 100 || len(c.aUnits) < 150 || !c.vKey[0] {
		t.Fatalf("clip: %d video, %d audio units", len(c.vUnits), len(c.aUnits))
	}
	return c
}

// publish writes the clip to the bus in real time, looping, until ctx ends.
func (c *clip) publish(ctx context.Context, pub *bus.Publisher) {
	start := time.Now()
	vDur := time.Second / 30
	aDur := 1024 * time.Second / time.Duration(c.aSampleRate)
	vi, ai := 0, 0
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Since(start)
		for {
			vt := time.Duration(vi) * vDur
			at := time.Duration(ai) * aDur
			if vt > now && at > now {
				break
			}
			if vt <= at {
				i := vi % len(c.vUnits)
				pub.Write(&bus.Unit{Track: c.video, PTS: vt, DTS: vt, Key: c.vKey[i],
					Payload: c.vUnits[i], Arrival: time.Now()})
				vi++
			} else {
				i := ai % len(c.aUnits)
				pub.Write(&bus.Unit{Track: c.audio, PTS: at, DTS: at, Key: true,
					Payload: c.aUnits[i], Arrival: time.Now()})
				ai++
			}
		}
	}
}

type fixture struct {
	hub  *bus.Hub
	srv  *Server
	http *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{hub: bus.New(bus.Config{Logger: slog.New(slog.DiscardHandler)})}
	srv, err := New(Config{Hub: f.hub, API: testAPI(t), Logger: slog.New(slog.DiscardHandler),
		Resolver: testResolver{"pub_live": "s_live", "pub_offline": "s_offline"}})
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

// player is a pion WHEP client.
type player struct {
	pc       *webrtc.PeerConnection
	location string

	mu         sync.Mutex
	sps        []byte
	videoPkts  int
	opusPkts   int
	opusTS     []uint32
	opusBadTOC int
	closed     bool
	done       sync.WaitGroup
}

// close closes the peer connection and waits for the track readers.
func (p *player) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.pc.Close()
	p.done.Wait()
}

func newPlayer(t *testing.T) (*player, string) {
	t.Helper()
	pc, err := testAPI(t).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &player{pc: pc}
	t.Cleanup(p.close)
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			t.Fatal(err)
		}
	}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		i := 0
		if tr.Kind() == webrtc.RTPCodecTypeAudio {
			i = 1
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		p.done.Add(1)
		p.mu.Unlock()
		defer p.done.Done()
		dec := &rtph264.Decoder{PacketizationMode: 1}
		_ = dec.Init()
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.mu.Lock()
			if i == 0 {
				p.videoPkts++
				if au, err := dec.Decode(pkt); err == nil && p.sps == nil {
					for _, n := range au {
						if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
							p.sps = n
						}
					}
				}
			} else {
				p.opusPkts++
				p.opusTS = append(p.opusTS, pkt.Timestamp)
				if opus.PacketDuration2(pkt.Payload) <= 0 {
					p.opusBadTOC++
				}
			}
			p.mu.Unlock()
		}
	})
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

func (f *fixture) play(t *testing.T, playback string) *player {
	t.Helper()
	p, offer := newPlayer(t)
	resp := post(t, f.http.URL+"/api/stream/"+playback+"/webrtc/whep", "application/sdp", offer)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST: %d %s", resp.StatusCode, b)
	}
	p.location = resp.Header.Get("Location")
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(b)}); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) del(t *testing.T, p *player) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, f.http.URL+p.location, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
}

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
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Status != status || e.Error == "" {
		t.Fatalf("error body %+v (%v), want status %d and a message", e, err, status)
	}
}

// waitFor polls cond (media arrives over real sockets: there is no event to wait on).
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

func TestPlayH264AndTranscodedAAC(t *testing.T) {
	c := makeClip(t)
	f := newFixture(t)

	var (
		latMu     sync.Mutex
		lat       []time.Duration
		measuring bool
	)
	testHookWrite = func(u *bus.Unit, at time.Time) {
		latMu.Lock()
		if measuring {
			lat = append(lat, at.Sub(u.Arrival))
		}
		latMu.Unlock()
	}
	defer func() { testHookWrite = nil }()

	pub, err := f.hub.Publish("s_live", []*bus.Track{c.video, c.audio})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.publish(ctx, pub)
	}()
	defer func() {
		cancel()
		wg.Wait()
		pub.Close()
	}()

	p1 := f.play(t, "pub_live")
	p2 := f.play(t, "pub_live")
	if n := f.srv.counters.started.Load(); n != 1 {
		t.Fatalf("%d transcoders started for two viewers, want 1", n)
	}
	bs := f.hub.Stream("s_live")
	waitFor(t, 10*time.Second, "viewer count", func() bool { return bs.Stats().Viewers == 2 })

	for _, p := range []*player{p1, p2} {
		waitFor(t, 15*time.Second, "video and audio", func() bool {
			p.mu.Lock()
			defer p.mu.Unlock()
			return p.sps != nil && p.opusPkts >= 50
		})
		p.mu.Lock()
		var s h264.SPS
		if err := s.Unmarshal(p.sps); err != nil {
			t.Fatal(err)
		}
		if s.Width() != 640 || s.Height() != 360 {
			t.Fatalf("SPS %dx%d, want 640x360", s.Width(), s.Height())
		}
		if p.opusBadTOC > 0 {
			t.Fatalf("%d invalid Opus packets", p.opusBadTOC)
		}
		// Opus timestamps advance by 20 ms (960 ticks) per packet, bar the odd drop.
		ts := p.opusTS
		adv := 0
		for i := 1; i < len(ts); i++ {
			d := int32(ts[i] - ts[i-1])
			if d <= 0 {
				t.Fatalf("opus timestamp went back: %d after %d", ts[i], ts[i-1])
			}
			if d == 960 {
				adv++
			}
		}
		if adv < len(ts)*8/10 {
			t.Fatalf("only %d of %d opus steps are 20 ms", adv, len(ts))
		}
		p.mu.Unlock()
	}
	if n := f.srv.counters.started.Load(); n != 1 {
		t.Fatalf("%d transcoders started, want 1", n)
	}
	// Live latency, after the GOP-cache replay: bus arrival -> RTP written (both viewers).
	latMu.Lock()
	measuring = true
	latMu.Unlock()
	waitFor(t, 10*time.Second, "latency samples", func() bool {
		latMu.Lock()
		defer latMu.Unlock()
		return len(lat) >= 120
	})
	latMu.Lock()
	measuring = false
	latMu.Unlock()

	f.del(t, p1)
	if n := f.srv.counters.running.Load(); n != 1 {
		t.Fatalf("%d transcoders running with one viewer left, want 1", n)
	}
	f.del(t, p2)
	if n := f.srv.counters.running.Load(); n != 0 {
		t.Fatalf("%d transcoders running after the last viewer left", n)
	}
	waitFor(t, 5*time.Second, "viewer count 0", func() bool { return bs.Stats().Viewers == 0 })

	latMu.Lock()
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("bus arrival -> RTP write (video, live): p50 %v, p99 %v, max %v (%d writes, 2 viewers)",
			lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1], len(lat))
	}
	latMu.Unlock()
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	_, offer := newPlayer(t)
	url := func(id string) string { return f.http.URL + "/api/stream/" + id + "/webrtc/whep" }
	checkError(t, post(t, url("pub_live"), "application/sdp", "not sdp"), http.StatusBadRequest)
	checkError(t, post(t, url("pub_live"), "application/sdp", ""), http.StatusBadRequest)
	checkError(t, post(t, url("pub_live"), "application/json", offer), http.StatusUnsupportedMediaType)
	checkError(t, post(t, url("pub_offline"), "application/sdp", offer), http.StatusNotFound)
	checkError(t, post(t, url("pub_unknown"), "application/sdp", offer), http.StatusNotFound)

	// A stream whose only codecs WHEP cannot send.
	pub, err := f.hub.Publish("s_live", []*bus.Track{{Codec: bus.CodecVP9, ClockRate: 90000}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	checkError(t, post(t, url("pub_live"), "application/sdp", offer), http.StatusBadRequest)
}

func TestCloseWithOpenSessions(t *testing.T) {
	c := makeClip(t)
	before := runtime.NumGoroutine()
	hub := bus.New(bus.Config{Logger: slog.New(slog.DiscardHandler)})
	srv, err := New(Config{Hub: hub, API: testAPI(t), Logger: slog.New(slog.DiscardHandler),
		Resolver: testResolver{"pub_live": "s_live"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{hub: hub, srv: srv, http: httptest.NewServer(srv)}
	pub, err := hub.Publish("s_live", []*bus.Track{c.video, c.audio})
	if err != nil {
		t.Fatal(err)
	}
	pub.Write(&bus.Unit{Track: c.video, Key: true, Payload: c.vUnits[0], Arrival: time.Now()})
	var players []*player
	for range 2 {
		players = append(players, f.play(t, "pub_live"))
	}
	waitFor(t, 10*time.Second, "video", func() bool {
		for _, p := range players {
			p.mu.Lock()
			n := p.videoPkts
			p.mu.Unlock()
			if n == 0 {
				return false
			}
		}
		return true
	})
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		_ = srv.Close()
		_ = srv.Close()
		close(done)
	}()
	defer func() { t.Logf("close+drain %v", time.Since(t0)) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if n := srv.counters.running.Load(); n != 0 {
		t.Fatalf("%d transcoders still running", n)
	}
	f.http.Close()
	for _, p := range players {
		p.close()
	}
	pub.Close()
	hub.Close()
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	dumped := false
	for runtime.NumGoroutine() > before {
		if !dumped && time.Since(t0) > 3*time.Second {
			dumped = true
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Logf("still %d > %d\n%s", runtime.NumGoroutine(), before, buf[:n])
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:n])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
