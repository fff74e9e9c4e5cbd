package control

import (
	"net/http"
	"net/http/pprof"

	"github.com/gorilla/mux"
)

// pprofRoutes serves Go's runtime profiles under /debug/pprof/ to administrators only: a
// profile shows the process's command line (flags, perhaps a secret key given as a flag),
// its code paths and memory, and a CPU profile or trace costs CPU while it runs.
//
// The handlers are net/http/pprof's. Importing that package also registers them on
// http.DefaultServeMux, which relaycast never serves: this router is the only way in.
//
//	/debug/pprof/              index
//	/debug/pprof/cmdline       the command line
//	/debug/pprof/profile       CPU profile (?seconds=, default 30)
//	/debug/pprof/symbol        symbol lookup (GET or POST)
//	/debug/pprof/trace         execution trace (?seconds=, default 1)
//	/debug/pprof/{name}        named profiles: heap, goroutine, allocs, block, mutex,
//	                           threadcreate (?debug=1 for text, ?gc=1 for heap)
func (s *Server) pprofRoutes(r *mux.Router) {
	wrap := func(h http.HandlerFunc) http.Handler {
		return s.admin(func(w http.ResponseWriter, r *http.Request, _ *principal) error {
			// The API's answers are no-store; so are profiles.
			w.Header().Set("Cache-Control", "no-store")
			h(w, r)
			return nil
		})
	}
	r.Handle("/debug/pprof", http.RedirectHandler("/debug/pprof/", http.StatusMovedPermanently)).Methods(http.MethodGet)
	r.Handle("/debug/pprof/", wrap(pprof.Index)).Methods(http.MethodGet)
	r.Handle("/debug/pprof/cmdline", wrap(pprof.Cmdline)).Methods(http.MethodGet)
	r.Handle("/debug/pprof/profile", wrap(pprof.Profile)).Methods(http.MethodGet)
	r.Handle("/debug/pprof/symbol", wrap(pprof.Symbol)).Methods(http.MethodGet, http.MethodPost)
	r.Handle("/debug/pprof/trace", wrap(pprof.Trace)).Methods(http.MethodGet)
	// pprof.Index serves a named profile from the last path element; unknown names get
	// its 404.
	r.Handle("/debug/pprof/{name}", wrap(pprof.Index)).Methods(http.MethodGet)
}
