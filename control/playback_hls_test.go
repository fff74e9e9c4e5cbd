package control

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress/hls"
)

// newHLSEnv is newEnv with the real HLS egress mounted through Config.HLS, its Resolver
// being the control Server, as cmd/relaycast wires them.
func newHLSEnv(t *testing.T) (*env, *hls.Server) {
	t.Helper()
	var h atomic.Pointer[hls.Server]
	e := newEnv(t, withConfig(func(c *Config) {
		c.HLS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.Load().ServeHTTP(w, r) })
	}))
	srv, err := hls.New(hls.Config{Hub: e.hub, Resolver: e.srv, RequestTimeout: 8 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.Store(srv)
	t.Cleanup(func() { srv.Close() })
	return e, srv
}

// get fetches url (absolute, or a path on the test server) with an optional bearer token.
func (e *env) get(u, bearer string) (int, []byte) {
	e.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = e.http.URL + u
	}
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func TestHLSPrivateStreamAccess(t *testing.T) {
	e, _ := newHLSEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	bob := e.user(admin, "bob")
	priv := e.createStream(alice, map[string]any{"title": "private", "is_public": false})
	pub := e.createStream(alice, map[string]any{"title": "public"})
	ptk := issuePtk(e, alice, priv.ID, map[string]int{"expires_in": 60})
	playlist := func(id string) string { return "/api/stream/" + id + "/hls/index.m3u8" }

	// No media is published: an allowed request gets past the Resolver and finds nothing
	// (404), a refused one is 403.
	code, raw := e.get(playlist(priv.PlaybackID), "")
	if code != 403 || string(raw) != `{"error":"forbidden","status":403}`+"\n" {
		t.Fatalf("private without token: %d %s", code, raw)
	}
	for what, c := range map[string]struct {
		path, bearer string
		want         int
	}{
		"bob's token":       {playlist(priv.PlaybackID), bob, 403},
		"owner bearer":      {playlist(priv.PlaybackID), alice, 404},
		"owner ?token=":     {playlist(priv.PlaybackID) + "?token=" + url.QueryEscape(alice), "", 404},
		"admin bearer":      {playlist(priv.PlaybackID), admin, 404},
		"ptk in the path":   {ptk.PlaybackURLs["hls"][len("http://127.0.0.1:8080"):], "", 404},
		"ptk as ?token=":    {playlist(priv.PlaybackID) + "?token=" + ptk.Token, "", 404},
		"ptk as bearer":     {playlist(priv.PlaybackID), ptk.Token, 404},
		"tampered ptk":      {playlist(ptk.Token[:20] + flip(ptk.Token[20]) + ptk.Token[21:]), "", 403},
		"public, no token":  {playlist(pub.PlaybackID), "", 404},
		"unknown id":        {playlist(newPlaybackID()), "", 404},
		"publish key as id": {playlist(priv.StreamKey), "", 404},
	} {
		if code, raw := e.get(c.path, c.bearer); code != c.want {
			t.Errorf("%s: %d %s, want %d", what, code, raw, c.want)
		}
	}
	e.clock.Advance(61 * time.Second)
	if code, _ := e.get(playlist(ptk.Token), ""); code != 403 {
		t.Fatalf("expired ptk in the path: %d", code)
	}
}

func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// TestHLSPlaybackTokenInPathCoversSubRequests plays a private stream with real media
// through the playback token's URL: the playlist's relative URIs, resolved against that
// URL as a player does, keep the token and are served; the same URIs under the pub_ id
// without a credential are refused.
func TestHLSPlaybackTokenInPathCoversSubRequests(t *testing.T) {
	units, avcConfig := h264Clip(t)
	e, hlsSrv := newHLSEnv(t)
	admin := e.setup()
	priv := e.createStream(admin, map[string]any{"title": "private", "is_public": false})
	tok := issuePtk(e, admin, priv.ID, nil)
	p, err := e.hub.Publish(priv.PlaybackID, []*bus.Track{{Codec: bus.CodecH264, ClockRate: 90000, Config: avcConfig, Width: 320, Height: 240}})
	if err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go feedLoop(p, units, stop, done)
	t.Cleanup(func() {
		close(stop)
		<-done
		p.Close()
	})

	// The muxer starts on the hub's event goroutine, after Publish returned.
	waitFor(t, 5*time.Second, "the HLS muxer", func() bool { return hlsSrv.Stats().Muxers == 1 })

	// tokenURL is what the API handed out, moved onto the test server.
	tokenURL, _ := url.Parse(e.http.URL + strings.TrimPrefix(tok.PlaybackURLs["hls"], "http://127.0.0.1:8080"))
	code, multi := e.get(tokenURL.String(), "")
	if code != 200 || !bytes.HasPrefix(multi, []byte("#EXTM3U")) {
		t.Fatalf("multivariant playlist via ptk: %d %s", code, multi)
	}
	media := tokenURL.ResolveReference(mustParse(t, firstURI(t, multi)))
	code, mediaPL := e.get(media.String(), "")
	if code != 200 || !strings.Contains(media.Path, tok.Token) {
		t.Fatalf("media playlist %s: %d %s", media, code, mediaPL)
	}
	// The init section, the parts and the segments (not the gap placeholders, nor the
	// preload hint, which blocks until the part exists).
	var subs []*url.URL
	gap := false
	sc := bufio.NewScanner(bytes.NewReader(mediaPL))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "#EXT-X-GAP":
			gap = true
		case strings.HasPrefix(line, "#EXT-X-MAP:"), strings.HasPrefix(line, "#EXT-X-PART:"):
			_, rest, _ := strings.Cut(line, `URI="`)
			rest, _, _ = strings.Cut(rest, `"`)
			subs = append(subs, media.ResolveReference(mustParse(t, rest)))
		case line != "" && !strings.HasPrefix(line, "#"):
			if !gap {
				subs = append(subs, media.ResolveReference(mustParse(t, line)))
			}
			gap = false
		}
	}
	if len(subs) < 3 {
		t.Fatalf("media playlist lists %d init/part/segment URIs:\n%s", len(subs), mediaPL)
	}
	for _, u := range subs {
		code, body := e.get(u.String(), "")
		if code != 200 || len(body) == 0 || !strings.Contains(u.Path, tok.Token) {
			t.Fatalf("sub-request %s: %d (%d bytes)", u.Path, code, len(body))
		}
		// The same resource by pub_ id: refused without a credential, served to the owner.
		byID := strings.Replace(u.RequestURI(), tok.Token, priv.PlaybackID, 1)
		if code, _ := e.get(byID, ""); code != 403 {
			t.Fatalf("%s without token: %d, want 403", byID, code)
		}
		if code, _ := e.get(byID, admin); code != 200 {
			t.Fatalf("%s with the owner's token: %d, want 200", byID, code)
		}
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func firstURI(t *testing.T, playlist []byte) string {
	t.Helper()
	for _, line := range strings.Split(string(playlist), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	t.Fatalf("no URI in playlist:\n%s", playlist)
	return ""
}

// clipUnit is one H.264 access unit of the test clip, AVCC, 30 fps.
type clipUnit struct {
	key     bool
	payload []byte
}

// h264Clip encodes 2 s of 320x240 H.264 (keyframe every second, no B-frames) with ffmpeg
// and returns its access units and AVC configuration record; the test fails without
// ffmpeg.
func h264Clip(t *testing.T) ([]clipUnit, []byte) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
	path := filepath.Join(t.TempDir(), "clip.h264")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "2",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p",
		"-aud", "1", "-f", "h264", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var units []clipUnit
	var sps, pps []byte
	var cur [][]byte
	key := false
	flush := func() {
		if len(cur) > 0 {
			units = append(units, clipUnit{key: key, payload: bus.JoinNALUs(cur)})
		}
		cur, key = nil, false
	}
	for _, nalu := range splitAnnexB(b) {
		switch nalu[0] & 0x1f {
		case 9: // access unit delimiter: a new access unit
			flush()
		case 7:
			sps = nalu
		case 8:
			pps = nalu
		case 5:
			key = true
			cur = append(cur, nalu)
		default:
			cur = append(cur, nalu)
		}
	}
	flush()
	cfg, err := bus.AVCConfig(sps, pps)
	if err != nil || len(units) < 50 {
		t.Fatalf("clip: %d units, config %v", len(units), err)
	}
	return units, cfg
}

// splitAnnexB returns the NAL units between start codes.
func splitAnnexB(b []byte) [][]byte {
	var out [][]byte
	sc := []byte{0, 0, 1}
	i := bytes.Index(b, sc)
	for i >= 0 {
		start := i + 3
		j := bytes.Index(b[start:], sc)
		end := len(b)
		if j >= 0 {
			end = start + j
		}
		nalu := bytes.TrimRight(b[start:end], "\x00")
		if len(nalu) > 0 {
			out = append(out, nalu)
		}
		if j < 0 {
			break
		}
		i = end
	}
	return out
}

// feedLoop publishes the clip through p in real time, looping, until stop closes.
func feedLoop(p *bus.Publisher, units []clipUnit, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tr := p.Tracks()[0]
	const frame = time.Second / 30
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for n := 0; ; n++ {
		pts := time.Duration(n) * frame
		timer.Reset(time.Until(t0.Add(pts)))
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		u := units[n%len(units)]
		p.Write(&bus.Unit{Track: tr, PTS: pts, DTS: pts, Key: u.key, Payload: u.payload, Arrival: time.Now()})
	}
}
