package control

// Notifications: what happened to a user's streams, relays, recordings and account, kept
// 30 days for the bell (GET /api/notifications) and pushed to the event feed as
// "notification" events. Producers never block the caller's path: they run on the
// live-state goroutine or a request's own.

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/relay"
)

// Notification types.
const (
	notifyStreamLive     = "stream_live"
	notifyRelayFailed    = "relay_failed"
	notifyRelayDropped   = "relay_dropped"
	notifyVODUpload      = "vod_upload_failed"
	notifyVODSpoolFull   = "vod_spool_full"
	notifyNewLogin       = "security_login"
	notifyTwoFactor      = "security_2fa"
	notificationKeep     = 30 * 24 * time.Hour
	notificationListMax  = 100
	notificationQuietFor = 10 * time.Minute // per subject, for repeating failures
	loginQuietFor        = 24 * time.Hour   // per user, address and browser
)

// notifyQuiet remembers when a subject was last notified, so that a failure that repeats
// (a relay that keeps dropping, uploads that keep failing) notifies once per period.
type notifyQuiet struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (q *notifyQuiet) allow(key string, now time.Time, period time.Duration) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.last == nil {
		q.last = make(map[string]time.Time)
	}
	if t, ok := q.last[key]; ok && now.Sub(t) < period {
		return false
	}
	if len(q.last) > 10_000 {
		for k, t := range q.last {
			if now.Sub(t) >= 24*time.Hour {
				delete(q.last, k)
			}
		}
	}
	q.last[key] = now
	return true
}

// addNotification stores a notification for user and pushes it to the user's event feed.
func (s *Server) addNotification(ctx context.Context, userID int64, typ, title, msg string) {
	n := store.Notification{UserID: userID, Type: typ, Title: title, Message: msg, CreatedAt: s.now()}
	id, err := s.store.AddNotification(ctx, n)
	if err != nil {
		s.log.Error("notification", "user_id", userID, "type", typ, "err", err)
		return
	}
	n.ID = id
	s.events.publish(userID, "notification", notificationView(n))
}

func notificationView(n store.Notification) map[string]any {
	return map[string]any{"id": n.ID, "type": n.Type, "title": n.Title, "message": n.Message,
		"is_read": n.IsRead, "created_at": apiTime(n.CreatedAt)}
}

// notifyRelay turns a relay's new status into a notification when it failed, or dropped
// after being live (once per relay per quiet period).
func (s *Server) notifyRelay(ctx context.Context, st store.Stream, rs relay.Status) {
	key := "relay:" + strconv.FormatInt(rs.ID, 10)
	switch {
	case rs.State == relay.StateFailed:
		if s.quiet.allow(key+":failed", s.now(), notificationQuietFor) {
			s.addNotification(ctx, st.UserID, notifyRelayFailed, "Relay failed",
				fmt.Sprintf("The relay %d of %q stopped: %s", rs.ID, st.Title, rs.LastError))
		}
	case rs.State == relay.StateRetrying && rs.LastError != "" && rs.BytesSent > 0:
		if s.quiet.allow(key+":dropped", s.now(), notificationQuietFor) {
			s.addNotification(ctx, st.UserID, notifyRelayDropped, "Relay reconnecting",
				fmt.Sprintf("The relay %d of %q lost its destination and is reconnecting: %s", rs.ID, st.Title, rs.LastError))
		}
	}
}

// VODUploadFailed tells the owner (once per session per quiet period) that an upload to
// their storage failed; the chunk stays in the spool and is retried.
func (s *Server) VODUploadFailed(owner int64, session string, err error) {
	if !s.quiet.allow("vod:"+strconv.FormatInt(owner, 10)+":"+session, s.now(), notificationQuietFor) {
		return
	}
	ctx, cancel := dbCtx()
	defer cancel()
	s.addNotification(ctx, owner, notifyVODUpload, "Recording upload failing",
		fmt.Sprintf("Uploading %s to your storage failed (it is kept and retried): %v", session, err))
}

// VODSpoolFull tells the owner that recording of a stream paused because the server's
// recording spool is full (full false: it records again).
func (s *Server) VODSpoolFull(owner int64, stream string, full bool) {
	if !full || !s.quiet.allow("spool:"+stream, s.now(), notificationQuietFor) {
		return
	}
	ctx, cancel := dbCtx()
	defer cancel()
	title := stream
	if st, err := s.store.StreamByPlaybackID(ctx, stream); err == nil {
		title = st.Title
	}
	s.addNotification(ctx, owner, notifyVODSpoolFull, "Recording paused",
		fmt.Sprintf("Recording of %q paused: the server's recording spool is full (the stream goes on)", title))
}

// handleNotifications answers GET /api/notifications (?unread=1).
func (s *Server) handleNotifications(w http.ResponseWriter, r *http.Request, p *principal) error {
	unread := r.URL.Query().Get("unread") == "1"
	list, count, err := s.store.Notifications(r.Context(), p.User.ID, unread, notificationListMax)
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(list))
	for _, n := range list {
		out = append(out, notificationView(n))
	}
	writeJSON(w, http.StatusOK, map[string]any{"notifications": out, "unread_count": count})
	return nil
}

// handleNotificationRead answers POST /api/notifications/{id}/read.
func (s *Server) handleNotificationRead(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := strconv.ParseInt(mux.Vars(r)["id"], 10, 64)
	if err != nil {
		return errorf(http.StatusNotFound, "notification not found")
	}
	if err := s.store.MarkNotificationRead(r.Context(), p.User.ID, id); err != nil {
		if err == store.ErrNotFound {
			return errorf(http.StatusNotFound, "notification not found")
		}
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true})
	return nil
}

// handleNotificationsReadAll answers POST /api/notifications/read-all.
func (s *Server) handleNotificationsReadAll(w http.ResponseWriter, r *http.Request, p *principal) error {
	n, err := s.store.MarkAllNotificationsRead(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "count": n})
	return nil
}
