package control

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSetupFlow(t *testing.T) {
	e := newEnv(t)
	var st map[string]any
	e.call(200, "GET", "/api/setup", "", nil, &st)
	if st["is_setup"] != false {
		t.Fatalf("fresh: %v", st)
	}
	e.wantError(400, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "short"})
	e.wantError(400, "POST", "/api/setup", "", map[string]string{"username": "a b", "password": "long enough"})
	var out struct {
		User struct {
			ID      int64 `json:"id"`
			IsAdmin bool  `json:"is_admin"`
		} `json:"user"`
	}
	e.call(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "long enough"}, &out)
	if out.User.ID == 0 || !out.User.IsAdmin {
		t.Fatalf("setup answer %+v", out)
	}
	e.call(200, "GET", "/api/setup", "", nil, &st)
	if st["is_setup"] != true {
		t.Fatalf("after setup: %v", st)
	}
	e.wantError(400, "POST", "/api/setup", "", map[string]string{"username": "other", "password": "long enough"})
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	e.setup()
	var out struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		User      struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
			IsAdmin  bool   `json:"is_admin"`
		} `json:"user"`
	}
	e.call(200, "POST", "/api/token", "", map[string]string{"username": "ADMIN", "password": "admin password"}, &out)
	exp, err := time.Parse(time.RFC3339, out.ExpiresAt)
	if err != nil || time.Until(exp) < 23*time.Hour || time.Until(exp) > 25*time.Hour {
		t.Fatalf("expires_at %q (%v)", out.ExpiresAt, err)
	}
	if strings.Count(out.Token, ".") != 2 || out.User.Username != "admin" || !out.User.IsAdmin || out.User.ID == 0 {
		t.Fatalf("login answer %+v", out)
	}
	if msg := e.wantError(401, "POST", "/api/token", "", map[string]string{"username": "admin", "password": "wrong password"}); msg != "invalid username or password" {
		t.Fatalf("bad password: %q", msg)
	}
	if msg := e.wantError(401, "POST", "/api/token", "", map[string]string{"username": "nobody", "password": "wrong password"}); msg != "invalid username or password" {
		t.Fatalf("unknown user: %q", msg)
	}
	e.wantError(400, "POST", "/api/token", "", map[string]string{"username": "admin"})
	var me map[string]any
	e.call(200, "GET", "/api/me", out.Token, nil, &me)
	if me["username"] != "admin" || me["is_admin"] != true || me["scopes"] != "*" || me["totp_enabled"] != false || me["created_at"] == "" {
		t.Fatalf("/api/me %v", me)
	}
}

func TestUnauthenticatedErrorShape(t *testing.T) {
	e := newEnv(t)
	code, raw, _ := e.do("GET", "/api/streams", "", nil)
	if code != 401 || string(raw) != `{"error":"Unauthorized: missing credentials","status":401}`+"\n" {
		t.Fatalf("unauthenticated: %d %s", code, raw)
	}
	for _, tok := range []string{"garbage", "a.b.c", "portal_" + strings.Repeat("0", 64), "live_abc"} {
		e.wantError(401, "GET", "/api/me", tok, nil)
	}
	// A malformed Authorization header is refused, not ignored.
	req := e.http.URL + "/api/me"
	r, _ := e.http.Client().Get(req)
	r.Body.Close()
	if r.StatusCode != 401 {
		t.Fatalf("no auth: %d", r.StatusCode)
	}
}

