package bus

import (
	"context"
	"sync"
	"sync/atomic"
)

// StartAt says where a new reader starts.
type StartAt int

const (
	// StartKeyframe starts at the newest cached keyframe, or at the next one (default).
	StartKeyframe StartAt = iota
	// StartLive starts with the next unit written, whatever it is.
	StartLive
)

// MediaFilter selects the tracks a reader receives.
type MediaFilter int

const (
	// MediaAll delivers every track (default).
	MediaAll MediaFilter = iota
	// MediaVideo delivers video tracks only.
	MediaVideo
	// MediaAudio delivers audio tracks only.
	MediaAudio
)

// ReaderOptions configures Hub.Subscribe.
type ReaderOptions struct {
	// Start is where the reader starts.
	Start StartAt
	// Media filters the tracks delivered.
	Media MediaFilter
	// Wait lets Subscribe succeed on a stream that has no publisher yet.
	Wait bool
	// Viewer counts the reader in the stream's viewer count.
	Viewer bool
	// Protocol labels the reader in the stream's stats ("hls", "rtmp", "whep", "relay",
	// "vod", ...). Empty counts as "other".
	Protocol string
	// PaceByVideo wakes a waiting Next for video units only, when the stream has video: the
	// audio (and other) units written since are then returned in the same turn, in order.
	// Every paceLimit-th unit without video wakes it too, and so does any state change
	// (publisher gone, stream ended). It is for consumers whose output advances with the
	// video, such as a muxer that cuts segments and parts on video frames: they do the
	// same work in the same order with fewer wake-ups (a wake-up costs a thread switch or
	// two, more than muxing an audio frame), and their output is ready as early.
	// Reader.SetPaceByVideo changes it later.
	PaceByVideo bool
}

// Reader is one consumer's cursor in a stream's ring. Its methods other than Close are for
// one goroutine.
type Reader struct {
	s       *Stream
	opts    ReaderOptions
	pos     uint64
	needKey bool
	dropped uint64
	wake    chan struct{}
	// paced is ReaderOptions.PaceByVideo, read by the writer.
	paced atomic.Bool

	closeOnce sync.Once
	done      chan struct{}
}

func (r *Reader) protocol() string {
	if r.opts.Protocol == "" {
		return "other"
	}
	return r.opts.Protocol
}

// Stream returns the stream the reader reads.
func (r *Reader) Stream() *Stream { return r.s }

// Dropped returns how many units the reader skipped because it fell behind.
func (r *Reader) Dropped() uint64 { return r.dropped }

// Next returns the next unit, waiting for one. It returns ErrEnded when the stream ended
// and every unit was read, ErrClosed after Close (or when the hub closed), or ctx's error.
func (r *Reader) Next(ctx context.Context) (*Unit, error) {
	for {
		if u := r.poll(); u != nil {
			return u, nil
		}
		// Nothing to read: the stream may have ended.
		if ended, err := r.s.ended(); ended {
			if u := r.poll(); u != nil {
				return u, nil
			}
			return nil, err
		}
		select {
		case <-r.wake:
		case <-r.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// SetPaceByVideo turns ReaderOptions.PaceByVideo on or off, e.g. when a muxer restarts
// without the video track. Safe from any goroutine.
func (r *Reader) SetPaceByVideo(on bool) {
	r.paced.Store(on)
	r.wakeUp() // units written meanwhile may wait for a video unit
}

// wakeUp makes a waiting Next look at the ring again; it never blocks.
func (r *Reader) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// TryNext returns the next unit if one is ready, without waiting.
func (r *Reader) TryNext() *Unit { return r.poll() }

// poll returns the next unit for this reader, or nil when it is at the head of the ring.
func (r *Reader) poll() *Unit {
	s := r.s
	size := uint64(len(s.ring))
	for {
		head := s.seq.Load()
		if r.pos >= head {
			return nil
		}
		if head-r.pos >= size {
			r.skip(head)
			continue
		}
		u := s.ring[r.pos&s.mask].Load()
		// The writer stores a slot before it publishes the sequence number, so the slot we
		// loaded still held unit r.pos unless the writer has reached r.pos+size meanwhile.
		if s.seq.Load()-r.pos >= size {
			r.skip(s.seq.Load())
			continue
		}
		r.pos++
		if u == nil {
			continue
		}
		if r.needKey {
			if !u.Key || (s.hasVideo.Load() && !u.Track.Codec.IsVideo()) {
				continue
			}
			r.needKey = false
		}
		switch r.opts.Media {
		case MediaVideo:
			if !u.Track.Codec.IsVideo() {
				continue
			}
		case MediaAudio:
			if !u.Track.Codec.IsAudio() {
				continue
			}
		}
		return u
	}
}

// skip moves a reader that the ring overtook to the newest keyframe still in the ring, or
// to the head (then waiting for the next keyframe).
func (r *Reader) skip(head uint64) {
	s := r.s
	size := uint64(len(s.ring))
	target := head
	r.needKey = true
	if k := s.keySeq.Load(); k > 0 && head-(k-1) < size-size/8 && k-1 > r.pos {
		target = k - 1
	}
	n := target - r.pos
	r.pos = target
	r.dropped += n
	s.noteDrop(n)
}

// Close detaches the reader. Safe to call twice, from any goroutine.
func (r *Reader) Close() {
	r.closeOnce.Do(func() {
		close(r.done)
		r.s.unsubscribe(r)
	})
}
