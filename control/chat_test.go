package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/chat"
	"github.com/relaycast/relaycast/control/store"
)

// chatEnv is a control plane with chat over a real SQLite file, a real bus and real HTTP.
type chatEnv struct {
	*env
	chat *chat.Hub
	stop func()
}

// newChatEnv starts a server with chat on the database at dbPath ("" for a new one).
// stop (also run at cleanup) closes the HTTP server, the control plane, the chat hub and
// the store, in that order.
func newChatEnv(t *testing.T, dbPath string, opts ...func(*Config, *chat.Config)) *chatEnv {
	t.Helper()
	if dbPath == "" {
		dbPath = filepath.Join(t.TempDir(), "relaycast.db")
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	key := bytes.Repeat([]byte{7}, 32)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cs, err := NewChatStore(st, key)
	if err != nil {
		t.Fatal(err)
	}
	ccfg := chat.Config{Store: cs, Now: clk.Now, Logger: log}
	cfg := Config{Store: st, SecretKey: key, Version: "test", PublicURL: "http://127.0.0.1:8080", Logger: log, Now: clk.Now}
	for _, o := range opts {
		o(&cfg, &ccfg)
	}
	hub := bus.New(bus.Config{ReconnectGrace: 200 * time.Millisecond})
	ch, err := chat.New(ccfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Hub, cfg.Chat = hub, ch
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ts.Close()
			srv.Close()
			ch.Close()
			hub.Close()
			st.Close()
		})
	}
	t.Cleanup(stop)
	return &chatEnv{env: &env{t: t, srv: srv, hub: hub, store: st, http: ts, clock: clk, dbPath: dbPath}, chat: ch, stop: stop}
}

// wsClient is a test chat connection.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// dialChat opens /ws/chat with token in the Authorization header (or, with query, as
// ?token=) and reads the first message (unread_counts).
func (e *chatEnv) dialChat(token string, query bool) *wsClient {
	e.t.Helper()
	c, resp, err := e.tryDialChat(token, query, "")
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
		}
		e.t.Fatalf("dial /ws/chat: %v %s", err, body)
	}
	c.expect("unread_counts")
	return c
}

func (e *chatEnv) tryDialChat(token string, query bool, origin string) (*wsClient, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(e.http.URL, "http") + "/ws/chat"
	hdr := http.Header{}
	if query {
		u += "?token=" + token
	} else if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	if origin != "" {
		hdr.Set("Origin", origin)
	}
	ws, resp, err := websocket.DefaultDialer.Dial(u, hdr)
	if err != nil {
		return nil, resp, err
	}
	e.t.Cleanup(func() { ws.Close() })
	return &wsClient{t: e.t, ws: ws}, resp, nil
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatal(err)
	}
}

func (c *wsClient) next() map[string]any {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m map[string]any
	if err := c.ws.ReadJSON(&m); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want a %q message", m, typ)
	}
	return m
}

func (c *wsClient) join(channel string) (history map[string]any) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "channel": channel})
	c.expect("channel_info")
	history = c.expect("history")
	c.expect("pinned_messages")
	c.expect("users")
	return history
}

func id(m map[string]any, k string) int64 { f, _ := m[k].(float64); return int64(f) }

