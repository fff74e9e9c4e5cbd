package hls

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

// fakeResolver maps playback ids to stream ids; ids listed in forbidden get ErrForbidden.
type fakeResolver struct {
	mu        sync.Mutex
	ids       map[string]string
	forbidden map[string]bool
	last      egress.Request
}

var _ egress.Resolver = (*fakeResolver)(nil)

func (f *fakeResolver) Resolve(_ context.Context, req egress.Request) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = req
	if f.forbidden[req.ID] {
		return "", egress.ErrForbidden
	}
	id, ok := f.ids[req.ID]
	if !ok {
		return "", egress.ErrNotFound
	}
	return id, nil
}

type testEnv struct {
	hub *bus.Hub
	srv *Server
	ts  *httptest.Server
	res *fakeResolver
}

func newTestEnv(t *testing.T, cfg Config, hubCfg bus.Config) *testEnv {
	t.Helper()
	e := &testEnv{
		hub: bus.New(hubCfg),
		res: &fakeResolver{
			ids:       map[string]string{"pub_a": "a", "pub_b": "b"},
			forbidden: map[string]bool{"pub_secret": true},
		},
	}
	cfg.Hub, cfg.Resolver = e.hub, e.res
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		// The server first: closing its muxers releases requests still waiting in them.
		if err := e.srv.Close(); err != nil {
			t.Error(err)
		}
		e.ts.Close()
		e.hub.Close()
	})
	return e
}

func (e *testEnv) url(playback, file string) string {
	return e.ts.URL + "/api/stream/" + playback + "/hls/" + file
}

type response struct {
	status int
	body   string
	header http.Header
}

func get(t *testing.T, url, userAgent string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if userAgent != "" {
		req.Header.Set("User-Agent", userAgent)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, body: string(b), header: res.Header}
}

// firstURI returns the first URI line of a playlist.
func firstURI(pl string) string {
	sc := bufio.NewScanner(strings.NewReader(pl))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			return l
		}
	}
	return ""
}

