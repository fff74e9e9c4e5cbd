package rtmp

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// ringSize is how many messages a feed keeps: the GOP cache for joining viewers plus the
// room slow viewers fall behind in before they skip.
const ringSize = 1024

// feedStreamID is the message stream id in the shared bytes. go-rtmp gives a client's first
// createStream id 1, which is what every player uses; a viewer on another id gets the
// message headers patched.
const feedStreamID = 1

// entry is one media message of a feed, serialized once and shared by every viewer.
type entry struct {
	// data is the chunked message (type-0 header first).
	data []byte
	// tracks is the track set in force: a viewer sends its sequence headers first when it
	// differs from the last one it sent.
	tracks *tracks
	// ts is the message's RTMP timestamp.
	ts uint32
	// off is the feed's byte count before data: the live edge minus off is how far behind
	// a viewer at this entry is.
	off uint64
	// key marks a message a viewer may start with: a video keyframe, or any audio frame of
	// a stream without video.
	key bool
}

// feed is the one bus reader of a stream that has RTMP viewers. Its pump goroutine turns
// units into entries in a ring, like the bus's own: viewers hold positions in it, the pump
// never waits for them.
type feed struct {
	s      *Server
	id     string
	stream *bus.Stream
	ring   []atomic.Pointer[entry]
	mask   uint64
	cancel context.CancelFunc

	// head is the sequence number of the next entry; the ring holds [head-ringSize, head).
	// key is the sequence number of the newest key entry plus one (0: none yet). out is
	// the byte count of all entries so far.
	head atomic.Uint64
	key  atomic.Uint64
	out  atomic.Uint64

	viewers atomic.Pointer[[]*viewer] // copy-on-write, changed under Server.mu
	n       int                       // attached viewers, guarded by Server.mu

	done chan struct{} // closed when the pump ended
	err  error         // why; written before done is closed
}

func newFeed(s *Server, id string, st *bus.Stream, cancel context.CancelFunc) *feed {
	f := &feed{s: s, id: id, stream: st, ring: make([]atomic.Pointer[entry], ringSize),
		mask: ringSize - 1, cancel: cancel, done: make(chan struct{})}
	empty := []*viewer{}
	f.viewers.Store(&empty)
	return f
}

func (f *feed) finished() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// run is the pump: it reads the stream from its cached keyframe until the stream ends or
// the last viewer leaves (ctx).
func (f *feed) run(ctx context.Context, r *bus.Reader) {
	defer r.Close()
	ts := newTracks(pick(f.stream.Tracks()))
	hold := f.s.cfg.MaxAudioDelay
	var (
		lastWake time.Time
		held     bool // entries were added without waking the viewers
	)
	for {
		var (
			u   *bus.Unit
			err error
		)
		if held {
			// Audio waits for the next video frame at most until lastWake+hold.
			wctx, cancel := context.WithDeadline(ctx, lastWake.Add(hold))
			u, err = r.Next(wctx)
			cancel()
			if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				held, lastWake = false, time.Now()
				f.wake()
				continue
			}
		} else {
			u, err = r.Next(ctx)
		}
		if err != nil {
			f.err = err
			break
		}
		// Publish what is ready before waking the viewers: fewer wake-ups, bigger writes.
		video := false
		for n := 0; u != nil && n < 64; n++ {
			ts = f.add(u, ts)
			video = video || u.Track.Codec.IsVideo()
			u = r.TryNext()
		}
		if u != nil {
			ts = f.add(u, ts)
			video = true
		}
		// Audio alone does not wake the viewers at once when a video frame (which comes
		// every 33 ms at 30 fps) can take it along: one write per frame instead of two.
		now := time.Now()
		if video || ts.video == nil || hold <= 0 || now.Sub(lastWake) >= hold {
			held, lastWake = false, now
			f.wake()
		} else {
			held = true
		}
	}
	close(f.done)
	f.wake()
}

// add serializes u into the ring and returns the track set in force.
func (f *feed) add(u *bus.Unit, ts *tracks) *tracks {
	if !carried(u.Track.Codec) {
		return ts
	}
	if !ts.has(u) {
		next := ts.with(u.Track)
		if next == nil || !next.has(u) {
			return ts
		}
		ts = next
	}
	tsMS := millis(u.DTS)
	var h [flvMaxVideoTagHeader]byte
	n, typ, csid := tagHeader(&h, u)
	data := make([]byte, 0, messageSize(n+len(u.Payload), tsMS))
	data = appendMessage(data, csid, typ, feedStreamID, tsMS, h[:n], u.Payload)
	off := f.out.Load()
	e := &entry{data: data, tracks: ts, ts: tsMS, off: off,
		key: u.Key && (u.Track.Codec.IsVideo() || ts.video == nil)}
	seq := f.head.Load()
	f.ring[seq&f.mask].Store(e)
	f.out.Store(off + uint64(len(data)))
	f.head.Store(seq + 1)
	if e.key {
		f.key.Store(seq + 1)
	}
	f.s.serialized.Add(1)
	return ts
}

func (f *feed) wake() {
	for _, v := range *f.viewers.Load() {
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
}

// attach adds v to the viewers woken by the pump (under Server.mu).
func (f *feed) attach(v *viewer) {
	old := *f.viewers.Load()
	next := make([]*viewer, len(old), len(old)+1)
	copy(next, old)
	next = append(next, v)
	f.viewers.Store(&next)
}

// remove drops v from the viewers (under Server.mu).
func (f *feed) remove(v *viewer) {
	old := *f.viewers.Load()
	next := make([]*viewer, 0, len(old))
	for _, o := range old {
		if o != v {
			next = append(next, o)
		}
	}
	f.viewers.Store(&next)
}
