package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// APIKey is a long-lived credential of a user. Only its hash is stored.
type APIKey struct {
	ID     int64
	UserID int64
	Name   string
	// Hash is the SHA-256 of the full key.
	Hash []byte
	// Prefix is the first characters of the key, for display.
	Prefix string
	// Scopes is the comma-separated scope list ("*" = everything).
	Scopes     string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never
	LastUsedAt time.Time // zero: never used
	Revoked    bool
}

const apiKeyCols = "id, user_id, name, key_hash, key_prefix, scopes, created_at, expires_at, last_used_at, revoked"

func scanAPIKey(row interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var created, expires, used sql.NullInt64
	err := row.Scan(&k.ID, &k.UserID, &k.Name, &k.Hash, &k.Prefix, &k.Scopes, &created, &expires, &used, &k.Revoked)
	k.CreatedAt, k.ExpiresAt, k.LastUsedAt = fromMS(created), fromMS(expires), fromMS(used)
	return k, err
}

// CreateAPIKey inserts k and returns it with its id.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO api_keys (user_id, name, key_hash, key_prefix, scopes, created_at, expires_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.UserID, k.Name, k.Hash, k.Prefix, k.Scopes, ms(k.CreatedAt), ms(k.ExpiresAt))
	if err != nil {
		return APIKey{}, fmt.Errorf("store: create api key: %w", err)
	}
	k.ID, err = res.LastInsertId()
	return k, err
}

// APIKeyByHash returns the key whose hash is hash (revoked and expired ones included: the
// caller decides), or ErrNotFound.
func (s *Store) APIKeyByHash(ctx context.Context, hash []byte) (APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, "SELECT "+apiKeyCols+" FROM api_keys WHERE key_hash = ?", hash))
	return k, notFound(err)
}

// ListAPIKeys returns the keys of user userID, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, userID int64) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+apiKeyCols+" FROM api_keys WHERE user_id = ? ORDER BY id DESC", userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey marks key id of user userID revoked; ErrNotFound if the user has no such key.
func (s *Store) RevokeAPIKey(ctx context.Context, userID, id int64) error {
	return affected(s.db.ExecContext(ctx, "UPDATE api_keys SET revoked = 1 WHERE id = ? AND user_id = ?", id, userID))
}

// DeleteAPIKey deletes key id of user userID; ErrNotFound if the user has no such key.
func (s *Store) DeleteAPIKey(ctx context.Context, userID, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM api_keys WHERE id = ? AND user_id = ?", id, userID))
}

// TouchAPIKey records a use of key id at t. To spare writes it changes the row at most
// once a minute.
func (s *Store) TouchAPIKey(ctx context.Context, id int64, t time.Time) error {
	_, err := s.db.ExecContext(ctx,
		"UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
		t.UnixMilli(), id, t.Add(-time.Minute).UnixMilli())
	return err
}