// TestChatOverHTTP: three users authenticated by login token (header and ?token=) and
// API key talk in general through the real handler; refusals of the upgrade carry the
// API's error body.
func TestChatOverHTTP(t *testing.T) {
	e := newChatEnv(t, "")
	admin := e.setup()
	alice := e.user(admin, "alice")
	e.user(admin, "bob")
	bob := e.login("bob", "bob password")
	var key struct {
		Key string `json:"api_key"`
	}
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "bot", "scopes": "chat:write"}, &key)
	var readOnly struct {
		Key string `json:"api_key"`
	}
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "viewer", "scopes": "streams:read"}, &readOnly)

	for _, tc := range []struct {
		name, token, origin string
		status              int
	}{
		{"no credential", "", "", 401},
		{"bad token", "nope", "", 401},
		{"key without chat scope", readOnly.Key, "", 403},
		{"foreign origin", alice, "http://evil.example", 403},
	} {
		_, resp, err := e.tryDialChat(tc.token, false, tc.origin)
		if err == nil || resp == nil || resp.StatusCode != tc.status {
			t.Fatalf("%s: %v %v", tc.name, err, resp)
		}
		var eb errorBody
		if json.NewDecoder(resp.Body).Decode(&eb) != nil || eb.Status != tc.status || eb.Error == "" {
			t.Fatalf("%s: error body %+v", tc.name, eb)
		}
	}
	if _, _, err := e.tryDialChat(alice, false, e.http.URL); err != nil {
		t.Fatalf("same origin: %v", err)
	}

	a := e.dialChat(alice, false)
	b := e.dialChat(bob, true)
	c := e.dialChat(key.Key, false) // the admin's bot
	a.join("general")
	b.join("general")
	a.expect("user_joined")
	c.join("general")
	a.expect("user_joined")
	b.expect("user_joined")
	all := []*wsClient{a, b, c}
	each := func(typ string) []map[string]any {
		var out []map[string]any
		for _, x := range all {
			out = append(out, x.expect(typ))
		}
		return out
	}

	a.send(map[string]any{"type": "message", "channel": "general", "message": "Hello!"})
	m1 := id(each("message")[0], "id")
	b.send(map[string]any{"type": "message", "channel": "general", "message": "Nice!", "reply_to": m1})
	for _, m := range each("message") {
		rp, _ := m["reply_preview"].(map[string]any)
		if rp["username"] != "alice" || rp["message"] != "Hello!" || m["username"] != "bob" {
			t.Fatalf("reply %v", m)
		}
	}
	c.send(map[string]any{"type": "react", "message_id": m1, "emoji": "👍"})
	if m := each("reaction_update")[1]; m["username"] != "admin" || m["action"] != "add" {
		t.Fatalf("reaction %v", m)
	}
	a.send(map[string]any{"type": "edit_message", "message_id": m1, "message": "Hello, all!"})
	each("message_edited")
	b.send(map[string]any{"type": "delete", "message_id": m1})
	if m := b.expect("error"); m["message"] != "you can only delete your own messages" {
		t.Fatalf("bob deletes alice's: %v", m)
	}
	c.send(map[string]any{"type": "pin_message", "message_id": m1}) // admins moderate every channel
	if m := each("message_pinned")[0]; m["pinned_by_username"] != "admin" {
		t.Fatalf("pin %v", m)
	}
	c.send(map[string]any{"type": "delete", "message_id": m1})
	if m := each("message_deleted")[2]; id(m, "message_id") != m1 {
		t.Fatalf("delete %v", m)
	}

	// online_users counts distinct users; a deleted user is disconnected.
	var stats struct {
		OnlineUsers int `json:"online_users"`
	}
	e.call(200, "GET", "/api/stats/public", admin, nil, &stats)
	if stats.OnlineUsers != 3 { // alice (twice), bob, admin
		t.Fatalf("online users %d", stats.OnlineUsers)
	}
	var users struct {
		Users []userJSON `json:"users"`
	}
	e.call(200, "GET", "/api/admin/users", admin, nil, &users)
	e.call(200, "DELETE", fmt.Sprintf("/api/admin/users/%d", users.Users[2].ID), admin, nil, nil) // bob
	if m := a.expect("user_left"); m["username"] != "bob" {
		t.Fatalf("after deleting bob: %v", m)
	}
	b.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := b.ws.ReadMessage(); !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Fatalf("deleted user's connection: %v", err)
	}
}

