package store

import (
	"context"
	"database/sql"
	"time"
)

// Notification is one entry of a user's notification list.
type Notification struct {
	ID        int64
	UserID    int64
	Type      string
	Title     string
	Message   string
	IsRead    bool
	CreatedAt time.Time
}

// AddNotification stores a notification and returns its id.
func (s *Store) AddNotification(ctx context.Context, n Notification) (int64, error) {
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO notifications (user_id, type, title, message, created_at) VALUES (?, ?, ?, ?, ?)",
		n.UserID, n.Type, n.Title, n.Message, n.CreatedAt.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// Notifications returns the user's newest notifications (unread ones only with
// unreadOnly), at most limit, and how many are unread in all.
func (s *Store) Notifications(ctx context.Context, userID int64, unreadOnly bool, limit int) ([]Notification, int, error) {
	q := "SELECT id, user_id, type, title, message, is_read, created_at FROM notifications WHERE user_id = ?"
	if unreadOnly {
		q += " AND is_read = 0"
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY id DESC LIMIT ?", userID, limit)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Notification
	for rows.Next() {
		var n Notification
		var created sql.NullInt64
		if err := rows.Scan(&n.ID, &n.UserID, &n.Type, &n.Title, &n.Message, &n.IsRead, &created); err != nil {
			return nil, 0, err
		}
		n.CreatedAt = fromMS(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	var unread int
	err = s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM notifications WHERE user_id = ? AND is_read = 0", userID).Scan(&unread)
	return out, unread, err
}

// MarkNotificationRead marks one of the user's notifications read; ErrNotFound when the
// user has no notification with that id.
func (s *Store) MarkNotificationRead(ctx context.Context, userID, id int64) error {
	return affected(s.db.ExecContext(ctx, "UPDATE notifications SET is_read = 1 WHERE id = ? AND user_id = ?", id, userID))
}

// MarkAllNotificationsRead marks every unread notification of the user read and returns
// how many it changed.
func (s *Store) MarkAllNotificationsRead(ctx context.Context, userID int64) (int64, error) {
	res, err := s.db.ExecContext(ctx, "UPDATE notifications SET is_read = 1 WHERE user_id = ? AND is_read = 0", userID)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// PruneNotifications deletes notifications created before t and returns how many.
func (s *Store) PruneNotifications(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM notifications WHERE created_at < ?", t.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