// mediaPlaylist fetches index.m3u8 (which waits for content) and then the media playlist
// it names, and returns the latter's file name and text.
func mediaPlaylist(t *testing.T, e *testEnv, playback string) (string, string) {
	t.Helper()
	// The muxer starts on the hub's live event, which its own goroutine delivers: until
	// then the stream is unknown to the server (404).
	var r response
	deadline := time.Now().Add(5 * time.Second)
	for {
		r = get(t, e.url(playback, "index.m3u8"), "")
		if r.status != http.StatusNotFound || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r.status != http.StatusOK {
		t.Fatalf("index.m3u8: %d %s", r.status, r.body)
	}
	name, _, _ := strings.Cut(firstURI(r.body), "?")
	if name == "" {
		t.Fatalf("no media playlist in:\n%s", r.body)
	}
	m := get(t, e.url(playback, name), "")
	if m.status != http.StatusOK || !strings.Contains(m.body, "#EXTINF") {
		t.Fatalf("%s: %d\n%s", name, m.status, m.body)
	}
	return name, m.body
}

func checkErrorShape(t *testing.T, r response, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (%s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	want := `{"error":"` + msg + `","status":` + strconv.Itoa(status) + `}`
	if strings.TrimSpace(r.body) != want {
		t.Errorf("body %s, want %s", r.body, want)
	}
	if r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("no CORS header on error")
	}
}

func ffprobeCodecs(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-show_streams", "-of", "json", url).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("ffprobe: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("ffprobe: %v", err)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output: %v: %s", err, out)
	}
	var names []string
	for _, s := range res.Streams {
		names = append(names, s.CodecName)
	}
	return names
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFFprobeReadsEveryVariant(t *testing.T) {
	c := testClip(t)
	for _, variant := range []string{VariantLowLatency, VariantFMP4, VariantMPEGTS} {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, Config{Variant: variant}, bus.Config{})
			f := startFeed(t, e.hub, "a", c, 1)
			first := <-f.first
			name, pl := mediaPlaylist(t, e, "pub_a")
			t.Logf("%s: first unit -> media playlist served in %v", variant, time.Since(first))
			if variant == VariantLowLatency && !strings.Contains(pl, "#EXT-X-PART:") {
				t.Errorf("low-latency playlist without parts:\n%s", pl)
			}
			codecs := strings.Join(ffprobeCodecs(t, e.url("pub_a", "index.m3u8")), ",")
			if !strings.Contains(codecs, "h264") || !strings.Contains(codecs, "aac") {
				t.Fatalf("ffprobe found %q, want h264 and aac", codecs)
			}
			// Headers: playlists are not cached, media is immutable, any origin may read.
			r := get(t, e.url("pub_a", name), "")
			if got := r.header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("playlist Cache-Control %q", got)
			}
			if got := r.header.Get("Content-Type"); got != "application/vnd.apple.mpegurl" {
				t.Errorf("playlist Content-Type %q", got)
			}
			seg := lastSegment(pl)
			m := get(t, e.url("pub_a", seg), "")
			if m.status != http.StatusOK || len(m.body) == 0 {
				t.Fatalf("%s: %d", seg, m.status)
			}
			if got := m.header.Get("Cache-Control"); got != "public, max-age=3600, immutable" {
				t.Errorf("segment Cache-Control %q", got)
			}
			// Fetched with a credential (a private stream's viewer): no shared caching.
			if got := get(t, e.url("pub_a", seg)+"?token=owner", "").header.Get("Cache-Control"); got != "private, max-age=3600, immutable" {
				t.Errorf("credentialed segment Cache-Control %q", got)
			}
			wantType := "video/mp4"
			if variant == VariantMPEGTS {
				wantType = "video/mp2t"
			}
			if got := m.header.Get("Content-Type"); got != wantType {
				t.Errorf("segment Content-Type %q, want %q", got, wantType)
			}
			if m.header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header on a segment")
			}
			if st := e.srv.Stats(); st.BytesServed == 0 || st.Requests == 0 || st.Muxers != 1 {
				t.Errorf("stats %+v", st)
			}
			// A file the muxer does not have.
			checkErrorShape(t, get(t, e.url("pub_a", "nothing_seg99.mp4"), ""), 404, "not found")
		})
	}
}

// lastSegment returns the URI of the last complete segment of a media playlist.
func lastSegment(pl string) string {
	var last string
	lines := strings.Split(pl, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "#EXTINF") && i+1 < len(lines) && !strings.Contains(lines[i+1], "gap") {
			last = strings.TrimSpace(lines[i+1])
		}
	}
	last, _, _ = strings.Cut(last, "?")
	return last
}

func TestAlwaysOnPlaylistReadyAfterOneKeyframeInterval(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	e := newTestEnv(t, Config{}, bus.Config{})
	p, err := e.hub.Publish("a", c.tracks())
	if err != nil {
		t.Fatal(err)
	}
	// The muxer starts on EventLive, before any unit and without any request.
	waitFor(t, time.Second, "muxer after EventLive", func() bool { return e.srv.Stats().Muxers == 1 })
	if e.srv.Stats().Requests != 0 {
		t.Fatal("a request was made")
	}
	f := feed(t, p, c, 1)
	first := <-f.first
	// index.m3u8 blocks until the first segment exists; the media playlist is then servable.
	mediaPlaylist(t, e, "pub_a")
	took := time.Since(first)
	t.Logf("first unit written -> playlist with #EXTINF served: %v (keyframe interval %v, target < %v)",
		took, clipGOP, clipGOP+300*time.Millisecond)
	if took > clipGOP+time.Second {
		t.Errorf("playlist took %v", took)
	}
}

