package control

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// webAssets are the pages relaycast serves itself (no CDN, no build step).
//
//go:embed web
var webAssets embed.FS

// handleWatch serves the watch page of /watch/{playback_id}: a player that tries WHEP
// first (lowest latency) and falls back to HLS. The page reads the id (or a ptk_ playback
// token) from its own URL and a viewer credential from ?token=; access is checked by the
// playback endpoints, not here, so the page itself is the same for every stream.
func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request) {
	b, err := webAssets.ReadFile("web/watch.html")
	if err != nil {
		http.Error(w, "watch page missing", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Referrer-Policy", "no-referrer") // the URL may carry a ptk_ token
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'self'; media-src 'self' blob:; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'")
	_, _ = w.Write(b)
}

// staticHandler serves the page assets under /static/.
func staticHandler() http.Handler {
	sub, err := fs.Sub(webAssets, "web")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServer(http.FS(sub))
	return http.StripPrefix("/static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, ".html") || r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		files.ServeHTTP(w, r)
	}))
}
