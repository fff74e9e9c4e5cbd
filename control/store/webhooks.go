package store

import (
	"context"
	"database/sql"
	"strings"
	"time"
)

// Webhook is an outgoing or incoming webhook. Its URL and signing secret are stored
// sealed (the control package seals and opens them); an incoming webhook's token is stored
// as a hash only.
type Webhook struct {
	ID     int64
	UserID int64
	// Owner is the owner's username (filled in by reads).
	Owner string
	Name  string
	// Type is "outgoing" or "incoming".
	Type string
	// URL and Secret are sealed (outgoing only).
	URL, Secret []byte
	// TokenHash is the SHA-256 of an incoming webhook's token.
	TokenHash []byte
	Events    []string
	// ChannelID is an incoming webhook's target chat channel.
	ChannelID           int64
	Enabled             bool
	ConsecutiveFailures int
	CreatedAt           time.Time
}

// WebhookDelivery is one logged delivery attempt of an outgoing webhook.
type WebhookDelivery struct {
	ID        int64
	WebhookID int64
	Event     string
	// Payload is the sealed request body.
	Payload    []byte
	StatusCode int
	Success    bool
	Attempt    int
	Duration   time.Duration
	Error      string
	CreatedAt  time.Time
}

const webhookCols = `w.id, w.user_id, u.username, w.name, w.type, w.url, w.secret, w.token_hash, w.events,
	COALESCE(w.channel_id, 0), w.enabled, w.consecutive_failures, w.created_at`

func scanWebhook(sc interface{ Scan(...any) error }) (Webhook, error) {
	var w Webhook
	var events string
	var created sql.NullInt64
	err := sc.Scan(&w.ID, &w.UserID, &w.Owner, &w.Name, &w.Type, &w.URL, &w.Secret, &w.TokenHash, &events,
		&w.ChannelID, &w.Enabled, &w.ConsecutiveFailures, &created)
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.CreatedAt = fromMS(created)
	return w, err
}

// CountWebhooks returns how many webhooks the user owns.
func (s *Store) CountWebhooks(ctx context.Context, userID int64) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhooks WHERE user_id = ?", userID).Scan(&n)
	return n, err
}

// CreateWebhook stores w and returns its id. seal, when not nil, is called with the new
// id and returns the sealed URL and secret (sealed with the id as associated data), which
// are written in the same transaction.
func (s *Store) CreateWebhook(ctx context.Context, w Webhook, seal func(id int64) (url, secret []byte)) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var channel sql.NullInt64
	if w.ChannelID > 0 {
		channel = sql.NullInt64{Int64: w.ChannelID, Valid: true}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO webhooks (user_id, name, type, token_hash, events, channel_id, enabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		w.UserID, w.Name, w.Type, w.TokenHash, strings.Join(w.Events, ","), channel, b2i(w.Enabled), w.CreatedAt.UnixMilli())
	if err != nil {
		return 0, err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, err
	}
	if seal != nil {
		url, secret := seal(id)
		if _, err := tx.ExecContext(ctx, "UPDATE webhooks SET url = ?, secret = ? WHERE id = ?", url, secret, id); err != nil {
			return 0, err
		}
	}
	return id, tx.Commit()
}

// Webhook returns one webhook.
func (s *Store) Webhook(ctx context.Context, id int64) (Webhook, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+webhookCols+" FROM webhooks w JOIN users u ON u.id = w.user_id WHERE w.id = ?", id)
	w, err := scanWebhook(row)
	return w, notFound(err)
}

// WebhookByToken returns the incoming webhook whose token hashes to tokenHash.
func (s *Store) WebhookByToken(ctx context.Context, tokenHash []byte) (Webhook, error) {
	row := s.db.QueryRowContext(ctx, "SELECT "+webhookCols+
		" FROM webhooks w JOIN users u ON u.id = w.user_id WHERE w.token_hash = ? AND w.type = 'incoming'", tokenHash)
	w, err := scanWebhook(row)
	return w, notFound(err)
}

// Webhooks returns the user's webhooks, or every webhook when userID is 0, oldest first.
func (s *Store) Webhooks(ctx context.Context, userID int64) ([]Webhook, error) {
	q := "SELECT " + webhookCols + " FROM webhooks w JOIN users u ON u.id = w.user_id"
	var args []any
	if userID != 0 {
		q += " WHERE w.user_id = ?"
		args = append(args, userID)
	}
	return s.queryWebhooks(ctx, q+" ORDER BY w.id", args...)
}

