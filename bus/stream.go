package bus

import (
	"sync"
	"sync/atomic"
	"time"
)

// State is a stream's life-cycle state.
type State int

// Stream states. The zero value is StateUnknown.
const (
	StateUnknown State = iota
	// StateWaiting: readers wait for a first publisher.
	StateWaiting
	// StateLive: a publisher is connected.
	StateLive
	// StateIdle: the publisher left; the stream waits for it during the grace period.
	StateIdle
	// StateEnded: the stream is over.
	StateEnded
)

var stateNames = [...]string{"unknown", "waiting", "live", "idle", "ended"}

// String returns the state's name.
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "unknown"
	}
	return stateNames[s]
}

// Stream is one stream of the hub: a ring of units, its tracks and its readers.
type Stream struct {
	hub  *Hub
	id   string
	ring []atomic.Pointer[Unit]
	mask uint64

	// seq is the sequence number of the next unit to be written; the ring holds the units
	// [seq-len(ring), seq). keySeq is the sequence number of the newest keyframe plus one
	// (0: none yet).
	seq    atomic.Uint64
	keySeq atomic.Uint64

	// readers is a copy-on-write list of the attached readers, woken after every write.
	readers atomic.Pointer[[]*Reader]

	mu        sync.Mutex // guards the fields below
	state     State
	endErr    error
	tracks    []*Track
	publisher *Publisher
	grace     *time.Timer
	started   time.Time
	// lastDTS is the last written (video) unit's DTS and lastStep the step before it, used
	// to shift the timestamps of a resumed publisher so that they continue.
	lastDTS  time.Duration
	lastStep time.Duration
	external map[string]int

	hasVideo     atomic.Bool
	sincePaced   atomic.Uint32 // units written since readers that pace by video were woken
	unitsIn      atomic.Uint64
	bytesIn      atomic.Uint64
	dropped      atomic.Uint64
	viewers      atomic.Int64
	lastDropLog  atomic.Int64
	publishCount atomic.Uint64
}

func newStream(h *Hub, id string) *Stream {
	s := &Stream{
		hub:   h,
		id:    id,
		ring:  make([]atomic.Pointer[Unit], h.cfg.RingSize),
		mask:  uint64(h.cfg.RingSize - 1),
		state: StateWaiting,
	}
	empty := []*Reader{}
	s.readers.Store(&empty)
	return s
}

// ID returns the stream's id.
func (s *Stream) ID() string { return s.id }

// State returns the stream's state.
func (s *Stream) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Tracks returns the stream's current tracks.
func (s *Stream) Tracks() []*Track {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Track(nil), s.tracks...)
}

// Stats is a snapshot of a stream's counters.
type Stats struct {
	State State
	// Since is when the first publisher of this stream started.
	Since time.Time
	// UnitsIn and BytesIn count what publishers wrote.
	UnitsIn, BytesIn uint64
	// Readers is the number of attached readers (of every kind).
	Readers int
	// ReadersByProtocol counts the attached readers by ReaderOptions.Protocol.
	ReadersByProtocol map[string]int
	// Viewers counts readers that serve a viewer plus viewers reported by egress that has
	// no reader per viewer (HLS).
	Viewers int
	// Dropped counts the units that slow readers skipped.
	Dropped uint64
	// Publishes counts Publish calls that succeeded (1 + reconnects).
	Publishes uint64
}

// Stats returns a snapshot of the stream's counters.
func (s *Stream) Stats() Stats {
	s.mu.Lock()
	st := Stats{State: s.state, Since: s.started, ReadersByProtocol: make(map[string]int)}
	ext := 0
	for _, n := range s.external {
		ext += n
	}
	for _, r := range *s.readers.Load() {
		st.ReadersByProtocol[r.protocol()]++
	}
	s.mu.Unlock()
	st.UnitsIn = s.unitsIn.Load()
	st.BytesIn = s.bytesIn.Load()
	st.Readers = len(*s.readers.Load())
	st.Viewers = int(s.viewers.Load()) + ext
	st.Dropped = s.dropped.Load()
	st.Publishes = s.publishCount.Load()
	return st
}

// SetViewers records n viewers served by protocol without a reader each (HLS sessions).
func (s *Stream) SetViewers(protocol string, n int) {
	s.mu.Lock()
	if s.external == nil {
		s.external = make(map[string]int)
	}
	s.external[protocol] = n
	s.mu.Unlock()
}

func (s *Stream) publish(tracks []*Track) (*Publisher, error) {
	now := s.hub.cfg.Now()
	s.mu.Lock()
	switch s.state {
	case StateLive:
		s.mu.Unlock()
		return nil, ErrBusy
	case StateEnded:
		s.mu.Unlock()
		// The stream ended between the hub's lookup and now: start a fresh one.
		s.hub.remove(s)
		return s.hub.Publish(s.id, tracks)
	}
	resumed := s.state == StateIdle
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	changed := !resumed || len(tracks) != len(s.tracks)
	next := make([]*Track, len(tracks))
	for i, t := range tracks {
		t.Index = i
		next[i] = t
		// Keep the previous *Track when the parameters did not change, so that readers
		// (muxers) continue instead of starting over.
		if resumed && i < len(s.tracks) && s.tracks[i].SameParams(t) {
			next[i] = s.tracks[i]
		} else {
			changed = true
		}
	}
	s.tracks = next
	hasVideo := false
	for _, t := range next {
		hasVideo = hasVideo || t.Codec.IsVideo()
	}
	s.hasVideo.Store(hasVideo)
	p := &Publisher{s: s, tracks: append([]*Track(nil), next...), resumed: resumed, done: make(chan struct{})}
	s.publisher = p
	s.state = StateLive
	if s.started.IsZero() {
		s.started = now
	}
	s.mu.Unlock()
	s.publishCount.Add(1)
	s.hub.ev.emit(Event{Type: EventLive, Stream: s, Resumed: resumed, Time: now})
	if resumed && changed {
		s.hub.ev.emit(Event{Type: EventTracksChanged, Stream: s, Time: now})
	}
	s.wakeAll()
	return p, nil
}

