package chat

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// fakeClock is the domain clock of a test: a fixed start that the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// harness is a hub over an in-memory store behind a real HTTP server. The test handler
// stands in for control's authentication: ?user=NAME (a user added with addUser, or
// "uN" for an ordinary user of id N created on the fly).
type harness struct {
	t     *testing.T
	hub   *Hub
	store *memStore
	srv   *httptest.Server
	clock *fakeClock

	mu    sync.Mutex
	users map[string]User
}

func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, store: newMemStore(), clock: newFakeClock(), users: map[string]User{}}
	cfg := Config{
		Store:  h.store,
		Now:    h.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	hub, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.hub = hub
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := h.user(r.URL.Query().Get("user"))
		if !ok {
			writeHTTPError(w, http.StatusUnauthorized, "unknown user")
			return
		}
		hub.ServeWS(w, r, u)
	}))
	t.Cleanup(func() {
		hub.Close()
		h.srv.Close()
	})
	return h
}

// addUser registers a user of the test.
func (h *harness) addUser(name string, role Role) User {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := User{ID: int64(len(h.users) + 1), Username: name, Role: role}
	h.users[name] = u
	h.store.addUser(u)
	return u
}

func (h *harness) user(name string) (User, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if u, ok := h.users[name]; ok {
		return u, true
	}
	if n, err := strconv.Atoi(strings.TrimPrefix(name, "u")); err == nil && strings.HasPrefix(name, "u") {
		u := User{ID: int64(100000 + n), Username: name, Role: RoleUser}
		h.users[name] = u
		h.store.addUser(u)
		return u, true
	}
	return User{}, false
}

func (h *harness) wsURL(name string) string {
	return "ws" + strings.TrimPrefix(h.srv.URL, "http") + "/ws/chat?user=" + name
}

// client is a test WebSocket client whose reader goroutine queues every server message.
type client struct {
	t      *testing.T
	name   string
	ws     *websocket.Conn
	events chan event
	done   chan struct{}
	// closeErr is the error that ended the reader (a *websocket.CloseError for a close
	// frame); read after done.
	closeErr error
}

// event is a server message, decoded loosely.
type event map[string]any

func (e event) typ() string { s, _ := e["type"].(string); return s }

func (e event) str(k string) string { s, _ := e[k].(string); return s }

func (e event) num(k string) int64 { f, _ := e[k].(float64); return int64(f) }

// dial connects name and starts its reader.
func (h *harness) dial(name string) *client {
	h.t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(h.wsURL(name), nil)
	if err != nil {
		if resp != nil {
			body, _ := io.ReadAll(resp.Body)
			h.t.Fatalf("dial %s: %v: %d %s", name, err, resp.StatusCode, body)
		}
		h.t.Fatalf("dial %s: %v", name, err)
	}
	return startClient(h.t, name, ws)
}

func startClient(t *testing.T, name string, ws *websocket.Conn) *client {
	c := &client{t: t, name: name, ws: ws, events: make(chan event, 10000), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				c.closeErr = err
				return
			}
			var e event
			if err := json.Unmarshal(data, &e); err != nil {
				c.closeErr = err
				return
			}
			c.events <- e
		}
	}()
	t.Cleanup(func() {
		ws.Close()
		<-c.done
	})
	return c
}

// send writes v as a JSON text frame.
func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("%s: send: %v", c.name, err)
	}
}

// next returns the next server message.
func (c *client) next() event {
	c.t.Helper()
	select {
	case e := <-c.events:
		return e
	case <-c.done:
		select {
		case e := <-c.events:
			return e
		default:
		}
		c.t.Fatalf("%s: connection ended: %v", c.name, c.closeErr)
	case <-time.After(5 * time.Second):
		c.t.Fatalf("%s: no message within 5 s", c.name)
	}
	return nil
}

// expect returns the next server message and checks its type.
func (c *client) expect(typ string) event {
	c.t.Helper()
	e := c.next()
	if e.typ() != typ {
		c.t.Fatalf("%s: got %v, want a %q message", c.name, e, typ)
	}
	return e
}

// nextMessage returns the next "message" event, skipping presence events (user_joined,
// user_left).
func (c *client) nextMessage() event {
	c.t.Helper()
	for {
		e := c.next()
		switch e.typ() {
		case "user_joined", "user_left":
			continue
		case "message":
			return e
		}
		c.t.Fatalf("%s: got %v, want a message", c.name, e)
	}
}

// quiet checks that no message arrives within d.
func (c *client) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case e := <-c.events:
		c.t.Fatalf("%s: unexpected %v", c.name, e)
	case <-time.After(d):
	}
}

// join joins channel and returns the four join messages.
func (c *client) join(channel string) (info, history, pins, users event) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "channel": channel})
	return c.expect("channel_info"), c.expect("history"), c.expect("pinned_messages"), c.expect("users")
}

// connect dials name, takes its unread_counts and joins channel.
func (h *harness) connect(name, channel string) *client {
	h.t.Helper()
	c := h.dial(name)
	c.expect("unread_counts")
	c.join(channel)
	return c
}

// waitClosed waits for the server to end c's connection and returns the reader's error.
func (c *client) waitClosed(d time.Duration) error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.closeErr
	case <-time.After(d):
		c.t.Fatalf("%s: still connected after %v", c.name, d)
	}
	return nil
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
