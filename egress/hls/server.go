package hls

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

// Variants accepted in Config.Variant.
const (
	VariantLowLatency = "lowlatency"
	VariantFMP4       = "fmp4"
	VariantMPEGTS     = "mpegts"
)

// ErrVariant is returned by New for an unknown Config.Variant.
var ErrVariant = errors.New("hls: unknown variant (want lowlatency, fmp4 or mpegts)")

// Config configures a Server. Hub and Resolver are required; every other field has a default.
type Config struct {
	// Hub is the bus whose streams are served.
	Hub *bus.Hub
	// Resolver maps playback ids to bus stream ids and checks access.
	Resolver egress.Resolver
	// Variant is "lowlatency" (Low-Latency HLS, fMP4 parts; default), "fmp4" or "mpegts".
	Variant string
	// SegmentCount is how many segments each playlist keeps. Default 7 (Low-Latency HLS
	// needs at least 7, the others 3).
	SegmentCount int
	// SegmentMinDuration is the least segment length; a segment ends at the first keyframe
	// after it, so segments follow the publisher's keyframe interval. Default 1 s.
	SegmentMinDuration time.Duration
	// PartMinDuration is the least Low-Latency HLS part length. Default 200 ms.
	PartMinDuration time.Duration
	// RequestTimeout bounds how long a request waits for content that does not exist yet
	// (the first playlist, a blocking playlist reload, a preload-hinted part). Default 10 s.
	RequestTimeout time.Duration
	// ViewerWindow: a session (remote IP + User-Agent) counts as a viewer for this long after
	// its last request. Default 15 s.
	ViewerWindow time.Duration
	// ViewerReportInterval is how often viewer counts go to the bus. Default 2 s.
	ViewerReportInterval time.Duration
	// Logger receives the server's log lines (the caller adds its component attribute).
	// Default slog.Default().
	Logger *slog.Logger
}

// maxAbandoned caps the handler goroutines left waiting inside muxers by requests that timed
// out, so that stalled streams cannot pile up goroutines: beyond it requests get 503.
const maxAbandoned = 4096

// Server keeps one always-on HLS muxer per live bus stream and serves them over HTTP.
type Server struct {
	cfg     Config
	variant gohlslib.MuxerVariant
	log     *slog.Logger
	seed    maphash.Seed

	ctx     context.Context
	cancel  context.CancelFunc
	unwatch func()
	wg      sync.WaitGroup // stream goroutines and the viewer reporter

	mu      sync.Mutex
	streams map[string]*stream // by bus stream id
	closed  bool

	// Handler goroutines: gohlslib's Handle blocks until content exists and ignores the
	// request's context, so it runs on its own goroutine (see serveMuxer).
	hmu       sync.Mutex
	hclosed   bool
	hwg       sync.WaitGroup
	abandoned atomic.Int64

	closeOnce sync.Once

	muxers       atomic.Int64
	requests     atomic.Uint64
	bytesServed  atomic.Uint64
	timeouts     atomic.Uint64
	restarts     atomic.Uint64
	encodeErrors atomic.Uint64
	viewers      atomic.Int64
}

// Stats is a snapshot of the server's counters, for metrics.
type Stats struct {
	// Muxers is the number of muxers running (one per live stream with muxable tracks).
	Muxers int
	// Viewers is the number of HLS sessions seen within the viewer window, over all streams,
	// as of the last report.
	Viewers int
	// Requests counts HTTP requests; BytesServed the media and playlist bytes written.
	Requests, BytesServed uint64
	// Timeouts counts requests that waited RequestTimeout for content and gave up.
	Timeouts uint64
	// MuxerRestarts counts muxers replaced because codec parameters changed.
	MuxerRestarts uint64
	// EncodeErrors counts errors reported by the muxers.
	EncodeErrors uint64
}

