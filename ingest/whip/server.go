package whip

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// Config configures a Server.
type Config struct {
	// Hub receives the published streams. Required.
	Hub *bus.Hub
	// Auth admits publishers (Protocol ingest.ProtocolWHIP, Key from the URL). Required.
	Auth ingest.Authorizer
	// API builds the peer connections. cmd/relaycast builds it with the shared ICE UDP/TCP
	// mux, codecs and interceptors. Required.
	API *webrtc.API
	// ICEServers are given to the peer connections and advertised to clients in Link
	// headers (RFC 9725 §4.6).
	ICEServers []webrtc.ICEServer
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger

	// KeyframeInterval is the longest time the server lets a publisher go without a video
	// keyframe before it asks for one (PLI). Browsers send keyframes only when asked; OBS
	// sends them at its own interval, which should be shorter. Default 3 s; negative: ask
	// only at the start and after a loss.
	KeyframeInterval time.Duration
	// TrackWait is how long a session with video waits for the first keyframe before it
	// goes live with its audio only. Default 10 s.
	TrackWait time.Duration
	// ConnectTimeout ends a session whose ICE does not connect in time. Default 30 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout ends a session whose ICE stayed disconnected this long (ICE
	// failure ends it at once). Default 10 s.
	DisconnectTimeout time.Duration
	// NegotiateTimeout bounds the POST handler's candidate gathering. Default 10 s.
	NegotiateTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.KeyframeInterval == 0 {
		c.KeyframeInterval = 3 * time.Second
	}
	if c.KeyframeInterval < 0 {
		c.KeyframeInterval = 0
	}
	if c.TrackWait <= 0 {
		c.TrackWait = 10 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.DisconnectTimeout <= 0 {
		c.DisconnectTimeout = 10 * time.Second
	}
	if c.NegotiateTimeout <= 0 {
		c.NegotiateTimeout = 10 * time.Second
	}
}

// Server accepts WHIP publishers. It is an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*session // by session id
	byStream map[string]*session // by bus stream id: one WHIP publisher per stream
	closed   bool
	wg       sync.WaitGroup
}

var _ http.Handler = (*Server)(nil)

// New returns a Server. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Auth == nil || cfg.API == nil {
		return nil, errors.New("whip: Config.Hub, Auth and API are required")
	}
	cfg.setDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, sessions: map[string]*session{},
		byStream: map[string]*session{}}, nil
}

