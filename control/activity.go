package control

// The activity log (GET /api/activity): what users did — streams started, ended, created
// and deleted, relays added and removed, sign-ins, password and 2FA changes. Admins see
// everyone's; other users their own. Kept 90 days.

import (
	"context"
	"net/http"
	"strconv"
	"time"
)

const activityKeep = 90 * 24 * time.Hour

// activity appends an entry (best effort: a failure is logged, never the caller's error).
func (s *Server) activity(ctx context.Context, userID int64, action, details string) {
	if err := s.store.AddActivityEntry(ctx, userID, action, details, s.now()); err != nil {
		s.log.Warn("activity log", "action", action, "err", err)
	}
}

// handleActivity answers GET /api/activity?limit=N (1-50, default 20).
func (s *Server) handleActivity(w http.ResponseWriter, r *http.Request, p *principal) error {
	limit := 20
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 50 {
			return errorf(http.StatusBadRequest, "limit must be 1 to 50")
		}
		limit = n
	}
	of := p.User.ID
	if p.User.IsAdmin {
		of = 0
	}
	list, err := s.store.Activities(r.Context(), of, limit)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, a := range list {
		out = append(out, map[string]any{"id": a.ID, "user_id": a.UserID, "username": a.Username,
			"action": a.Action, "details": a.Details, "created_at": apiTime(a.CreatedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"activities": out})
	return nil
}
