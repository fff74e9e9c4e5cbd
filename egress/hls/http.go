package hls

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/relaycast/relaycast/egress"
)

var _ http.Handler = (*Server)(nil)

// pathPrefix starts every path the handler serves: /api/stream/{playback_id}/hls/{file}.
const pathPrefix = "/api/stream/"

// parsePath splits /api/stream/{id}/hls/{file} into id and file. gohlslib names its files
// flat (index.m3u8, video1_stream.m3u8, <prefix>_video1_seg7.mp4, ...), so file has no "/".
func parsePath(p string) (id, file string, ok bool) {
	rest, ok := strings.CutPrefix(p, pathPrefix)
	if !ok {
		return "", "", false
	}
	id, file, ok = strings.Cut(rest, "/hls/")
	if !ok || id == "" || file == "" || strings.Contains(id, "/") || strings.Contains(file, "/") {
		return "", "", false
	}
	return id, file, true
}

// anyOrigin is the shared value of Access-Control-Allow-Origin (header values are only read).
var anyOrigin = []string{"*"}

// ServeHTTP serves /api/stream/{playback_id}/hls/{file}: the multivariant playlist
// index.m3u8, media playlists, init files, segments and Low-Latency HLS parts.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	// Players on other origins may read HLS; access is checked by the Resolver, not by
	// the origin.
	w.Header()["Access-Control-Allow-Origin"] = anyOrigin
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h := w.Header()
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Range")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	id, file, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "stream not found")
		return
	}
	token := queryValue(r.URL.RawQuery, "token")
	if token == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			token = strings.TrimSpace(v)
		}
	}
	streamID, err := s.cfg.Resolver.Resolve(r.Context(), egress.Request{
		Protocol: "hls", ID: id, Token: token, RemoteAddr: r.RemoteAddr,
	})
	switch {
	case err == nil:
	case errors.Is(err, egress.ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden")
		return
	case errors.Is(err, egress.ErrNotFound):
		writeError(w, http.StatusNotFound, "stream not found")
		return
	default:
		s.log.Debug("hls: resolve failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	st := s.lookup(streamID)
	if st == nil {
		writeError(w, http.StatusNotFound, "stream not found")
		return
	}
	mx := st.served.Load()
	if mx == nil {
		writeError(w, http.StatusNotFound, "stream not found")
		return
	}
	st.sessions.touch(sessionKey(s.seed, r), time.Now().UnixNano())
	// Non-Apple players get LL-HLS playlists without gohlslib's leading EXT-X-GAP segments
	// (playlist.go).
	strip := false
	if cacheablePlaylist(file, r.URL.RawQuery) {
		strip = !keepsGaps(r.UserAgent())
		k := playlistKey{file: file, query: r.URL.RawQuery, strip: strip}
		e, known := mx.playlists.lookup(k)
		if e == nil && known {
			e = mx.playlists.render(mx, r, k)
		}
		if e != nil {
			s.bytesServed.Add(uint64(e.write(w, r)))
			return
		}
	} else if strings.HasSuffix(file, ".m3u8") {
		strip = !keepsGaps(r.UserAgent())
	}
	s.serveMuxer(w, r, mx, file, token != "" || strings.HasPrefix(id, "ptk_"), strip)
}

// queryValue returns the first value of key in a raw query, as url.Values.Get would, without
// parsing the whole query into a map.
func queryValue(rawQuery, key string) string {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if strings.Contains(kv, ";") {
			continue // url.ParseQuery rejects it
		}
		k, v, _ := strings.Cut(kv, "=")
		if k != key {
			if !strings.ContainsAny(k, "%+") {
				continue
			}
			if uk, err := url.QueryUnescape(k); err != nil || uk != key {
				continue
			}
		}
		if !strings.ContainsAny(v, "%+") {
			return v
		}
		uv, err := url.QueryUnescape(v)
		if err != nil {
			continue
		}
		return uv
	}
	return ""
}

// Gate states.
const (
	gateWaiting   int32 = iota // the muxer has written nothing yet
	gateStreaming              // the muxer writes the response
	gateAbandoned              // ServeHTTP gave up; the muxer's output is discarded
	gateFinished               // Handle returned without writing anything
)

// serveMuxer runs gohlslib's Handle on a goroutine of its own: Handle blocks until the
// content exists and ignores the request's context. If it has not started answering within
// RequestTimeout, the request gets 503 and the goroutine's later output is discarded; it
// ends when the content appears or the muxer closes, and Close waits for it. Once Handle
// starts answering it writes straight to w (no copy of the segment) and ServeHTTP waits.
func (s *Server) serveMuxer(w http.ResponseWriter, r *http.Request, mx *muxer, file string, private, strip bool) {
	if s.abandoned.Load() >= maxAbandoned {
		writeError(w, http.StatusServiceUnavailable, "too many pending requests")
		return
	}
	s.hmu.Lock()
	if s.hclosed {
		s.hmu.Unlock()
		writeError(w, http.StatusNotFound, "stream not found")
		return
	}
	s.hwg.Add(1)
	s.hmu.Unlock()

	r2 := muxerRequest(r, file)
	g := &gate{
		w:        w,
		hdr:      make(http.Header, 2),
		started:  make(chan struct{}),
		playlist: strings.HasSuffix(file, ".m3u8"),
		// Media fetched with a credential (a private stream's viewer) must not be kept by
		// shared caches, which would hand it to anyone.
		private:   private,
		stripGaps: strip,
	}
	cache := cacheablePlaylist(file, r.URL.RawQuery)
	gen := mx.playlists.gen.Load() // before the render: see playlistCache
	done := make(chan struct{})
	go func() {
		defer s.hwg.Done()
		defer close(done)
		mx.m.Handle(g, r2)
		raw := g.flush()
		if cache && raw != nil {
			mx.playlists.store(playlistKey{file: file, query: r.URL.RawQuery, strip: strip}, gen, raw)
		}
		s.bytesServed.Add(uint64(g.n))
		if !g.state.CompareAndSwap(gateWaiting, gateFinished) && g.state.Load() == gateAbandoned {
			s.abandoned.Add(-1)
		}
	}()

	t := time.NewTimer(s.cfg.RequestTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-g.started:
		<-done
	case <-t.C:
		if g.state.CompareAndSwap(gateWaiting, gateAbandoned) {
			s.abandoned.Add(1)
			s.timeouts.Add(1)
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "stream not ready")
			return
		}
		<-done
	}
	if g.state.Load() == gateFinished {
		// Handle wrote nothing: gohlslib has no such file.
		writeError(w, http.StatusNotFound, "not found")
	}
}