// TestChatStreamChannel: a stream gets its channel with it (chat_channel_id), follows its
// visibility and loses it when deleted.
func TestChatStreamChannel(t *testing.T) {
	e := newChatEnv(t, "")
	admin := e.setup()
	owner := e.user(admin, "owner")
	viewer := e.user(admin, "viewer")
	st := e.createStream(owner, map[string]any{"title": "Live now"})
	if st.ChatChannelID == nil {
		t.Fatal("no chat_channel_id")
	}
	chID := *st.ChatChannelID
	var got streamJSON
	e.call(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), owner, nil, &got)
	if got.ChatChannelID == nil || *got.ChatChannelID != chID {
		t.Fatalf("GET chat_channel_id %v", got.ChatChannelID)
	}
	var list struct {
		Channels []chat.ChannelView `json:"channels"`
	}
	e.call(200, "GET", "/api/chat/channels", viewer, nil, &list)
	if len(list.Channels) != 2 || list.Channels[0].Name != "general" || list.Channels[0].IsDefault != 1 ||
		list.Channels[1].ID != chID || !list.Channels[1].IsStreamChannel || list.Channels[1].Description != "Live now" {
		t.Fatalf("channels %+v", list.Channels)
	}
	name := chat.StreamChannelName(st.ID)

	o := e.dialChat(owner, false)
	v := e.dialChat(viewer, false)
	o.join(name)
	v.join(name)
	o.expect("user_joined")
	v.send(map[string]any{"type": "message", "channel": name, "message": "first!"})
	m := id(v.expect("message"), "id")
	o.expect("message")
	o.send(map[string]any{"type": "delete", "message_id": m}) // the owner moderates
	o.expect("message_deleted")
	v.expect("message_deleted")

	// Made private: the viewer is out and no longer sees it.
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), owner, map[string]any{"is_public": false, "title": "Private now"}, nil)
	if m := v.expect("channel_deleted"); m["channel"] != name {
		t.Fatalf("evicted %v", m)
	}
	o.expect("user_left")
	e.call(200, "GET", "/api/chat/channels", viewer, nil, &list)
	if len(list.Channels) != 1 {
		t.Fatalf("viewer sees %+v", list.Channels)
	}
	e.wantError(404, "GET", fmt.Sprintf("/api/chat/channels/%d/messages", chID), viewer, nil)
	e.call(200, "GET", "/api/chat/channels", admin, nil, &list)
	if len(list.Channels) != 2 || list.Channels[1].Visibility != "private" || list.Channels[1].Description != "Private now" {
		t.Fatalf("admin sees %+v", list.Channels)
	}

	// Deleted with the stream.
	o.send(map[string]any{"type": "message", "channel": name, "message": "bye"})
	o.expect("message")
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d", st.ID), owner, nil, nil)
	if m := o.expect("channel_deleted"); m["channel"] != name {
		t.Fatalf("deleted %v", m)
	}
	e.call(200, "GET", "/api/chat/channels", admin, nil, &list)
	if len(list.Channels) != 1 {
		t.Fatalf("after delete %+v", list.Channels)
	}
	if _, err := e.store.ChatChannelByID(context.Background(), chID); err != store.ErrNotFound {
		t.Fatalf("channel row: %v", err)
	}
}

// TestChatRestart: history (with an edit, a reply, a reaction and a pin) survives a
// restart on the same database, and no file of the database holds a message's text.
func TestChatRestart(t *testing.T) {
	e := newChatEnv(t, "")
	admin := e.setup()
	alice := e.user(admin, "alice")
	a := e.dialChat(alice, false)
	a.join("general")
	secrets := []string{"plaintext-canary-one", "plaintext-canary-two", "plaintext-canary-edited"}
	a.send(map[string]any{"type": "message", "channel": "general", "message": secrets[0]})
	m1 := id(a.expect("message"), "id")
	a.send(map[string]any{"type": "message", "channel": "general", "message": secrets[1], "reply_to": m1})
	m2 := id(a.expect("message"), "id")
	a.send(map[string]any{"type": "edit_message", "message_id": m1, "message": secrets[2]})
	a.expect("message_edited")
	a.send(map[string]any{"type": "react", "message_id": m2, "emoji": "🔥"})
	a.expect("reaction_update")
	ad := e.dialChat(admin, false)
	ad.join("general")
	a.expect("user_joined")
	ad.send(map[string]any{"type": "pin_message", "message_id": m2})
	a.expect("message_pinned")

	scan := func(when string) {
		t.Helper()
		files, _ := filepath.Glob(e.dbPath + "*") // the database, its -wal and -shm
		seen := false
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			// The scan sees the data: the username and the reaction are stored in clear.
			seen = seen || (bytes.Contains(raw, []byte("alice")) && bytes.Contains(raw, []byte("🔥")))
			for _, s := range secrets {
				if bytes.Contains(raw, []byte(s)) {
					t.Fatalf("%s: %s holds %q in clear", when, filepath.Base(f), s)
				}
			}
		}
		if !seen {
			t.Fatalf("%s: the database files %v do not hold the data scanned for", when, files)
		}
	}
	scan("running")
	dbPath := e.dbPath
	e.stop()
	scan("stopped")

	e2 := newChatEnv(t, dbPath)
	alice = e2.login("alice", "alice password")
	var list struct {
		Channels []chat.ChannelView `json:"channels"`
	}
	e2.call(200, "GET", "/api/chat/channels", alice, nil, &list)
	if len(list.Channels) != 1 || list.Channels[0].Name != "general" {
		t.Fatalf("channels after restart %+v", list.Channels) // general was not created twice
	}
	var page struct {
		Messages []chat.MessageView `json:"messages"`
		HasMore  bool               `json:"has_more"`
	}
	e2.call(200, "GET", fmt.Sprintf("/api/chat/channels/%d/messages", list.Channels[0].ID), alice, nil, &page)
	if len(page.Messages) != 2 || page.HasMore {
		t.Fatalf("history after restart %+v", page)
	}
	newest, oldest := page.Messages[0], page.Messages[1]
	if oldest.Message != secrets[2] || oldest.EditedAt == nil || newest.Message != secrets[1] || newest.ReplyPreview == nil ||
		newest.ReplyPreview.Message != secrets[2] || len(newest.Reactions) != 1 || newest.Reactions[0].Emoji != "🔥" {
		t.Fatalf("messages after restart %+v", page.Messages)
	}
	c := e2.dialChat(alice, false)
	c.send(map[string]any{"type": "join", "channel": "general"})
	c.expect("channel_info")
	h := c.expect("history")
	if msgs := h["messages"].([]any); len(msgs) != 2 || msgs[0].(map[string]any)["message"] != secrets[2] {
		t.Fatalf("WS history after restart %v", h)
	}
	if p := c.expect("pinned_messages")["messages"].([]any); len(p) != 1 || p[0].(map[string]any)["message"] != secrets[1] {
		t.Fatalf("pins after restart %v", p)
	}
	// A body moved to another message does not open (the ids are bound to it).
	ctx := context.Background()
	m1row, _ := e2.store.ChatMessageByID(ctx, m1)
	if err := e2.store.UpdateChatMessageBody(ctx, m2, m1row.Body, time.Now()); err != nil {
		t.Fatal(err)
	}
	e2.wantError(500, "GET", fmt.Sprintf("/api/chat/channels/%d/messages", list.Channels[0].ID), alice, nil)
}