// unpublish is called by Publisher.Close: it starts the grace period.
func (s *Stream) unpublish(p *Publisher) {
	now := s.hub.cfg.Now()
	s.mu.Lock()
	if s.publisher != p || s.state != StateLive {
		s.mu.Unlock()
		return
	}
	s.publisher = nil
	grace := s.hub.cfg.ReconnectGrace
	if grace == 0 {
		s.mu.Unlock()
		s.hub.ev.emit(Event{Type: EventIdle, Stream: s, Time: now})
		s.end(ErrEnded)
		return
	}
	s.state = StateIdle
	s.grace = time.AfterFunc(grace, func() { s.graceExpired() })
	s.mu.Unlock()
	s.hub.ev.emit(Event{Type: EventIdle, Stream: s, Time: now})
	s.wakeAll()
}

func (s *Stream) graceExpired() {
	s.mu.Lock()
	idle := s.state == StateIdle
	s.mu.Unlock()
	if idle {
		s.end(ErrEnded)
	}
}

// end moves the stream to StateEnded; readers drain what is left, then get err.
func (s *Stream) end(err error) {
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return
	}
	if s.grace != nil {
		s.grace.Stop()
		s.grace = nil
	}
	if s.publisher != nil {
		s.publisher.stop()
		s.publisher = nil
	}
	s.state = StateEnded
	s.endErr = err
	s.mu.Unlock()
	s.hub.remove(s)
	s.hub.ev.emit(Event{Type: EventEnded, Stream: s, Time: s.hub.cfg.Now()})
	s.wakeAll()
}

func (s *Stream) ended() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == StateEnded, s.endErr
}

// write appends u to the ring and wakes the readers. Only the stream's publisher calls it,
// from one goroutine at a time (Publisher.mu).
func (s *Stream) write(u *Unit) {
	seq := s.seq.Load()
	s.ring[seq&s.mask].Store(u)
	s.seq.Store(seq + 1)
	if u.Key && (u.Track.Codec.IsVideo() || !s.hasVideo.Load()) {
		s.keySeq.Store(seq + 1)
	}
	s.unitsIn.Add(1)
	s.bytesIn.Add(uint64(len(u.Payload)))
	// Readers that pace by video are woken by video units, or by every paceLimit-th unit
	// since the last one (audio-only stretches, streams without video).
	paced := u.Track.Codec.IsVideo() || !s.hasVideo.Load()
	if paced || s.sincePaced.Add(1) >= paceLimit {
		s.sincePaced.Store(0)
		paced = true
	}
	for _, r := range *s.readers.Load() {
		if paced || !r.paced.Load() {
			r.wakeUp()
		}
	}
}

// paceLimit is how many units without video may pass before readers that pace by video are
// woken anyway.
const paceLimit = 16

func (s *Stream) wakeAll() {
	for _, r := range *s.readers.Load() {
		r.wakeUp()
	}
}

func (s *Stream) subscribe(opts ReaderOptions) (*Reader, error) {
	r := &Reader{s: s, opts: opts, wake: make(chan struct{}, 1), done: make(chan struct{})}
	r.paced.Store(opts.PaceByVideo)
	s.mu.Lock()
	if s.state == StateEnded {
		s.mu.Unlock()
		return nil, ErrNotFound
	}
	head := s.seq.Load()
	r.pos = head
	switch opts.Start {
	case StartLive:
	default:
		if k := s.keySeq.Load(); k > 0 && head-(k-1) < uint64(len(s.ring)) {
			r.pos = k - 1
		} else {
			r.needKey = true
		}
	}
	old := *s.readers.Load()
	next := make([]*Reader, len(old), len(old)+1)
	copy(next, old)
	next = append(next, r)
	s.readers.Store(&next)
	s.mu.Unlock()
	if opts.Viewer {
		s.viewers.Add(1)
	}
	return r, nil
}

func (s *Stream) unsubscribe(r *Reader) {
	s.mu.Lock()
	old := *s.readers.Load()
	next := make([]*Reader, 0, len(old))
	for _, o := range old {
		if o != r {
			next = append(next, o)
		}
	}
	s.readers.Store(&next)
	empty := len(next) == 0 && s.state == StateWaiting
	s.mu.Unlock()
	if r.opts.Viewer {
		s.viewers.Add(-1)
	}
	if empty {
		// A placeholder created for waiting readers goes away with its last reader.
		s.hub.remove(s)
	}
}

func (s *Stream) noteDrop(n uint64) {
	s.dropped.Add(n)
	now := s.hub.cfg.Now().UnixNano()
	last := s.lastDropLog.Load()
	if now-last >= int64(s.hub.cfg.DropLogInterval) && s.lastDropLog.CompareAndSwap(last, now) {
		s.hub.cfg.Logger.Warn("slow reader skipped to the newest keyframe",
			"stream", s.id, "skipped_units", n, "dropped_total", s.dropped.Load())
	}
}
