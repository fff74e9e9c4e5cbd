package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Live states of a stream (the is_live column).
const (
	Offline  = 0
	Live     = 1
	Encoding = 2 // VOD finalisation in progress (set by the VOD feature)
)

// Stream is a user's stream.
type Stream struct {
	ID          int64
	UserID      int64
	Title       string
	Description string
	IsPublic    bool
	RTMPEnabled bool
	// KeyHash is the SHA-256 of the secret publish key (live_...); KeyPrefix its first
	// characters, for display.
	KeyHash   []byte
	KeyPrefix string
	// PlaybackID is the public, stable id (pub_...) used in playback URLs and as the bus
	// stream id.
	PlaybackID string
	// IsLive is Offline, Live or Encoding.
	IsLive     int
	LastLiveAt time.Time
	CreatedAt  time.Time
	// PlaybackEpoch is the generation of the stream's signed playback tokens: a token
	// carries the epoch it was issued in and is void once BumpPlaybackEpoch moved on.
	PlaybackEpoch int64
	// Record: the stream is recorded to its owner's VOD storage while live (when the owner
	// has storage with recording enabled). The column defaults to true; CreateStream
	// stores the field as given.
	Record bool
	// ChatChannelID is the stream's chat channel (0: none), read from chat_channels.
	ChatChannelID int64
}

const streamCols = `id, user_id, title, description, is_public, rtmp_enabled, key_hash, key_prefix,
	playback_id, is_live, last_live_at, created_at, playback_epoch, record,
	(SELECT c.id FROM chat_channels c WHERE c.stream_id = streams.id)`

func scanStream(row interface{ Scan(...any) error }) (Stream, error) {
	var st Stream
	var lastLive, created, chatChannel sql.NullInt64
	err := row.Scan(&st.ID, &st.UserID, &st.Title, &st.Description, &st.IsPublic, &st.RTMPEnabled,
		&st.KeyHash, &st.KeyPrefix, &st.PlaybackID, &st.IsLive, &lastLive, &created, &st.PlaybackEpoch, &st.Record,
		&chatChannel)
	st.LastLiveAt, st.CreatedAt, st.ChatChannelID = fromMS(lastLive), fromMS(created), chatChannel.Int64
	return st, err
}

