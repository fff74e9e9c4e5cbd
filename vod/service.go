package vod

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// ServiceConfig configures a Service. Hub, SpoolDir and Storage are required.
type ServiceConfig struct {
	// Hub is the bus recorded streams are read from.
	Hub *bus.Hub
	// SpoolDir is the local spool (see Config.SpoolDir).
	SpoolDir string
	// ChunkDuration is the chunk length (default 5 min).
	ChunkDuration time.Duration
	// SpoolLimit bounds the spool in bytes (0: no limit).
	SpoolLimit int64
	// Storage gives the owners' storage and recording settings.
	Storage StorageSource
	// UploadMinBackoff and UploadMaxBackoff bound the uploader's retries (defaults 1 s, 1 min).
	UploadMinBackoff, UploadMaxBackoff time.Duration
	// OnEncodingDone is called when a stream that was recorded has every chunk of its
	// sessions uploaded (Encoding turned false). It must not block.
	OnEncodingDone func(stream string)
	// OnSpoolFull is called when a session stops (full) or resumes recording because of the
	// spool limit. It must not block.
	OnSpoolFull func(owner int64, stream string, full bool)
	// OnUploadFailure is called after a failed upload attempt. It must not block.
	OnUploadFailure func(owner int64, session string, err error)
	// Logger default slog.Default().
	Logger *slog.Logger
}

// Service records live streams whose owner has storage configured and uploads their
// chunks: it ties a Recorder to an Uploader and keeps track of which streams are still
// being recorded or uploaded (the Encoding state).
type Service struct {
	cfg ServiceConfig
	log *slog.Logger
	rec *Recorder
	up  *Uploader

	mu        sync.Mutex
	streams   map[string]int        // stream id → sessions recording or uploading (or starting)
	bySession map[sessionKey]string // session → stream id

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// NewService starts the uploader, recovers the spool left by an earlier run (repairing
// chunks cut by a crash) and queues every finished chunk found there for upload.
func NewService(cfg ServiceConfig) (*Service, error) {
	if cfg.Hub == nil || cfg.SpoolDir == "" || cfg.Storage == nil {
		return nil, errors.New("vod: ServiceConfig.Hub, SpoolDir and Storage are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Logger, streams: make(map[string]int), bySession: make(map[sessionKey]string)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	up, err := NewUploader(UploaderConfig{
		Storage: cfg.Storage, SpoolDir: cfg.SpoolDir, Logger: cfg.Logger,
		MinBackoff: cfg.UploadMinBackoff, MaxBackoff: cfg.UploadMaxBackoff,
		OnSessionUploaded: s.sessionUploaded, OnFailure: cfg.OnUploadFailure,
	})
	if err != nil {
		return nil, err
	}
	s.up = up
	rec, err := New(Config{
		Hub: cfg.Hub, SpoolDir: cfg.SpoolDir, ChunkDuration: cfg.ChunkDuration, SpoolLimit: cfg.SpoolLimit,
		Logger: cfg.Logger, OnChunk: up.Add,
		OnSessionEnd: func(ss *Session) { up.EndSession(ss.Info().Owner, ss.Rel()) },
		OnSpoolFull: func(ss *Session, full bool) {
			if cfg.OnSpoolFull != nil {
				cfg.OnSpoolFull(ss.Info().Owner, ss.ID(), full)
			}
		},
	})
	if err != nil {
		_ = up.Close()
		return nil, err
	}
	s.rec = rec
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	chunks, err := rec.Recover(ctx)
	cancel()
	if err != nil {
		_ = rec.Close()
		_ = up.Close()
		return nil, err
	}
	ended := make(map[sessionKey]bool)
	for _, c := range chunks {
		up.Add(c)
		ended[sessionKey{c.Owner, c.Session}] = true
	}
	for k := range ended {
		up.EndSession(k.owner, k.session)
	}
	if len(chunks) > 0 {
		s.log.Info("vod: chunks left in the spool queued for upload", "chunks", len(chunks))
	}
	return s, nil
}

// StreamLive starts recording stream (a bus stream id) for owner when record is set and
// the owner has storage configured with recording on. It does not wait: the storage
// lookup runs on a goroutine of the Service.
func (s *Service) StreamLive(stream string, owner int64, name string, record bool, start time.Time) {
	if !record {
		return
	}
	s.mu.Lock()
	if s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.streams[stream]++ // starting: counts as encoding until we know
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		_, ok, err := s.cfg.Storage.VODStorage(ctx, owner)
		cancel()
		if err != nil || !ok {
			if err != nil {
				s.log.Error("vod: storage lookup", "owner", owner, "stream", stream, "err", err)
			}
			s.release(stream)
			return
		}
		s.mu.Lock()
		var sess *Session
		if err = s.ctx.Err(); err == nil {
			sess, err = s.rec.Start(stream, SessionInfo{StreamName: name, Owner: owner, Start: start})
		}
		if err == nil {
			k := sessionKey{owner, sess.Rel()}
			if _, running := s.bySession[k]; !running {
				s.bySession[k] = stream
				s.mu.Unlock()
				s.log.Info("vod: recording", "stream", stream, "owner", owner, "session", sess.Rel())
				return
			}
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("vod: not recording", "stream", stream, "err", err)
		}
		s.release(stream) // not recording, or already counted as the running session
	}()
}

// release drops one count of stream and reports the end of its encoding when it was the
// last.
func (s *Service) release(stream string) {
	s.mu.Lock()
	s.streams[stream]--
	last := s.streams[stream] <= 0
	if last {
		delete(s.streams, stream)
	}
	s.mu.Unlock()
	if last && s.cfg.OnEncodingDone != nil {
		s.cfg.OnEncodingDone(stream)
	}
}

// sessionUploaded is the uploader's callback: a session is fully uploaded.
func (s *Service) sessionUploaded(owner int64, session string) {
	s.mu.Lock()
	k := sessionKey{owner, session}
	stream, ok := s.bySession[k]
	delete(s.bySession, k)
	s.mu.Unlock()
	if ok {
		s.release(stream)
	}
}

// Encoding reports whether stream is being recorded or has chunks waiting for upload:
// the is_live=2 state once it is offline.
func (s *Service) Encoding(stream string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams[stream] > 0
}

// Uploads returns the upload progress of owner's sessions (every owner's for owner < 0).
func (s *Service) Uploads(owner int64) []SessionUpload {
	ups := s.up.Sessions(owner)
	for _, sess := range s.rec.Sessions() {
		info := sess.Info()
		if owner >= 0 && info.Owner != owner {
			continue
		}
		st := sess.Stats()
		i := 0
		for i < len(ups) && (ups[i].Owner != info.Owner || ups[i].Session != sess.Rel()) {
			i++
		}
		if i == len(ups) {
			ups = append([]SessionUpload{{Owner: info.Owner, Session: sess.Rel()}}, ups...)
			i = 0
		}
		ups[i].Recording, ups[i].SpoolFull = true, st.SpoolFull
		if err := sess.Err(); err != nil && ups[i].LastError == "" {
			ups[i].LastError = err.Error()
		}
	}
	return ups
}

// Recorder returns the Service's recorder (for stats).
func (s *Service) Recorder() *Recorder { return s.rec }

// Close finishes the chunks being written, stops uploading (what is left stays in the
// spool for the next start) and waits for every goroutine. Safe to call twice.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.cancel()
		s.mu.Unlock()
		s.wg.Wait()
		_ = s.rec.Close()
		_ = s.up.Close()
	})
	return nil
}
