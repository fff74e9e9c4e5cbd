package vod

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"
)

// spool accounts for the bytes under the spool directory: the size measured by the last
// walk plus what the recorder wrote since. The uploader deletes files the recorder does
// not hear about; the periodic walk (and one requested when a session finds the spool
// full) notices them.
type spool struct {
	dir   string
	limit int64
	// written counts every byte the recorder wrote; base is the last walk's total minus
	// written at the walk's start, so used = base + written.
	written atomic.Int64
	base    atomic.Int64
	kick    chan struct{}
}

func newSpool(dir string, limit int64) *spool {
	return &spool{dir: dir, limit: limit, kick: make(chan struct{}, 1)}
}

func (s *spool) add(n int64) { s.written.Add(n) }

func (s *spool) used() int64 { return s.base.Load() + s.written.Load() }

// full reports whether the spool reached its limit.
func (s *spool) full() bool { return s.limit > 0 && s.used() >= s.limit }

// rescan asks the scanner goroutine for an early walk.
func (s *spool) rescan() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// scan walks the spool and resets the accounting to what it holds. Bytes written during
// the walk may be counted twice: the estimate errs on the full side until the next walk.
func (s *spool) scan() error {
	w0 := s.written.Load()
	var total int64
	err := filepath.WalkDir(s.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file deleted during the walk
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.base.Store(total - w0)
	return nil
}

// run walks the spool every interval, or at most once a second when asked, until ctx ends.
func (s *spool) run(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			if wait := time.Second - time.Since(last); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		last = time.Now()
		if err := s.scan(); err != nil {
			log.Warn("vod: measuring the spool failed", "err", err)
		}
	}
}

// spoolFull drops u because the spool is full: the first time, the current chunk is
// finished (so it can be uploaded) and the state is reported.
func (s *Session) spoolFull() {
	s.drop()
	s.droppedFull.Add(1)
	now := s.r.cfg.Now()
	if now.Sub(s.lastKick) >= time.Second {
		s.lastKick = now
		s.r.spool.rescan()
	}
	if !s.full {
		s.full = true
		s.closePrev()
		s.closeChunk(false)
		s.setErr(ErrSpoolFull)
		if f := s.r.cfg.OnSpoolFull; f != nil {
			f(s, true)
		}
	}
	if now.Sub(s.lastLog) >= spoolFullLogInterval {
		s.lastLog = now
		used, limit := s.r.SpoolUsage()
		s.log.Error("vod: spool full, recording paused until the uploader frees room (the stream goes on)",
			"spool_bytes", used, "limit_bytes", limit, "dropped_units", s.droppedFull.Load())
	}
}

// spoolFree leaves the spool-full state; the next cut point starts a new chunk.
func (s *Session) spoolFree() {
	s.full = false
	s.mu.Lock()
	if errors.Is(s.err, ErrSpoolFull) {
		s.err = nil
	}
	s.mu.Unlock()
	s.lastLog = time.Time{}
	s.log.Info("vod: spool has room again, recording resumes at the next keyframe",
		"dropped_units", s.droppedFull.Load())
	if f := s.r.cfg.OnSpoolFull; f != nil {
		f(s, false)
	}
}