func TestUnknownPlaybackIDIs404(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, Config{}, bus.Config{})
	checkErrorShape(t, get(t, e.url("pub_nope", "index.m3u8"), ""), 404, "stream not found")
	// Known playback id, but the stream is not live.
	checkErrorShape(t, get(t, e.url("pub_b", "index.m3u8"), ""), 404, "stream not found")
	// Paths outside the scheme.
	checkErrorShape(t, get(t, e.ts.URL+"/api/stream/pub_a/hls/", ""), 404, "stream not found")
	checkErrorShape(t, get(t, e.ts.URL+"/api/stream/pub_a/hls/a/b.m3u8", ""), 404, "stream not found")
}

func TestForbiddenIs403(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, Config{}, bus.Config{})
	checkErrorShape(t, get(t, e.url("pub_secret", "index.m3u8")+"?token=tok1", ""), 403, "forbidden")
	e.res.mu.Lock()
	last := e.res.last
	e.res.mu.Unlock()
	if last.Protocol != "hls" || last.ID != "pub_secret" || last.Token != "tok1" || last.RemoteAddr == "" {
		t.Errorf("resolver got %+v", last)
	}
	// Bearer token.
	req, _ := http.NewRequest(http.MethodGet, e.url("pub_secret", "index.m3u8"), nil)
	req.Header.Set("Authorization", "Bearer tok2")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	e.res.mu.Lock()
	last = e.res.last
	e.res.mu.Unlock()
	if res.StatusCode != 403 || last.Token != "tok2" {
		t.Errorf("bearer: status %d, token %q", res.StatusCode, last.Token)
	}
}

func TestStreamEndGives404AndStopsMuxer(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	e := newTestEnv(t, Config{}, bus.Config{ReconnectGrace: 200 * time.Millisecond})
	f := startFeed(t, e.hub, "a", c, 2)
	mediaPlaylist(t, e, "pub_a")
	f.halt()
	f.p.Close()
	waitFor(t, 5*time.Second, "404 after stream end", func() bool {
		return get(t, e.url("pub_a", "index.m3u8"), "").status == http.StatusNotFound
	})
	waitFor(t, 2*time.Second, "muxer goroutine gone", func() bool {
		return e.srv.Stats().Muxers == 0 && e.srv.lookup("a") == nil
	})
	checkErrorShape(t, get(t, e.url("pub_a", "index.m3u8"), ""), 404, "stream not found")
}

