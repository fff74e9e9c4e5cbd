package hls

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// TestPlaylistCache checks that plain playlist requests are answered from playlists rendered
// once per muxer update: the same bytes until a unit is muxed, a fresh playlist after it,
// gaps kept for Apple's players and stripped for the others, the query (token) carried into
// the URIs, and blocking reloads still waiting for their part.
func TestPlaylistCache(t *testing.T) {
	t.Parallel()
	c := testClip(t)
	e := newTestEnv(t, Config{}, bus.Config{})
	p, err := e.hub.Publish("a", c.tracks())
	if err != nil {
		t.Fatal(err)
	}
	tracks := p.Tracks()
	// The muxer's reader must be there before the units are written at once: a later
	// reader would start at the last keyframe.
	waitFor(t, 5*time.Second, "muxer after EventLive", func() bool { return e.srv.Stats().Muxers == 1 })
	n := 0
	lastVideo := false
	// write publishes the clip's units up to pts upTo at once (gohlslib cuts parts and
	// segments on timestamps, not on wall time), ending with a video unit (the muxer's
	// reader paces by video: trailing audio units would wait for the next one), and waits
	// until the muxer took them all.
	var mx *muxer
	write := func(upTo time.Duration) {
		t.Helper()
		for ; n < len(c.units) && (c.units[n].pts < upTo || !lastVideo); n++ {
			cu := c.units[n]
			tr := tracks[0]
			if !cu.video {
				tr = tracks[1]
			}
			p.Write(&bus.Unit{Track: tr, PTS: cu.pts, DTS: cu.pts, Key: cu.key, Payload: cu.payload, Arrival: time.Now()})
			lastVideo = cu.video
		}
		if mx != nil {
			waitFor(t, 5*time.Second, "units muxed", func() bool { return mx.playlists.gen.Load() == uint64(n) })
		}
	}
	write(3 * time.Second)
	name, _ := mediaPlaylist(t, e, "pub_a") // the first request waits for content
	mx = e.srv.lookup("a").served.Load()
	waitFor(t, 5*time.Second, "units muxed", func() bool { return mx.playlists.gen.Load() == uint64(n) })

	media := e.url("pub_a", name)
	const apple = "AppleCoreMedia/1.0.0.21E230 (iPhone; U; CPU OS 17_4 like Mac OS X; en_us)"
	first := get(t, media, "")
	stores := mx.playlists.stores.Load()
	for i := range 20 {
		r := get(t, media, "")
		if r.status != 200 || r.body != first.body {
			t.Fatalf("request %d: %d, body changed without a new unit:\n%s\nvs\n%s", i, r.status, r.body, first.body)
		}
		checkPlaylistHeaders(t, r)
	}
	withGaps := get(t, media, apple)
	checkPlaylistHeaders(t, withGaps)
	if got := mx.playlists.stores.Load(); got != stores {
		t.Fatalf("%d renders for 21 requests of one muxer state", got-stores)
	}
	if strings.Contains(first.body, "#EXT-X-GAP") || !strings.Contains(withGaps.body, "#EXT-X-GAP") {
		t.Fatalf("gaps: non-Apple\n%s\nApple\n%s", first.body, withGaps.body)
	}
	if got := string(stripLeadingGaps([]byte(withGaps.body))); got != first.body {
		t.Fatalf("stripped Apple playlist\n%s\n!= non-Apple playlist\n%s", got, first.body)
	}
	if head := request(t, http.MethodHead, media, ""); head.status != 200 || head.body != "" ||
		head.header.Get("Content-Length") != strconv.Itoa(len(first.body)) {
		t.Fatalf("HEAD: %d %q Content-Length %q", head.status, head.body, head.header.Get("Content-Length"))
	}

	// The query is part of the key: gohlslib copies it into every URI it lists.
	tok := get(t, media+"?token=abc", "")
	if tok.status != 200 || !strings.Contains(tok.body, ".mp4?token=abc") || strings.Contains(first.body, "token=") {
		t.Fatalf("token playlist:\n%s", tok.body)
	}
	if again := get(t, media+"?token=abc", ""); again.body != tok.body {
		t.Fatal("token playlist changed")
	}
	for _, r := range []response{get(t, e.url("pub_a", "index.m3u8"), ""), get(t, e.url("pub_a", "index.m3u8?token=abc"), "")} {
		checkPlaylistHeaders(t, r)
		if !strings.Contains(r.body, "#EXT-X-STREAM-INF") {
			t.Fatalf("multivariant playlist:\n%s", r.body)
		}
	}

	// A blocking reload for the next part waits for it, then gets a playlist that lists it.
	msn, part := nextPart(t, withGaps.body)
	type result struct {
		status int
		body   string
		err    error
	}
	blocked := make(chan result, 1)
	go func() {
		res, err := http.Get(fmt.Sprintf("%s?_HLS_msn=%d&_HLS_part=%d", media, msn, part))
		if err != nil {
			blocked <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		blocked <- result{res.StatusCode, string(b), err}
	}()
	select {
	case r := <-blocked:
		t.Fatalf("blocking reload answered before its part existed: %d %v\n%s", r.status, r.err, r.body)
	case <-time.After(300 * time.Millisecond):
	}
	write(4 * time.Second)
	r := <-blocked
	if r.err != nil || r.status != 200 {
		t.Fatalf("blocking reload: %d %v %s", r.status, r.err, r.body)
	}
	if m, pt := nextPart(t, r.body); m < msn || (m == msn && pt <= part) {
		t.Fatalf("blocking reload for %d.%d got a playlist whose next part is %d.%d", msn, part, m, pt)
	}

	// New units: a fresh playlist, the same for every plain request.
	after := get(t, media, "")
	if after.body == first.body {
		t.Fatal("playlist unchanged after a second of new media")
	}
	if m, pt := nextPart(t, withGapsOf(t, media, apple)); m < msn || (m == msn && pt <= part) {
		t.Fatalf("plain playlist behind the blocking reload: next part %d.%d", m, pt)
	}
	if again := get(t, media, ""); again.body != after.body {
		t.Fatal("playlist changed without a new unit")
	}
}

func withGapsOf(t *testing.T, url, ua string) string {
	t.Helper()
	return get(t, url, ua).body
}

func checkPlaylistHeaders(t *testing.T, r response) {
	t.Helper()
	h := r.header
	if r.status != 200 || h.Get("Content-Type") != "application/vnd.apple.mpegurl" ||
		h.Get("Cache-Control") != "no-cache" || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("playlist response %d, headers %v", r.status, h)
	}
	if cl := h.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(r.body)) {
		t.Fatalf("Content-Length %s for %d bytes", cl, len(r.body))
	}
}