// gate is the ResponseWriter given to gohlslib. It holds gohlslib's headers until the
// response starts, so that ServeHTTP can still answer on its own (timeout) until then, and
// sets relaycast's cache headers.
type gate struct {
	w        http.ResponseWriter
	hdr      http.Header
	state    atomic.Int32
	started  chan struct{}
	playlist bool
	private  bool
	errored  bool
	n        int64
	// A playlist is buffered in buf and written by flush (without its leading gaps when
	// stripGaps is set), so that it can be cached.
	stripGaps bool
	buf       []byte
}

func (g *gate) Header() http.Header { return g.hdr }

func (g *gate) WriteHeader(code int) {
	if !g.state.CompareAndSwap(gateWaiting, gateStreaming) {
		return
	}
	defer close(g.started)
	if code >= 400 {
		// gohlslib answers 404 when its muxer closed (stream ended or restarted), 400 for
		// bad blocking-reload parameters: use relaycast's error shape.
		g.errored = true
		msg := "bad request"
		switch code {
		case http.StatusNotFound:
			msg = "stream not found"
		case http.StatusInternalServerError:
			msg = "internal error"
		}
		writeError(g.w, code, msg)
		return
	}
	h := g.w.Header()
	for k, v := range g.hdr {
		h[k] = v
	}
	if g.playlist {
		// Written by flush, perhaps rewritten; net/http sets the length.
		h.Del("Content-Length")
		// Playlists change every part/segment; gohlslib allows 30 s on the multivariant
		// playlist, which would hide a restarted muxer from players and CDNs.
		h.Set("Cache-Control", "no-cache")
	} else {
		// Segment, part and init names carry the muxer's random prefix: never reused.
		if g.private {
			h.Set("Cache-Control", "private, max-age=3600, immutable")
		} else {
			h.Set("Cache-Control", "public, max-age=3600, immutable")
		}
	}
	g.w.WriteHeader(code)
}

func (g *gate) Write(p []byte) (int, error) {
	if g.state.Load() == gateWaiting {
		g.WriteHeader(http.StatusOK)
	}
	if g.state.Load() != gateStreaming || g.errored {
		return len(p), nil
	}
	if g.playlist {
		g.buf = append(g.buf, p...)
		return len(p), nil
	}
	n, err := g.w.Write(p)
	g.n += int64(n)
	return n, err
}

// flush writes a buffered playlist once gohlslib is done with it and returns it as gohlslib
// rendered it (nil when there was none: an error, an abandoned request).
func (g *gate) flush() []byte {
	if len(g.buf) == 0 || g.state.Load() != gateStreaming || g.errored {
		return nil
	}
	raw := g.buf
	body := raw
	if g.stripGaps {
		body = stripLeadingGaps(raw)
	}
	n, _ := g.w.Write(body)
	g.n += int64(n)
	g.buf = nil
	return raw
}

// errorBody is relaycast's error shape.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg, Status: code})
}
