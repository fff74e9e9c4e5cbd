package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/control/store"
)

func TestMain(m *testing.M) {
	// Cheap password hashing for tests; TestPasswordHashProductionCost covers the real cost.
	argonCost.memory, argonCost.time, argonCost.threads = 64, 1, 1
	os.Exit(m.Run())
}

// clock is a test clock: real time plus an offset the test moves forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// env is a running control plane over a real SQLite file, a real bus and real HTTP.
type env struct {
	t     *testing.T
	srv   *Server
	hub   *bus.Hub
	store *store.Store
	http  *httptest.Server
	clock *clock
	// dbPath is the SQLite file (its -wal and -shm files are beside it).
	dbPath string
}

type envOpt func(*Config, *bus.Config)

func withConfig(f func(*Config)) envOpt { return func(c *Config, _ *bus.Config) { f(c) } }

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "relaycast.db")
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{}
	cfg := Config{
		Store:            st,
		SecretKey:        bytes.Repeat([]byte{7}, 32),
		Version:          "test",
		PublicURL:        "http://127.0.0.1:8080",
		RTMPURL:          "rtmp://127.0.0.1:1935/live",
		RTMPSURL:         "rtmps://127.0.0.1:1936/live",
		RTMPPlainEnabled: true,
		RTMPPlainKeys:    true,
		APIRateLimit:     -1, // tests poll; TestAPIRateLimit sets a limit
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:              clk.Now,
	}
	bcfg := bus.Config{ReconnectGrace: 200 * time.Millisecond}
	for _, o := range opts {
		o(&cfg, &bcfg)
	}
	hub := bus.New(bcfg)
	cfg.Hub = hub
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ts.Close()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
		hub.Close()
		st.Close()
	})
	return &env{t: t, srv: srv, hub: hub, store: st, http: ts, clock: clk, dbPath: dbPath}
}

// do sends a request; body is JSON-encoded unless it is a string (sent as is) or nil.
func (e *env) do(method, path, token string, body any) (int, []byte, http.Header) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, resp.Header
}

// call is do that checks the status and decodes the answer into out (if not nil).
func (e *env) call(want int, method, path, token string, body, out any) []byte {
	e.t.Helper()
	code, raw, _ := e.do(method, path, token, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return raw
}

// wantError checks an error answer: status and the exact error shape.
func (e *env) wantError(want int, method, path, token string, body any) string {
	e.t.Helper()
	code, raw, hdr := e.do(method, path, token, body)
	if code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, raw)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		e.t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%s %s: error body %q: %v", method, path, raw, err)
	}
	msg, _ := m["error"].(string)
	if len(m) != 2 || msg == "" || m["status"] != float64(want) {
		e.t.Fatalf("%s %s: error body %s is not {\"error\":\"...\",\"status\":%d}", method, path, raw, want)
	}
	return msg
}

// setup creates the first admin and returns its login token.
func (e *env) setup() string {
	e.t.Helper()
	e.call(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "admin password"}, nil)
	return e.login("admin", "admin password")
}

func (e *env) login(user, pass string) string {
	e.t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	e.call(200, "POST", "/api/token", "", map[string]string{"username": user, "password": pass}, &out)
	return out.Token
}

// user creates a user through the admin API and returns its login token.
func (e *env) user(admin, name string) string {
	e.t.Helper()
	e.call(200, "POST", "/api/admin/users", admin, map[string]any{"username": name, "password": name + " password"}, nil)
	return e.login(name, name+" password")
}

// createStream creates a stream and returns its JSON (with the key).
func (e *env) createStream(token string, body map[string]any) streamJSON {
	e.t.Helper()
	var st streamJSON
	e.call(200, "POST", "/api/streams", token, body, &st)
	return st
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newRequest(header, query string) (*http.Request, error) {
	u := "http://x/api/me"
	if query != "" {
		u += "?token=" + query
	}
	r, err := http.NewRequest("GET", u, nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return r, err
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
