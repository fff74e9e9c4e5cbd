package vod

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// spoolFullLogInterval is the least time between two log lines about a full spool.
const spoolFullLogInterval = time.Minute

// SessionStats is a snapshot of a session's counters.
type SessionStats struct {
	// Stream is the bus stream id.
	Stream string
	// Owner and Session ("StreamName/YYYY-MM-DD_HH-MM-SS") locate the session's chunks.
	Owner   int64
	Session string
	// Chunks counts the finished chunks.
	Chunks int
	// Bytes counts what the session wrote to the spool (finished chunks and the current).
	Bytes int64
	// Current is the Rel of the chunk being written ("" when none) and CurrentSeq its number.
	Current    string
	CurrentSeq int
	// Units counts the units written.
	Units uint64
	// Dropped counts the units not recorded, for any reason: waiting for a keyframe,
	// codec not recorded, spool full, write error. DroppedSpoolFull counts those of a
	// full spool.
	Dropped          uint64
	DroppedSpoolFull uint64
	// SpoolFull is set while the session records nothing because the spool is full.
	SpoolFull bool
	// Recorded is the session's timeline position: the timestamp of the newest unit
	// written, from the session's first unit.
	Recorded time.Duration
}

// Session is the recording of one stream, from Start until the stream ends (after its
// reconnect grace), Stop or Recorder.Close.
type Session struct {
	r      *Recorder
	id     string
	info   SessionInfo
	rel    string
	dir    string
	rd     *bus.Reader
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	done   chan struct{}

	// The fields below belong to the session's goroutine.
	base       time.Duration
	baseSet    bool
	chunk      *openChunk
	prev       *openChunk
	prevCut    int64
	nextSeq    int
	seqKnown   bool // nextSeq was read from the directory
	ready      map[*bus.Track]error
	warned     map[int]bool
	flushCtx   context.Context
	flushStop  context.CancelFunc
	flushGen   int
	full       bool
	lastLog    time.Time
	lastKick   time.Time
	retryAt    time.Time
	chunkDurMS int64

	units, dropped, droppedFull atomic.Uint64
	bytes                       atomic.Int64
	recorded                    atomic.Int64

	mu         sync.Mutex
	err        error
	chunks     int
	current    string
	currentSeq int
}

// openChunk is the chunk being written and the bus tracks it holds.
type openChunk struct {
	f        *chunkFile
	seq      int
	slots    []slot // by bus track index
	hasVideo bool
	mainIdx  int
	startTS  int64
	wantCut  bool
}

type slot struct {
	track *bus.Track
	num   uint64
	// last is the track's newest timestamp in the chunk (hasLast: one was written).
	last    int64
	hasLast bool
}

func (c *openChunk) slot(t *bus.Track) *slot {
	if t.Index < 0 || t.Index >= len(c.slots) {
		return nil
	}
	return &c.slots[t.Index]
}

func newSession(r *Recorder, id string, info SessionInfo, rd *bus.Reader, ctx context.Context, cancel context.CancelFunc) *Session {
	rel := info.sessionRel()
	s := &Session{
		r: r, id: id, info: info, rel: rel,
		dir: filepath.Join(r.ownerDir(info.Owner), filepath.FromSlash(rel)),
		rd:  rd, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		ready: make(map[*bus.Track]error), warned: make(map[int]bool),
		chunkDurMS: max(r.cfg.ChunkDuration.Milliseconds(), 1),
	}
	s.log = r.log.With("stream", id, "session", rel, "owner", info.Owner)
	return s
}

// ID returns the bus stream id.
func (s *Session) ID() string { return s.id }

// Info returns the session's info (Start in UTC, to the second).
func (s *Session) Info() SessionInfo { return s.info }

// Rel returns the session directory relative to the owner's directory:
// "StreamName/YYYY-MM-DD_HH-MM-SS".
func (s *Session) Rel() string { return s.rel }

// Dir returns the session directory on the spool.
func (s *Session) Dir() string { return s.dir }

