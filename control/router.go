package control

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relaycast/relaycast/control/store"
)

// routes builds the API. The outer layers (observe, CORS) see every request, matched or
// not; route handlers are thin (decode, call a domain method, encode).
func (s *Server) routes() http.Handler {
	r := s.newRouter()

	r.Handle("/health", s.handle(s.handleHealth)).Methods(http.MethodGet)
	r.Handle("/healthz", s.handle(s.handleHealthz)).Methods(http.MethodGet)
	r.Handle("/readyz", s.handle(s.handleReadyz)).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	r.Handle("/openapi.json", s.handle(s.handleOpenAPI)).Methods(http.MethodGet)

	r.HandleFunc("/watch/{id}", s.handleWatch).Methods(http.MethodGet)
	r.PathPrefix("/static/").Handler(staticHandler()).Methods(http.MethodGet)

	r.Handle("/api/setup", s.handle(s.handleSetupStatus)).Methods(http.MethodGet)
	r.Handle("/api/setup", s.rateLimited(s.handle(s.handleSetup))).Methods(http.MethodPost)
	r.Handle("/api/token", s.rateLimited(s.handle(s.handleLogin))).Methods(http.MethodPost)
	r.Handle("/api/register", s.rateLimited(s.handle(s.handleRegister))).Methods(http.MethodPost)
	r.Handle("/api/tokens", s.authed(scopeAll, s.handleListTokens)).Methods(http.MethodGet)
	r.Handle("/api/token/revoke", s.authed(scopeAll, s.handleRevokeToken)).Methods(http.MethodPost)

	r.Handle("/api/api-keys", s.authed(scopeAll, s.handleListAPIKeys)).Methods(http.MethodGet)
	r.Handle("/api/api-keys", s.authed(scopeAll, s.handleCreateAPIKey)).Methods(http.MethodPost)
	r.Handle("/api/api-keys/{id:[0-9]+}/revoke", s.authed(scopeAll, s.handleRevokeAPIKey)).Methods(http.MethodPost)
	r.Handle("/api/api-keys/{id:[0-9]+}", s.authed(scopeAll, s.handleDeleteAPIKey)).Methods(http.MethodDelete)

	r.Handle("/api/me", s.authed(needAnyScope, s.handleMe)).Methods(http.MethodGet)
	r.Handle("/api/events", s.authed(needAnyScope, s.handleEvents)).Methods(http.MethodGet)
	r.Handle("/api/me/password", s.authed(scopeAll, s.handleChangePassword)).Methods(http.MethodPost)
	r.Handle("/api/ssh-keys", s.authed(scopeAll, s.handleListSSHKeys)).Methods(http.MethodGet)
	r.Handle("/api/ssh-keys", s.authed(scopeAll, s.handleCreateSSHKey)).Methods(http.MethodPost)
	r.Handle("/api/ssh-keys/authorized", s.authed(scopeAll, s.handleAuthorizedKeys)).Methods(http.MethodGet)
	r.Handle("/api/ssh-keys/{id:[0-9]+}", s.authed(scopeAll, s.handleGetSSHKey)).Methods(http.MethodGet)
	r.Handle("/api/ssh-keys/{id:[0-9]+}", s.authed(scopeAll, s.handleDeleteSSHKey)).Methods(http.MethodDelete)
	r.Handle("/api/me/status", s.authed(needAnyScope, s.handleSetStatus)).Methods(http.MethodPut)
	r.Handle("/api/me/nickname", s.authed(needAnyScope, s.handleSetNickname)).Methods(http.MethodPut)
	r.Handle("/api/me/avatar", s.authed(needAnyScope, s.handleSetAvatar)).Methods(http.MethodPut)
	r.Handle("/api/me/anonymous", s.authed(needAnyScope, s.handleSetAnonymous)).Methods(http.MethodPut)
	r.Handle("/api/activity", s.authed(needAnyScope, s.handleActivity)).Methods(http.MethodGet)
	r.Handle("/api/admin/system", s.admin(s.handleSystemHealth)).Methods(http.MethodGet)
	r.Handle("/api/admin/settings", s.admin(s.handleGetSettings)).Methods(http.MethodGet)
	r.Handle("/api/admin/settings", s.admin(s.handlePutSettings)).Methods(http.MethodPut)
	r.Handle("/api/admin/invite-code", s.admin(s.handleInviteCode)).Methods(http.MethodGet)
	r.Handle("/api/admin/invite-code/rotate", s.admin(s.handleRotateInviteCode)).Methods(http.MethodPost)
	r.Handle("/api/notifications", s.authed(needAnyScope, s.handleNotifications)).Methods(http.MethodGet)
	r.Handle("/api/notifications/read-all", s.authed(needAnyScope, s.handleNotificationsReadAll)).Methods(http.MethodPost)
	r.Handle("/api/notifications/{id:[0-9]+}/read", s.authed(needAnyScope, s.handleNotificationRead)).Methods(http.MethodPost)
	r.Handle("/api/user/2fa/status", s.authed(scopeAll, s.handleTwoFactorStatus)).Methods(http.MethodGet)
	r.Handle("/api/user/2fa/setup", s.authed(scopeAll, s.handleTwoFactorSetup)).Methods(http.MethodPost)
	r.Handle("/api/user/2fa/verify", s.authed(scopeAll, s.handleTwoFactorVerify)).Methods(http.MethodPost)
	r.Handle("/api/user/2fa/disable", s.authed(scopeAll, s.handleTwoFactorDisable)).Methods(http.MethodPost)
	r.Handle("/api/admin/users", s.admin(s.handleListUsers)).Methods(http.MethodGet)
	r.Handle("/api/admin/users", s.admin(s.handleCreateUser)).Methods(http.MethodPost)
	r.Handle("/api/admin/users/{id:[0-9]+}", s.admin(s.handleDeleteUser)).Methods(http.MethodDelete)

	r.Handle("/api/stats/public", s.authed(scopeStreamsRead, s.handlePublicStats)).Methods(http.MethodGet)
	r.Handle("/api/streams", s.authed(scopeStreamsRead, s.handleListStreams)).Methods(http.MethodGet)
	r.Handle("/api/streams", s.authed(scopeStreamsWrite, s.handleCreateStream)).Methods(http.MethodPost)
	r.Handle("/api/streams/public", s.authed(scopeStreamsRead, s.handlePublicStreams)).Methods(http.MethodGet)
	r.Handle("/api/streams/open", s.authed(scopeStreamsRead, s.handleOpenStreams)).Methods(http.MethodGet)
	r.Handle("/api/streams/{id:[0-9]+}", s.authed(scopeStreamsRead, s.handleGetStream)).Methods(http.MethodGet)
	r.Handle("/api/streams/{id:[0-9]+}", s.authed(scopeStreamsWrite, s.handleUpdateStream)).Methods(http.MethodPut)
	r.Handle("/api/streams/{id:[0-9]+}", s.authed(scopeStreamsWrite, s.handleDeleteStream)).Methods(http.MethodDelete)
	r.Handle("/api/streams/{id:[0-9]+}/regenerate-key", s.authed(scopeStreamsWrite, s.handleRegenerateKey)).Methods(http.MethodPost)
	r.Handle("/api/streams/{id:[0-9]+}/rtmp-token", s.authed(scopeStreamsWrite, s.handleRTMPToken)).Methods(http.MethodPost)
	r.Handle("/api/streams/{id:[0-9]+}/thumbnail", s.authed(scopeStreamsWrite, s.handleUploadThumbnail)).Methods(http.MethodPost)
	r.Handle("/api/streams/{id:[0-9]+}/thumbnail", s.authed(scopeStreamsWrite, s.handleDeleteThumbnail)).Methods(http.MethodDelete)
	r.Handle("/api/stream/{key}/thumbnail", s.handle(s.handleThumbnail)).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/api/streams/{id:[0-9]+}/playback-token", s.authed(scopeStreamsWrite, s.handlePlaybackToken)).Methods(http.MethodPost)
	r.Handle("/api/streams/{id:[0-9]+}/playback-token/revoke", s.authed(scopeStreamsWrite, s.handleRevokePlaybackTokens)).Methods(http.MethodPost)

	r.Handle("/api/relay-platforms", s.authed(scopeStreamsRead, s.handleRelayPlatforms)).Methods(http.MethodGet)
	r.Handle("/api/streams/{id:[0-9]+}/relays", s.authed(scopeStreamsRead, s.handleListRelays)).Methods(http.MethodGet)
	r.Handle("/api/streams/{id:[0-9]+}/relays", s.authed(scopeStreamsWrite, s.handleCreateRelay)).Methods(http.MethodPost)
	r.Handle("/api/streams/{id:[0-9]+}/relays/{relay_id:[0-9]+}", s.authed(scopeStreamsWrite, s.handleUpdateRelay)).Methods(http.MethodPut)
	r.Handle("/api/streams/{id:[0-9]+}/relays/{relay_id:[0-9]+}", s.authed(scopeStreamsWrite, s.handleDeleteRelay)).Methods(http.MethodDelete)

	if s.cfg.HLS != nil {
		// The HLS handler parses the path itself and asks the Resolver about the id, which
		// may be a pub_ playback id or a ptk_ playback token.
		r.PathPrefix("/api/stream/{id}/hls/").Handler(s.cfg.HLS)
	}
	// The WebRTC handlers also parse their paths themselves: the endpoint and, below it,
	// the session resources (PATCH for trickle ICE, DELETE to end).
	if s.cfg.WHIP != nil {
		r.PathPrefix("/api/stream/{id}/webrtc/whip").Handler(s.cfg.WHIP)
	}
	if s.cfg.WHEP != nil {
		r.PathPrefix("/api/stream/{id}/webrtc/whep").Handler(s.cfg.WHEP)
	}
	// Last: the media routes above are the busiest and are matched in order.
	s.pprofRoutes(r)
	s.chatRoutes(r)
	s.webhookRoutes(r)

	// The VOD endpoints have a router of their own, which sees their paths uncleaned.
	vr := s.newRouter().SkipClean(true)
	s.vodRoutes(vr)
	s.openapi.routers = []*mux.Router{r, vr}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if isVODPath(req.URL.Path) {
			vr.ServeHTTP(w, req)
			return
		}
		r.ServeHTTP(w, req)
	})
	if s.cfg.CORS {
		h = cors(h)
	}
	return s.observe(h)
}

