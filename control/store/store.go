// Package store is relaycast's database layer: users, API keys, login sessions, streams,
// single-use RTMP tokens, relay destinations, VOD storage settings and chat (channels,
// messages, reactions, pins, read positions), in SQLite
// (modernc.org/sqlite, pure Go) with versioned migrations.
//
// The store keeps no secret in clear: API keys, stream keys and RTMP tokens are stored as
// SHA-256 hashes (of 32-byte random secrets, so a plain hash is enough) with a short
// display prefix; passwords are stored as argon2id hashes computed by the caller; relay
// stream keys and SFTP passwords, private keys and passphrases, which must be recovered,
// and chat message bodies are stored as the caller sealed them.
//
// Times are stored as Unix milliseconds (UTC); a zero time.Time means SQL NULL.
// Every method is safe for concurrent use.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotFound: no row matches.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique value (a username) is already taken.
	ErrConflict = errors.New("store: already exists")
	// ErrAlreadySetUp: CreateFirstUser was called while a user exists.
	ErrAlreadySetUp = errors.New("store: already set up")
	// ErrLimit: the row would exceed a per-owner limit (relays per stream).
	ErrLimit = errors.New("store: limit reached")
)

// Store is an open database.
type Store struct {
	db *sql.DB
}

// dsn returns the modernc DSN for path. The pragmas go through _pragma= so that every
// pooled connection gets them (a PRAGMA run once on *sql.DB reaches one connection only).
// Write transactions start with BEGIN IMMEDIATE so that two of them never deadlock on a
// read-to-write lock upgrade (they wait on busy_timeout instead).
func dsn(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating if needed) the SQLite database at path and applies the pending
// migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", dsn(path))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database. It is safe to call twice.
func (s *Store) Close() error {
	return s.db.Close()
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("store: ping: %w", err)
	}
	return nil
}

// ms converts t to the stored form; the zero time is NULL.
func ms(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

// fromMS converts a stored time back; NULL is the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// notFound maps sql.ErrNoRows to ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// affected returns ErrNotFound when res changed no row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// b2i stores a bool as 0/1.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