// Done is closed when the session ended: its last chunk is finished and reported, and
// OnSessionEnd returned.
func (s *Session) Done() <-chan struct{} { return s.done }

// Stop ends the session as if the stream had ended: the current chunk is finished. It
// does not wait; use Done.
func (s *Session) Stop() { s.cancel() }

// Err returns the session's error state: ErrSpoolFull while the spool is full, the last
// write error (until a chunk is written again), or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stats returns a snapshot of the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	st := SessionStats{Stream: s.id, Owner: s.info.Owner, Session: s.rel, Chunks: s.chunks,
		Current: s.current, CurrentSeq: s.currentSeq, SpoolFull: errors.Is(s.err, ErrSpoolFull)}
	s.mu.Unlock()
	st.Bytes = s.bytes.Load()
	st.Units = s.units.Load()
	st.Dropped = s.dropped.Load()
	st.DroppedSpoolFull = s.droppedFull.Load()
	st.Recorded = time.Duration(s.recorded.Load()) * time.Millisecond
	return st
}

func (s *Session) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// run reads the stream until it ends, then finishes the last chunk.
func (s *Session) run() {
	defer s.rd.Close()
	s.log.Info("vod: recording started", "dir", s.dir)
	for {
		ctx := s.ctx
		if s.chunk != nil && s.chunk.f.pending() {
			// Bound how long a buffered cluster waits when the stream stalls.
			if s.flushCtx == nil || s.flushGen != s.chunk.f.clusters {
				s.stopFlushTimer()
				s.flushCtx, s.flushStop = context.WithTimeout(s.ctx, s.r.cfg.FlushInterval)
				s.flushGen = s.chunk.f.clusters
			}
			ctx = s.flushCtx
		}
		u, err := s.rd.Next(ctx)
		if err != nil {
			if ctx != s.ctx && s.ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				s.stopFlushTimer()
				s.closePrev()
				if c := s.chunk; c != nil {
					if err := c.f.flush(); err != nil {
						s.fail(c, err)
					}
				}
				continue
			}
			s.log.Info("vod: recording ends", "reason", err)
			break
		}
		s.handle(u)
	}
	s.stopFlushTimer()
}

func (s *Session) stopFlushTimer() {
	if s.flushStop != nil {
		s.flushStop()
		s.flushCtx, s.flushStop = nil, nil
	}
}

// end finishes the session: its last chunks are closed and reported, then OnSessionEnd
// and Done.
func (s *Session) end() {
	s.closePrev()
	s.closeChunk(true)
	s.cancel()
	if f := s.r.cfg.OnSessionEnd; f != nil {
		f(s)
	}
	close(s.done)
}

func (s *Session) drop() { s.dropped.Add(1) }