// newRouter returns a router whose unknown routes and wrong methods get the API's error
// body and whose matched routes are recorded for the metrics.
func (s *Server) newRouter() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "not found")
	})
	r.MethodNotAllowedHandler = s.handle(func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Use(recordRoute)
	return r
}

// handle adapts a handler that returns an error: an *apiError becomes its status,
// store.ErrNotFound a 404, anything else a logged 500.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var ae *apiError
		switch {
		case errors.As(err, &ae):
			writeError(w, ae.Status, ae.Msg)
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, "not found")
		case errors.Is(err, context.Canceled):
			writeError(w, 499, "request canceled")
		default:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			writeError(w, http.StatusInternalServerError, "internal server error")
		}
	})
}

// reqInfo is filled in while a request is served, for the metrics and the log line.
type reqInfo struct {
	route  string
	userID int64
}

type reqInfoKey struct{}

func reqInfoFrom(ctx context.Context) *reqInfo {
	info, _ := ctx.Value(reqInfoKey{}).(*reqInfo)
	return info
}

// recordRoute notes the matched route's template (mux middleware: runs for matched routes).
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if info := reqInfoFrom(r.Context()); info != nil {
			if route := mux.CurrentRoute(r); route != nil {
				info.route, _ = route.GetPathTemplate()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// statusWriter records the status code of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines (HLS long polls).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush forwards to the underlying writer when it can flush.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// observe counts every request by route template, method and status, logs it at debug
// (path only, with secrets in it redacted: the query may hold ?token=, the path a
// playback token or a publish key, and headers are never logged), and turns a handler
// panic into a 500.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panic", "method", r.Method, "path", r.URL.Path, "panic", v)
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal server error")
				}
			}
			if sw.status == 0 {
				sw.status = http.StatusOK
			}
			route := info.route
			if route == "" {
				route = "unmatched"
			}
			elapsed := time.Since(start)
			s.metrics.observeHTTP(route, r.Method, sw.status, elapsed)
			if s.log.Enabled(r.Context(), slog.LevelDebug) {
				s.log.Debug("http request", "method", r.Method, "path", redactPath(r.URL.Path), "route", route,
					"status", sw.status, "duration", elapsed, "remote", clientIP(r), "user_id", info.userID)
			}
		}()
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info)))
	})
}

