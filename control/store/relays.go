package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Relay is an external destination a stream is pushed to while it is live.
type Relay struct {
	ID       int64
	StreamID int64
	// Platform is the platform id (twitch, youtube, kick, portal, custom); the store does
	// not check it.
	Platform string
	Name     string
	// RTMPURL is the ingest base, rtmp(s)://host[:port]/app, without the stream key.
	RTMPURL string
	// StreamKey is the destination's stream key as the caller sealed it: the store never
	// sees it in clear.
	StreamKey []byte
	Enabled   bool
	// TLSVerify: verify the rtmps destination's certificate (false for a self-signed one).
	TLSVerify bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

const relayCols = "id, stream_id, platform, name, rtmp_url, stream_key, enabled, tls_verify, created_at, updated_at"

func scanRelay(row interface{ Scan(...any) error }) (Relay, error) {
	var r Relay
	var created, updated sql.NullInt64
	err := row.Scan(&r.ID, &r.StreamID, &r.Platform, &r.Name, &r.RTMPURL, &r.StreamKey, &r.Enabled, &r.TLSVerify,
		&created, &updated)
	r.CreatedAt, r.UpdatedAt = fromMS(created), fromMS(updated)
	return r, err
}

// CreateRelay inserts r and returns it with its id. When limit > 0 and the stream already
// has limit relays it inserts nothing and returns ErrLimit; the count and the insert are
// one statement, so concurrent creations cannot exceed the limit. ErrNotFound: the stream
// does not exist.
func (s *Store) CreateRelay(ctx context.Context, r Relay, limit int) (Relay, error) {
	if limit <= 0 {
		limit = -1
	}
	res, err := s.db.ExecContext(ctx,
		`INSERT INTO relays (stream_id, platform, name, rtmp_url, stream_key, enabled, tls_verify, created_at, updated_at)
		 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
		 WHERE ?10 < 0 OR (SELECT COUNT(*) FROM relays WHERE stream_id = ?1) < ?10`,
		r.StreamID, r.Platform, r.Name, r.RTMPURL, r.StreamKey, b2i(r.Enabled), b2i(r.TLSVerify),
		ms(r.CreatedAt), ms(r.UpdatedAt), limit)
	if err != nil {
		if isForeignKey(err) {
			return Relay{}, ErrNotFound
		}
		return Relay{}, fmt.Errorf("store: create relay: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return Relay{}, err
	} else if n == 0 {
		return Relay{}, ErrLimit
	}
	r.ID, err = res.LastInsertId()
	return r, err
}

// RelayByID returns relay id, or ErrNotFound.
func (s *Store) RelayByID(ctx context.Context, id int64) (Relay, error) {
	r, err := scanRelay(s.db.QueryRowContext(ctx, "SELECT "+relayCols+" FROM relays WHERE id = ?", id))
	return r, notFound(err)
}

// ListRelaysByStream returns the relays of stream streamID by id.
func (s *Store) ListRelaysByStream(ctx context.Context, streamID int64) ([]Relay, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+relayCols+" FROM relays WHERE stream_id = ? ORDER BY id", streamID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Relay{}
	for rows.Next() {
		r, err := scanRelay(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// CountRelays returns how many relays stream streamID has.
func (s *Store) CountRelays(ctx context.Context, streamID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM relays WHERE stream_id = ?", streamID).Scan(&n)
	return n, err
}

// UpdateRelay saves the editable fields of r (platform, name, rtmp_url, stream_key,
// enabled, tls_verify, updated_at); ErrNotFound unless relay r.ID belongs to stream
// r.StreamID.
func (s *Store) UpdateRelay(ctx context.Context, r Relay) error {
	return affected(s.db.ExecContext(ctx,
		`UPDATE relays SET platform = ?, name = ?, rtmp_url = ?, stream_key = ?, enabled = ?, tls_verify = ?, updated_at = ?
		 WHERE id = ? AND stream_id = ?`,
		r.Platform, r.Name, r.RTMPURL, r.StreamKey, b2i(r.Enabled), b2i(r.TLSVerify), ms(r.UpdatedAt), r.ID, r.StreamID))
}

// DeleteRelay deletes relay id of stream streamID; ErrNotFound if the stream has no such
// relay.
func (s *Store) DeleteRelay(ctx context.Context, streamID, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM relays WHERE id = ? AND stream_id = ?", id, streamID))
}

// isForeignKey reports whether err is a foreign-key violation.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	return strings.Contains(err.Error(), "FOREIGN KEY constraint failed")
}
