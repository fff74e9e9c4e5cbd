package store

import (
	"context"
	"database/sql"
	"errors"
)

// Profile is what a user shows of themselves in chat.
type Profile struct {
	Status        string // online, away, busy, dnd or offline
	StatusMessage string
	Nickname      string // "" when none
	Avatar        string // JSON {color, emoji, initials}; "" when none
	Anonymous     bool
}

// ProfileOf returns the user's profile.
func (s *Store) ProfileOf(ctx context.Context, userID int64) (Profile, error) {
	var p Profile
	err := s.db.QueryRowContext(ctx, "SELECT status, status_message, nickname, avatar, anonymous FROM users WHERE id = ?", userID).
		Scan(&p.Status, &p.StatusMessage, &p.Nickname, &p.Avatar, &p.Anonymous)
	if errors.Is(err, sql.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// SetProfile stores the user's profile.
func (s *Store) SetProfile(ctx context.Context, userID int64, p Profile) error {
	return affected(s.db.ExecContext(ctx,
		"UPDATE users SET status = ?, status_message = ?, nickname = ?, avatar = ?, anonymous = ? WHERE id = ?",
		p.Status, p.StatusMessage, p.Nickname, p.Avatar, p.Anonymous, userID))
}

// SetPasswordHash replaces the user's password hash.
func (s *Store) SetPasswordHash(ctx context.Context, userID int64, hash string) error {
	return affected(s.db.ExecContext(ctx, "UPDATE users SET password_hash = ? WHERE id = ?", hash, userID))
}

// RevokeSessionsExcept revokes every login session of the user but the one with jti
// ("" revokes all) and returns how many.
func (s *Store) RevokeSessionsExcept(ctx context.Context, userID int64, jti string) (int64, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE sessions SET revoked = 1 WHERE user_id = ? AND jti <> ? AND revoked = 0", userID, jti)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// Setting returns a server setting ("" and false when unset).
func (s *Store) Setting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := s.db.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, err
}

// SetSetting stores a server setting.
func (s *Store) SetSetting(ctx context.Context, key, value string) error {
	_, err := s.db.ExecContext(ctx,
		"INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", key, value)
	return err
}