// WebhooksFor returns the enabled outgoing webhooks subscribed to event.
func (s *Store) WebhooksFor(ctx context.Context, event string) ([]Webhook, error) {
	return s.queryWebhooks(ctx, "SELECT "+webhookCols+` FROM webhooks w JOIN users u ON u.id = w.user_id
		WHERE w.type = 'outgoing' AND w.enabled = 1 AND (',' || w.events || ',') LIKE ? ORDER BY w.id`,
		"%,"+event+",%")
}

func (s *Store) queryWebhooks(ctx context.Context, q string, args ...any) ([]Webhook, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// UpdateWebhook writes w's name, URL, secret, token hash, events, channel and enabled
// state. Enabling resets the consecutive failure count.
func (s *Store) UpdateWebhook(ctx context.Context, w Webhook) error {
	var channel sql.NullInt64
	if w.ChannelID > 0 {
		channel = sql.NullInt64{Int64: w.ChannelID, Valid: true}
	}
	return affected(s.db.ExecContext(ctx, `UPDATE webhooks SET name = ?, url = ?, secret = ?, token_hash = ?, events = ?,
		channel_id = ?, enabled = ?, consecutive_failures = CASE WHEN ? = 1 AND enabled = 0 THEN 0 ELSE consecutive_failures END
		WHERE id = ?`,
		w.Name, w.URL, w.Secret, w.TokenHash, strings.Join(w.Events, ","), channel, b2i(w.Enabled), b2i(w.Enabled), w.ID))
}

// DeleteWebhook deletes a webhook and its delivery logs.
func (s *Store) DeleteWebhook(ctx context.Context, id int64) error {
	return affected(s.db.ExecContext(ctx, "DELETE FROM webhooks WHERE id = ?", id))
}

// WebhookDelivered resets the webhook's consecutive failure count.
func (s *Store) WebhookDelivered(ctx context.Context, id int64) error {
	_, err := s.db.ExecContext(ctx, "UPDATE webhooks SET consecutive_failures = 0 WHERE id = ? AND consecutive_failures != 0", id)
	return err
}

// WebhookFailed counts a failed delivery and disables the webhook when it reaches
// disableAfter consecutive failures. It returns the new count and whether this call
// disabled the webhook.
func (s *Store) WebhookFailed(ctx context.Context, id int64, disableAfter int) (failures int, disabled bool, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	var enabled bool
	err = tx.QueryRowContext(ctx, `UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = ?
		RETURNING consecutive_failures, enabled`, id).Scan(&failures, &enabled)
	if err != nil {
		return 0, false, notFound(err)
	}
	if enabled && failures >= disableAfter {
		if _, err := tx.ExecContext(ctx, "UPDATE webhooks SET enabled = 0 WHERE id = ?", id); err != nil {
			return 0, false, err
		}
		disabled = true
	}
	return failures, disabled, tx.Commit()
}

// AddWebhookDelivery logs a delivery attempt.
func (s *Store) AddWebhookDelivery(ctx context.Context, d WebhookDelivery) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO webhook_deliveries
		(webhook_id, event, payload, status_code, success, attempt, duration_ms, error, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.WebhookID, d.Event, d.Payload, d.StatusCode, b2i(d.Success), d.Attempt, d.Duration.Milliseconds(), d.Error,
		d.CreatedAt.UnixMilli())
	return err
}

// WebhookDeliveries returns a webhook's delivery logs, newest first.
func (s *Store) WebhookDeliveries(ctx context.Context, webhookID int64, limit, offset int) ([]WebhookDelivery, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, webhook_id, event, payload, status_code, success, attempt, duration_ms,
		error, created_at FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ? OFFSET ?`,
		webhookID, limit, offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []WebhookDelivery
	for rows.Next() {
		var d WebhookDelivery
		var ms int64
		var created sql.NullInt64
		if err := rows.Scan(&d.ID, &d.WebhookID, &d.Event, &d.Payload, &d.StatusCode, &d.Success, &d.Attempt, &ms,
			&d.Error, &created); err != nil {
			return nil, err
		}
		d.Duration = time.Duration(ms) * time.Millisecond
		d.CreatedAt = fromMS(created)
		out = append(out, d)
	}
	return out, rows.Err()
}

// PruneWebhookDeliveries deletes the delivery logs older than before.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM webhook_deliveries WHERE created_at < ?", before.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