// TestChatREST: channel administration, pagination, threads and their refusals.
func TestChatREST(t *testing.T) {
	e := newChatEnv(t, "", func(_ *Config, c *chat.Config) { c.RateLimit = -1 })
	admin := e.setup()
	user := e.user(admin, "user")
	var ch chat.ChannelView
	e.wantError(403, "POST", "/api/chat/channels", user, map[string]any{"name": "dev"})
	e.wantError(400, "POST", "/api/chat/channels", admin, map[string]any{"name": "Dev Talk"})
	e.wantError(400, "POST", "/api/chat/channels", admin, map[string]any{"name": "dev", "colour": "red"})
	e.call(200, "POST", "/api/chat/channels", admin, map[string]any{"name": "dev-talk", "description": "devs"}, &ch)
	if ch.Name != "dev-talk" || ch.Description != "devs" || ch.IsDefault != 0 || ch.Visibility != "public" || ch.Mode != "open" {
		t.Fatalf("created %+v", ch)
	}
	e.wantError(409, "POST", "/api/chat/channels", admin, map[string]any{"name": "general"})
	e.wantError(409, "PUT", fmt.Sprintf("/api/chat/channels/%d", ch.ID), admin, map[string]any{"name": "general"})
	e.call(200, "PUT", fmt.Sprintf("/api/chat/channels/%d", ch.ID), admin, map[string]any{"name": "engineering", "mode": "readonly"}, &ch)
	if ch.Name != "engineering" || ch.Mode != "readonly" {
		t.Fatalf("updated %+v", ch)
	}

	// Read-only: only moderators post.
	u := e.dialChat(user, false)
	u.join("engineering")
	u.send(map[string]any{"type": "message", "channel": "engineering", "message": "hi"})
	if m := u.expect("error"); m["message"] != "only moderators can send messages in this channel" {
		t.Fatalf("readonly %v", m)
	}
	a := e.dialChat(admin, false)
	a.join("engineering")
	u.expect("user_joined")
	var ids []int64
	for i := range 30 {
		msg := map[string]any{"type": "message", "channel": "engineering", "message": fmt.Sprint(i)}
		if i > 0 {
			msg["reply_to"] = ids[i-1]
		}
		a.send(msg)
		ids = append(ids, id(a.expect("message"), "id"))
		u.expect("message")
	}
	var page struct {
		Messages []chat.MessageView `json:"messages"`
		HasMore  bool               `json:"has_more"`
	}
	e.call(200, "GET", fmt.Sprintf("/api/chat/channels/%d/messages?limit=10", ch.ID), user, nil, &page)
	if len(page.Messages) != 10 || !page.HasMore || page.Messages[0].ID != ids[29] || page.Messages[9].ID != ids[20] {
		t.Fatalf("page 1 %+v", page)
	}
	e.call(200, "GET", fmt.Sprintf("/api/chat/channels/%d/messages?before_id=%d", ch.ID, ids[20]), user, nil, &page)
	if len(page.Messages) != 20 || page.HasMore || page.Messages[19].ID != ids[0] {
		t.Fatalf("page 2 %d more=%v", len(page.Messages), page.HasMore)
	}
	e.wantError(400, "GET", fmt.Sprintf("/api/chat/channels/%d/messages?limit=x", ch.ID), user, nil)
	e.wantError(404, "GET", "/api/chat/channels/9999/messages", user, nil)

	var thread struct {
		Messages []chat.MessageView `json:"messages"`
	}
	e.call(200, "GET", fmt.Sprintf("/api/chat/thread/%d", ids[29]), user, nil, &thread)
	if len(thread.Messages) != 20 || thread.Messages[0].ID != ids[10] || thread.Messages[19].ID != ids[29] {
		t.Fatalf("thread %d from %d", len(thread.Messages), thread.Messages[0].ID)
	}
	e.wantError(404, "GET", "/api/chat/thread/9999", user, nil)

	// Unread counts in the channel list, after mark_read.
	var list struct {
		Channels []chat.ChannelView `json:"channels"`
	}
	e.call(200, "GET", "/api/chat/channels", user, nil, &list)
	if list.Channels[1].UnreadCount != 30 {
		t.Fatalf("unread %+v", list.Channels)
	}
	u.send(map[string]any{"type": "mark_read", "message_id": ids[24]})
	if m := u.expect("unread_counts"); m["counts"].(map[string]any)["engineering"] != float64(5) {
		t.Fatalf("unread_counts %v", m)
	}
	e.call(200, "GET", "/api/chat/channels", user, nil, &list)
	if list.Channels[1].UnreadCount != 5 {
		t.Fatalf("unread after mark_read %+v", list.Channels)
	}

	e.wantError(403, "DELETE", fmt.Sprintf("/api/chat/channels/%d", ch.ID), user, nil)
	e.wantError(403, "DELETE", fmt.Sprintf("/api/chat/channels/%d", list.Channels[0].ID), admin, nil) // general
	e.call(200, "DELETE", fmt.Sprintf("/api/chat/channels/%d", ch.ID), admin, nil, nil)
	for _, c := range []*wsClient{u, a} {
		if m := c.expect("channel_deleted"); m["channel"] != "engineering" {
			t.Fatalf("deleted %v", m)
		}
	}
	e.wantError(404, "DELETE", fmt.Sprintf("/api/chat/channels/%d", ch.ID), admin, nil)
}

