package whip

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
	"github.com/relaycast/relaycast/ingest/whip/signal"
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
}

// Server accepts WHIP publishers. It is an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger
	sig *signal.Server

	mu       sync.Mutex
	byStream map[string]*session // by bus stream id: one WHIP publisher per stream
}

var _ http.Handler = (*Server)(nil)

// errBusy refuses a second publisher of a stream.
var errBusy = errors.New("stream already has a publisher")

// errEndedByServer: the bus closed the publisher (the stream's key was regenerated or the
// stream deleted); the session ends.
var errEndedByServer = errors.New("publishing ended by the server")

// New returns a Server. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Auth == nil || cfg.API == nil {
		return nil, errors.New("whip: Config.Hub, Auth and API are required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, byStream: map[string]*session{}}
	sig, err := signal.New(signal.Config{Name: "whip", Suffix: "/webrtc/whip", Client: "publisher",
		Offer: s.handleOffer, ICEServers: cfg.ICEServers, Logger: cfg.Logger,
		ConnectTimeout: cfg.ConnectTimeout, DisconnectTimeout: cfg.DisconnectTimeout,
		NegotiateTimeout: cfg.NegotiateTimeout})
	if err != nil {
		return nil, fmt.Errorf("whip: %w", err)
	}
	s.sig = sig
	return s, nil
}

// ServeHTTP handles POST /api/stream/{stream_key}/webrtc/whip (SDP offer in, 201 with the
// answer and a Location), and DELETE, PATCH (trickle ICE) and OPTIONS on the session
// resource /api/stream/{stream_key}/webrtc/whip/{session_id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.sig.ServeHTTP(w, r)
}

// handleOffer admits a publisher: its offer must carry a codec the bus takes, its key
// must be authorized for WHIP, and its stream must have no other publisher.
func (s *Server) handleOffer(w http.ResponseWriter, r *http.Request, key string, body []byte) {
	sum, err := parseOffer(body)
	if err != nil {
		signal.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	grant, err := s.cfg.Auth.Authorize(r.Context(), ingest.Request{
		Protocol: ingest.ProtocolWHIP, Key: key, RemoteAddr: r.RemoteAddr,
	})
	switch {
	case err == nil:
	case errors.Is(err, ingest.ErrUnauthorized):
		s.log.Info("whip: publisher refused", "key", ingest.RedactKey(key), "remote", r.RemoteAddr, "error", err)
		signal.WriteError(w, http.StatusUnauthorized, "invalid stream key")
		return
	case errors.Is(err, ingest.ErrForbidden):
		s.log.Info("whip: publisher refused", "key", ingest.RedactKey(key), "remote", r.RemoteAddr, "error", err)
		signal.WriteError(w, http.StatusForbidden, "WHIP is not allowed for this stream key")
		return
	default:
		s.log.Warn("whip: authorize failed", "key", ingest.RedactKey(key), "error", err)
		signal.WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}

	sess := &session{Session: signal.NewSession(key, grant.StreamID, sum.ufrag), srv: s,
		grant: grant, sum: sum, log: s.log}
	sess.asm = newAssembler(s.cfg.Hub, grant.StreamID, s.log, sum, s.cfg.TrackWait, time.Now())
	err = s.sig.Add(sess.Session, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.byStream[grant.StreamID] != nil || streamLive(s.cfg.Hub, grant.StreamID) {
			return errBusy
		}
		s.byStream[grant.StreamID] = sess
		return nil
	})
	switch {
	case errors.Is(err, signal.ErrClosed):
		s.cfg.Auth.Release(grant)
		signal.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	case err != nil:
		s.cfg.Auth.Release(grant)
		signal.WriteError(w, http.StatusConflict, "stream already has a publisher")
		return
	}
	if s.sig.Start(w, r, sess.Session, sess, body) {
		s.log.Info("whip: session started", "stream", grant.StreamID, "name", grant.Name,
			"session", sess.ID(), "remote", r.RemoteAddr)
	}
}

// streamLive reports whether another ingest publishes stream id.
func streamLive(h *bus.Hub, id string) bool {
	st := h.Stream(id)
	return st != nil && st.State() == bus.StateLive
}

// forget removes a torn-down session.
func (s *Server) forget(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byStream[sess.grant.StreamID] == sess {
		delete(s.byStream, sess.grant.StreamID)
	}
}

// Close ends every session (their streams enter the bus's reconnect grace) and waits for
// their goroutines. It is safe to call twice.
func (s *Server) Close() error {
	return s.sig.Close()
}