// cors allows any origin. The API authenticates with bearer tokens, not cookies, so a
// wildcard origin without credentials is safe. Preflights are answered here, before
// routing (mux would answer OPTIONS with 405).
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Header.Get("Origin") == "" {
			next.ServeHTTP(w, r)
			return
		}
		h.Set("Access-Control-Allow-Origin", "*")
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
			allow := r.Header.Get("Access-Control-Request-Headers")
			if allow == "" {
				allow = "Authorization, Content-Type"
			}
			h.Set("Access-Control-Allow-Headers", allow)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset")
		next.ServeHTTP(w, r)
	})
}

// rateLimited applies the login/setup limit per client IP, with X-RateLimit-* headers.
func (s *Server) rateLimited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.limit(w, s.authLimit, clientIP(r)) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limit counts a request of key against l, sets the X-RateLimit-* headers and, past the
// limit, answers 429 (with Retry-After) and returns false.
func (s *Server) limit(w http.ResponseWriter, l *rateLimiter, key string) bool {
	ok, remaining, reset := l.allow(key)
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(l.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if !ok {
		retry := int(reset.Sub(s.now()).Seconds()) + 1
		h.Set("Retry-After", strconv.Itoa(max(retry, 1)))
		writeError(w, http.StatusTooManyRequests, "too many requests, try again later")
	}
	return ok
}

// redactPath replaces the path segments that are secrets (playback tokens, publish keys,
// RTMP tokens, API keys) by their prefix and "[redacted]".
func redactPath(p string) string {
	if !strings.Contains(p, "_") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		for _, prefix := range []string{ptkPrefix, kindStreamKey + "_", kindRTMPToken + "_", kindAPIKey + "_"} {
			if strings.HasPrefix(seg, prefix) && len(seg) > len(prefix) {
				segs[i] = prefix + "[redacted]"
			}
		}
	}
	return strings.Join(segs, "/")
}

// pathID returns the numeric {id} of the route (the route pattern guarantees digits).
func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusNotFound, "not found")
	}
	return id, nil
}

// trimmedLen returns the length of s in characters.
func trimmedLen(s string) int { return len([]rune(strings.TrimSpace(s))) }
