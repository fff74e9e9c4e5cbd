package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

// Config configures a Server. Hub and Resolver are required; every other field has a default.
type Config struct {
	// Hub is the bus whose streams are served.
	Hub *bus.Hub
	// Resolver maps playback ids to bus stream ids and checks access (Protocol "rtmp").
	Resolver egress.Resolver
	// Logger receives the server's log lines. Default slog.Default().
	Logger *slog.Logger
	// WriteTimeout disconnects a viewer whose socket accepts no byte for that long.
	// Default 10 s.
	WriteTimeout time.Duration
	// MaxQueuedBytes is how far (in bytes of the stream) a viewer may fall behind the live
	// edge before it skips to the newest keyframe. Default 4 MiB.
	MaxQueuedBytes int
	// SendBuffer is the kernel send buffer of each viewer's socket (SO_SNDBUF). Bounded, it
	// caps the memory a slow viewer holds in the kernel and lets MaxQueuedBytes decide
	// when it skips; 1 MiB carries 40 Mbps at 200 ms round trip. Default 1 MiB; negative:
	// the kernel's autotuning (up to several MiB per socket).
	SendBuffer int
	// ResolveTimeout bounds the Resolver call. Default 5 s.
	ResolveTimeout time.Duration
	// MaxAudioDelay is how long audio of a stream with video may wait for the next video
	// frame, so that both reach each viewer in one write (half the system calls per
	// viewer). Default 40 ms; negative: audio is sent at once.
	MaxAudioDelay time.Duration
	// SkipLogInterval is the least time between two log lines about slow viewers. Default 10 s.
	SkipLogInterval time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxQueuedBytes <= 0 {
		c.MaxQueuedBytes = 4 << 20
	}
	if c.SendBuffer == 0 {
		c.SendBuffer = 1 << 20
	}
	if c.ResolveTimeout <= 0 {
		c.ResolveTimeout = 5 * time.Second
	}
	if c.MaxAudioDelay == 0 {
		c.MaxAudioDelay = 40 * time.Millisecond
	}
	if c.SkipLogInterval <= 0 {
		c.SkipLogInterval = 10 * time.Second
	}
}

// PlayRequest is a viewer's play command. Its fields are those of ingest/rtmp.PlayRequest
// (one converts to the other), which cmd/relaycast hands over.
type PlayRequest struct {
	// App is the application the client connected to ("live").
	App string
	// Name is the playback id.
	Name string
	// Query is the query string of the play URL ("token=..."); never logged.
	Query string
	// RemoteAddr is the client's address.
	RemoteAddr string
	// Secure reports RTMPS.
	Secure bool
	// StreamID is the RTMP message stream the client plays on.
	StreamID uint32
}

// Stats are the server's counters.
type Stats struct {
	// Viewers is the number of viewers being served.
	Viewers int64
	// Feeds is the number of streams with at least one viewer.
	Feeds int
	// Played counts the viewers admitted since the start; Refused those refused (unknown,
	// offline or forbidden).
	Played, Refused uint64
	// Skips counts the times a slow viewer skipped to a newer keyframe; SkippedUnits the
	// units it did not receive.
	Skips, SkippedUnits uint64
	// Disconnected counts viewers closed because their socket stalled for WriteTimeout.
	Disconnected uint64
	// Serialized counts the media messages serialized (once per stream, whatever the number
	// of viewers); BytesOut the bytes written to viewers.
	Serialized, BytesOut uint64
}

// Server serves RTMP playback. It owns no listener: ingest/rtmp accepts the connections
// and hands play requests to Play.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	feeds  map[string]*feed // by bus stream id
	wg     sync.WaitGroup   // Play calls and feed pumps

	viewers      atomic.Int64
	played       atomic.Uint64
	refused      atomic.Uint64
	skips        atomic.Uint64
	skippedUnits atomic.Uint64
	disconnected atomic.Uint64
	serialized   atomic.Uint64
	bytesOut     atomic.Uint64
	lastSkipLog  atomic.Int64
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Hub == nil || cfg.Resolver == nil {
		return nil, errors.New("rtmp: Config.Hub and Config.Resolver are required")
	}
	s := &Server{cfg: cfg, log: cfg.Logger, feeds: make(map[string]*feed)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	feeds := len(s.feeds)
	s.mu.Unlock()
	return Stats{
		Viewers: s.viewers.Load(), Feeds: feeds, Played: s.played.Load(), Refused: s.refused.Load(),
		Skips: s.skips.Load(), SkippedUnits: s.skippedUnits.Load(),
		Disconnected: s.disconnected.Load(), Serialized: s.serialized.Load(),
		BytesOut: s.bytesOut.Load(),
	}
}

// Close ends every viewer (their Play calls return) and waits for them and for the
// server's goroutines. It is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

