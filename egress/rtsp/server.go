// Package rtsp serves relaycast's live streams to RTSP and RTSPS readers
// (rtsp://host/live/PLAYBACK_ID). It does not listen itself: the RTSP server of
// ingest/rtsp owns the port (publishers and readers share it) and hands readers' DESCRIBE,
// SETUP and PLAY to this package's [Server], which implements ingest/rtsp's Player
// interface structurally (neither package imports the other; cmd/relaycast wires them).
//
// # Produced once per stream
//
// Per bus stream read over RTSP there is one feed: one bus reader driven by one goroutine,
// one RTP packetizer per track, and one gortsplib.ServerStream per listener (RTSP, RTSPS)
// that fans the packets out to every reader of that listener. The RTP packets are built
// once and written to each ServerStream; gortsplib marshals each packet once per stream
// and shares the bytes between its readers.
//
// # Life cycle
//
//   - DESCRIBE or SETUP (Server.Open) resolves the playback id through the egress.Resolver
//     (404 unknown or offline, 403 forbidden) and creates the feed's ServerStream for that
//     listener if it has none. The hold is given back when the session closes; a feed that
//     nobody holds is closed after Config.Linger (which covers the gap between DESCRIBE
//     and SETUP).
//   - The first accepted PLAY (Server.Play) starts the bus reader, at the stream's cached
//     keyframe: the first reader starts decoding at once. The reader stops with the last
//     player. A reader joining a running feed starts at the next keyframe: parameter sets
//     are written in front of every keyframe, so it can always decode from there.
//   - The bus stream ending, or a track changing codec, closes the feed: gortsplib closes
//     its readers' sessions, and players reconnect to a new feed.
//
// # Timing
//
// A feed is one RTP stream per track for its whole life: the packetizers (sequence numbers)
// and the random timestamp base outlive writer runs, because gortsplib answers a PLAY with
// RTP-Info computed from the last packets written, possibly by an earlier run. A new
// ServerStream is primed with one position per track, at one instant, so that the first
// PLAY has RTP-Info too: readers such as ffmpeg align the tracks on it, and without it on
// each track's first packet. A run also starts every track at the first unit's time.
//
// # Hot path
//
// Per unit the writer does no logging and no map lookup; it reuses its access-unit slice.
// gortsplib allocates the packets and their wire bytes.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

// Config configures a Server. Hub and Resolver are required.
type Config struct {
	// Hub is the bus whose streams are served.
	Hub *bus.Hub
	// Resolver maps playback ids to bus stream ids and checks access.
	Resolver egress.Resolver
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger
	// Linger is how long a feed that no session holds stays open (DESCRIBE, then SETUP on
	// a new connection). Default 10 s.
	Linger time.Duration
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Feeds is the number of open feeds (bus streams being served over RTSP).
	Feeds int
	// Players is the number of sessions playing.
	Players int
	// BusReaders counts the bus readers started since New (one per feed run, however many
	// players share it).
	BusReaders uint64
	// EncodeErrors counts units that could not be packetized or written.
	EncodeErrors uint64
}

// Server keeps the shared RTSP feeds of the streams being read.
type Server struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	feeds    map[string]*feed // by bus stream id
	byStream map[*gortsplib.ServerStream]*feed
	closed   bool

	closeOnce sync.Once

	players      atomic.Int64
	busReaders   atomic.Uint64
	encodeErrors atomic.Uint64
}

