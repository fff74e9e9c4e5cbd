package vod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// openChunk starts the next chunk with u (at ts), holding every track of the stream that
// can be recorded now.
func (s *Session) openChunk(u *bus.Unit, ts int64) error {
	tracks := s.rd.Stream().Tracks()
	idx := u.Track.Index
	for idx >= len(tracks) {
		tracks = append(tracks, nil)
	}
	tracks[idx] = u.Track
	c := &openChunk{slots: make([]slot, len(tracks)), mainIdx: idx, startTS: ts,
		hasVideo: u.Track.Codec.IsVideo()}
	var entries []mkvTrackEntry
	var main uint64
	for i, t := range tracks {
		if t == nil {
			continue
		}
		c.slots[i].track = t
		if !recordable(t.Codec) {
			s.warnTrack(t, errUnsupportedCodec)
			continue
		}
		num := uint64(len(entries) + 1)
		e, err := mkvTrack(t, num)
		if err != nil {
			s.warnTrack(t, err)
			continue
		}
		// Another video track is recorded too, but only the main one cuts chunks.
		entries = append(entries, e)
		c.slots[i].num = num
		if i == idx {
			main = num
		}
	}
	if main == 0 {
		return fmt.Errorf("vod: track %d cannot be recorded", idx)
	}
	if !s.seqKnown {
		if err := os.MkdirAll(s.dir, 0o750); err != nil {
			return err
		}
		seq, err := lastSeq(s.dir)
		if err != nil {
			return err
		}
		s.nextSeq, s.seqKnown = seq+1, true
	}
	account := func(n int64) {
		s.r.spool.add(n)
		s.bytes.Add(n)
	}
	for tries := 0; ; tries++ {
		seq := s.nextSeq
		s.nextSeq++
		f, err := createChunk(filepath.Join(s.dir, chunkName(seq)), entries, main, c.hasVideo,
			s.info.StreamName, s.r.cfg.Now(), account)
		if errors.Is(err, os.ErrExist) && tries < 3 {
			continue // a file of an earlier session in the same second
		}
		if err != nil {
			return err
		}
		c.f, c.seq = f, seq
		break
	}
	s.chunk = c
	s.mu.Lock()
	s.current, s.currentSeq = s.rel+"/"+chunkName(c.seq), c.seq
	if s.err != nil && !errors.Is(s.err, ErrSpoolFull) {
		s.err = nil
	}
	s.mu.Unlock()
	return nil
}

// lastSeq returns the highest chunk number in dir (FirstSeq-1: none), so that a session that
// continues a directory (same stream and start second, e.g. after a restart) does not
// overwrite its chunks.
func lastSeq(dir string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := FirstSeq - 1
	for _, e := range ents {
		if seq, _, ok := parseChunkName(e.Name()); ok {
			n = max(n, seq)
		}
	}
	return n, nil
}

// closeChunk finishes the current chunk (at its media's end) and reports it.
func (s *Session) closeChunk(final bool) {
	c := s.chunk
	if c == nil {
		return
	}
	s.chunk = nil
	s.stopFlushTimer()
	s.finishChunk(c, -1, final)
}

// closePrev finishes the previous chunk, which ends where the current one starts.
func (s *Session) closePrev() {
	c := s.prev
	if c == nil {
		return
	}
	s.prev = nil
	s.finishChunk(c, s.prevCut, false)
}

func (s *Session) finishChunk(c *openChunk, end int64, final bool) {
	size, dur, err := c.f.close(end)
	if err != nil {
		s.log.Error("vod: closing a chunk failed; repairing it", "chunk", chunkName(c.seq), "err", err)
		s.setErr(err)
		size, dur, err = repairPath(c.f.path)
		if err != nil {
			s.log.Error("vod: chunk left for recovery", "chunk", chunkName(c.seq)+recSuffix, "err", err)
			s.clearCurrent(c.seq)
			return
		}
	}
	s.report(c.seq, c.f.path, size, dur, final)
}

// fail handles a write error in chunk c: the chunk is repaired up to its last complete
// cluster (or left for Recover), and when it was the current chunk the session starts a
// new one after RetryInterval.
func (s *Session) fail(c *openChunk, err error) {
	s.log.Error("vod: writing the recording failed", "chunk", chunkName(c.seq), "err", err)
	s.setErr(err)
	switch c {
	case s.prev:
		s.prev = nil
	case s.chunk:
		s.chunk = nil
		s.stopFlushTimer()
		s.retryAt = s.r.cfg.Now().Add(s.r.cfg.RetryInterval)
	default:
		return
	}
	c.f.abandon()
	size, dur, rerr := repairPath(c.f.path)
	if rerr != nil {
		s.log.Error("vod: chunk left for recovery", "chunk", chunkName(c.seq)+recSuffix, "err", rerr)
		s.clearCurrent(c.seq)
		return
	}
	s.report(c.seq, c.f.path, size, dur, false)
}

func (s *Session) clearCurrent(seq int) {
	s.mu.Lock()
	if s.currentSeq == seq {
		s.current, s.currentSeq = "", 0
	}
	s.mu.Unlock()
}

func (s *Session) report(seq int, path string, size int64, dur time.Duration, final bool) {
	s.mu.Lock()
	s.chunks++
	if s.currentSeq == seq {
		s.current, s.currentSeq = "", 0
	}
	s.mu.Unlock()
	ch := Chunk{Path: path, Rel: s.rel + "/" + chunkName(seq), Owner: s.info.Owner, Session: s.rel,
		Seq: seq, Duration: dur, Size: size, Final: final}
	s.log.Info("vod: chunk finished", "chunk", ch.Rel, "duration", dur.Round(time.Millisecond),
		"bytes", size, "final", final)
	if f := s.r.cfg.OnChunk; f != nil {
		f(ch)
	}
}

// repairPath repairs path+".rec" and renames it to path.
func repairPath(path string) (int64, time.Duration, error) {
	f, err := os.OpenFile(path+recSuffix, os.O_RDWR, 0)
	if err != nil {
		return 0, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return 0, 0, err
	}
	size, dur, err := repair(f, info.Size())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, 0, err
	}
	if err := commit(path); err != nil {
		return 0, 0, err
	}
	return size, time.Duration(dur) * time.Millisecond, nil
}
