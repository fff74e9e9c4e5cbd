package bus

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Config configures a Hub. The zero value is usable: every field has a default.
type Config struct {
	// RingSize is how many units each stream keeps, rounded up to a power of two. It also
	// caps the GOP cache. Default 1024.
	RingSize int
	// ReconnectGrace is how long a stream whose publisher left keeps its readers and waits
	// for the publisher to come back. Default 30 s; negative means no grace.
	ReconnectGrace time.Duration
	// DropLogInterval is the least time between two log lines about slow readers of one
	// stream. Default 10 s.
	DropLogInterval time.Duration
	// Logger receives the bus's log lines. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.RingSize <= 0 {
		c.RingSize = 1024
	}
	n := 1
	for n < c.RingSize {
		n <<= 1
	}
	c.RingSize = n
	if c.ReconnectGrace == 0 {
		c.ReconnectGrace = 30 * time.Second
	}
	if c.ReconnectGrace < 0 {
		c.ReconnectGrace = 0
	}
	if c.DropLogInterval <= 0 {
		c.DropLogInterval = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Hub holds every stream of the process.
type Hub struct {
	cfg Config

	mu      sync.Mutex
	streams map[string]*Stream
	closed  bool

	ev events
}

// New returns a running Hub. Close stops it.
func New(cfg Config) *Hub {
	cfg.setDefaults()
	h := &Hub{cfg: cfg, streams: make(map[string]*Stream)}
	h.ev.start()
	return h
}

// Publish makes the caller the publisher of stream id with the given tracks. It returns
// ErrBusy when the stream has a publisher. Publishing a stream that is in its reconnect
// grace resumes it: readers stay attached and timestamps continue.
func (h *Hub) Publish(id string, tracks []*Track) (*Publisher, error) {
	if len(tracks) == 0 {
		return nil, ErrNoTracks
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	s := h.streams[id]
	if s == nil {
		s = newStream(h, id)
		h.streams[id] = s
	}
	h.mu.Unlock()
	return s.publish(tracks)
}

// Subscribe attaches a reader to stream id. Without opts.Wait it returns ErrNotFound when
// the stream has no publisher and is not in its grace period.
func (h *Hub) Subscribe(ctx context.Context, id string, opts ReaderOptions) (*Reader, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	s := h.streams[id]
	if s == nil || s.State() == StateEnded {
		if !opts.Wait {
			h.mu.Unlock()
			return nil, ErrNotFound
		}
		s = newStream(h, id)
		h.streams[id] = s
	}
	h.mu.Unlock()
	return s.subscribe(opts)
}

// Kick ends the current publisher of stream id, as if it had left: its Done channel
// closes, its writes are dropped and the stream enters its reconnect grace, so a publisher
// with valid credentials can come back. It reports whether there was a publisher.
func (h *Hub) Kick(id string) bool {
	s := h.Stream(id)
	if s == nil {
		return false
	}
	s.mu.Lock()
	p := s.publisher
	s.mu.Unlock()
	if p == nil {
		return false
	}
	p.Close()
	return true
}

// End ends stream id now: its publisher is closed (Done) and its readers get ErrEnded
// once they have read what is left. It reports whether the stream existed.
func (h *Hub) End(id string) bool {
	s := h.Stream(id)
	if s == nil {
		return false
	}
	s.end(ErrEnded)
	return true
}

// Stream returns stream id, or nil.
func (h *Hub) Stream(id string) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.streams[id]
}

// Streams returns the streams that have a publisher or are in their grace period, sorted
// by id.
func (h *Hub) Streams() []*Stream {
	h.mu.Lock()
	out := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		if st := s.State(); st == StateLive || st == StateIdle {
			out = append(out, s)
		}
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// Watch registers fn to receive every event from now on, in order, on the hub's event
// goroutine. fn must not block; it may call the hub. The returned function unregisters it.
func (h *Hub) Watch(fn func(Event)) (cancel func()) {
	return h.ev.watch(fn)
}

// Close ends every stream (readers get ErrClosed), delivers the pending events and stops
// the event goroutine. It is safe to call twice.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	streams := make([]*Stream, 0, len(h.streams))
	for _, s := range h.streams {
		streams = append(streams, s)
	}
	h.mu.Unlock()
	for _, s := range streams {
		s.end(ErrClosed)
	}
	h.ev.close()
}

// remove forgets s if it is still the stream registered under its id.
func (h *Hub) remove(s *Stream) {
	h.mu.Lock()
	if h.streams[s.id] == s {
		delete(h.streams, s.id)
	}
	h.mu.Unlock()
}