// nextPart returns the media sequence number and part index of the part that comes after
// the last one a Low-Latency HLS media playlist lists.
func nextPart(t *testing.T, pl string) (msn, part int) {
	t.Helper()
	seq, segs := -1, 0
	for _, l := range strings.Split(pl, "\n") {
		switch {
		case strings.HasPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"):
			seq, _ = strconv.Atoi(strings.TrimPrefix(l, "#EXT-X-MEDIA-SEQUENCE:"))
		case strings.HasPrefix(l, "#EXT-X-PART:"):
			part++
		case l != "" && !strings.HasPrefix(l, "#"): // a segment's URI: its parts are done
			segs++
			part = 0
		}
	}
	if seq < 0 {
		t.Fatalf("no media sequence in\n%s", pl)
	}
	return seq + segs, part
}

// request is get with a method.
func request(t *testing.T, method, url, userAgent string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
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

// TestPlaylistCacheBounded checks that distinct queries cannot grow the cache without bound.
func TestPlaylistCacheBounded(t *testing.T) {
	var c playlistCache
	body := []byte("#EXTM3U\n")
	for i := range 3 * maxPlaylistEntries {
		c.store(playlistKey{file: "index.m3u8", query: "token=" + strconv.Itoa(i)}, 0, body)
		if m := c.entries.Load(); len(*m) > maxPlaylistEntries {
			t.Fatalf("%d entries after %d stores", len(*m), i+1)
		}
	}
	// Entries of an older muxer state make room for new keys.
	c.gen.Add(1)
	k := playlistKey{file: "index.m3u8", query: "token=new"}
	c.store(k, 1, body)
	if e, _ := c.lookup(k); e == nil {
		t.Fatal("current entry not stored")
	}
	if e, known := c.lookup(playlistKey{file: "index.m3u8", query: "token=0"}); e != nil || known {
		t.Fatal("stale entry kept")
	}
}

// TestQueryValue checks queryValue against url.Values.Get.
func TestQueryValue(t *testing.T) {
	for _, q := range []string{
		"", "token=abc", "a=1&token=abc&token=def", "token=", "token", "x=1", "token=a%20b",
		"token=a+b", "tok%65n=v", "token=%zz&token=ok", "a=1;b=2&token=t", "token=a;b&token=c",
		"_HLS_msn=3&_HLS_part=1&token=ptk", "token=%41&", "&&token=z",
	} {
		v, _ := url.ParseQuery(q) // as url.URL.Query: pairs in error are left out
		want := v.Get("token")
		if got := queryValue(q, "token"); got != want {
			t.Errorf("queryValue(%q) = %q, want %q", q, got, want)
		}
	}
}

// FuzzQueryValue checks queryValue against url.ParseQuery on any query.
func FuzzQueryValue(f *testing.F) {
	for _, q := range []string{"token=abc", "a=1&token=%41", "tok%65n=v;x", "token=a+b&token=c", "=&&token"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		v, _ := url.ParseQuery(q)
		if got, want := queryValue(q, "token"), v.Get("token"); got != want {
			t.Fatalf("queryValue(%q) = %q, want %q", q, got, want)
		}
	})
}