// Play serves one viewer on conn, which ingest/rtmp hands over after the client's play
// command: it answers the command, sends the stream from its cached keyframe and returns
// when the viewer leaves, the stream ends, ctx is cancelled or the server closes. It
// neither closes conn nor leaves a goroutine behind.
func (s *Server) Play(ctx context.Context, req PlayRequest, conn net.Conn) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()

	log := s.log.With("remote", req.RemoteAddr, "playback_id", truncate(req.Name, 64), "secure", req.Secure)
	f, err := s.admit(ctx, req, log)
	if err != nil {
		s.refused.Add(1)
		s.refuse(conn, req, err)
		return err
	}
	if s.cfg.SendBuffer > 0 {
		raw := conn
		if tc, ok := conn.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		if tc, ok := raw.(*net.TCPConn); ok {
			_ = tc.SetWriteBuffer(s.cfg.SendBuffer)
		}
	}
	v := newViewer(s, f, conn, req.StreamID)
	s.played.Add(1)
	s.viewers.Add(1)
	start := time.Now()
	log = log.With("stream", f.id)
	log.Info("rtmp viewer started")
	err = v.run(ctx)
	s.leave(f, v)
	s.viewers.Add(-1)
	reason := "viewer left"
	level := slog.LevelInfo
	switch {
	case errors.Is(err, ErrStreamEnded):
		reason = "stream ended"
	case errors.Is(err, errStalled):
		reason, level = err.Error(), slog.LevelWarn
	case s.ctx.Err() != nil:
		reason = "server shutting down"
	case err != nil && ctx.Err() == nil && !isClosedConn(err):
		reason = err.Error()
	}
	log.Log(context.Background(), level, "rtmp viewer stopped", "reason", reason,
		"duration", time.Since(start).Round(time.Millisecond), "bytes", v.sent,
		"skips", v.skips, "skipped_units", v.skipped, "first_frame", v.firstWrite.Round(time.Microsecond))
	return err
}

// admit resolves the playback id and attaches the viewer's stream feed.
func (s *Server) admit(ctx context.Context, req PlayRequest, log *slog.Logger) (*feed, error) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.ResolveTimeout)
	id, err := s.cfg.Resolver.Resolve(rctx, egress.Request{
		Protocol: "rtmp", ID: req.Name, Token: token(req.Query), RemoteAddr: req.RemoteAddr,
	})
	cancel()
	switch {
	case errors.Is(err, egress.ErrNotFound):
		log.Info("rtmp play refused: unknown playback id")
		return nil, ErrNotFound
	case errors.Is(err, egress.ErrForbidden):
		log.Info("rtmp play refused: forbidden")
		return nil, ErrForbidden
	case err != nil:
		log.Warn("rtmp play refused: resolver failed", "err", err)
		return nil, fmt.Errorf("resolve playback id: %w", err)
	}
	if st := s.cfg.Hub.Stream(id); st == nil || st.State() != bus.StateLive {
		log.Info("rtmp play refused: stream offline", "stream", id)
		return nil, ErrNotFound
	}
	f, err := s.join(id)
	if err != nil {
		log.Info("rtmp play refused", "stream", id, "err", err)
		return nil, err
	}
	return f, nil
}

// refuse answers a refused play command.
func (s *Server) refuse(conn net.Conn, req PlayRequest, err error) {
	code, desc := message.NetStreamOnStatusCodePlayFailed, "Play failed."
	switch {
	case errors.Is(err, ErrNotFound):
		code, desc = "NetStream.Play.StreamNotFound", "No live stream with this playback id."
	case errors.Is(err, ErrForbidden):
		desc = "Not allowed to play this stream."
	}
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	b := appendSetChunkSize(nil)
	b = appendOnStatus(b, req.StreamID, "error", code, desc)
	_, _ = conn.Write(b)
}

// join attaches a viewer to the feed of stream id, starting the feed if needed.
func (s *Server) join(id string) (*feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	f := s.feeds[id]
	if f == nil || f.finished() {
		ctx, cancel := context.WithCancel(s.ctx)
		r, err := s.cfg.Hub.Subscribe(ctx, id, bus.ReaderOptions{})
		if err != nil {
			cancel()
			if errors.Is(err, bus.ErrNotFound) {
				return nil, ErrNotFound
			}
			return nil, err
		}
		f = newFeed(s, id, r.Stream(), cancel)
		s.feeds[id] = f
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			f.run(ctx, r)
		}()
	}
	f.n++
	f.stream.SetViewers("rtmp", f.n)
	return f, nil
}

// leave detaches v from its feed; the feed stops with its last viewer.
func (s *Server) leave(f *feed, v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f.remove(v)
	f.n--
	f.stream.SetViewers("rtmp", f.n)
	if f.n == 0 {
		if s.feeds[f.id] == f {
			delete(s.feeds, f.id)
		}
		f.cancel()
	}
}

// noteSkip counts a slow viewer's skip and logs one line per SkipLogInterval at most.
func (s *Server) noteSkip(f *feed, units uint64) {
	s.skips.Add(1)
	s.skippedUnits.Add(units)
	now := time.Now().UnixNano()
	last := s.lastSkipLog.Load()
	if now-last >= int64(s.cfg.SkipLogInterval) && s.lastSkipLog.CompareAndSwap(last, now) {
		s.log.Warn("slow rtmp viewer skipped to the newest keyframe", "stream", f.id,
			"skipped_units", units, "skips_total", s.skips.Load())
	}
}

// token returns the token parameter of a play URL's query string.
func token(query string) string {
	q, err := url.ParseQuery(query)
	if err != nil {
		return ""
	}
	return q.Get("token")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func isClosedConn(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