func TestJWTListRevokeAndExpiry(t *testing.T) {
	e := newEnv(t)
	tok1 := e.setup()
	tok2 := e.login("admin", "admin password")
	var list struct {
		Tokens []struct {
			ID        string `json:"id"`
			Current   bool   `json:"current"`
			IP        string `json:"ip"`
			ExpiresAt string `json:"expires_at"`
		} `json:"tokens"`
	}
	e.call(200, "GET", "/api/tokens", tok1, nil, &list)
	if len(list.Tokens) != 2 {
		t.Fatalf("tokens %+v", list)
	}
	var other string
	for _, x := range list.Tokens {
		if !x.Current {
			other = x.ID
		}
		if x.IP != "127.0.0.1" {
			t.Fatalf("token ip %q", x.IP)
		}
	}
	if other == "" {
		t.Fatalf("no non-current token in %+v", list)
	}
	e.wantError(400, "POST", "/api/token/revoke", tok1, map[string]string{})
	e.wantError(404, "POST", "/api/token/revoke", tok1, map[string]string{"token_id": "nope"})
	e.call(200, "POST", "/api/token/revoke", tok1, map[string]string{"token_id": other}, nil)
	if msg := e.wantError(401, "GET", "/api/me", tok2, nil); msg != "token revoked" {
		t.Fatalf("revoked token: %q", msg)
	}
	e.call(200, "GET", "/api/me", tok1, nil, nil)

	e.clock.Advance(24*time.Hour + time.Second)
	if msg := e.wantError(401, "GET", "/api/me", tok1, nil); msg != "token expired" {
		t.Fatalf("expired token: %q", msg)
	}
}

func TestJWTFromAnotherKeyIsRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.setup()
	f := newEnv(t, withConfig(func(c *Config) { c.SecretKey = []byte(strings.Repeat("k", 32)) }))
	f.setup()
	if msg := f.wantError(401, "GET", "/api/me", tok, nil); msg != "invalid token" {
		t.Fatalf("foreign token: %q", msg)
	}
}

type apiKeyAnswer struct {
	ID        int64   `json:"id"`
	Name      string  `json:"name"`
	APIKey    string  `json:"api_key"`
	KeyPrefix string  `json:"key_prefix"`
	Scopes    string  `json:"scopes"`
	ExpiresAt *string `json:"expires_at"`
}

func TestAPIKeyLifecycle(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var k apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "ci"}, &k)
	if !strings.HasPrefix(k.APIKey, "portal_") || !strings.HasPrefix(k.APIKey, k.KeyPrefix) || len(k.KeyPrefix) >= len(k.APIKey) ||
		k.Scopes != "*" || k.ExpiresAt != nil || k.Name != "ci" {
		t.Fatalf("create answer %+v", k)
	}
	var me map[string]any
	e.call(200, "GET", "/api/me", k.APIKey, nil, &me)
	if me["username"] != "admin" {
		t.Fatalf("me via key: %v", me)
	}
	e.call(200, "GET", "/api/me?token="+k.APIKey, "", nil, nil)

	raw := e.call(200, "GET", "/api/api-keys", admin, nil, nil)
	if strings.Contains(string(raw), k.APIKey) || !strings.Contains(string(raw), k.KeyPrefix) {
		t.Fatalf("list shows the full key or no prefix: %s", raw)
	}
	e.wantError(404, "POST", "/api/api-keys/999/revoke", admin, nil)
	e.call(200, "POST", fmt.Sprintf("/api/api-keys/%d/revoke", k.ID), admin, nil, nil)
	if msg := e.wantError(401, "GET", "/api/me", k.APIKey, nil); msg != "API key revoked" {
		t.Fatalf("revoked: %q", msg)
	}
	raw = e.call(200, "GET", "/api/api-keys", admin, nil, nil)
	if !strings.Contains(string(raw), `"revoked":true`) {
		t.Fatalf("revoked key not listed as revoked: %s", raw)
	}
	e.call(200, "DELETE", fmt.Sprintf("/api/api-keys/%d", k.ID), admin, nil, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/api-keys/%d", k.ID), admin, nil)
	e.wantError(401, "GET", "/api/me", k.APIKey, nil)

	// Another user cannot touch the admin's keys.
	var k2 apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "x"}, &k2)
	bob := e.user(admin, "bob")
	e.wantError(404, "POST", fmt.Sprintf("/api/api-keys/%d/revoke", k2.ID), bob, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/api-keys/%d", k2.ID), bob, nil)

	e.wantError(400, "POST", "/api/api-keys", admin, map[string]any{"name": ""})
	e.wantError(400, "POST", "/api/api-keys", admin, map[string]any{"name": "x", "expires_in_days": 0})
	e.wantError(400, "POST", "/api/api-keys", admin, map[string]any{"name": "x", "scopes": "streams:read,root"})
}

