package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/relaycast/relaycast/control/store"
)

// Stream field limits.
const (
	maxTitle       = 200
	maxDescription = 2000
)

// streamInput is the body of POST /api/streams and PUT /api/streams/{id}; absent fields
// keep their value (or default on creation).
type streamInput struct {
	Title       *string `json:"title"`
	Description *string `json:"description"`
	IsPublic    *bool   `json:"is_public"`
	RTMPEnabled *bool   `json:"rtmp_enabled"`
	// Record: record the stream to the owner's VOD storage while live (default true).
	Record *bool `json:"record"`
}

// apply validates in and writes it onto st.
func (in streamInput) apply(st *store.Stream) error {
	if in.Title != nil {
		t := strings.TrimSpace(*in.Title)
		if n := len([]rune(t)); n == 0 || n > maxTitle {
			return errorf(http.StatusBadRequest, "title must be 1-%d characters", maxTitle)
		}
		st.Title = t
	}
	if in.Description != nil {
		d := strings.TrimSpace(*in.Description)
		if len([]rune(d)) > maxDescription {
			return errorf(http.StatusBadRequest, "description must be at most %d characters", maxDescription)
		}
		st.Description = d
	}
	if in.IsPublic != nil {
		st.IsPublic = *in.IsPublic
	}
	if in.RTMPEnabled != nil {
		st.RTMPEnabled = *in.RTMPEnabled
	}
	if in.Record != nil {
		st.Record = *in.Record
	}
	return nil
}

// createStream creates a stream owned by ownerID and returns it with its publish key (the
// only time the key exists in clear).
func (s *Server) createStream(ctx context.Context, ownerID int64, in streamInput) (store.Stream, string, error) {
	if in.Title == nil {
		return store.Stream{}, "", errorf(http.StatusBadRequest, "title is required")
	}
	st := store.Stream{UserID: ownerID, IsPublic: true, Record: true, CreatedAt: s.now()}
	if err := in.apply(&st); err != nil {
		return store.Stream{}, "", err
	}
	key, hash, prefix := newSecret(kindStreamKey)
	st.KeyHash, st.KeyPrefix, st.PlaybackID = hash, prefix, newPlaybackID()
	st, err := s.store.CreateStream(ctx, st)
	if err != nil {
		return store.Stream{}, "", err
	}
	if err := s.createStreamChannel(ctx, &st); err != nil {
		return store.Stream{}, "", err
	}
	return st, key, nil
}

// streamFor returns stream id if p may see it (write: change it). Only the owner may; an
// admin may also read any stream. Any other stream is reported as not found, so that ids
// do not reveal which streams exist.
func (s *Server) streamFor(ctx context.Context, p *principal, id int64, write bool) (store.Stream, error) {
	st, err := s.store.StreamByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Stream{}, errStreamNotFound
	}
	if err != nil {
		return store.Stream{}, err
	}
	if st.UserID != p.User.ID && (write || !p.User.IsAdmin) {
		return store.Stream{}, errStreamNotFound
	}
	return st, nil
}

// updateStream applies in to stream id.
func (s *Server) updateStream(ctx context.Context, p *principal, id int64, in streamInput) (store.Stream, error) {
	st, err := s.streamFor(ctx, p, id, true)
	if err != nil {
		return store.Stream{}, err
	}
	if err := in.apply(&st); err != nil {
		return store.Stream{}, err
	}
	if err := s.store.UpdateStream(ctx, st); err != nil {
		return store.Stream{}, err
	}
	s.updateStreamChannel(ctx, st)
	// A change of is_public applies to the next playback request, not after the cache TTL.
	s.resolve.forget(st.PlaybackID)
	return st, nil
}

// deleteStream deletes stream id. A live publisher is not cut: it keeps publishing to the
// bus until it stops, but no key or token of the stream works any more and its playback
// id stops resolving.
func (s *Server) deleteStream(ctx context.Context, p *principal, id int64) error {
	st, err := s.streamFor(ctx, p, id, true)
	if err != nil {
		return err
	}
	if err := s.deleteStreamChannel(ctx, st.ID); err != nil {
		return err
	}
	if err := s.store.DeleteStream(ctx, st.ID); err != nil {
		return err
	}
	s.resolve.forget(st.PlaybackID)
	// A deleted stream ends now: its publisher is dropped and its viewers are told; its
	// relays (deleted with it) stop.
	s.hub.End(st.PlaybackID)
	s.reloadRelays(st.PlaybackID)
	return nil
}

// regenerateKey gives stream id a new publish key; the old key and the stream's unused
// RTMP tokens stop working at once, and a publisher connected with them is dropped (the
// key may have leaked). Viewers stay through the reconnect grace, so the owner can come
// back with the new key. The playback id and the playback tokens stay valid: the publish
// key is the publisher's secret, not the viewers'.
func (s *Server) regenerateKey(ctx context.Context, p *principal, id int64) (store.Stream, string, error) {
	st, err := s.streamFor(ctx, p, id, true)
	if err != nil {
		return store.Stream{}, "", err
	}
	key, hash, prefix := newSecret(kindStreamKey)
	if err := s.store.SetStreamKey(ctx, st.ID, hash, prefix); err != nil {
		return store.Stream{}, "", err
	}
	st.KeyHash, st.KeyPrefix = hash, prefix
	if s.hub.Kick(st.PlaybackID) {
		s.log.Info("publisher dropped: the stream key was regenerated", "stream_id", st.ID)
	}
	return st, key, nil
}

