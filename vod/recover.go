package vod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// brokenSuffix is appended to a ".rec" file Recover cannot read as a chunk, so that it is
// neither uploaded nor tried again (an operator may look at it).
const brokenSuffix = ".broken"

// Recover prepares the spool after a start: it repairs every chunk left unfinished by a
// crash ("chunk_NNN.mkv.rec": complete clusters kept, duration, cues and sizes written,
// renamed to "chunk_NNN.mkv"), deletes those that hold no complete cluster, and returns
// every finished chunk in the spool, sorted by owner, session and number, for the
// uploader to queue. Repaired chunks are marked Final. It must run before the first
// Start (ErrRecovering otherwise). Files it cannot read or repair are reported in the
// returned error (joined) and do not stop it.
func (r *Recorder) Recover(ctx context.Context) ([]Chunk, error) {
	r.mu.Lock()
	closed, started := r.closed, r.started
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if started {
		return nil, ErrRecovering
	}
	var out []Chunk
	var errs []error
	err := filepath.WalkDir(r.cfg.SpoolDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(r.cfg.SpoolDir, path)
		if err != nil {
			return nil
		}
		c, rec, ok := parseRel(rel)
		if !ok {
			return nil
		}
		final := strings.TrimSuffix(path, recSuffix)
		c.Path = final
		if rec {
			if _, err := os.Lstat(final); err == nil {
				// The recorder never leaves both (rename is atomic): touch neither.
				errs = append(errs, fmt.Errorf("vod: %s and its finished file both exist", rel))
				return nil
			}
			size, dur, err := repairPath(final)
			switch {
			case errors.Is(err, ErrNoMedia):
				r.log.Warn("vod: deleting an unfinished chunk without media", "chunk", rel)
				if err := os.Remove(path); err != nil {
					errs = append(errs, err)
				}
				return nil
			case errors.Is(err, ErrBadChunk):
				r.log.Error("vod: unfinished chunk cannot be read; set aside", "chunk", rel, "err", err)
				errs = append(errs, fmt.Errorf("vod: repair %s: %w", rel, err))
				if err := os.Rename(path, path+brokenSuffix); err != nil {
					errs = append(errs, err)
				}
				return nil
			case err != nil:
				errs = append(errs, fmt.Errorf("vod: repair %s: %w", rel, err))
				return nil
			}
			c.Size, c.Duration, c.Final = size, dur, true
			r.log.Info("vod: recovered an unfinished chunk", "chunk", rel, "duration", dur, "bytes", size)
			out = append(out, c)
			return nil
		}
		size, dur, err := probeChunk(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("vod: read %s: %w", rel, err))
			return nil
		}
		c.Size, c.Duration = size, dur
		out = append(out, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Owner != b.Owner {
			return a.Owner < b.Owner
		}
		if a.Session != b.Session {
			return a.Session < b.Session
		}
		return a.Seq < b.Seq
	})
	if r.cfg.SpoolLimit > 0 {
		if err := r.spool.scan(); err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// probeChunk returns a finished chunk's size and declared duration (0 when it has none).
func probeChunk(path string) (int64, time.Duration, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	s, err := scanChunk(f, info.Size(), false)
	if err != nil || !s.hasDuration {
		// A chunk without a readable duration is still a chunk to upload.
		return info.Size(), 0, nil
	}
	return info.Size(), durationFromFloat(s.duration), nil
}