func TestAPIKeyExpiry(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var k apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "short", "expires_in_days": 1}, &k)
	if k.ExpiresAt == nil {
		t.Fatal("no expires_at")
	}
	e.call(200, "GET", "/api/me", k.APIKey, nil, nil)
	e.clock.Advance(24*time.Hour + time.Minute)
	if msg := e.wantError(401, "GET", "/api/me", k.APIKey, nil); msg != "API key expired" {
		t.Fatalf("expired: %q", msg)
	}
}

func TestAPIKeyScopes(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var ro, rw apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "ro", "scopes": " streams:read , streams:read"}, &ro)
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "rw", "scopes": "streams:write"}, &rw)
	if ro.Scopes != "streams:read" {
		t.Fatalf("scopes not normalised: %q", ro.Scopes)
	}
	var me map[string]any
	e.call(200, "GET", "/api/me", ro.APIKey, nil, &me)
	if me["scopes"] != "streams:read" {
		t.Fatalf("me scopes %v", me["scopes"])
	}
	e.call(200, "GET", "/api/streams", ro.APIKey, nil, nil)
	e.call(200, "GET", "/api/stats/public", ro.APIKey, nil, nil)
	e.wantError(403, "POST", "/api/streams", ro.APIKey, map[string]any{"title": "x"})
	e.wantError(403, "GET", "/api/api-keys", ro.APIKey, nil)
	e.wantError(403, "GET", "/api/admin/users", ro.APIKey, nil)
	st := e.createStream(rw.APIKey, map[string]any{"title": "by key"})
	e.call(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), rw.APIKey, nil, nil)
	e.wantError(403, "GET", "/api/tokens", rw.APIKey, nil)
}

func TestScopesAllowTable(t *testing.T) {
	for _, tc := range []struct {
		scopes, need string
		want         bool
	}{
		{"*", scopeAll, true},
		{"*", scopeStreamsWrite, true},
		{"streams:read", needAnyScope, true},
		{"streams:read", scopeStreamsRead, true},
		{"streams:read", scopeStreamsWrite, false},
		{"streams:read", scopeAll, false},
		{"streams:write", scopeStreamsRead, true},
		{"streams:*", scopeStreamsWrite, true},
		{"streams:*", scopeAll, false},
		{"streams:read,streams:write", scopeStreamsWrite, true},
		{"", scopeStreamsRead, false},
		{"chat:write", scopeChatRead, true},
		{"chat:read", scopeChatWrite, false},
		{"chat:*", scopeChatWrite, true},
		{"streams:*", scopeChatRead, false},
		{"chat:*", scopeStreamsRead, false},
	} {
		if got := scopesAllow(tc.scopes, tc.need); got != tc.want {
			t.Errorf("scopesAllow(%q, %q) = %v, want %v", tc.scopes, tc.need, got, tc.want)
		}
	}
	for in, want := range map[string]string{"": "*", " ": "*", "streams:read,*": "*", "streams:write, streams:read": "streams:write,streams:read"} {
		if got, err := parseScopes(in); err != nil || got != want {
			t.Errorf("parseScopes(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestAdminRoutes(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	e.wantError(403, "GET", "/api/admin/users", bob, nil)
	e.wantError(403, "POST", "/api/admin/users", bob, map[string]any{"username": "eve", "password": "eve password"})
	e.wantError(400, "POST", "/api/admin/users", admin, map[string]any{"username": "BOB", "password": "another password"})
	var list struct {
		Users []struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
			IsAdmin  bool   `json:"is_admin"`
		} `json:"users"`
	}
	e.call(200, "GET", "/api/admin/users", admin, nil, &list)
	if len(list.Users) != 2 || list.Users[1].Username != "bob" || list.Users[1].IsAdmin {
		t.Fatalf("users %+v", list)
	}
	e.wantError(403, "DELETE", fmt.Sprintf("/api/admin/users/%d", list.Users[0].ID), bob, nil)
	e.wantError(400, "DELETE", fmt.Sprintf("/api/admin/users/%d", list.Users[0].ID), admin, nil)
	e.call(200, "DELETE", fmt.Sprintf("/api/admin/users/%d", list.Users[1].ID), admin, nil, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/admin/users/%d", list.Users[1].ID), admin, nil)
	e.wantError(401, "GET", "/api/me", bob, nil) // a deleted user's token dies with it
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t)
	for i := 0; i < authRateLimit; i++ {
		code, _, hdr := e.do("POST", "/api/token", "", map[string]string{"username": "x", "password": "y"})
		if code != 401 {
			t.Fatalf("attempt %d: %d", i, code)
		}
		if hdr.Get("X-RateLimit-Limit") != "10" || hdr.Get("X-RateLimit-Remaining") != fmt.Sprint(authRateLimit-1-i) || hdr.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("attempt %d headers %v", i, hdr)
		}
	}
	e.wantError(429, "POST", "/api/token", "", map[string]string{"username": "x", "password": "y"})
	e.wantError(429, "POST", "/api/setup", "", map[string]string{"username": "x", "password": "yyyyyyyy"})
	e.clock.Advance(authRateWindow)
	e.wantError(401, "POST", "/api/token", "", map[string]string{"username": "x", "password": "y"})
}

func TestJSONAndRoutingErrors(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	if msg := e.wantError(400, "POST", "/api/streams", admin, `{"title":"x","color":"red"}`); !strings.Contains(msg, "unknown field") {
		t.Fatalf("unknown field: %q", msg)
	}
	e.wantError(400, "POST", "/api/streams", admin, `{"title":`)
	e.wantError(400, "POST", "/api/streams", admin, `{"title":"x"} {}`)
	e.wantError(400, "POST", "/api/streams", admin, `{"title":5}`)
	e.wantError(400, "POST", "/api/streams", admin, ``)
	e.wantError(413, "POST", "/api/streams", admin, `{"title":"`+strings.Repeat("a", maxBodyBytes)+`"}`)
	e.wantError(404, "GET", "/api/nothing", admin, nil)
	e.wantError(404, "GET", "/api/streams/abc", admin, nil)
	e.wantError(405, "PATCH", "/api/streams", admin, nil)
	e.wantError(405, "DELETE", "/health", "", nil)
}

func TestAuthorizationHeaderParsing(t *testing.T) {
	for _, tc := range []struct {
		header, query, want string
		ok                  bool
	}{
		{"Bearer abc", "", "abc", true},
		{"bearer  abc ", "", "abc", true},
		{"Basic abc", "", "", false},
		{"Bearer", "", "", false},
		{"", "q", "q", true},
		{"", "", "", false},
		{"Bearer h", "q", "h", true},
	} {
		r, _ := newRequest(tc.header, tc.query)
		got, err := credential(r)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("header %q query %q: %q %v", tc.header, tc.query, got, err)
		}
	}
}

