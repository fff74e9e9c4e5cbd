package control

import (
	"testing"
	"time"
)

// TestRegister: the daily invite code (admin reads it, rotating it kills the old one)
// lets one account per address per day in.
func TestRegister(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var inv struct {
		Code       string `json:"invite_code"`
		ValidUntil string `json:"valid_until"`
	}
	e.call(200, "GET", "/api/admin/invite-code", admin, nil, &inv)
	if len(inv.Code) != 10 || inv.ValidUntil == "" {
		t.Fatalf("invite code %+v", inv)
	}
	bob := e.user(admin, "bob")
	e.wantError(403, "GET", "/api/admin/invite-code", bob, nil)

	body := func(user, code string) map[string]string {
		return map[string]string{"username": user, "password": "long enough pw", "invite_code": code}
	}
	e.wantError(403, "POST", "/api/register", "", body("carol", "WRONGCODE0"))
	var old struct {
		Code string `json:"invite_code"`
	}
	e.call(200, "POST", "/api/admin/invite-code/rotate", admin, nil, &old)
	if old.Code == inv.Code {
		t.Fatal("rotation kept the code")
	}
	e.wantError(403, "POST", "/api/register", "", body("carol", inv.Code)) // rotated away
	e.wantError(400, "POST", "/api/register", "", map[string]string{"username": "carol", "password": "short", "invite_code": old.Code})
	var reg struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
		Message  string `json:"message"`
	}
	e.call(200, "POST", "/api/register", "", body("carol", old.Code), &reg)
	if reg.ID == 0 || reg.Username != "carol" || reg.Message != "Registration successful" {
		t.Fatalf("register %+v", reg)
	}
	e.login("carol", "long enough pw")
	e.wantError(429, "POST", "/api/register", "", body("dave", old.Code)) // same address, same day
	e.clock.Advance(25 * time.Hour)                                       // a new day: a new code
	e.wantError(403, "POST", "/api/register", "", body("dave", old.Code))
}

// TestProfile: password change (wrong current refused; other sessions signed out), status,
// nickname, avatar and anonymous mode, validated and shown by /api/me.
func TestProfile(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	other := e.login("admin", "admin password")
	e.wantError(400, "POST", "/api/me/password", admin, map[string]string{"current_password": "nope", "new_password": "another long one"})
	e.wantError(400, "POST", "/api/me/password", admin, map[string]string{"current_password": "admin password", "new_password": "short"})
	e.call(200, "POST", "/api/me/password", admin, map[string]string{"current_password": "admin password", "new_password": "another long one"}, nil)
	e.call(200, "GET", "/api/me", admin, nil, nil) // this session stays
	e.wantError(401, "GET", "/api/me", other, nil) // the other one is signed out
	e.wantError(401, "POST", "/api/token", "", map[string]string{"username": "admin", "password": "admin password"})
	tok := e.login("admin", "another long one")

	e.wantError(400, "PUT", "/api/me/status", tok, map[string]string{"status": "sleeping"})
	e.call(200, "PUT", "/api/me/status", tok, map[string]string{"status": "dnd", "status_message": "live soon"}, nil)
	e.wantError(400, "PUT", "/api/me/nickname", tok, map[string]string{"nickname": "x"})
	e.wantError(400, "PUT", "/api/me/nickname", tok, map[string]string{"nickname": "<script>"})
	e.call(200, "PUT", "/api/me/nickname", tok, map[string]string{"nickname": "Big Al"}, nil)
	e.wantError(400, "PUT", "/api/me/avatar", tok, map[string]any{"color": "red"})
	e.wantError(400, "PUT", "/api/me/avatar", tok, map[string]any{"initials": "ABC"})
	e.call(200, "PUT", "/api/me/avatar", tok, map[string]any{"color": "#12abEF", "emoji": "🎸", "initials": "BA"}, nil)
	e.wantError(400, "PUT", "/api/me/anonymous", tok, map[string]any{})
	e.call(200, "PUT", "/api/me/anonymous", tok, map[string]any{"anonymous": true}, nil)
	var me struct {
		Status        string `json:"status"`
		StatusMessage string `json:"status_message"`
		Nickname      string `json:"nickname"`
		Avatar        struct {
			Color, Initials string
			Emoji           *string
		} `json:"avatar"`
		Anonymous bool `json:"anonymous"`
	}
	e.call(200, "GET", "/api/me", tok, nil, &me)
	if me.Status != "dnd" || me.StatusMessage != "live soon" || me.Nickname != "Big Al" || me.Avatar.Color != "#12abEF" ||
		me.Avatar.Emoji == nil || *me.Avatar.Emoji != "🎸" || me.Avatar.Initials != "BA" || !me.Anonymous {
		t.Fatalf("/api/me %+v", me)
	}
	e.call(200, "PUT", "/api/me/nickname", tok, map[string]string{"nickname": ""}, nil)
	var cleared struct {
		Nickname *string `json:"nickname"`
	}
	e.call(200, "GET", "/api/me", tok, nil, &cleared)
	if cleared.Nickname != nil {
		t.Fatalf("nickname after clearing: %q", *cleared.Nickname)
	}
}
