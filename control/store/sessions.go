package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Session is one issued login token (JWT), recorded by its id (jti) so that it can be
// listed and revoked.
type Session struct {
	ID         int64
	JTI        string
	UserID     int64
	CreatedAt  time.Time
	ExpiresAt  time.Time
	Revoked    bool
	LastUsedAt time.Time
	LastIP     string
	LastUA     string
}

const sessionCols = "id, jti, user_id, created_at, expires_at, revoked, last_used_at, last_ip, last_ua"

func scanSession(row interface{ Scan(...any) error }) (Session, error) {
	var x Session
	var created, expires, used sql.NullInt64
	err := row.Scan(&x.ID, &x.JTI, &x.UserID, &created, &expires, &x.Revoked, &used, &x.LastIP, &x.LastUA)
	x.CreatedAt, x.ExpiresAt, x.LastUsedAt = fromMS(created), fromMS(expires), fromMS(used)
	return x, err
}

// CreateSession records a new session.
func (s *Store) CreateSession(ctx context.Context, x Session) (Session, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO sessions (jti, user_id, created_at, expires_at, last_used_at, last_ip, last_ua)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		x.JTI, x.UserID, ms(x.CreatedAt), ms(x.ExpiresAt), ms(x.LastUsedAt), x.LastIP, x.LastUA)
	if err != nil {
		return Session{}, fmt.Errorf("store: create session: %w", err)
	}
	x.ID, err = res.LastInsertId()
	return x, err
}

// SessionByJTI returns the session with that jti, or ErrNotFound.
func (s *Store) SessionByJTI(ctx context.Context, jti string) (Session, error) {
	x, err := scanSession(s.db.QueryRowContext(ctx, "SELECT "+sessionCols+" FROM sessions WHERE jti = ?", jti))
	return x, notFound(err)
}

// ListActiveSessions returns the sessions of userID that are neither revoked nor expired
// at now, newest first.
func (s *Store) ListActiveSessions(ctx context.Context, userID int64, now time.Time) ([]Session, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT "+sessionCols+" FROM sessions WHERE user_id = ? AND revoked = 0 AND expires_at > ? ORDER BY id DESC",
		userID, now.UnixMilli())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Session{}
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, rows.Err()
}

// RevokeSession revokes session jti of userID; ErrNotFound if the user has no such session.
func (s *Store) RevokeSession(ctx context.Context, userID int64, jti string) error {
	return affected(s.db.ExecContext(ctx, "UPDATE sessions SET revoked = 1 WHERE jti = ? AND user_id = ?", jti, userID))
}

// TouchSession records a use of session jti at t from ip with user agent ua, at most once
// a minute unless the address or agent changed.
func (s *Store) TouchSession(ctx context.Context, jti, ip, ua string, t time.Time) error {
	_, err := s.db.ExecContext(ctx,
		`UPDATE sessions SET last_used_at = ?, last_ip = ?, last_ua = ?
		 WHERE jti = ? AND (last_used_at IS NULL OR last_used_at < ? OR last_ip <> ? OR last_ua <> ?)`,
		t.UnixMilli(), ip, ua, jti, t.Add(-time.Minute).UnixMilli(), ip, ua)
	return err
}

// DeleteExpiredSessions removes sessions that expired before t.
func (s *Store) DeleteExpiredSessions(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at < ?", t.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
