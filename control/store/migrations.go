package store

import (
	"context"
	"fmt"
	"time"
)

// migrations are applied in order; migration i brings the schema to version i+1. Never
// edit a released migration: append a new one.
var migrations = []string{
	// 1: users, API keys, login sessions, streams, single-use RTMP tokens.
	`
CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
	password_hash TEXT    NOT NULL,
	is_admin      INTEGER NOT NULL DEFAULT 0,
	totp_secret   BLOB,
	totp_enabled  INTEGER NOT NULL DEFAULT 0,
	created_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name         TEXT    NOT NULL,
	key_hash     BLOB    NOT NULL UNIQUE,
	key_prefix   TEXT    NOT NULL,
	scopes       TEXT    NOT NULL DEFAULT '*',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	last_used_at INTEGER,
	revoked      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE sessions (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	jti          TEXT    NOT NULL UNIQUE,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	revoked      INTEGER NOT NULL DEFAULT 0,
	last_used_at INTEGER,
	last_ip      TEXT    NOT NULL DEFAULT '',
	last_ua      TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE streams (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	title        TEXT    NOT NULL,
	description  TEXT    NOT NULL DEFAULT '',
	is_public    INTEGER NOT NULL DEFAULT 1,
	rtmp_enabled INTEGER NOT NULL DEFAULT 0,
	key_hash     BLOB    NOT NULL UNIQUE,
	key_prefix   TEXT    NOT NULL,
	playback_id  TEXT    NOT NULL UNIQUE,
	is_live      INTEGER NOT NULL DEFAULT 0 CHECK (is_live IN (0, 1, 2)),
	last_live_at INTEGER,
	created_at   INTEGER NOT NULL
);
CREATE INDEX streams_user ON streams(user_id);
CREATE INDEX streams_public ON streams(is_public, is_live);

CREATE TABLE rtmp_tokens (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	stream_id   INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
	token_hash  BLOB    NOT NULL UNIQUE,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL,
	used_at     INTEGER,
	released_at INTEGER
);
CREATE INDEX rtmp_tokens_stream ON rtmp_tokens(stream_id);
`,
	// 2: playback_epoch, the generation of a stream's signed playback tokens (ptk_...):
	// bumping it revokes every token issued before.
	`
ALTER TABLE streams ADD COLUMN playback_epoch INTEGER NOT NULL DEFAULT 0;
`,
	// 3: relays, the external destinations (Twitch, YouTube, RTMP servers...) a stream is
	// pushed to while live. stream_key is sealed by the caller (AES-256-GCM), never clear.
	`
CREATE TABLE relays (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	stream_id  INTEGER NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
	platform   TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	rtmp_url   TEXT    NOT NULL,
	stream_key BLOB    NOT NULL,
	enabled    INTEGER NOT NULL DEFAULT 1,
	tls_verify INTEGER NOT NULL DEFAULT 1,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE INDEX relays_stream ON relays(stream_id);
`,
	// 4: vod_storage, each user's SFTP storage for recordings (password, private_key and
	// passphrase sealed by the caller; host_key is the pinned server key, '' until the first
	// successful connection), and streams.record, the per-stream recording toggle.
	`
CREATE TABLE vod_storage (
	user_id           INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
	host              TEXT    NOT NULL,
	port              INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
	username          TEXT    NOT NULL,
	auth_method       TEXT    NOT NULL CHECK (auth_method IN ('password', 'key')),
	password          BLOB,
	private_key       BLOB,
	passphrase        BLOB,
	remote_path       TEXT    NOT NULL DEFAULT '',
	host_key          TEXT    NOT NULL DEFAULT '',
	recording_enabled INTEGER NOT NULL DEFAULT 1,
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL
);
ALTER TABLE streams ADD COLUMN record INTEGER NOT NULL DEFAULT 1;
`,
	// 5: chat. Channels (the default "general", one per stream, deleted with it, and
	// admin-made ones), messages (body sealed by the caller, never clear; reply_to is not a
	// foreign key: the parent may be deleted or purged), reactions, pins and each user's
	// read position per channel.
	`
CREATE TABLE chat_channels (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	name        TEXT    NOT NULL UNIQUE,
	description TEXT    NOT NULL DEFAULT '',
	is_default  INTEGER NOT NULL DEFAULT 0,
	stream_id   INTEGER UNIQUE REFERENCES streams(id) ON DELETE CASCADE,
	owner_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
	is_private  INTEGER NOT NULL DEFAULT 0,
	read_only   INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);

CREATE TABLE chat_messages (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	channel_id INTEGER NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	body       BLOB    NOT NULL,
	reply_to   INTEGER,
	anonymous  INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL,
	edited_at  INTEGER
);
CREATE INDEX chat_messages_channel ON chat_messages(channel_id, id);
CREATE INDEX chat_messages_created ON chat_messages(created_at);
CREATE INDEX chat_messages_user ON chat_messages(user_id);

CREATE TABLE chat_reactions (
	message_id INTEGER NOT NULL REFERENCES chat_messages(id) ON DELETE CASCADE,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	emoji      TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (message_id, user_id, emoji)
);
CREATE INDEX chat_reactions_user ON chat_reactions(user_id);

CREATE TABLE chat_pins (
	message_id INTEGER PRIMARY KEY REFERENCES chat_messages(id) ON DELETE CASCADE,
	channel_id INTEGER NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
	pinned_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
	pinned_at  INTEGER NOT NULL
);
CREATE INDEX chat_pins_channel ON chat_pins(channel_id);

CREATE TABLE chat_reads (
	user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	channel_id   INTEGER NOT NULL REFERENCES chat_channels(id) ON DELETE CASCADE,
	last_read_id INTEGER NOT NULL,
	PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX chat_reads_channel ON chat_reads(channel_id);
`,
	// 6: notifications, the bell's list of what happened to a user's streams, relays,
	// recordings and account.
	`
CREATE TABLE notifications (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	type       TEXT    NOT NULL,
	title      TEXT    NOT NULL,
	message    TEXT    NOT NULL,
	is_read    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
CREATE INDEX notifications_user ON notifications(user_id, id);
`,
	// 7: profiles (chat status, nickname, avatar, anonymous mode) and server settings
	// (key/value: the invite code's generation, ...).
	`
ALTER TABLE users ADD COLUMN status         TEXT    NOT NULL DEFAULT 'online';
ALTER TABLE users ADD COLUMN status_message TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN nickname       TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN avatar         TEXT    NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN anonymous      INTEGER NOT NULL DEFAULT 0;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);
`,
	// 8: ssh_keys, the public halves of the key pairs users generate (the private key is
	// shown once and never stored).
	`
CREATE TABLE ssh_keys (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name        TEXT    NOT NULL,
	key_type    TEXT    NOT NULL,
	public_key  TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	created_at  INTEGER NOT NULL
);
CREATE INDEX ssh_keys_user ON ssh_keys(user_id);
`,
	// 9: activity, the log of what users did (streams started, relays added, sign-ins...).
	`
CREATE TABLE activity (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER REFERENCES users(id) ON DELETE CASCADE,
	action     TEXT    NOT NULL,
	details    TEXT    NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX activity_user ON activity(user_id, id);
`,
	// 10: webhooks (outgoing: sealed URL and secret; incoming: token hash and chat
	// channel) and their delivery logs (sealed payloads, pruned after 7 days).
	`
CREATE TABLE webhooks (
	id                   INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id              INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name                 TEXT    NOT NULL,
	type                 TEXT    NOT NULL,
	url                  BLOB,
	secret               BLOB,
	token_hash           BLOB    UNIQUE,
	events               TEXT    NOT NULL DEFAULT '',
	channel_id           INTEGER,
	enabled              INTEGER NOT NULL DEFAULT 1,
	consecutive_failures INTEGER NOT NULL DEFAULT 0,
	created_at           INTEGER NOT NULL
);
CREATE INDEX webhooks_user ON webhooks(user_id);

CREATE TABLE webhook_deliveries (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook_id  INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	event       TEXT    NOT NULL,
	payload     BLOB,
	status_code INTEGER NOT NULL DEFAULT 0,
	success     INTEGER NOT NULL DEFAULT 0,
	attempt     INTEGER NOT NULL DEFAULT 0,
	duration_ms INTEGER NOT NULL DEFAULT 0,
	error       TEXT    NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries(webhook_id, id);
CREATE INDEX webhook_deliveries_created ON webhook_deliveries(created_at);
`,
}

// migrate creates schema_migrations and applies every migration not yet recorded, each in
// its own transaction (BEGIN IMMEDIATE, so two processes opening the same file at once
// serialise instead of applying a migration twice).
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("migrations table: %w", err)
	}
	for i, m := range migrations {
		version := i + 1
		if err := s.apply(ctx, version, m); err != nil {
			return fmt.Errorf("migration %d: %w", version, err)
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, version int, script string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", version).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
		version, time.Now().UnixMilli()); err != nil {
		return err
	}
	return tx.Commit()
}

// SchemaVersion returns the highest applied migration.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	return v, err
}