func TestMeJSONShape(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	raw := e.call(200, "GET", "/api/me", admin, nil, nil)
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	want := []string{"anonymous", "avatar", "created_at", "id", "is_admin", "nickname", "scopes", "status", "status_message", "totp_enabled", "username"}
	if got := sortedKeys(m); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("/api/me keys %v, want %v", got, want)
	}
}

// TestAPIRateLimit: each user and each API key has its own budget per minute; answers
// carry X-RateLimit-*; past the limit, 429 in the error shape with Retry-After, until the
// window resets.
func TestAPIRateLimit(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.APIRateLimit = 5 }))
	admin := e.setup()
	bob := e.user(admin, "bob")
	e.clock.Advance(61 * time.Second) // a fresh window
	for i := 0; i < 5; i++ {
		code, _, h := e.do("GET", "/api/me", admin, nil)
		if code != 200 || h.Get("X-RateLimit-Limit") != "5" || h.Get("X-RateLimit-Remaining") != strconv.Itoa(4-i) || h.Get("X-RateLimit-Reset") == "" {
			t.Fatalf("request %d: %d %v", i, code, h)
		}
	}
	code, body, h := e.do("GET", "/api/me", admin, nil)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(string(body), `"status":429`) {
		t.Fatalf("6th request: %d %s %v", code, body, h)
	}
	// Another user has a budget of their own.
	if code, _, _ := e.do("GET", "/api/me", bob, nil); code != 200 {
		t.Fatalf("another user: %d", code)
	}
	e.clock.Advance(61 * time.Second)
	if code, _, _ := e.do("GET", "/api/me", admin, nil); code != 200 {
		t.Fatalf("after the window: %d", code)
	}
}
