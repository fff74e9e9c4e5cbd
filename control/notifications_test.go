package control

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/relay"
)

type notificationJSON struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title"`
	Message   string `json:"message"`
	IsRead    bool   `json:"is_read"`
	CreatedAt string `json:"created_at"`
}

type notificationList struct {
	Notifications []notificationJSON `json:"notifications"`
	UnreadCount   int                `json:"unread_count"`
}

// TestNotifications: a sign-in, a stream going live, a relay failing or dropping and a
// failing recording upload notify the owner (a repeating failure once per period); the
// list filters unread ones; read and read-all touch only the caller's.
func TestNotifications(t *testing.T) {
	e := newEnv(t)
	admin := e.setup() // a sign-in: one notification
	bob := e.user(admin, "bob")
	st := e.createStream(admin, map[string]any{"title": "notified"})

	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	list := func(token, q string) notificationList {
		var l notificationList
		e.call(200, "GET", "/api/notifications"+q, token, nil, &l)
		return l
	}
	waitFor(t, 5*time.Second, "stream_live", func() bool {
		l := list(admin, "")
		return len(l.Notifications) > 0 && l.Notifications[0].Type == "stream_live"
	})
	for i := 0; i < 3; i++ { // the same failure three times: one notification
		e.srv.RelayChanged(relay.Status{ID: 4, Stream: st.PlaybackID, State: relay.StateFailed, LastError: "rejected by server"})
	}
	e.srv.RelayChanged(relay.Status{ID: 5, Stream: st.PlaybackID, State: relay.StateRetrying, LastError: "connection ended: EOF", BytesSent: 1000})
	e.srv.VODUploadFailed(1, "notified/2026-01-01_00-00-00", errors.New("dial tcp: connection refused"))
	e.srv.VODUploadFailed(1, "notified/2026-01-01_00-00-00", errors.New("dial tcp: connection refused"))
	waitFor(t, 5*time.Second, "relay notifications", func() bool { return len(list(admin, "").Notifications) == 5 })
	time.Sleep(100 * time.Millisecond)
	l := list(admin, "")
	var kinds []string
	for _, n := range l.Notifications {
		kinds = append(kinds, n.Type)
		if n.IsRead || n.CreatedAt == "" || n.Title == "" || n.Message == "" {
			t.Fatalf("notification %+v", n)
		}
	}
	sort.Strings(kinds)
	if got, want := strings.Join(kinds, " "), "relay_dropped relay_failed security_login stream_live vod_upload_failed"; got != want || l.UnreadCount != 5 {
		t.Fatalf("notifications %q (%d unread), want %q", got, l.UnreadCount, want)
	}
	if len(list(bob, "").Notifications) != 1 { // bob's own sign-in only
		t.Fatalf("bob sees %+v", list(bob, ""))
	}

	first := l.Notifications[0].ID
	e.wantError(404, "POST", fmt.Sprintf("/api/notifications/%d/read", first), bob, nil)
	e.call(200, "POST", fmt.Sprintf("/api/notifications/%d/read", first), admin, nil, nil)
	if u := list(admin, "?unread=1"); len(u.Notifications) != 4 || u.UnreadCount != 4 {
		t.Fatalf("unread after reading one: %+v", u)
	}
	var all struct {
		Success bool `json:"success"`
		Count   int  `json:"count"`
	}
	e.call(200, "POST", "/api/notifications/read-all", admin, nil, &all)
	if !all.Success || all.Count != 4 || list(admin, "").UnreadCount != 0 || list(bob, "").UnreadCount != 1 {
		t.Fatalf("read-all: %+v", all)
	}
}
