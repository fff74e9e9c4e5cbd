package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// Config configures a Server. Hub and Auth are required.
type Config struct {
	// Addr is the plain RTMP listen address (":1935"); "" turns it off.
	Addr string
	// TLSAddr is the RTMPS listen address (":1936"); "" turns it off.
	TLSAddr string
	// TLSConfig is the RTMPS certificate configuration; required when TLSAddr is set.
	TLSConfig *tls.Config
	// Hub receives the published streams.
	Hub *bus.Hub
	// Auth decides which keys may publish.
	Auth ingest.Authorizer
	// PlainEnabled accepts publishing over plain RTMP. When false, the plain listener still
	// runs (if Addr is set) so that a publisher gets an explicit refusal and a log line.
	PlainEnabled bool
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger

	// HandshakeTimeout bounds the time from accepting a connection to an accepted publish
	// (TLS and RTMP handshakes, connect, createStream, publish). Default 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a publishing connection that sent no media for that long.
	// Default 15 s.
	IdleTimeout time.Duration
	// WriteTimeout bounds each write to a client. Default 10 s.
	WriteTimeout time.Duration
	// TrackWait is how long a new publisher may take to send the sequence headers of the
	// tracks its metadata announces before the stream starts with the tracks it has.
	// Default 2 s.
	TrackWait time.Duration

	// Player serves play requests (rtmp://host/live/PLAYBACK_ID) on the same listeners;
	// nil refuses them (NetStream.Play.Failed).
	Player Player
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 15 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.TrackWait <= 0 {
		c.TrackWait = 2 * time.Second
	}
}

// Stats are the server's counters.
type Stats struct {
	// Connections is the number of open connections.
	Connections int64
	// Publishers is the number of connections admitted to publish.
	Publishers int64
	// Players is the number of connections handed to the Player.
	Players int64
	// Accepted counts the connections accepted since the start.
	Accepted uint64
	// Refused counts the connect, publish or play requests refused.
	Refused uint64
	// BytesIn counts the bytes read from clients (RTMP framing and TLS included).
	BytesIn uint64
}

// Server is the RTMP/RTMPS ingest server.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context // cancelled by Close; bounds Authorize calls
	cancel context.CancelFunc

	plain, secure *listener

	mu     sync.Mutex
	closed bool
	conns  map[*netConn]struct{}
	// active holds the stream ids of the admitted publishers.
	active map[string]struct{}

	// wg counts the accept loops and the open connections.
	wg        sync.WaitGroup
	closeOnce sync.Once

	connections atomic.Int64
	publishers  atomic.Int64
	players     atomic.Int64
	accepted    atomic.Uint64
	refused     atomic.Uint64
	bytesIn     atomic.Uint64
}

// New binds the configured listeners and starts accepting connections. If the second
// listener cannot be bound, the first is closed again.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Hub == nil || cfg.Auth == nil {
		return nil, errors.New("rtmp: Config.Hub and Config.Auth are required")
	}
	if cfg.TLSAddr != "" && cfg.TLSConfig == nil {
		return nil, errors.New("rtmp: Config.TLSConfig is required with TLSAddr")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: make(map[*netConn]struct{}),
		active: make(map[string]struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if cfg.Addr != "" {
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			s.cancel()
			return nil, fmt.Errorf("rtmp: listen %s: %w", cfg.Addr, err)
		}
		s.plain = newListener(s, ln, ingest.ProtocolRTMP)
	}
	if cfg.TLSAddr != "" {
		ln, err := net.Listen("tcp", cfg.TLSAddr)
		if err != nil {
			if s.plain != nil {
				_ = s.plain.inner.Close()
			}
			s.cancel()
			return nil, fmt.Errorf("rtmps: listen %s: %w", cfg.TLSAddr, err)
		}
		s.secure = newListener(s, tls.NewListener(ln, cfg.TLSConfig), ingest.ProtocolRTMPS)
	}
	for _, l := range []*listener{s.plain, s.secure} {
		if l != nil {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				l.serve()
			}()
		}
	}
	return s, nil
}

// Addr returns the plain RTMP listener's address, or nil when it is off.
func (s *Server) Addr() net.Addr {
	if s.plain == nil {
		return nil
	}
	return s.plain.inner.Addr()
}

// TLSAddr returns the RTMPS listener's address, or nil when it is off.
func (s *Server) TLSAddr() net.Addr {
	if s.secure == nil {
		return nil
	}
	return s.secure.inner.Addr()
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Connections: s.connections.Load(),
		Publishers:  s.publishers.Load(),
		Players:     s.players.Load(),
		Accepted:    s.accepted.Load(),
		Refused:     s.refused.Load(),
		BytesIn:     s.bytesIn.Load(),
	}
}

// Close closes the listeners and every connection (their publishers leave the bus, which
// starts the streams' reconnect grace) and waits for all the server's goroutines. It is
// safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		conns := make([]*netConn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		s.cancel()
		for _, l := range []*listener{s.plain, s.secure} {
			if l != nil {
				l.close()
			}
		}
		for _, c := range conns {
			c.abort()
		}
	})
	s.wg.Wait()
	return nil
}

// track registers an accepted connection; it returns false when the server is closing.
func (s *Server) track(c *netConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.connections.Add(1)
	s.accepted.Add(1)
	return true
}

// forget unregisters a connection once go-rtmp closed it.
func (s *Server) forget(c *netConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connections.Add(-1)
	s.wg.Done()
}

// reserve marks stream id as published through this server; false if it already is.
func (s *Server) reserve(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.active[id]; ok {
		return false
	}
	s.active[id] = struct{}{}
	return true
}

func (s *Server) unreserve(id string) {
	s.mu.Lock()
	delete(s.active, id)
	s.mu.Unlock()
}
