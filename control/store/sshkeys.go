package store

import (
	"context"
	"database/sql"
	"time"
)

// SSHKey is the public half of a user's generated key pair.
type SSHKey struct {
	ID          int64
	UserID      int64
	Name        string
	KeyType     string
	PublicKey   string // authorized_keys format
	Fingerprint string // SHA256:...
	CreatedAt   time.Time
}

// CreateSSHKey stores a key and returns it with its id.
func (s *Store) CreateSSHKey(ctx context.Context, k SSHKey) (SSHKey, error) {
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO ssh_keys (user_id, name, key_type, public_key, fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		k.UserID, k.Name, k.KeyType, k.PublicKey, k.Fingerprint, k.CreatedAt.UnixMilli())
	if err != nil {
		return SSHKey{}, err
	}
	k.ID, err = res.LastInsertId()
	return k, err
}

// SSHKeys returns the user's keys, oldest first.
func (s *Store) SSHKeys(ctx context.Context, userID int64) ([]SSHKey, error) {
	rows, err := s.db.QueryContext(ctx,
		"SELECT id, user_id, name, key_type, public_key, fingerprint, created_at FROM ssh_keys WHERE user_id = ? ORDER BY id", userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SSHKey
	for rows.Next() {
		var k SSHKey
		var created sql.NullInt64
		if err := rows.Scan(&k.ID, &k.UserID, &k.Name, &k.KeyType, &k.PublicKey, &k.Fingerprint, &created); err != nil {
			return nil, err
		}
		k.CreatedAt = fromMS(created)
		out = append(out, k)
	}
	return out, rows.Err()
}

// CountSSHKeys returns how many keys the user has.
func (s *Store) CountSSHKeys(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM ssh_keys WHERE user_id = ?", userID).Scan(&n)
	return n, err
}

// DeleteSSHKey deletes one of the user's keys; ErrNotFound when the user has no such key.
func (s *Store) DeleteSSHKey(ctx context.Context, userID, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM ssh_keys WHERE id = ? AND user_id = ?", id, userID))
}
