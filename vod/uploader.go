package vod

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/relaycast/relaycast/vod/storage"
)

// StorageSource gives each owner's remote storage. control satisfies it.
type StorageSource interface {
	// VODStorage returns the owner's storage configuration (with its pinned host key, or
	// none yet; Host is empty when the owner has none) and whether recording is on (storage
	// configured and recording enabled).
	VODStorage(ctx context.Context, owner int64) (storage.Config, bool, error)
	// PinVODHostKey records the host key the owner's storage presented on first use
	// (authorized_keys format).
	PinVODHostKey(ctx context.Context, owner int64, key string) error
}

// Uploader defaults.
const (
	DefaultUploadMinBackoff = time.Second
	DefaultUploadMaxBackoff = time.Minute
)

// UploaderConfig configures an Uploader. Storage and SpoolDir are required.
type UploaderConfig struct {
	// Storage gives the owners' SFTP configurations.
	Storage StorageSource
	// SpoolDir is the recorder's spool: emptied session directories below it are removed.
	SpoolDir string
	// MinBackoff and MaxBackoff bound the wait after a failed attempt: it doubles from
	// MinBackoff up to MaxBackoff, drawn in its upper half (jitter). Defaults 1 s and 1 min.
	MinBackoff, MaxBackoff time.Duration
	// OnSessionUploaded is called (from an uploader goroutine; it must not block) when a
	// session that ended has every chunk uploaded.
	OnSessionUploaded func(owner int64, session string)
	// OnFailure is called after an attempt failed (it must not block); err never holds a
	// secret.
	OnFailure func(owner int64, session string, err error)
	// Logger default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Uploader sends finished chunks to their owner's storage: one queue and one goroutine
// per owner (a slow or broken storage holds up nobody else), chunks in the order they
// were added, each retried with capped backoff until it is on the storage, then deleted
// from the spool. Upload is resumable and atomic (vod/storage), and a chunk already on
// the storage with its size is not sent again, so adding the same chunk twice, or again
// after a restart, never uploads it twice.
type Uploader struct {
	cfg UploaderConfig
	log *slog.Logger

	mu       sync.Mutex
	owners   map[int64]*ownerQueue
	sessions map[sessionKey]*uploadSession
	queued   map[string]bool // chunk paths queued or being uploaded

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

type sessionKey struct {
	owner   int64
	session string
}

type ownerQueue struct {
	chunks  []Chunk
	running bool
}

// uploadSession is the progress of one recording session.
type uploadSession struct {
	recorded, uploaded int
	bytes              int64
	ended, done        bool
	lastErr            string
	lastErrAt          time.Time
}

// SessionUpload is the upload progress of one recording session.
type SessionUpload struct {
	Owner int64 `json:"-"`
	// Session is "StreamName/YYYY-MM-DD_HH-MM-SS".
	Session string `json:"session"`
	// Recorded counts the finished chunks handed to the uploader; Uploaded those on the
	// storage; Pending the rest.
	Recorded int `json:"chunks_recorded"`
	Uploaded int `json:"chunks_uploaded"`
	Pending  int `json:"chunks_pending"`
	// BytesUploaded counts the bytes of the uploaded chunks.
	BytesUploaded int64 `json:"bytes_uploaded"`
	// Ended: the recording session is over (no more chunks will come); Done: and every
	// chunk is uploaded.
	Ended bool `json:"ended"`
	Done  bool `json:"done"`
	// Recording: the session is still being recorded; SpoolFull: it records nothing
	// because the local spool reached its limit (the stream itself goes on).
	Recording bool `json:"recording"`
	SpoolFull bool `json:"spool_full"`
	// LastError is the latest failure ("" when none), kept after recovery.
	LastError   string     `json:"last_error"`
	LastErrorAt *time.Time `json:"last_error_at"`
}

// NewUploader returns a running Uploader.
func NewUploader(cfg UploaderConfig) (*Uploader, error) {
	if cfg.Storage == nil || cfg.SpoolDir == "" {
		return nil, errors.New("vod: UploaderConfig.Storage and SpoolDir are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultUploadMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultUploadMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	u := &Uploader{
		cfg: cfg, log: cfg.Logger,
		owners:   make(map[int64]*ownerQueue),
		sessions: make(map[sessionKey]*uploadSession),
		queued:   make(map[string]bool),
	}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	return u, nil
}

// Add queues a finished chunk. A chunk already queued is ignored.
func (u *Uploader) Add(c Chunk) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.queued[c.Path] || u.ctx.Err() != nil {
		return
	}
	u.queued[c.Path] = true
	s := u.session(c.Owner, c.Session)
	s.recorded++
	s.done = false
	q := u.owners[c.Owner]
	if q == nil {
		q = &ownerQueue{}
		u.owners[c.Owner] = q
	}
	q.chunks = append(q.chunks, c)
	if !q.running {
		q.running = true
		u.wg.Add(1)
		go u.run(c.Owner, q)
	}
}

// EndSession tells that session will get no more chunks: once its queued chunks are all
// uploaded, OnSessionUploaded is called (at once if they already are).
func (u *Uploader) EndSession(owner int64, session string) {
	u.mu.Lock()
	s := u.session(owner, session)
	s.ended = true
	done := u.checkDone(owner, session, s)
	u.mu.Unlock()
	if done && u.cfg.OnSessionUploaded != nil {
		u.cfg.OnSessionUploaded(owner, session)
	}
}

// session returns the progress record of a session, made on first use. u.mu is held.
func (u *Uploader) session(owner int64, session string) *uploadSession {
	k := sessionKey{owner, session}
	s := u.sessions[k]
	if s == nil {
		s = &uploadSession{}
		u.sessions[k] = s
	}
	return s
}

// checkDone marks an ended session with nothing pending done, once. u.mu is held.
func (u *Uploader) checkDone(owner int64, session string, s *uploadSession) bool {
	if s.done || !s.ended || s.uploaded < s.recorded {
		return false
	}
	s.done = true
	return true
}

// Sessions returns the progress of owner's sessions (every owner's with owner < 0),
// newest first.
func (u *Uploader) Sessions(owner int64) []SessionUpload {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []SessionUpload
	for k, s := range u.sessions {
		if owner >= 0 && k.owner != owner {
			continue
		}
		su := SessionUpload{Owner: k.owner, Session: k.session, Recorded: s.recorded, Uploaded: s.uploaded,
			Pending: s.recorded - s.uploaded, BytesUploaded: s.bytes, Ended: s.ended, Done: s.done, LastError: s.lastErr}
		if !s.lastErrAt.IsZero() {
			t := s.lastErrAt
			su.LastErrorAt = &t
		}
		out = append(out, su)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Session != out[j].Session {
			return sessionTime(out[i].Session) > sessionTime(out[j].Session)
		}
		return out[i].Owner < out[j].Owner
	})
	return out
}

// sessionTime is a session's start as it sorts: its directory name.
func sessionTime(session string) string { return filepath.Base(session) }

// Close stops uploading (a transfer in flight is abandoned: it resumes after a restart)
// and waits for the goroutines. Safe to call twice.
func (u *Uploader) Close() error {
	u.once.Do(func() {
		u.cancel()
		u.wg.Wait()
	})
	return nil
}

// run uploads owner's queue until it is empty.
func (u *Uploader) run(owner int64, q *ownerQueue) {
	defer u.wg.Done()
	var client *storage.Client
	defer func() {
		if client != nil {
			_ = client.Close()
		}
	}()
	failures := 0
	for {
		u.mu.Lock()
		if len(q.chunks) == 0 || u.ctx.Err() != nil {
			q.running = false
			u.mu.Unlock()
			return
		}
		c := q.chunks[0]
		u.mu.Unlock()

		res, err := u.upload(owner, c, &client)
		if err != nil && u.ctx.Err() != nil {
			u.mu.Lock()
			q.running = false
			u.mu.Unlock()
			return
		}
		if err != nil {
			if client != nil {
				_ = client.Close()
				client = nil
			}
			delay := uploadBackoff(u.cfg.MinBackoff, u.cfg.MaxBackoff, failures)
			failures++
			u.log.Warn("vod upload failed", "owner", owner, "chunk", c.Rel, "err", err, "retry_in", delay.Round(time.Millisecond))
			u.mu.Lock()
			s := u.session(owner, c.Session)
			s.lastErr, s.lastErrAt = err.Error(), u.cfg.Now()
			u.mu.Unlock()
			if u.cfg.OnFailure != nil {
				u.cfg.OnFailure(owner, c.Session, err)
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-u.ctx.Done():
				t.Stop()
			}
			continue
		}
		failures = 0
		u.log.Info("vod chunk uploaded", "owner", owner, "chunk", c.Rel, "bytes", c.Size,
			"sent", res.Sent, "resumed", res.Resumed, "already_there", res.Skipped)
		u.mu.Lock()
		q.chunks = q.chunks[1:]
		delete(u.queued, c.Path)
		s := u.session(owner, c.Session)
		s.uploaded++
		s.bytes += c.Size
		done := u.checkDone(owner, c.Session, s)
		u.mu.Unlock()
		if done {
			// The recorder is done with the directory: tidy the spool.
			u.removeEmptyDirs(filepath.Dir(c.Path))
		}
		if done && u.cfg.OnSessionUploaded != nil {
			u.cfg.OnSessionUploaded(owner, c.Session)
		}
	}
}

// upload sends one chunk (dialing first when *client is nil) and deletes it locally once
// the storage has it whole.
func (u *Uploader) upload(owner int64, c Chunk, client **storage.Client) (storage.Result, error) {
	if _, err := os.Stat(c.Path); errors.Is(err, fs.ErrNotExist) {
		// Gone already (uploaded and deleted by an earlier run): nothing to do.
		return storage.Result{Skipped: true}, nil
	}
	if *client == nil {
		ctx, cancel := context.WithTimeout(u.ctx, 30*time.Second)
		// Recording may have been turned off since: chunks already recorded still go up,
		// as long as the storage is configured.
		cfg, _, err := u.cfg.Storage.VODStorage(ctx, owner)
		if err == nil && cfg.Host == "" {
			err = errors.New("no VOD storage configured: the chunk waits in the spool")
		}
		if err != nil {
			cancel()
			return storage.Result{}, err
		}
		cl, err := storage.Dial(ctx, cfg)
		if err != nil {
			cancel()
			return storage.Result{}, err
		}
		if cfg.HostKey == "" {
			if err := u.cfg.Storage.PinVODHostKey(ctx, owner, cl.HostKey().String()); err != nil {
				u.log.Warn("vod storage: pinning the host key", "owner", owner, "err", err)
			}
		}
		cancel()
		*client = cl
	}
	res, err := (*client).Upload(u.ctx, c.Path, c.Rel)
	if err != nil {
		return res, fmt.Errorf("upload %s: %w", c.Rel, err)
	}
	if err := os.Remove(c.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("delete uploaded chunk: %w", err)
	}
	return res, nil
}

// removeEmptyDirs removes dir and its parents while they are empty, up to the spool.
func (u *Uploader) removeEmptyDirs(dir string) {
	root := filepath.Clean(u.cfg.SpoolDir)
	for dir = filepath.Clean(dir); dir != root && len(dir) > len(root); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil { // not empty (or gone): stop
			return
		}
	}
}

// uploadBackoff is the wait after n consecutive failures: minD·2ⁿ capped at maxD, drawn
// in its upper half.
func uploadBackoff(minD, maxD time.Duration, n int) time.Duration {
	d := maxD
	if n < 30 {
		if e := minD << n; e > 0 && e < maxD {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}