// TestChatConnectionLimit: at most 10 connections per user, 429 beyond.
func TestChatConnectionLimit(t *testing.T) {
	e := newChatEnv(t, "")
	admin := e.setup()
	for range 10 {
		e.dialChat(admin, false)
	}
	_, resp, err := e.tryDialChat(admin, false, "")
	if err == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th: %v %v", err, resp)
	}
}

// TestChatRouteTable: with chat on, its routes are in /openapi.json and refuse a request
// without credentials with 401.
func TestChatRouteTable(t *testing.T) {
	e := newChatEnv(t, "")
	e.setup()
	var spec struct {
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	e.call(200, "GET", "/openapi.json", "", nil, &spec)
	n := 0
	for _, rt := range apiRoutes(e.srv.openapi.routers...) {
		if !strings.HasPrefix(rt.template, "/api/chat") && rt.template != "/ws/chat" {
			continue
		}
		path := pathParam.ReplaceAllString(rt.template, "{$1}")
		for _, m := range rt.methods {
			n++
			if _, ok := spec.Paths[path][strings.ToLower(m)]; !ok {
				t.Errorf("%s %s is not in /openapi.json", m, path)
			}
			if publicRoutes[rt.template] {
				t.Errorf("%s is public", rt.template)
			}
			e.wantError(401, m, concretePath(rt.template), "", nil)
		}
	}
	if n != 7 {
		t.Fatalf("%d chat routes", n)
	}
}