// New validates cfg and starts the server's janitor (it closes feeds nobody holds).
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Resolver == nil {
		return nil, errors.New("rtsp: Config.Hub and Config.Resolver are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Linger <= 0 {
		cfg.Linger = 10 * time.Second
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		feeds:    make(map[string]*feed),
		byStream: make(map[*gortsplib.ServerStream]*feed),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// refusal is an error with the RTSP status the reader gets.
type refusal struct {
	status base.StatusCode
	err    error
}

func (r *refusal) Error() string               { return r.err.Error() }
func (r *refusal) Unwrap() error               { return r.err }
func (r *refusal) StatusCode() base.StatusCode { return r.status }

// ErrNotServable is returned (as a 415 refusal) for a stream none of whose tracks RTSP
// egress can carry.
var ErrNotServable = errors.New("rtsp: no track of the stream can be served over RTSP")

// Open resolves a reader's DESCRIBE or SETUP and returns the stream's ServerStream on srv.
// release gives the hold back; it is safe to call twice.
func (s *Server) Open(ctx context.Context, srv *gortsplib.Server, id, query, remoteAddr string) (
	*gortsplib.ServerStream, func(), error,
) {
	token := ""
	if v, err := url.ParseQuery(query); err == nil {
		token = v.Get("token")
	}
	streamID, err := s.cfg.Resolver.Resolve(ctx, egress.Request{
		Protocol: "rtsp", ID: id, Token: token, RemoteAddr: remoteAddr,
	})
	if err != nil {
		switch {
		case errors.Is(err, egress.ErrNotFound):
			return nil, nil, &refusal{base.StatusNotFound, err}
		case errors.Is(err, egress.ErrForbidden):
			return nil, nil, &refusal{base.StatusForbidden, err}
		}
		return nil, nil, fmt.Errorf("resolve: %w", err)
	}
	bs := s.cfg.Hub.Stream(streamID)
	if bs == nil {
		return nil, nil, &refusal{base.StatusNotFound, egress.ErrNotFound}
	}
	if st := bs.State(); st != bus.StateLive && st != bus.StateIdle {
		return nil, nil, &refusal{base.StatusNotFound, egress.ErrNotFound}
	}
	tracks := bs.Tracks()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, nil, &refusal{base.StatusServiceUnavailable, errors.New("rtsp egress closed")}
	}
	f := s.feeds[streamID]
	if f != nil && (f.bs != bs || !sameLayout(f.tracks, tracks)) {
		// The stream was replaced or its tracks changed codec: readers of the old feed
		// are disconnected, new ones get the new description.
		s.retireLocked(f)
		f = nil
	}
	if f == nil {
		var skipped []error
		f, skipped = newFeed(s, bs, tracks)
		if f == nil {
			return nil, nil, &refusal{base.StatusUnsupportedMediaType, ErrNotServable}
		}
		for _, e := range skipped {
			s.log.Warn("rtsp: track not served", "stream", streamID, "err", e)
		}
		s.feeds[streamID] = f
	}
	st, err := f.streamFor(srv)
	if err != nil {
		return nil, nil, fmt.Errorf("server stream: %w", err)
	}
	f.leases++
	var once sync.Once
	return st, func() {
		once.Do(func() {
			s.mu.Lock()
			f.leases--
			if f.leases == 0 {
				f.idleSince = time.Now()
			}
			s.mu.Unlock()
		})
	}, nil
}

// Play starts (or joins) the feed's writer for a reader whose PLAY was accepted on st.
// stop is safe to call twice.
func (s *Server) Play(st *gortsplib.ServerStream) (stop func()) {
	s.mu.Lock()
	f := s.byStream[st]
	if f == nil || f.closed || s.closed {
		s.mu.Unlock()
		return func() {}
	}
	f.players++
	if f.players == 1 {
		f.startWriter()
	}
	n := f.players
	s.mu.Unlock()
	s.players.Add(1)
	f.bs.SetViewers("rtsp", n)
	var once sync.Once
	return func() {
		once.Do(func() {
			s.players.Add(-1)
			s.mu.Lock()
			f.players--
			n := f.players
			if n == 0 {
				f.idleSince = time.Now()
				f.stopWriter()
			}
			closed := f.closed
			s.mu.Unlock()
			if !closed {
				f.bs.SetViewers("rtsp", n)
			}
		})
	}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.feeds)
	s.mu.Unlock()
	return Stats{
		Feeds:        n,
		Players:      int(s.players.Load()),
		BusReaders:   s.busReaders.Load(),
		EncodeErrors: s.encodeErrors.Load(),
	}
}

// janitor closes feeds that nobody held for Config.Linger and feeds whose bus stream ended
// while nobody played it.
func (s *Server) janitor() {
	defer s.wg.Done()
	period := s.cfg.Linger / 2
	if period > time.Second {
		period = time.Second
	}
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			for _, f := range s.feeds {
				idle := f.leases == 0 && f.players == 0 && now.Sub(f.idleSince) >= s.cfg.Linger
				if idle || (f.players == 0 && f.bs.State() == bus.StateEnded) {
					s.retireLocked(f)
				}
			}
			s.mu.Unlock()
		}
	}
}

// retireLocked closes a feed: its ServerStreams (gortsplib closes their readers' sessions)
// and its writer. Called with mu held.
func (s *Server) retireLocked(f *feed) {
	if f.closed {
		return
	}
	f.closed = true
	if s.feeds[f.bs.ID()] == f {
		delete(s.feeds, f.bs.ID())
	}
	for _, st := range f.streams {
		delete(s.byStream, st)
		st.Close()
	}
	f.streams = nil
	empty := []*gortsplib.ServerStream{}
	f.list.Store(&empty)
	f.stopWriter()
	f.bs.SetViewers("rtsp", 0)
}

// Close closes every feed (their readers' sessions end) and waits for every goroutine the
// server started. Open after Close is refused. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		for _, f := range s.feeds {
			s.retireLocked(f)
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// sameLayout reports whether two track lists have the same codecs at the same indexes (a
// feed can go on with new parameters of the same codec, not with another codec).
func sameLayout(a, b []*bus.Track) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || (a[i] != nil && a[i].Codec != b[i].Codec) {
			return false
		}
	}
	return true
}
