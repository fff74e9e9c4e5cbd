package vod

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// Config configures a Recorder. Hub and SpoolDir are required; every other field has a
// default.
type Config struct {
	// Hub is the bus the recorded streams are read from.
	Hub *bus.Hub
	// SpoolDir is the local directory chunks are written to (created if missing), laid
	// out as OWNER/StreamName/YYYY-MM-DD_HH-MM-SS/chunk_NNN.mkv.
	SpoolDir string
	// ChunkDuration is the target chunk length. A chunk is cut at the first video
	// keyframe at or after it (audio-only streams: at the first audio frame at or after
	// it). Default 5 min.
	ChunkDuration time.Duration
	// SpoolLimit is the most bytes the spool may hold (every file under SpoolDir, finished
	// or not); 0 means no limit. At the limit, sessions stop recording (ErrSpoolFull)
	// until the uploader frees room; a session may overshoot by the cluster it had
	// buffered (≤ 1 s of media).
	SpoolLimit int64
	// SpoolScanInterval is how often the spool's size is measured again when SpoolLimit is
	// set (files deleted by the uploader are noticed then). Default 5 s.
	SpoolScanInterval time.Duration
	// FlushInterval bounds how long written media may stay in memory when a stream stalls:
	// a buffered cluster is written to the OS after this long (clusters also end every
	// second of media). Default 1 s.
	FlushInterval time.Duration
	// RetryInterval is how long a session waits after a write error before it starts a
	// new chunk. Default 5 s.
	RetryInterval time.Duration
	// OnChunk is called for every finished chunk, from the session's goroutine, in
	// chunk order. It must not block (hand the chunk to a queue).
	OnChunk func(Chunk)
	// OnSessionEnd is called once when a session ended, after its last OnChunk and
	// before its Done channel closes. It must not block.
	OnSessionEnd func(*Session)
	// OnSpoolFull is called when a session stops recording because the spool is full
	// (full true) and when it records again (full false). It must not block.
	OnSpoolFull func(s *Session, full bool)
	// Logger receives the recorder's log lines. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock (session start times, chunk dates, log rate limits). Default:
	// time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.ChunkDuration <= 0 {
		c.ChunkDuration = 5 * time.Minute
	}
	if c.SpoolScanInterval <= 0 {
		c.SpoolScanInterval = 5 * time.Second
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Recorder records bus streams into Matroska chunks on the local spool. See the package
// documentation for the contract.
type Recorder struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	spool  *spool

	mu       sync.Mutex
	sessions map[string]*Session
	started  bool
	closed   bool

	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New checks cfg, creates the spool directory, measures the spool when a limit is set and
// returns a running Recorder. Call Recover before the first Start.
func New(cfg Config) (*Recorder, error) {
	cfg.setDefaults()
	if cfg.Hub == nil || cfg.SpoolDir == "" {
		return nil, errors.New("vod: Config.Hub and Config.SpoolDir are required")
	}
	if cfg.SpoolLimit < 0 {
		return nil, errors.New("vod: Config.SpoolLimit must not be negative")
	}
	dir, err := filepath.Abs(cfg.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("vod: spool dir: %w", err)
	}
	cfg.SpoolDir = dir
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("vod: spool dir: %w", err)
	}
	r := &Recorder{cfg: cfg, log: cfg.Logger, sessions: make(map[string]*Session)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.spool = newSpool(dir, cfg.SpoolLimit)
	if cfg.SpoolLimit > 0 {
		if err := r.spool.scan(); err != nil {
			r.cancel()
			return nil, fmt.Errorf("vod: measure spool: %w", err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.spool.run(r.ctx, cfg.SpoolScanInterval, r.log)
		}()
	}
	return r, nil
}

// Start records bus stream id as a new session described by info. It subscribes at once
// (from the stream's cached keyframe) and returns; the session's goroutine writes the
// chunks. If id is already being recorded, Start returns that session. It fails with
// ErrClosed after Close, ErrInvalidInfo for a negative owner or empty id, and
// bus.ErrNotFound (wrapped) when the stream is not live nor in its grace period. It does
// not block, so it may be called from a bus.Hub.Watch callback.
func (r *Recorder) Start(id string, info SessionInfo) (*Session, error) {
	if id == "" || info.Owner < 0 {
		return nil, ErrInvalidInfo
	}
	if info.Start.IsZero() {
		info.Start = r.cfg.Now()
	}
	info.Start = info.Start.UTC().Truncate(time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if s := r.sessions[id]; s != nil {
		return s, nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	rd, err := r.cfg.Hub.Subscribe(ctx, id, bus.ReaderOptions{Protocol: "vod"})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("vod: record %s: %w", id, err)
	}
	r.started = true
	s := newSession(r, id, info, rd, ctx, cancel)
	r.sessions[id] = s
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		s.run()
		// Forget the session before finishing it, so that a new publish of the stream
		// can start the next session meanwhile.
		r.mu.Lock()
		if r.sessions[id] == s {
			delete(r.sessions, id)
		}
		r.mu.Unlock()
		s.end()
	}()
	return s, nil
}

// Session returns the running session of stream id, or nil.
func (r *Recorder) Session(id string) *Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id]
}

// Sessions returns the running sessions, sorted by stream id.
func (r *Recorder) Sessions() []*Session {
	r.mu.Lock()
	out := make([]*Session, 0, len(r.sessions))
	for _, s := range r.sessions {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// SpoolUsage returns the bytes the spool holds (as last measured plus what the recorder
// wrote since) and the configured limit (0: none). Without a limit the spool is not
// measured and used counts only what the recorder wrote.
func (r *Recorder) SpoolUsage() (used, limit int64) {
	return r.spool.used(), r.cfg.SpoolLimit
}

// Close stops every session (each finishes and renames its current chunk, then reports it
// through OnChunk and OnSessionEnd) and waits for all the recorder's goroutines. Safe to
// call twice.
func (r *Recorder) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.cancel()
	})
	r.wg.Wait()
	return nil
}

// ownerDir returns the spool directory of owner.
func (r *Recorder) ownerDir(owner int64) string {
	return filepath.Join(r.cfg.SpoolDir, strconv.FormatInt(owner, 10))
}
