package store

import (
	"context"
	"database/sql"
	"time"
)

// Activity is one entry of the activity log.
type Activity struct {
	ID        int64
	UserID    int64
	Username  string // filled in by Activities
	Action    string
	Details   string
	CreatedAt time.Time
}

// AddActivity appends an entry.
func (s *Store) AddActivity(ctx context.Context, a Activity) error {
	_, err := s.db.ExecContext(ctx, "INSERT INTO activity (user_id, action, details, created_at) VALUES (?, ?, ?, ?)",
		a.UserID, a.Action, a.Details, a.CreatedAt.UnixMilli())
	return err
}

// Activities returns the newest entries, of one user (userID > 0) or of everyone (0).
func (s *Store) Activities(ctx context.Context, userID int64, limit int) ([]Activity, error) {
	q := "SELECT a.id, a.user_id, COALESCE(u.username, ''), a.action, a.details, a.created_at FROM activity a LEFT JOIN users u ON u.id = a.user_id"
	args := []any{}
	if userID > 0 {
		q += " WHERE a.user_id = ?"
		args = append(args, userID)
	}
	rows, err := s.db.QueryContext(ctx, q+" ORDER BY a.id DESC LIMIT ?", append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Activity
	for rows.Next() {
		var a Activity
		var created sql.NullInt64
		if err := rows.Scan(&a.ID, &a.UserID, &a.Username, &a.Action, &a.Details, &created); err != nil {
			return nil, err
		}
		a.CreatedAt = fromMS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

// PruneActivity deletes entries created before t.
func (s *Store) PruneActivity(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, "DELETE FROM activity WHERE created_at < ?", t.UnixMilli())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AddActivityEntry is AddActivity with the fields as arguments.
func (s *Store) AddActivityEntry(ctx context.Context, userID int64, action, details string, t time.Time) error {
	return s.AddActivity(ctx, Activity{UserID: userID, Action: action, Details: details, CreatedAt: t})
}