// handle records one unit.
//
// Timestamps are the units' PTS in ms from the session's first unit (a keyframe), so they
// continue from chunk to chunk. A chunk starts with a keyframe of its main track at
// cutTS; because the bus interleaves by arrival, audio stamped before cutTS can still
// arrive after that keyframe: it goes to the previous chunk, which stays open until the
// audio reaches cutTS. Each track thus splits at cutTS, the previous chunk declares the
// duration up to cutTS, and chunk N+1 starts where chunk N ends.
func (s *Session) handle(u *bus.Unit) {
	t := u.Track
	if !recordable(t.Codec) {
		s.warnTrack(t, errUnsupportedCodec)
		s.drop()
		return
	}
	if !s.baseSet {
		s.base, s.baseSet = u.PTS, true
	}
	ts := (u.PTS - s.base).Round(time.Millisecond).Milliseconds()
	if ts < 0 {
		s.drop() // from before the session's first keyframe
		return
	}
	if s.r.spool.full() {
		s.spoolFull()
		return
	}
	if s.full {
		s.spoolFree()
	}

	if p := s.prev; p != nil {
		main := s.chunk == nil || t.Index == s.chunk.mainIdx
		if !main && ts < s.prevCut {
			if sl := p.slot(t); sl != nil && sl.num != 0 && sl.track.SameParams(t) {
				s.write(p, sl, u, ts)
				return
			}
		}
		if !main || ts > s.prevCut+maxClusterSpan {
			s.closePrev()
		}
	}

	if c := s.chunk; c != nil {
		sl := c.slot(t)
		known := sl != nil && sl.num != 0
		if known && sl.track != t {
			if sl.track.SameParams(t) {
				sl.track = t
			} else {
				known = false
			}
		}
		if !known {
			if err := s.trackReady(t); err != nil {
				s.warnTrack(t, err)
				s.drop()
				return
			}
			// New codec parameters, or a track the chunk lacks: a new chunk, from the
			// next point where one may start.
			c.wantCut = true
		}
		if s.cutPoint(u) && (c.wantCut || ts-c.startTS >= s.chunkDurMS) {
			s.closePrev()
			s.prev, s.prevCut, s.chunk = c, ts, nil
		} else if !known {
			s.drop()
			return
		}
	}
	if s.chunk == nil {
		if !s.retryAt.IsZero() && s.r.cfg.Now().Before(s.retryAt) || !s.canStart(u) {
			s.drop()
			return
		}
		if err := s.openChunk(u, ts); err != nil {
			s.log.Error("vod: starting a chunk failed", "err", err)
			s.setErr(err)
			s.retryAt = s.r.cfg.Now().Add(s.r.cfg.RetryInterval)
			s.closePrev()
			s.drop()
			return
		}
	}
	sl := s.chunk.slot(t)
	if sl == nil || sl.num == 0 {
		s.drop()
		return
	}
	s.write(s.chunk, sl, u, ts)
}

// write writes u as a block of track sl in chunk c.
func (s *Session) write(c *openChunk, sl *slot, u *bus.Unit, ts int64) {
	if u.Track.Codec.IsAudio() && sl.hasLast && ts <= sl.last {
		// When a publisher resumes the stream, the bus continues its timeline from the
		// last video frame; audio that reached a little further overlaps. Decoders want
		// increasing audio timestamps: the overlap (a frame or two) is dropped.
		s.drop()
		return
	}
	sl.last, sl.hasLast = ts, true
	if err := c.f.write(sl.num, u.Key, ts, u.Payload); err != nil {
		s.fail(c, err)
		s.drop()
		return
	}
	s.units.Add(1)
	if ts > s.recorded.Load() {
		s.recorded.Store(ts)
	}
}

// cutPoint reports whether a chunk may start with u: a keyframe of the main video track,
// or for a chunk without video an audio unit. While a cut is pending (new parameters), it
// decides with canStart, which looks at the stream's current tracks.
func (s *Session) cutPoint(u *bus.Unit) bool {
	c := s.chunk
	if c.wantCut {
		return s.canStart(u)
	}
	if c.hasVideo {
		return u.Key && u.Track.Index == c.mainIdx
	}
	return u.Track.Index == c.mainIdx
}

// canStart reports whether a new chunk may start with u: a keyframe of a video track
// that can be recorded, or an audio unit when the stream has no such video track.
func (s *Session) canStart(u *bus.Unit) bool {
	if u.Track.Codec.IsVideo() {
		return u.Key && s.trackReady(u.Track) == nil
	}
	if s.trackReady(u.Track) != nil {
		return false
	}
	for _, t := range s.rd.Stream().Tracks() {
		if t.Codec.IsVideo() && recordable(t.Codec) && t.Index != u.Track.Index {
			return false // wait for the video's keyframe (and its configuration)
		}
	}
	return true
}

// trackReady reports whether t can be written to Matroska (cached per track).
func (s *Session) trackReady(t *bus.Track) error {
	err, ok := s.ready[t]
	if !ok {
		_, err = mkvTrack(t, 1)
		if len(s.ready) > 64 {
			clear(s.ready)
		}
		s.ready[t] = err
	}
	return err
}

func (s *Session) warnTrack(t *bus.Track, err error) {
	if !s.warned[t.Index] {
		s.warned[t.Index] = true
		s.log.Warn("vod: track not recorded", "track", t.Index, "codec", t.Codec, "err", err)
	}
}
