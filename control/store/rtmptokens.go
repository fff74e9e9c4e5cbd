package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// RTMPToken is a single-use publish token (rtmp_...) of a stream. Only its hash is stored.
type RTMPToken struct {
	ID         int64
	StreamID   int64
	Hash       []byte
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero: unused
	ReleasedAt time.Time // zero: not released since its last use
}

const rtmpTokenCols = "id, stream_id, token_hash, created_at, expires_at, used_at, released_at"

// CreateRTMPToken inserts t and returns it with its id.
func (s *Store) CreateRTMPToken(ctx context.Context, t RTMPToken) (RTMPToken, error) {
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO rtmp_tokens (stream_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?)",
		t.StreamID, t.Hash, ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return RTMPToken{}, fmt.Errorf("store: create rtmp token: %w", err)
	}
	t.ID, err = res.LastInsertId()
	return t, err
}

// RTMPTokenByHash returns the token whose hash is hash, or ErrNotFound.
func (s *Store) RTMPTokenByHash(ctx context.Context, hash []byte) (RTMPToken, error) {
	var t RTMPToken
	var created, expires, used, released sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT "+rtmpTokenCols+" FROM rtmp_tokens WHERE token_hash = ?", hash).
		Scan(&t.ID, &t.StreamID, &t.Hash, &created, &expires, &used, &released)
	t.CreatedAt, t.ExpiresAt, t.UsedAt, t.ReleasedAt = fromMS(created), fromMS(expires), fromMS(used), fromMS(released)
	return t, notFound(err)
}

// ClaimRTMPToken marks the token used at now and reports whether the caller won it. A
// token can be claimed when it was never used and has not expired, or when the publisher
// that last used it released it less than grace ago (a reconnect). The check and the
// update are one UPDATE statement, so of two concurrent claims at most one wins; a claim
// clears released_at, so a released token is reclaimed once, too.
func (s *Store) ClaimRTMPToken(ctx context.Context, hash []byte, now time.Time, grace time.Duration) (bool, error) {
	res, err := s.db.ExecContext(ctx,
		`UPDATE rtmp_tokens SET used_at = ?1, released_at = NULL
		 WHERE token_hash = ?2 AND (
			(used_at IS NULL AND expires_at > ?1) OR
			(used_at IS NOT NULL AND released_at IS NOT NULL AND released_at > ?3))`,
		now.UnixMilli(), hash, now.Add(-grace).UnixMilli())
	if err != nil {
		return false, fmt.Errorf("store: claim rtmp token: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// ReleaseRTMPToken records that the publisher using the token stopped at t, which starts
// its reconnect grace.
func (s *Store) ReleaseRTMPToken(ctx context.Context, hash []byte, t time.Time) error {
	err := affected(s.db.ExecContext(ctx,
		"UPDATE rtmp_tokens SET released_at = ? WHERE token_hash = ? AND used_at IS NOT NULL AND released_at IS NULL",
		t.UnixMilli(), hash))
	if errors.Is(err, ErrNotFound) {
		return nil // already released, or the stream and its tokens were deleted
	}
	return err
}

// DeleteStaleRTMPTokens removes tokens that can no longer be used at now: unused and
// expired, or released more than grace ago.
func (s *Store) DeleteStaleRTMPTokens(ctx context.Context, now time.Time, grace time.Duration) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		`DELETE FROM rtmp_tokens WHERE (used_at IS NULL AND expires_at <= ?)
		 OR (released_at IS NOT NULL AND released_at <= ?)`,
		now.UnixMilli(), now.Add(-grace).UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
