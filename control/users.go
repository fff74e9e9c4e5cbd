package control

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/relaycast/relaycast/control/store"
)

// usernameRE: 3 to 32 letters, digits, '.', '_' or '-'.
var usernameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{3,32}$`)

// userJSON is a user on the wire.
type userJSON struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	IsAdmin     bool   `json:"is_admin"`
	CreatedAt   string `json:"created_at"`
	TOTPEnabled bool   `json:"totp_enabled"`
}

func userView(u store.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, IsAdmin: u.IsAdmin, CreatedAt: apiTime(u.CreatedAt), TOTPEnabled: u.TOTPEnabled}
}

// apiTime formats a time as RFC 3339 UTC with second precision.
func apiTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

// apiTimePtr is apiTime, with nil for the zero time (JSON null).
func apiTimePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := apiTime(t)
	return &s
}

// newUser validates a username and password and returns the user to store.
func (s *Server) newUser(username, password string, admin bool) (store.User, error) {
	if !usernameRE.MatchString(username) {
		return store.User{}, errorf(http.StatusBadRequest, "username must be 3-32 letters, digits, '.', '_' or '-'")
	}
	if len([]rune(password)) < minPasswordLen {
		return store.User{}, errorf(http.StatusBadRequest, "password must be at least %d characters", minPasswordLen)
	}
	if len(password) > maxPasswordLen {
		return store.User{}, errorf(http.StatusBadRequest, "password must be at most %d bytes", maxPasswordLen)
	}
	return store.User{Username: username, PasswordHash: hashPassword(password), IsAdmin: admin, CreatedAt: s.now()}, nil
}

type credentialsRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTPCode string `json:"totp_code"`
	IsAdmin  bool   `json:"is_admin"`
}

// handleSetupStatus answers GET /api/setup.
func (s *Server) handleSetupStatus(w http.ResponseWriter, r *http.Request) error {
	has, err := s.store.HasUsers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]bool{"is_setup": has})
	return nil
}

// handleSetup answers POST /api/setup: it creates the first user, an admin; 400 once any
// user exists.
func (s *Server) handleSetup(w http.ResponseWriter, r *http.Request) error {
	var req credentialsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if has, err := s.store.HasUsers(r.Context()); err != nil {
		return err
	} else if has {
		return errorf(http.StatusBadRequest, "setup already done")
	}
	u, err := s.newUser(req.Username, req.Password, true)
	if err != nil {
		return err
	}
	u, err = s.store.CreateFirstUser(r.Context(), u)
	if errors.Is(err, store.ErrAlreadySetUp) {
		return errorf(http.StatusBadRequest, "setup already done")
	}
	if err != nil {
		return err
	}
	s.log.Info("first admin created", "user_id", u.ID, "username", u.Username)
	writeJSON(w, http.StatusOK, map[string]any{"message": "admin user created", "user": userView(u)})
	return nil
}

// login checks a username and password and issues a login token.
func (s *Server) login(ctx context.Context, req credentialsRequest, ip, ua string) (string, time.Time, store.User, error) {
	if req.Username == "" || req.Password == "" {
		return "", time.Time{}, store.User{}, errorf(http.StatusBadRequest, "username and password are required")
	}
	bad := errorf(http.StatusUnauthorized, "invalid username or password")
	if len(req.Password) > maxPasswordLen || len(req.Username) > 64 {
		return "", time.Time{}, store.User{}, bad
	}
	u, err := s.store.UserByName(ctx, req.Username)
	if errors.Is(err, store.ErrNotFound) {
		s.dummyOnce.Do(func() { s.dummyHash = hashPassword(newID()) })
		verifyPassword(s.dummyHash, req.Password) // same cost as a known user
		return "", time.Time{}, store.User{}, bad
	}
	if err != nil {
		return "", time.Time{}, store.User{}, err
	}
	if !verifyPassword(u.PasswordHash, req.Password) {
		return "", time.Time{}, store.User{}, bad
	}
	if u.TOTPEnabled {
		if err := s.verifyLoginCode(ctx, u, req.TOTPCode); err != nil {
			return "", time.Time{}, store.User{}, err
		}
	}
	tok, exp, err := s.issueToken(ctx, u, ip, ua)
	if err == nil {
		s.activity(ctx, u.ID, "login", "Signed in from "+ip)
	}
	if err == nil && s.quiet.allow(fmt.Sprintf("login:%d:%s:%s", u.ID, ip, ua), s.now(), loginQuietFor) {
		s.addNotification(ctx, u.ID, notifyNewLogin, "New sign-in",
			fmt.Sprintf("Signed in from %s (%s)", ip, truncate(ua, 120)))
	}
	return tok, exp, u, err
}

// handleLogin answers POST /api/token.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req credentialsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	tok, exp, u, err := s.login(r.Context(), req, clientIP(r), userAgent(r))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token":      tok,
		"expires_at": apiTime(exp),
		"user":       map[string]any{"id": u.ID, "username": u.Username, "is_admin": u.IsAdmin},
	})
	return nil
}

// handleMe answers GET /api/me.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, p *principal) error {
	prof, err := s.store.ProfileOf(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	me := profileView(prof)
	for k, v := range map[string]any{
		"id":           p.User.ID,
		"username":     p.User.Username,
		"is_admin":     p.User.IsAdmin,
		"scopes":       p.Scopes,
		"created_at":   apiTime(p.User.CreatedAt),
		"totp_enabled": p.User.TOTPEnabled,
	} {
		me[k] = v
	}
	writeJSON(w, http.StatusOK, me)
	return nil
}

// handleListUsers answers GET /api/admin/users.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request, p *principal) error {
	users, err := s.store.ListUsers(r.Context())
	if err != nil {
		return err
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, userView(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
	return nil
}

// handleCreateUser answers POST /api/admin/users {username, password, is_admin}.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req credentialsRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	u, err := s.newUser(req.Username, req.Password, req.IsAdmin)
	if err != nil {
		return err
	}
	u, err = s.store.CreateUser(r.Context(), u)
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusBadRequest, "username already taken")
	}
	if err != nil {
		return err
	}
	s.log.Info("user created", "by", p.User.ID, "user_id", u.ID, "username", u.Username, "is_admin", u.IsAdmin)
	writeJSON(w, http.StatusOK, userView(u))
	return nil
}

// handleDeleteUser answers DELETE /api/admin/users/{id}. An admin cannot delete their own
// account (so the last admin cannot lock everyone out).
func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if id == p.User.ID {
		return errorf(http.StatusBadRequest, "you cannot delete your own account")
	}
	streams, err := s.store.ListStreamsByUser(r.Context(), id)
	if err != nil {
		return err
	}
	// Their streams' chat channels go first, so that their members are told.
	for _, st := range streams {
		if err := s.deleteStreamChannel(r.Context(), st.ID); err != nil {
			return err
		}
	}
	if err := s.store.DeleteUser(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "user not found")
	} else if err != nil {
		return err
	}
	// Their streams went with them (cascade): none may resolve from the cache, and their
	// relays stop.
	s.resolve.clear()
	for _, st := range streams {
		s.reloadRelays(st.PlaybackID)
	}
	if s.cfg.Chat != nil {
		s.cfg.Chat.DisconnectUser(id)
	}
	s.log.Info("user deleted", "by", p.User.ID, "user_id", id)
	writeJSON(w, http.StatusOK, map[string]string{"message": "user deleted"})
	return nil
}

// truncate shortens s to at most n bytes (on a rune boundary), for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
