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

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/egress/whep/whepclient"
	"github.com/relaycast/relaycast/ingest/whip/signal"
	"github.com/relaycast/relaycast/ingest/whip/whipclient"
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

// testAPI builds a pion API that gathers loopback candidates only.
func testAPI(t testing.TB) *webrtc.API {
	t.Helper()
	api, err := signal.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	return api
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
	aus, err := whipclient.ReadH264(f)
	if err != nil {
		t.Fatal(err)
	}
	var sps, pps []byte
	for _, au := range aus {
		var nalus h264.AnnexB
		if err := nalus.Unmarshal(au); err != nil {
			t.Fatal(err)
		}
		var cur [][]byte
		key := false
		for _, n := range nalus {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
				continue // the bus carries them in the track's record (as RTMP does)
			case h264.NALUTypePPS:
				pps = n
				continue
			case h264.NALUTypeIDR:
				key = true
			}
			cur = append(cur, n)
		}
		c.vUnits = append(c.vUnits, bus.JoinNALUs(cur))
		c.vKey = append(c.vKey, key)
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

// play starts a loopback-only WHEP player of the playback id.
func (f *fixture) play(t *testing.T, playback string) *whepclient.Player {
	t.Helper()
	return f.playWith(t, playback, whepclient.Options{})
}

// playWith is play with options (API and KeepOpusTimestamps are set here).
func (f *fixture) playWith(t *testing.T, playback string, opts whepclient.Options) *whepclient.Player {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	opts.API, opts.KeepOpusTimestamps = testAPI(t), 1000
	p, err := whepclient.Dial(ctx, f.http.URL+"/api/stream/"+playback+"/webrtc/whep", opts)
	if err != nil {
		t.Fatalf("play %s: %v", playback, err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// naluTypes lists the types of an access unit's NAL units.
func naluTypes(au [][]byte) []h264.NALUType {
	var out []h264.NALUType
	for _, n := range au {
		if len(n) > 0 {
			out = append(out, h264.NALUType(n[0]&0x1f))
		}
	}
	return out
}

// del ends a player's session with DELETE, which must answer 200.
func del(t *testing.T, p *whepclient.Player) {
	t.Helper()
	if err := p.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
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

// checkStatus asserts that err is the endpoint's refusal with status, in relaycast's
// JSON error shape.
func checkStatus(t *testing.T, err error, status int) {
	t.Helper()
	var se *whepclient.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("error %v, want a refusal with status %d", err, status)
	}
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(se.Body, &e); err != nil || se.StatusCode != status || e.Status != status ||
		e.Error == "" || se.Message != e.Error {
		t.Fatalf("refusal %v, body %+v (%v), want status %d and a message", se, e, err, status)
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

	// p1 also looks at every access unit: the first one it gets is a keyframe (the
	// session starts on the cached keyframe) with SPS and PPS in front.
	var (
		auMu    sync.Mutex
		aus     int
		firstAU [][]byte
	)
	p1 := f.playWith(t, "pub_live", whepclient.Options{OnVideo: func(au [][]byte, _ uint32, _ time.Time) {
		auMu.Lock()
		defer auMu.Unlock()
		if aus == 0 {
			for _, n := range au {
				firstAU = append(firstAU, append([]byte(nil), n...))
			}
		}
		aus++
	}})
	p2 := f.play(t, "pub_live")
	if n := f.srv.counters.started.Load(); n != 1 {
		t.Fatalf("%d transcoders started for two viewers, want 1", n)
	}
	bs := f.hub.Stream("s_live")
	waitFor(t, 10*time.Second, "viewer count", func() bool { return bs.Stats().Viewers == 2 })

	for _, p := range []*whepclient.Player{p1, p2} {
		waitFor(t, 15*time.Second, "video and audio", func() bool {
			st := p.Stats()
			return st.SPS != nil && st.AudioPackets >= 50
		})
		st := p.Stats()
		var s h264.SPS
		if err := s.Unmarshal(st.SPS); err != nil {
			t.Fatal(err)
		}
		if s.Width() != 640 || s.Height() != 360 {
			t.Fatalf("SPS %dx%d, want 640x360", s.Width(), s.Height())
		}
		if st.BadOpus > 0 {
			t.Fatalf("%d invalid Opus packets", st.BadOpus)
		}
		// Opus timestamps advance by 20 ms (960 ticks) per packet, bar the odd drop.
		ts := p.OpusTimestamps()
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
	}
	if n := f.srv.counters.started.Load(); n != 1 {
		t.Fatalf("%d transcoders started, want 1", n)
	}
	auMu.Lock()
	if aus < 10 || !h264.IsRandomAccess(firstAU) || h264.NALUType(firstAU[0][0]&0x1f) != h264.NALUTypeSPS {
		t.Fatalf("%d access units, the first one of NAL types %v", aus, naluTypes(firstAU))
	}
	auMu.Unlock()
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

	del(t, p1)
	if n := f.srv.counters.running.Load(); n != 1 {
		t.Fatalf("%d transcoders running with one viewer left, want 1", n)
	}
	del(t, p2)
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := whepclient.New(ctx, whepclient.Options{API: testAPI(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	offer := p.Offer()
	url := func(id string) string { return f.http.URL + "/api/stream/" + id + "/webrtc/whep" }
	checkError(t, post(t, url("pub_live"), "application/sdp", "not sdp"), http.StatusBadRequest)
	checkError(t, post(t, url("pub_live"), "application/sdp", ""), http.StatusBadRequest)
	checkError(t, post(t, url("pub_live"), "application/json", offer), http.StatusUnsupportedMediaType)
	checkError(t, post(t, url("pub_offline"), "application/sdp", offer), http.StatusNotFound)
	checkError(t, post(t, url("pub_unknown"), "application/sdp", offer), http.StatusNotFound)
	// The client reports the refusal.
	_, err = whepclient.Dial(ctx, url("pub_offline"), whepclient.Options{API: testAPI(t)})
	checkStatus(t, err, http.StatusNotFound)

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
	var players []*whepclient.Player
	for range 2 {
		players = append(players, f.play(t, "pub_live"))
	}
	waitFor(t, 10*time.Second, "video", func() bool {
		for _, p := range players {
			if p.Stats().VideoPackets == 0 {
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
		_ = p.Close() // the DELETE fails: the server is gone
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