// New validates cfg, watches the hub and starts a muxer for every stream that is live now
// and for every stream that goes live later.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Resolver == nil {
		return nil, errors.New("hls: Config.Hub and Config.Resolver are required")
	}
	var variant gohlslib.MuxerVariant
	switch cfg.Variant {
	case "", VariantLowLatency:
		cfg.Variant = VariantLowLatency
		variant = gohlslib.MuxerVariantLowLatency
	case VariantFMP4:
		variant = gohlslib.MuxerVariantFMP4
	case VariantMPEGTS:
		variant = gohlslib.MuxerVariantMPEGTS
	default:
		return nil, fmt.Errorf("%w: %q", ErrVariant, cfg.Variant)
	}
	if cfg.SegmentCount == 0 {
		cfg.SegmentCount = 7
	}
	minSegments := 3
	if variant == gohlslib.MuxerVariantLowLatency {
		minSegments = 7
	}
	if cfg.SegmentCount < minSegments {
		return nil, fmt.Errorf("hls: SegmentCount %d too small for variant %s", cfg.SegmentCount, cfg.Variant)
	}
	if cfg.SegmentMinDuration <= 0 {
		cfg.SegmentMinDuration = time.Second
	}
	if cfg.PartMinDuration <= 0 {
		cfg.PartMinDuration = 200 * time.Millisecond
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.ViewerWindow <= 0 {
		cfg.ViewerWindow = 15 * time.Second
	}
	if cfg.ViewerReportInterval <= 0 {
		cfg.ViewerReportInterval = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{
		cfg:     cfg,
		variant: variant,
		log:     cfg.Logger,
		seed:    maphash.MakeSeed(),
		streams: make(map[string]*stream),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.unwatch = cfg.Hub.Watch(s.onEvent)
	// Streams that went live before we watched.
	for _, bs := range cfg.Hub.Streams() {
		s.startStream(bs)
	}
	s.wg.Add(1)
	go s.reportViewers()
	return s, nil
}

// onEvent runs on the hub's event goroutine: it must not block.
func (s *Server) onEvent(ev bus.Event) {
	switch ev.Type {
	case bus.EventLive:
		// A resumed stream keeps its muxer (and playlist): startStream finds it.
		s.startStream(ev.Stream)
	case bus.EventTracksChanged:
		if st := s.lookup(ev.Stream.ID()); st != nil && st.bs == ev.Stream {
			st.tracksChanged.Store(true)
		}
	case bus.EventEnded:
		s.mu.Lock()
		if st := s.streams[ev.Stream.ID()]; st != nil && st.bs == ev.Stream {
			delete(s.streams, ev.Stream.ID())
			st.cancel()
		}
		s.mu.Unlock()
	}
	// EventIdle: keep the muxer and its playlist through the reconnect grace; the bus
	// shifts the resumed publisher's timestamps so that they continue.
}

// startStream starts the muxer goroutine of bs unless it runs already.
func (s *Server) startStream(bs *bus.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	id := bs.ID()
	if old := s.streams[id]; old != nil {
		if old.bs == bs {
			return
		}
		// An ended stream of the same id whose goroutine has not noticed yet.
		delete(s.streams, id)
		old.cancel()
	}
	// Paced by video: gohlslib cuts parts and segments on video samples, so taking the
	// audio units with the next video unit gives the same parts, as early, with fewer
	// wake-ups (an always-on muxer's main cost with no viewer). A muxer without a video
	// track turns it off (stream.restart).
	r, err := s.cfg.Hub.Subscribe(s.ctx, id, bus.ReaderOptions{Protocol: "hls", PaceByVideo: true})
	if err != nil {
		return // ended meanwhile
	}
	if r.Stream() != bs {
		// A newer stream of this id; its own EventLive follows.
		r.Close()
		return
	}
	ctx, cancel := context.WithCancel(s.ctx)
	st := &stream{
		srv:    s,
		bs:     bs,
		reader: r,
		ctx:    ctx,
		cancel: cancel,
		log:    s.log.With("stream", id),
		au:     make([][]byte, 0, 16),
	}
	s.streams[id] = st
	s.wg.Add(1)
	go st.run()
}

// forget removes st once its goroutine ends.
func (s *Server) forget(st *stream) {
	st.cancel()
	s.mu.Lock()
	if s.streams[st.bs.ID()] == st {
		delete(s.streams, st.bs.ID())
	}
	s.mu.Unlock()
	st.bs.SetViewers("hls", 0)
}

func (s *Server) lookup(id string) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[id]
}

// reportViewers periodically reports each stream's HLS sessions to the bus.
func (s *Server) reportViewers() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ViewerReportInterval)
	defer t.Stop()
	var list []*stream
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			s.mu.Lock()
			list = list[:0]
			for _, st := range s.streams {
				list = append(list, st)
			}
			s.mu.Unlock()
			total := 0
			cutoff := now.Add(-s.cfg.ViewerWindow).UnixNano()
			for _, st := range list {
				n := st.sessions.count(cutoff)
				total += n
				st.bs.SetViewers("hls", n)
			}
			clear(list)
			s.viewers.Store(int64(total))
		}
	}
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Muxers:        int(s.muxers.Load()),
		Viewers:       int(s.viewers.Load()),
		Requests:      s.requests.Load(),
		BytesServed:   s.bytesServed.Load(),
		Timeouts:      s.timeouts.Load(),
		MuxerRestarts: s.restarts.Load(),
		EncodeErrors:  s.encodeErrors.Load(),
	}
}

// Close stops watching the hub, closes every muxer and waits for every goroutine the server
// started, including handler goroutines still waiting for content (closing a muxer releases
// them) and those still writing a response (bounded by the HTTP server's write timeout:
// shut the HTTP server down first). Requests after Close get 404. Safe to call twice.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.unwatch()
		s.mu.Lock()
		s.closed = true
		for id, st := range s.streams {
			st.cancel()
			delete(s.streams, id)
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
		s.hmu.Lock()
		s.hclosed = true
		s.hmu.Unlock()
		s.hwg.Wait()
	})
	return nil
}