// issueRTMPToken creates a single-use plain-RTMP token for stream id.
func (s *Server) issueRTMPToken(ctx context.Context, p *principal, id int64) (string, error) {
	st, err := s.streamFor(ctx, p, id, true)
	if err != nil {
		return "", err
	}
	if !s.settings().RTMPPlainEnabled {
		return "", errorf(http.StatusForbidden, "plain RTMP is disabled on this server (RTMP_PLAIN_ENABLED); publish over RTMPS with the stream key")
	}
	if !st.RTMPEnabled {
		return "", errorf(http.StatusBadRequest, "RTMP is not enabled for this stream: set rtmp_enabled to true first")
	}
	tok, hash, _ := newSecret(kindRTMPToken)
	now := s.now()
	if _, err := s.store.CreateRTMPToken(ctx, store.RTMPToken{StreamID: st.ID, Hash: hash, CreatedAt: now,
		ExpiresAt: now.Add(rtmpTokenTTL)}); err != nil {
		return "", err
	}
	return tok, nil
}

// handleListStreams answers GET /api/streams: the caller's streams.
func (s *Server) handleListStreams(w http.ResponseWriter, r *http.Request, p *principal) error {
	list, err := s.store.ListStreamsByUser(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": s.streamViews(list, true)})
	return nil
}

// handlePublicStreams answers GET /api/streams/public: every public stream.
func (s *Server) handlePublicStreams(w http.ResponseWriter, r *http.Request, p *principal) error {
	list, err := s.store.ListPublicStreams(r.Context(), false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": s.streamViews(list, false)})
	return nil
}

// handleOpenStreams answers GET /api/streams/open: the public streams that are live.
func (s *Server) handleOpenStreams(w http.ResponseWriter, r *http.Request, p *principal) error {
	list, err := s.store.ListPublicStreams(r.Context(), true)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": s.streamViews(list, false)})
	return nil
}

// handlePublicStats answers GET /api/stats/public.
func (s *Server) handlePublicStats(w http.ResponseWriter, r *http.Request, p *principal) error {
	n, err := s.store.CountLivePublicStreams(r.Context())
	if err != nil {
		return err
	}
	// online_users counts the distinct users connected to chat (0 without chat).
	writeJSON(w, http.StatusOK, map[string]int{"live_streams": n, "online_users": s.chatOnlineUsers()})
	return nil
}

// handleCreateStream answers POST /api/streams; the answer carries the stream key once.
func (s *Server) handleCreateStream(w http.ResponseWriter, r *http.Request, p *principal) error {
	var in streamInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	st, key, err := s.createStream(r.Context(), p.User.ID, in)
	if err != nil {
		return err
	}
	s.log.Info("stream created", "user_id", p.User.ID, "stream_id", st.ID, "playback_id", st.PlaybackID)
	s.activity(r.Context(), p.User.ID, "stream_created", fmt.Sprintf("Created stream %q", st.Title))
	writeJSON(w, http.StatusOK, s.streamView(st, viewOwner, key))
	return nil
}

// handleGetStream answers GET /api/streams/{id}.
func (s *Server) handleGetStream(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	st, err := s.streamFor(r.Context(), p, id, false)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.streamView(st, viewOwner, ""))
	return nil
}

// handleUpdateStream answers PUT /api/streams/{id}.
func (s *Server) handleUpdateStream(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in streamInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	st, err := s.updateStream(r.Context(), p, id, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.streamView(st, viewOwner, ""))
	return nil
}

// handleDeleteStream answers DELETE /api/streams/{id}.
func (s *Server) handleDeleteStream(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if err := s.deleteStream(r.Context(), p, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{"message": "stream deleted"})
	return nil
}

// handleRegenerateKey answers POST /api/streams/{id}/regenerate-key with the stream and
// its new key (shown once).
func (s *Server) handleRegenerateKey(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	st, key, err := s.regenerateKey(r.Context(), p, id)
	if err != nil {
		return err
	}
	s.log.Info("stream key regenerated", "user_id", p.User.ID, "stream_id", st.ID)
	writeJSON(w, http.StatusOK, s.streamView(st, viewOwner, key))
	return nil
}

// handleRTMPToken answers POST /api/streams/{id}/rtmp-token (no body needed).
func (s *Server) handleRTMPToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var empty struct{}
	if err := decodeOptionalJSON(w, r, &empty); err != nil {
		return err
	}
	tok, err := s.issueRTMPToken(r.Context(), p, id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"expires_in": int(rtmpTokenTTL.Seconds()),
		"rtmp_url":   s.cfg.RTMPURL,
	})
	return nil
}
