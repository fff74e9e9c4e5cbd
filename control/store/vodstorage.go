package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Authentication methods of a VOD storage (the auth_method column).
const (
	AuthPassword = "password"
	AuthKey      = "key"
)

// VODStorage is a user's remote SFTP storage for recordings, one per user.
type VODStorage struct {
	UserID   int64
	Host     string
	Port     int
	Username string
	// AuthMethod is AuthPassword or AuthKey.
	AuthMethod string
	// Password, PrivateKey and Passphrase are sealed by the caller (nil when absent): the
	// store never sees them in clear.
	Password   []byte
	PrivateKey []byte
	Passphrase []byte
	// RemotePath is the directory recordings go to, absolute or relative to the login
	// directory ("" is the login directory).
	RemotePath string
	// HostKey is the pinned server host key in authorized_keys format; "" until the first
	// successful connection pins one.
	HostKey          string
	RecordingEnabled bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

const vodStorageCols = `user_id, host, port, username, auth_method, password, private_key, passphrase,
	remote_path, host_key, recording_enabled, created_at, updated_at`

// VODStorage returns the VOD storage of userID, or ErrNotFound.
func (s *Store) VODStorage(ctx context.Context, userID int64) (VODStorage, error) {
	var v VODStorage
	var created, updated sql.NullInt64
	err := s.db.QueryRowContext(ctx, "SELECT "+vodStorageCols+" FROM vod_storage WHERE user_id = ?", userID).Scan(
		&v.UserID, &v.Host, &v.Port, &v.Username, &v.AuthMethod, &v.Password, &v.PrivateKey, &v.Passphrase,
		&v.RemotePath, &v.HostKey, &v.RecordingEnabled, &created, &updated)
	v.CreatedAt, v.UpdatedAt = fromMS(created), fromMS(updated)
	return v, notFound(err)
}

// PutVODStorage creates or replaces the VOD storage of v.UserID (created_at is kept on
// replace) and returns the row as stored. The pinned host key is, in one statement so
// that a concurrent pin cannot be lost or misapplied: v.HostKey when setHostKey;
// otherwise the stored one if host and port are unchanged, else "" (another server is
// pinned anew on its first connection). ErrNotFound: the user does not exist.
func (s *Store) PutVODStorage(ctx context.Context, v VODStorage, setHostKey bool) (VODStorage, error) {
	if !setHostKey {
		v.HostKey = ""
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO vod_storage (`+vodStorageCols+`)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
		ON CONFLICT (user_id) DO UPDATE SET
			host = excluded.host, port = excluded.port, username = excluded.username,
			auth_method = excluded.auth_method, password = excluded.password,
			private_key = excluded.private_key, passphrase = excluded.passphrase,
			remote_path = excluded.remote_path, recording_enabled = excluded.recording_enabled,
			host_key = CASE
				WHEN ?14 THEN excluded.host_key
				WHEN vod_storage.host = excluded.host AND vod_storage.port = excluded.port THEN vod_storage.host_key
				ELSE '' END,
			updated_at = excluded.updated_at`,
		v.UserID, v.Host, v.Port, v.Username, v.AuthMethod, v.Password, v.PrivateKey, v.Passphrase,
		v.RemotePath, v.HostKey, b2i(v.RecordingEnabled), ms(v.CreatedAt), ms(v.UpdatedAt), b2i(setHostKey))
	if err != nil {
		if isForeignKey(err) {
			return VODStorage{}, ErrNotFound
		}
		return VODStorage{}, fmt.Errorf("store: put vod storage: %w", err)
	}
	return s.VODStorage(ctx, v.UserID)
}

// DeleteVODStorage deletes the VOD storage of userID; ErrNotFound if it has none.
func (s *Store) DeleteVODStorage(ctx context.Context, userID int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM vod_storage WHERE user_id = ?", userID))
}

// PinVODHostKey pins key as the host key of userID's storage if none is pinned yet and the
// storage still points at host:port (a key learnt from one server is never pinned for
// another one the user switched to meanwhile). It reports whether it pinned.
func (s *Store) PinVODHostKey(ctx context.Context, userID int64, host string, port int, key string) (bool, error) {
	res, err := s.db.ExecContext(ctx,
		"UPDATE vod_storage SET host_key = ? WHERE user_id = ? AND host_key = '' AND host = ? AND port = ?",
		key, userID, host, port)
	if err != nil {
		return false, fmt.Errorf("store: pin vod host key: %w", err)
	}
	n, err := res.RowsAffected()
	return n > 0, err
}
