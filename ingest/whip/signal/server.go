package signal

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Config configures a Server.
type Config struct {
	// Name is the protocol, the prefix of log lines: "whip" or "whep". Required.
	Name string
	// Suffix ends the endpoint's path /api/stream/{id}{Suffix}: "/webrtc/whip" or
	// "/webrtc/whep". Required.
	Suffix string
	// Client names the other end in a session's end reason ("deleted by the publisher"):
	// "publisher" or "viewer". Required.
	Client string
	// Offer handles a POST whose body is an application/sdp offer of at most 128 KiB; id is
	// the endpoint's id from the path. It checks the offer and the client's right to
	// connect, then either admits a session with Add and passes it to Start, or writes the
	// error (WriteError). Required.
	Offer func(w http.ResponseWriter, r *http.Request, id string, offer []byte)
	// ICEServers are advertised to clients in Link headers (RFC 9725 §4.6).
	ICEServers []webrtc.ICEServer
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger

	// ConnectTimeout ends a session whose ICE does not connect in time. Default 30 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout ends a session whose ICE stayed disconnected this long (ICE
	// failure ends it at once). Default 10 s.
	DisconnectTimeout time.Duration
	// NegotiateTimeout bounds the POST handler's negotiation, candidate gathering
	// included. Default 10 s.
	NegotiateTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
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

// Peer is the protocol's part of a session: what the Server calls on it.
type Peer interface {
	// Negotiate creates the session's peer connection (Session.NewPeerConnection), sets
	// up its tracks and returns the answer (Session.Answer). Errors caused by the offer
	// wrap ErrBadOffer.
	Negotiate(ctx context.Context, offer string) (answer string, err error)
	// Connected is called, on the session's goroutine, when ICE first connects.
	Connected()
	// Teardown is called once on the session's goroutine after it ended, even when
	// negotiation failed: it closes the peer connection, if any, and releases what the
	// session holds.
	Teardown()
}

// Server is the session table and HTTP handler of one endpoint. It is an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	sessions map[string]*Session // by session id
	closed   bool
	wg       sync.WaitGroup
}

var _ http.Handler = (*Server)(nil)

// New returns a Server. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Name == "" || cfg.Suffix == "" || cfg.Client == "" || cfg.Offer == nil {
		return nil, errors.New("signal: Config.Name, Suffix, Client and Offer are required")
	}
	cfg.setDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, sessions: map[string]*Session{}}, nil
}

// ServeHTTP handles POST on the endpoint (Config.Offer), and DELETE, PATCH (trickle ICE)
// and OPTIONS on a session resource.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Expose-Headers", "Location, Link, Accept-Patch, ETag")
	id, sid, ok := parsePath(r.URL.Path, s.cfg.Suffix)
	if !ok {
		WriteError(w, http.StatusNotFound, "not found")
		return
	}
	if sid == "" {
		switch r.Method {
		case http.MethodPost:
			if body, ok := readBody(w, r, contentTypeSDP); ok {
				s.cfg.Offer(w, r, id, body)
			}
		case http.MethodOptions:
			options(w, "POST, OPTIONS")
		default:
			h.Set("Allow", "POST, OPTIONS")
			WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.handleDelete(w, r, id, sid)
	case http.MethodPatch:
		s.handlePatch(w, r, id, sid)
	case http.MethodOptions:
		options(w, "PATCH, DELETE, OPTIONS")
	default:
		h.Set("Allow", "PATCH, DELETE, OPTIONS")
		WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// Add enters sess in the table. admit, if not nil, runs under the table's lock after the
// closed check (so admissions are serialized with each other and with Close): its error
// refuses the session and is returned. Add returns ErrClosed once Close has begun. A
// session Add accepted must be passed to Start.
func (s *Server) Add(sess *Session, admit func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if admit != nil {
		if err := admit(); err != nil {
			return err
		}
	}
	s.sessions[sess.id] = sess
	s.wg.Add(1)
	return nil
}

// Start negotiates an added session through p, starts the goroutine that runs it until
// its end, and answers the POST: 201 Created with the answer, Location, Accept-Patch and
// Link headers; 400 for an offer the negotiation refused (ErrBadOffer); else 500. On
// failure the session is torn down before Start returns. It reports whether the session
// started.
func (s *Server) Start(w http.ResponseWriter, r *http.Request, sess *Session, p Peer, offer []byte) bool {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.NegotiateTimeout)
	answer, err := p.Negotiate(ctx, string(offer))
	cancel()
	go func() {
		defer s.wg.Done()
		s.run(sess, p)
	}()
	if err != nil {
		sess.End("negotiation failed")
		<-sess.done
		if errors.Is(err, ErrBadOffer) {
			WriteError(w, http.StatusBadRequest, err.Error())
			return false
		}
		s.log.Warn(s.cfg.Name+": negotiation failed", "stream", sess.Stream, "error", err)
		WriteError(w, http.StatusInternalServerError, "negotiation failed")
		return false
	}
	s.mu.Lock()
	sess.ready = true // lookup's lock orders the PATCH/DELETE after negotiate's writes
	s.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", contentTypeSDP)
	h.Set("Location", resourceURL(s.cfg.Suffix, sess.Resource, sess.id))
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Cache-Control", "no-store")
	for _, l := range linkHeaders(s.cfg.ICEServers) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
	return true
}

// run waits for the session's end, tears it down and removes it from the table.
func (s *Server) run(sess *Session, p Peer) {
	defer close(sess.done)
	sess.watch(s.cfg.ConnectTimeout, s.cfg.DisconnectTimeout, p.Connected)
	p.Teardown()
	s.mu.Lock()
	if s.sessions[sess.id] == sess {
		delete(s.sessions, sess.id)
	}
	s.mu.Unlock()
}

// lookup returns the session sid if it belongs to the endpoint id and was answered.
func (s *Server) lookup(id, sid string) *Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sid]
	if sess == nil || sess.Resource != id || !sess.ready {
		return nil
	}
	return sess
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, id, sid string) {
	sess := s.lookup(id, sid)
	if sess == nil {
		WriteError(w, http.StatusNotFound, "session not found")
		return
	}
	sess.End("deleted by the " + s.cfg.Client)
	select {
	case <-sess.done:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, id, sid string) {
	body, ok := readBody(w, r, contentTypeTrickle)
	if !ok {
		return
	}
	sess := s.lookup(id, sid)
	if sess == nil {
		WriteError(w, http.StatusNotFound, "session not found")
		return
	}
	cands, err := parseTrickle(body, sess.Ufrag)
	switch {
	case errors.Is(err, errTrickleRestart):
		// RFC 9725 §4.3.2: trickle is supported, ICE restarts are not.
		WriteError(w, http.StatusUnprocessableEntity, "ICE restart is not supported")
		return
	case err != nil:
		WriteError(w, http.StatusBadRequest, "invalid trickle-ice-sdpfrag: "+err.Error())
		return
	}
	for _, c := range cands {
		if err := sess.pc.AddICECandidate(c); err != nil {
			WriteError(w, http.StatusBadRequest, "invalid candidate")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Close ends every session and waits for their goroutines. It is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.End("server closing")
	}
	s.wg.Wait()
	return nil
}
