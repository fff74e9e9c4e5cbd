package hls

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// playlistCache keeps the playlists one muxer rendered, so that a plain (non-blocking)
// playlist request is answered with bytes rendered once per muxer update instead of once per
// request: gohlslib renders a media playlist through its playlist package on every request
// (about 28 % of the server's CPU at 20k requests/s, before this cache), and relaycast
// rewrote it again for non-Apple players (leading gaps stripped).
//
// Validity: gen counts the units written to the muxer (stream.run bumps it after every
// write returns). An entry is served while its gen is the current one. It was rendered after
// its gen was read, so it is never older than the muxer's state when gen took that value;
// a request that sees a bumped gen never gets an entry rendered before the write that bumped
// it. (While a write is in progress, a request may still get the playlist from before it, as
// it would have had it arrived a moment earlier.) At 30 fps with audio that is under a
// hundred renders a second, whatever the number of requests.
//
// Blocking: gohlslib's playlist handlers block until the muxer has content, then never again
// (segments are only added; a closed muxer answers 404 at once). An entry exists only once a
// request for the same file and query got a playlist, so a stale entry is re-rendered
// synchronously; a request with no entry yet takes the goroutine-and-timeout path
// (serveMuxer), which fills the cache.
type playlistCache struct {
	gen atomic.Uint64
	// entries is replaced, never modified (copy on write): readers do not lock.
	entries atomic.Pointer[map[playlistKey]*playlistEntry]
	// mu serializes renders and the replacement of entries.
	mu sync.Mutex
	// stores counts the playlists rendered into the cache (tests).
	stores atomic.Uint64
}

// playlistKey is what a rendered playlist depends on besides the muxer's state: the file
// (multivariant or a media playlist), the query (gohlslib copies it into the URIs it lists:
// token=) and whether the leading gaps are stripped (non-Apple players).
type playlistKey struct {
	file  string
	query string
	strip bool
}

type playlistEntry struct {
	gen  uint64
	body []byte
	// contentLength is shared by the responses that send body (header values are only read).
	contentLength []string
}

// maxPlaylistEntries bounds the keys cached per muxer: distinct queries (tokens) beyond it
// are rendered per request, as without the cache.
const maxPlaylistEntries = 64

// Header values shared by every cached playlist response (net/http only reads them).
var (
	playlistContentType = []string{"application/vnd.apple.mpegurl"}
	noCache             = []string{"no-cache"}
)

// cacheablePlaylist reports whether a request for file with query may be answered from the
// cache: a playlist, and not a Low-Latency HLS blocking reload (_HLS_msn, _HLS_part), which
// waits for a part that does not exist yet.
func cacheablePlaylist(file, query string) bool {
	return strings.HasSuffix(file, ".m3u8") &&
		!strings.Contains(query, "_HLS_msn") && !strings.Contains(query, "_HLS_part")
}

// lookup returns the entry for k if it is current, and whether the key was ever rendered.
func (c *playlistCache) lookup(k playlistKey) (e *playlistEntry, known bool) {
	m := c.entries.Load()
	if m == nil {
		return nil, false
	}
	e = (*m)[k]
	if e == nil {
		return nil, false
	}
	if e.gen != c.gen.Load() {
		return nil, true
	}
	return e, true
}

// render renders the playlist of k with the muxer's handler, synchronously (k was rendered
// before: the handler does not block), unless another request did meanwhile. It returns nil
// when the muxer answered anything but a playlist (closed: 404).
func (c *playlistCache) render(mx *muxer, r *http.Request, k playlistKey) *playlistEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	gen := c.gen.Load()
	if m := c.entries.Load(); m != nil {
		if e := (*m)[k]; e != nil && e.gen == gen {
			return e
		}
	}
	r2 := muxerRequest(r, k.file)
	var w captureWriter
	mx.m.Handle(&w, r2)
	if w.code != http.StatusOK || len(w.body) == 0 {
		return nil
	}
	return c.storeLocked(k, gen, w.body)
}

// store records a playlist that the muxer rendered for k after gen was read.
func (c *playlistCache) store(k playlistKey, gen uint64, raw []byte) {
	c.mu.Lock()
	c.storeLocked(k, gen, raw)
	c.mu.Unlock()
}

// storeLocked stores raw (as gohlslib rendered it) under k and, as the same render serves
// both kinds of players, under k's twin with the other gap handling.
func (c *playlistCache) storeLocked(k playlistKey, gen uint64, raw []byte) *playlistEntry {
	c.stores.Add(1)
	plain := newPlaylistEntry(gen, raw)
	stripped := plain
	if s := stripLeadingGaps(raw); len(s) != len(raw) {
		stripped = newPlaylistEntry(gen, s)
	}
	kPlain, kStripped := k, k
	kPlain.strip, kStripped.strip = false, true

	old := c.entries.Load()
	n := 2
	if old != nil {
		n += len(*old)
	}
	next := make(map[playlistKey]*playlistEntry, n)
	if old != nil {
		for ok, oe := range *old {
			next[ok] = oe
		}
		if len(next) >= maxPlaylistEntries {
			// Drop what was not rendered for the current state: keys nobody asked for since.
			cur := c.gen.Load()
			for ok, oe := range next {
				if oe.gen != cur {
					delete(next, ok)
				}
			}
		}
	}
	if len(next) < maxPlaylistEntries {
		next[kPlain], next[kStripped] = plain, stripped
		c.entries.Store(&next)
	}
	if k.strip {
		return stripped
	}
	return plain
}

func newPlaylistEntry(gen uint64, body []byte) *playlistEntry {
	return &playlistEntry{gen: gen, body: body, contentLength: []string{strconv.Itoa(len(body))}}
}

// write sends a cached playlist.
func (e *playlistEntry) write(w http.ResponseWriter, r *http.Request) int {
	h := w.Header()
	h["Content-Type"] = playlistContentType
	h["Cache-Control"] = noCache
	h["Content-Length"] = e.contentLength
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return 0
	}
	n, _ := w.Write(e.body)
	return n
}

// muxerRequest is r as gohlslib's handler wants it: gohlslib finds its handler by the path's
// last element and reads the query (_HLS_msn, _HLS_part, _HLS_skip, and token, which it
// copies into the URIs it lists).
func muxerRequest(r *http.Request, file string) *http.Request {
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = "/"+file, ""
	r2.URL = &u
	return r2
}

// captureWriter keeps what gohlslib's handler answers (a playlist: a few kilobytes).
type captureWriter struct {
	hdr  http.Header
	code int
	body []byte
}

func (w *captureWriter) Header() http.Header {
	if w.hdr == nil {
		w.hdr = make(http.Header, 2)
	}
	return w.hdr
}

func (w *captureWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
}

func (w *captureWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}