// mediaSequence returns a playlist's EXT-X-MEDIA-SEQUENCE.
func mediaSequence(t *testing.T, pl string) int {
	t.Helper()
	for _, l := range strings.Split(pl, "\n") {
		if v, ok := strings.CutPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// segmentPrefix returns the muxer prefix of a segment name (prefix_stream_segN.ext).
func segmentPrefix(seg string) string {
	p, _, _ := strings.Cut(seg, "_")
	return p
}

func TestReconnectWithinGraceContinuesPlaylist(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	for _, cfg := range []Config{{Variant: VariantMPEGTS, SegmentCount: 3}, {Variant: VariantLowLatency}} {
		t.Run(cfg.Variant, func(t *testing.T) {
			t.Parallel()
			testReconnect(t, c, cfg)
		})
	}
}

func testReconnect(t *testing.T, c *clip, cfg Config) {
	e := newTestEnv(t, cfg, bus.Config{ReconnectGrace: 10 * time.Second})
	f := startFeed(t, e.hub, "a", c, 4)
	// The muxer starts on EventLive, delivered on the hub's event goroutine: until then the
	// stream is unknown here (404).
	waitFor(t, 5*time.Second, "muxer after EventLive", func() bool { return e.srv.Stats().Muxers == 1 })
	var name, before string
	// Wait until the window slides (media sequence > 0).
	waitFor(t, 10*time.Second, "segments to roll", func() bool {
		name, before = mediaPlaylist(t, e, "pub_a")
		return mediaSequence(t, before) > 0
	})
	f.halt()
	f.p.Close() // the publisher drops: EventIdle
	waitFor(t, 2*time.Second, "idle", func() bool { return e.hub.Stream("a").State() == bus.StateIdle })
	if r := get(t, e.url("pub_a", name), ""); r.status != http.StatusOK {
		t.Fatalf("playlist during grace: %d", r.status)
	}
	seqBefore, segBefore := mediaSequence(t, before), lastSegment(before)
	f2 := startFeed(t, e.hub, "a", c, 4) // reconnects: timestamps restart at 0, the bus shifts them
	defer f2.halt()
	var after string
	waitFor(t, 10*time.Second, "new segments after reconnect", func() bool {
		after = get(t, e.url("pub_a", name), "").body
		return mediaSequence(t, after) >= seqBefore+2
	})
	if segmentPrefix(lastSegment(after)) != segmentPrefix(segBefore) {
		t.Errorf("muxer restarted: %s then %s", segBefore, lastSegment(after))
	}
	if e.srv.Stats().MuxerRestarts != 0 {
		t.Errorf("restarts %d", e.srv.Stats().MuxerRestarts)
	}
	t.Logf("media sequence %d before the drop, %d after the reconnect", seqBefore, mediaSequence(t, after))
}

func TestNewCodecParametersRestartMuxer(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	e := newTestEnv(t, Config{}, bus.Config{})
	f := startFeed(t, e.hub, "a", c, 2)
	_, pl := mediaPlaylist(t, e, "pub_a")
	f.halt()
	// Same stream, new video parameters (SetTrack), then units that point to the new track.
	// (The record gets a trailing byte: different parameters, same SPS/PPS, still decodable.)
	v := *f.p.Track(0)
	v.Config = append(append([]byte(nil), v.Config...), 0)
	f.p.SetTrack(&v)
	f2 := feed(t, f.p, c, 2)
	defer f2.halt()
	waitFor(t, 5*time.Second, "restart", func() bool { return e.srv.Stats().MuxerRestarts >= 1 })
	_, pl2 := mediaPlaylist(t, e, "pub_a")
	if segmentPrefix(lastSegment(pl)) == segmentPrefix(lastSegment(pl2)) {
		t.Errorf("same muxer prefix after new parameters")
	}
}

func TestViewersCountedBySession(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	e := newTestEnv(t, Config{ViewerReportInterval: 50 * time.Millisecond, ViewerWindow: time.Minute}, bus.Config{})
	startFeed(t, e.hub, "a", c, 1)
	// The muxer starts on the hub's live event, which may come after Publish returns.
	waitFor(t, 5*time.Second, "muxer", func() bool { return e.srv.Stats().Muxers == 1 })
	mediaPlaylist(t, e, "pub_a") // Go-http-client
	get(t, e.url("pub_a", "index.m3u8"), "player-one")
	get(t, e.url("pub_a", "index.m3u8"), "player-one")
	get(t, e.url("pub_a", "index.m3u8"), "player-two")
	waitFor(t, 2*time.Second, "3 viewers", func() bool {
		return e.hub.Stream("a").Stats().Viewers == 3 && e.srv.Stats().Viewers == 3
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	hub := bus.New(bus.Config{})
	defer hub.Close()
	res := &fakeResolver{}
	if _, err := New(Config{Hub: hub, Resolver: res, Variant: "dash"}); !errors.Is(err, ErrVariant) {
		t.Errorf("variant: %v", err)
	}
	if _, err := New(Config{Hub: hub, Resolver: res, SegmentCount: 3}); err == nil {
		t.Error("low-latency with 3 segments accepted")
	}
	if _, err := New(Config{Resolver: res}); err == nil {
		t.Error("no hub accepted")
	}
	s, err := New(Config{Hub: hub, Resolver: res, Variant: VariantMPEGTS, SegmentCount: 3})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s.Close()
}

// hlsGoroutines returns the stacks of goroutines running this package's or gohlslib's code
// (other than tests).
func hlsGoroutines() []string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 2)
	var out []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, "egress/hls.Test") || strings.Contains(g, "hlsGoroutines") {
			continue
		}
		if strings.Contains(g, "relaycast/egress/hls.") || strings.Contains(g, "gohlslib") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseWithLiveStreamsLeavesNoGoroutines is not parallel, so that no other test's
// goroutines are around when it counts.
func TestCloseWithLiveStreamsLeavesNoGoroutines(t *testing.T) {
	c := testClip(t)
	hub := bus.New(bus.Config{})
	defer hub.Close()
	res := &fakeResolver{ids: map[string]string{"pub_a": "a", "pub_b": "b"}}
	srv, err := New(Config{Hub: hub, Resolver: res, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	f := startFeed(t, hub, "a", c, 1)
	// Stream b is live but sends nothing: its playlist never appears.
	pb, err := hub.Publish("b", c.tracks())
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	waitFor(t, time.Second, "two muxers", func() bool { return srv.Stats().Muxers == 2 })

	// A request that waits for content gives up after RequestTimeout; its goroutine stays
	// inside gohlslib until the muxer closes.
	start := time.Now()
	checkErrorShape(t, get(t, ts.URL+"/api/stream/pub_b/hls/index.m3u8", ""), 503, "stream not ready")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %v", d)
	}
	if srv.Stats().Timeouts != 1 {
		t.Errorf("timeouts %d", srv.Stats().Timeouts)
	}
	waitFor(t, 5*time.Second, "stream a's playlist", func() bool {
		return get(t, ts.URL+"/api/stream/pub_a/hls/index.m3u8", "").status == http.StatusOK
	})

	closed := make(chan struct{})
	go func() {
		srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if st := srv.Stats(); st.Muxers != 0 {
		t.Errorf("muxers after Close: %d", st.Muxers)
	}
	checkErrorShape(t, get(t, ts.URL+"/api/stream/pub_a/hls/index.m3u8", ""), 404, "stream not found")
	f.halt()
	ts.Close()
	var left []string
	deadline := time.Now().Add(2 * time.Second)
	for {
		if left = hlsGoroutines(); len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Fatalf("%d goroutines left after Close:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}

func TestMethodsAndPreflight(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, Config{}, bus.Config{})
	req, _ := http.NewRequest(http.MethodOptions, e.url("pub_a", "index.m3u8"), nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", res.StatusCode, res.Header)
	}
	res, err = http.Post(e.url("pub_a", "index.m3u8"), "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	checkErrorShape(t, response{status: res.StatusCode, body: string(b), header: res.Header}, 405, "method not allowed")
}

// BenchmarkWriteUnit measures the per-unit cost of feeding a low-latency muxer (gohlslib's
// own work included) with the test clip, looped.
func BenchmarkWriteUnit(b *testing.B) {
	c := testClip(b)
	s := &Server{variant: gohlslib.MuxerVariantLowLatency, cfg: Config{
		SegmentCount: 7, SegmentMinDuration: time.Second, PartMinDuration: 200 * time.Millisecond,
	}}
	tracks := c.tracks()
	for i, tr := range tracks {
		tr.Index = i
	}
	log := slog.New(slog.DiscardHandler)
	mx := s.newMuxer(tracks, log, func(error) {})
	defer mx.m.Close()
	st := &stream{au: make([][]byte, 0, 16)}
	now := time.Now()
	var u bus.Unit
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cu := &c.units[i%len(c.units)]
		ts := time.Duration(i/len(c.units))*c.dur + cu.pts
		idx := 1
		if cu.video {
			idx = 0
		}
		u = bus.Unit{Track: tracks[idx], PTS: ts, DTS: ts, Key: cu.key, Payload: cu.payload, Arrival: now.Add(ts)}
		if err := st.write(mx, mx.w[idx], &u); err != nil {
			b.Fatal(err)
		}
	}
}