// ServeHTTP handles POST /api/stream/{stream_key}/webrtc/whip (SDP offer in, 201 with the
// answer and a Location), and DELETE, PATCH (trickle ICE) and OPTIONS on the session
// resource /api/stream/{stream_key}/webrtc/whip/{session_id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Expose-Headers", "Location, Link, Accept-Patch, ETag")
	key, sid, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if sid == "" {
		switch r.Method {
		case http.MethodPost:
			s.handleOffer(w, r, key)
		case http.MethodOptions:
			options(w, "POST, OPTIONS")
		default:
			h.Set("Allow", "POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.handleDelete(w, r, key, sid)
	case http.MethodPatch:
		s.handlePatch(w, r, key, sid)
	case http.MethodOptions:
		options(w, "PATCH, DELETE, OPTIONS")
	default:
		h.Set("Allow", "PATCH, DELETE, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// options answers a preflight or capability request. The Access-Control-Allow-Origin
// header is the control plane's (--cors).
func options(w http.ResponseWriter, allow string) {
	h := w.Header()
	h.Set("Allow", allow)
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Access-Control-Allow-Methods", allow)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleOffer(w http.ResponseWriter, r *http.Request, key string) {
	body, ok := readBody(w, r, contentTypeSDP)
	if !ok {
		return
	}
	sum, err := parseOffer(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	grant, err := s.cfg.Auth.Authorize(r.Context(), ingest.Request{
		Protocol: ingest.ProtocolWHIP, Key: key, RemoteAddr: r.RemoteAddr,
	})
	switch {
	case err == nil:
	case errors.Is(err, ingest.ErrUnauthorized):
		s.log.Info("whip: publisher refused", "key", ingest.RedactKey(key), "remote", r.RemoteAddr, "error", err)
		writeError(w, http.StatusUnauthorized, "invalid stream key")
		return
	case errors.Is(err, ingest.ErrForbidden):
		s.log.Info("whip: publisher refused", "key", ingest.RedactKey(key), "remote", r.RemoteAddr, "error", err)
		writeError(w, http.StatusForbidden, "WHIP is not allowed for this stream key")
		return
	default:
		s.log.Warn("whip: authorize failed", "key", ingest.RedactKey(key), "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}

	sess := &session{srv: s, id: newSessionID(), key: key, grant: grant, ufrag: sum.ufrag,
		log: s.log, stateCh: make(chan struct{}, 1), stop: make(chan struct{}),
		done: make(chan struct{})}
	sess.asm = newAssembler(s.cfg.Hub, grant.StreamID, s.log, sum, s.cfg.TrackWait, time.Now())

	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		s.cfg.Auth.Release(grant)
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	case s.byStream[grant.StreamID] != nil || streamLive(s.cfg.Hub, grant.StreamID):
		s.mu.Unlock()
		s.cfg.Auth.Release(grant)
		writeError(w, http.StatusConflict, "stream already has a publisher")
		return
	}
	s.sessions[sess.id] = sess
	s.byStream[grant.StreamID] = sess
	s.wg.Add(1)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.NegotiateTimeout)
	answer, err := sess.negotiate(ctx, string(body), sum)
	cancel()
	go func() {
		defer s.wg.Done()
		sess.run()
	}()
	if err != nil {
		sess.end("negotiation failed")
		<-sess.done
		if errors.Is(err, errBadOffer) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.log.Warn("whip: negotiation failed", "stream", grant.StreamID, "error", err)
		writeError(w, http.StatusInternalServerError, "negotiation failed")
		return
	}
	s.mu.Lock()
	sess.ready = true // lookup's lock orders the PATCH/DELETE after negotiate's writes
	s.mu.Unlock()
	s.log.Info("whip: session started", "stream", grant.StreamID, "name", grant.Name,
		"session", sess.id, "remote", r.RemoteAddr)
	h := w.Header()
	h.Set("Content-Type", contentTypeSDP)
	h.Set("Location", resourceURL(key, sess.id))
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Cache-Control", "no-store")
	for _, l := range linkHeaders(s.cfg.ICEServers) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
}

// streamLive reports whether another ingest publishes stream id.
func streamLive(h *bus.Hub, id string) bool {
	st := h.Stream(id)
	return st != nil && st.State() == bus.StateLive
}

// lookup returns the session sid if it belongs to key.
func (s *Server) lookup(key, sid string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sid]
	if sess == nil || sess.key != key || !sess.ready {
		return nil
	}
	return sess
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, key, sid string) {
	sess := s.lookup(key, sid)
	if sess == nil {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	sess.end("deleted by the publisher")
	select {
	case <-sess.done:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, key, sid string) {
	body, ok := readBody(w, r, contentTypeTrickle)
	if !ok {
		return
	}
	sess := s.lookup(key, sid)
	if sess == nil {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	cands, err := parseTrickle(body, sess.ufrag)
	switch {
	case errors.Is(err, errTrickleRestart):
		// RFC 9725 §4.3.2: trickle is supported, ICE restarts are not.
		writeError(w, http.StatusUnprocessableEntity, "ICE restart is not supported")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid trickle-ice-sdpfrag: "+err.Error())
		return
	}
	for _, c := range cands {
		if err := sess.pc.AddICECandidate(c); err != nil {
			writeError(w, http.StatusBadRequest, "invalid candidate")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// forget removes a torn-down session.
func (s *Server) forget(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	if s.byStream[sess.grant.StreamID] == sess {
		delete(s.byStream, sess.grant.StreamID)
	}
}

// Close ends every session (their streams enter the bus's reconnect grace) and waits for
// their goroutines. It is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.end("server closing")
	}
	s.wg.Wait()
	return nil
}
