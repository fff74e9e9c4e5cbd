package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// User is an account.
type User struct {
	ID       int64
	Username string
	// PasswordHash is an encoded argon2id hash (the caller hashes and verifies).
	PasswordHash string
	IsAdmin      bool
	TOTPEnabled  bool
	CreatedAt    time.Time
}

const userCols = "id, username, password_hash, is_admin, totp_enabled, created_at"

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var created sql.NullInt64
	err := row.Scan(&u.ID, &u.Username, &u.PasswordHash, &u.IsAdmin, &u.TOTPEnabled, &created)
	u.CreatedAt = fromMS(created)
	return u, err
}

// CreateUser inserts u (ID is ignored) and returns it with its id. A taken username
// (case-insensitive) gives ErrConflict.
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO users (username, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?)",
		u.Username, u.PasswordHash, b2i(u.IsAdmin), ms(u.CreatedAt))
	if err != nil {
		if isUnique(err) {
			return User{}, ErrConflict
		}
		return User{}, fmt.Errorf("store: create user: %w", err)
	}
	u.ID, err = res.LastInsertId()
	return u, err
}

// CreateFirstUser inserts u only if no user exists, in one statement so that two
// concurrent first-run setups cannot both succeed; otherwise it returns ErrAlreadySetUp.
func (s *Store) CreateFirstUser(ctx context.Context, u User) (User, error) {
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO users (username, password_hash, is_admin, created_at)
		 SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)`,
		u.Username, u.PasswordHash, b2i(u.IsAdmin), ms(u.CreatedAt))
	if err != nil {
		return User{}, fmt.Errorf("store: create first user: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return User{}, ErrAlreadySetUp
	}
	u.ID, err = res.LastInsertId()
	return u, err
}

// HasUsers reports whether any user exists.
func (s *Store) HasUsers(ctx context.Context) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM users)").Scan(&n)
	return n == 1, err
}

// UserByID returns user id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE id = ?", id))
	return u, notFound(err)
}

// UserByName returns the user with that username (case-insensitive), or ErrNotFound.
func (s *Store) UserByName(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE username = ?", name))
	return u, notFound(err)
}

// ListUsers returns every user by id.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+userCols+" FROM users ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// DeleteUser deletes user id and, by cascade, its keys, sessions, streams and tokens.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM users WHERE id = ?", id))
}

// TwoFactor returns the user's sealed two-factor state (nil when none) and whether 2FA is
// enabled.
func (s *Store) TwoFactor(ctx context.Context, userID int64) ([]byte, bool, error) {
	var sealed []byte
	var enabled bool
	err := s.db.QueryRowContext(ctx, "SELECT totp_secret, totp_enabled FROM users WHERE id = ?", userID).Scan(&sealed, &enabled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, ErrNotFound
	}
	return sealed, enabled, err
}

// SetTwoFactor stores the user's sealed two-factor state (nil clears it) and whether 2FA
// is enabled. With ifSealed set, it changes nothing unless the stored state is still
// ifSealed (an optimistic check, so that two logins cannot both use one backup code) and
// reports whether it changed.
func (s *Store) SetTwoFactor(ctx context.Context, userID int64, sealed []byte, enabled bool, ifSealed []byte) (bool, error) {
	q, args := "UPDATE users SET totp_secret = ?, totp_enabled = ? WHERE id = ?", []any{sealed, enabled, userID}
	if ifSealed != nil {
		q += " AND totp_secret = ?"
		args = append(args, ifSealed)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