func (s *Store) queryStreams(ctx context.Context, query string, args ...any) ([]Stream, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Stream{}
	for rows.Next() {
		st, err := scanStream(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// CreateStream inserts st and returns it with its id.
func (s *Store) CreateStream(ctx context.Context, st Stream) (Stream, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO streams (user_id, title, description, is_public, rtmp_enabled, key_hash, key_prefix,
		 playback_id, is_live, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)`,
		st.UserID, st.Title, st.Description, b2i(st.IsPublic), b2i(st.RTMPEnabled), st.KeyHash, st.KeyPrefix,
		st.PlaybackID, ms(st.CreatedAt), b2i(st.Record))
	if err != nil {
		if isUnique(err) {
			return Stream{}, ErrConflict
		}
		return Stream{}, fmt.Errorf("store: create stream: %w", err)
	}
	st.ID, err = res.LastInsertId()
	return st, err
}

// StreamByID returns stream id, or ErrNotFound.
func (s *Store) StreamByID(ctx context.Context, id int64) (Stream, error) {
	st, err := scanStream(s.db.QueryRowContext(ctx, "SELECT "+streamCols+" FROM streams WHERE id = ?", id))
	return st, notFound(err)
}

// StreamByKeyHash returns the stream whose publish key hashes to hash, or ErrNotFound.
func (s *Store) StreamByKeyHash(ctx context.Context, hash []byte) (Stream, error) {
	st, err := scanStream(s.db.QueryRowContext(ctx, "SELECT "+streamCols+" FROM streams WHERE key_hash = ?", hash))
	return st, notFound(err)
}

// StreamByPlaybackID returns the stream with that playback id, or ErrNotFound.
func (s *Store) StreamByPlaybackID(ctx context.Context, playbackID string) (Stream, error) {
	st, err := scanStream(s.db.QueryRowContext(ctx, "SELECT "+streamCols+" FROM streams WHERE playback_id = ?", playbackID))
	return st, notFound(err)
}

// ListStreamsByUser returns the streams of userID by id.
func (s *Store) ListStreamsByUser(ctx context.Context, userID int64) ([]Stream, error) {
	return s.queryStreams(ctx, "SELECT "+streamCols+" FROM streams WHERE user_id = ? ORDER BY id", userID)
}

// ListPublicStreams returns the public streams, live first, then newest; with liveOnly
// only those that are live.
func (s *Store) ListPublicStreams(ctx context.Context, liveOnly bool) ([]Stream, error) {
	q := "SELECT " + streamCols + " FROM streams WHERE is_public = 1"
	if liveOnly {
		q += " AND is_live = 1"
	}
	return s.queryStreams(ctx, q+" ORDER BY is_live = 1 DESC, id DESC")
}

// CountLivePublicStreams returns how many public streams are live.
func (s *Store) CountLivePublicStreams(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM streams WHERE is_public = 1 AND is_live = 1").Scan(&n)
	return n, err
}

// UpdateStream saves the editable fields of st (title, description, is_public,
// rtmp_enabled, record); ErrNotFound if st.ID does not exist.
func (s *Store) UpdateStream(ctx context.Context, st Stream) error {
	return affected(s.db.ExecContext(ctx,
		"UPDATE streams SET title = ?, description = ?, is_public = ?, rtmp_enabled = ?, record = ? WHERE id = ?",
		st.Title, st.Description, b2i(st.IsPublic), b2i(st.RTMPEnabled), b2i(st.Record), st.ID))
}

// SetStreamKey replaces the publish key hash of stream id (the old key stops working) and
// deletes the stream's outstanding RTMP tokens.
func (s *Store) SetStreamKey(ctx context.Context, id int64, hash []byte, prefix string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := affected(tx.ExecContext(ctx, "UPDATE streams SET key_hash = ?, key_prefix = ? WHERE id = ?", hash, prefix, id)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM rtmp_tokens WHERE stream_id = ? AND used_at IS NULL", id); err != nil {
		return err
	}
	return tx.Commit()
}

// BumpPlaybackEpoch increments the playback epoch of stream id (voiding its signed
// playback tokens) and returns the new epoch; ErrNotFound if id does not exist.
func (s *Store) BumpPlaybackEpoch(ctx context.Context, id int64) (int64, error) {
	var epoch int64
	err := s.db.QueryRowContext(ctx,
		"UPDATE streams SET playback_epoch = playback_epoch + 1 WHERE id = ? RETURNING playback_epoch", id).Scan(&epoch)
	return epoch, notFound(err)
}

// DeleteStream deletes stream id (its RTMP tokens go with it).
func (s *Store) DeleteStream(ctx context.Context, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM streams WHERE id = ?", id))
}

// SetLive moves the stream with that playback id to Live (recording last_live_at = t) or,
// with live false, from Live to Offline (an Encoding stream stays Encoding: the VOD
// feature owns that state). It returns the stream and whether the state changed;
// ErrNotFound when no stream changed and none has that playback id.
func (s *Store) SetLive(ctx context.Context, playbackID string, live bool, t time.Time) (Stream, bool, error) {
	var row *sql.Row
	if live {
		row = s.db.QueryRowContext(ctx,
			"UPDATE streams SET is_live = 1, last_live_at = ? WHERE playback_id = ? AND is_live <> 1 RETURNING "+streamCols,
			t.UnixMilli(), playbackID)
	} else {
		row = s.db.QueryRowContext(ctx,
			"UPDATE streams SET is_live = 0 WHERE playback_id = ? AND is_live = 1 RETURNING "+streamCols, playbackID)
	}
	st, err := scanStream(row)
	if err == nil {
		return st, true, nil
	}
	if err != sql.ErrNoRows {
		return Stream{}, false, err
	}
	st, err = s.StreamByPlaybackID(ctx, playbackID)
	return st, false, err
}

// SetEncoding moves the stream with that playback id from Live to Encoding (the stream
// ended while its recording is being finished and uploaded). It reports whether it did.
func (s *Store) SetEncoding(ctx context.Context, playbackID string) (bool, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE streams SET is_live = 2 WHERE playback_id = ? AND is_live = 1", playbackID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// EncodingDone moves the stream with that playback id from Encoding to Offline (its
// recording is on the storage). It reports whether it did.
func (s *Store) EncodingDone(ctx context.Context, playbackID string) (bool, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE streams SET is_live = 0 WHERE playback_id = ? AND is_live = 2", playbackID)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// ResetLive sets every Live or Encoding stream Offline (crash recovery at start: the
// chunks a previous run left are uploaded by the new one without a stream state) and
// returns how many it changed.
func (s *Store) ResetLive(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE streams SET is_live = 0 WHERE is_live <> 0")
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
