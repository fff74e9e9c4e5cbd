package bus

import (
	"sync"
	"sync/atomic"
	"time"
)

// Publisher is the one writer of a stream.
type Publisher struct {
	s       *Stream
	mu      sync.Mutex
	tracks  []*Track
	resumed bool
	// shift is added to every timestamp of a resumed publisher; shiftSet tells whether it
	// was computed (on the first unit).
	shift    time.Duration
	shiftSet bool
	closed   atomic.Bool
	doneOnce sync.Once
	done     chan struct{}
}

// Done is closed when the publisher is closed: by Close, or by the hub (Hub.Kick,
// Hub.End, Hub.Close). Ingest watches it to drop the connection of a publisher the server
// ended, e.g. because its key was regenerated or its stream deleted.
func (p *Publisher) Done() <-chan struct{} { return p.done }

// stop marks the publisher closed and closes Done; it reports whether this call did it.
func (p *Publisher) stop() bool {
	first := !p.closed.Swap(true)
	p.doneOnce.Do(func() { close(p.done) })
	return first
}

// Stream returns the stream the publisher feeds.
func (p *Publisher) Stream() *Stream { return p.s }

// Tracks returns the tracks the stream uses for this publisher, indexed like the tracks
// given to Publish. A unit's Track must be one of them (or one installed by SetTrack).
func (p *Publisher) Tracks() []*Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*Track(nil), p.tracks...)
}

// Track returns the current track with the given index, or nil.
func (p *Publisher) Track(index int) *Track {
	p.mu.Lock()
	defer p.mu.Unlock()
	if index < 0 || index >= len(p.tracks) {
		return nil
	}
	return p.tracks[index]
}

// SetTrack installs new parameters for the track with t.Index. Later units must point to t.
func (p *Publisher) SetTrack(t *Track) {
	if p.closed.Load() {
		return
	}
	p.mu.Lock()
	if t.Index < 0 || t.Index >= len(p.tracks) {
		p.mu.Unlock()
		return
	}
	p.tracks[t.Index] = t
	p.mu.Unlock()
	s := p.s
	s.mu.Lock()
	if s.publisher != p {
		s.mu.Unlock()
		return
	}
	s.tracks[t.Index] = t
	if t.Codec.IsVideo() {
		s.hasVideo.Store(true)
	}
	s.mu.Unlock()
	s.hub.ev.emit(Event{Type: EventTracksChanged, Stream: s, Time: s.hub.cfg.Now()})
}

// Write hands u to the bus. It never blocks on readers. The bus takes ownership of u: the
// caller must not modify it afterwards (the bus itself may shift its timestamps once, before
// any reader sees it, when the publisher resumed a stream). Write after Close is a no-op.
func (p *Publisher) Write(u *Unit) {
	if p.closed.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	if !p.shiftSet {
		p.shiftSet = true
		if p.resumed {
			s.mu.Lock()
			last, step := s.lastDTS, s.lastStep
			s.mu.Unlock()
			// The resumed timeline continues one frame after the last unit, not after the
			// wall-clock outage: muxers (LL-HLS parts, MKV clusters) then see an ordinary
			// frame step instead of a multi-second sample that would stretch the part target
			// and the playlist's hold-back. Viewers simply resume where they stopped.
			if step <= 0 {
				step = time.Millisecond
			}
			p.shift = last + step - u.DTS
		}
	}
	if p.shift != 0 {
		u.PTS += p.shift
		u.DTS += p.shift
	}
	s.write(u)
	if u.Track.Codec.IsVideo() || !s.hasVideo.Load() {
		s.mu.Lock()
		if d := u.DTS - s.lastDTS; d > 0 && d < time.Second {
			s.lastStep = d
		}
		s.lastDTS = u.DTS
		s.mu.Unlock()
	}
}

// Close ends the publishing; the stream enters its reconnect grace. Safe to call twice.
func (p *Publisher) Close() {
	if !p.stop() {
		return
	}
	p.s.unpublish(p)
}
