package control

// Accounts: registration with the daily invite code, and what users change of their own
// account (password, chat status, nickname, avatar, anonymous mode).

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relaycast/relaycast/control/store"
)

// Registration limits.
const (
	registerPerIP     = 1 // accounts per IP per registerWindow, as the reference says
	registerWindow    = 24 * time.Hour
	inviteEpochKey    = "invite_code_epoch"
	maxStatusMessage  = 100
	inviteCodeLetters = 10
)

var (
	nicknameRE = regexp.MustCompile(`^[\p{L}\p{N} -]{2,32}$`)
	colorRE    = regexp.MustCompile(`^#[0-9A-Fa-f]{6}$`)
	statuses   = map[string]bool{"online": true, "away": true, "busy": true, "dnd": true, "offline": true}
)

// inviteCode returns the invite code of day (UTC), which changes every day and when an
// admin rotates it (the epoch).
func (s *Server) inviteCode(ctx context.Context, day time.Time) (string, error) {
	epoch, _, err := s.store.Setting(ctx, inviteEpochKey)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, s.inviteKey)
	fmt.Fprintf(mac, "%s/%s", day.UTC().Format("2006-01-02"), epoch)
	code := base32.StdEncoding.EncodeToString(mac.Sum(nil))
	return strings.ToUpper(code[:inviteCodeLetters]), nil
}

// handleRegister answers POST /api/register {username, password, invite_code}.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Username   string `json:"username"`
		Password   string `json:"password"`
		InviteCode string `json:"invite_code"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if !s.settings().RegistrationEnabled {
		return errorf(http.StatusForbidden, "registration is closed")
	}
	want, err := s.inviteCode(r.Context(), s.now())
	if err != nil {
		return err
	}
	if !hmac.Equal([]byte(strings.ToUpper(strings.TrimSpace(req.InviteCode))), []byte(want)) {
		return errorf(http.StatusForbidden, "invalid invite code")
	}
	u, err := s.newUser(req.Username, req.Password, false)
	if err != nil {
		return err
	}
	// One account per address per day, counted only for a registration that would succeed.
	if ok, _, _ := s.registerLimit.allow(clientIP(r)); !ok {
		return errorf(http.StatusTooManyRequests, "only one account per address per 24 hours")
	}
	u, err = s.store.CreateUser(r.Context(), u)
	if errors.Is(err, store.ErrConflict) {
		return errorf(http.StatusBadRequest, "username already taken")
	}
	if err != nil {
		return err
	}
	s.log.Info("user registered", "user_id", u.ID, "username", u.Username)
	s.emitWebhook(EventUserJoined, map[string]any{"user_id": u.ID, "username": u.Username})
	writeJSON(w, http.StatusOK, map[string]any{"id": u.ID, "username": u.Username, "message": "Registration successful"})
	return nil
}

// handleInviteCode answers GET /api/admin/invite-code: today's code.
func (s *Server) handleInviteCode(w http.ResponseWriter, r *http.Request, _ *principal) error {
	now := s.now()
	code, err := s.inviteCode(r.Context(), now)
	if err != nil {
		return err
	}
	next := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	writeJSON(w, http.StatusOK, map[string]any{"invite_code": code, "valid_until": apiTime(next)})
	return nil
}

// handleRotateInviteCode answers POST /api/admin/invite-code/rotate: today's code stops
// working and a new one is shown.
func (s *Server) handleRotateInviteCode(w http.ResponseWriter, r *http.Request, p *principal) error {
	epoch, _, err := s.store.Setting(r.Context(), inviteEpochKey)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(epoch)
	if err := s.store.SetSetting(r.Context(), inviteEpochKey, strconv.Itoa(n+1)); err != nil {
		return err
	}
	s.log.Info("invite code rotated", "by", p.User.ID)
	return s.handleInviteCode(w, r, p)
}

// handleChangePassword answers POST /api/me/password {current_password, new_password}:
// every other login session of the user is signed out.
func (s *Server) handleChangePassword(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		Current string `json:"current_password"`
		New     string `json:"new_password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if len(req.Current) > maxPasswordLen || !verifyPassword(p.User.PasswordHash, req.Current) {
		return errorf(http.StatusBadRequest, "current password is wrong")
	}
	if utf8.RuneCountInString(req.New) < minPasswordLen || len(req.New) > maxPasswordLen {
		return errorf(http.StatusBadRequest, "new password must be %d to %d characters", minPasswordLen, maxPasswordLen)
	}
	if err := s.store.SetPasswordHash(r.Context(), p.User.ID, hashPassword(req.New)); err != nil {
		return err
	}
	n, err := s.store.RevokeSessionsExcept(r.Context(), p.User.ID, p.JTI)
	if err != nil {
		return err
	}
	s.addNotification(r.Context(), p.User.ID, "security_password", "Password changed",
		fmt.Sprintf("Your password was changed; %d other sign-ins were signed out", n))
	writeJSON(w, http.StatusOK, map[string]any{"message": "password changed", "sessions_revoked": n})
	return nil
}

// avatarJSON is the avatar on the wire.
type avatarJSON struct {
	Color    string  `json:"color,omitempty"`
	Emoji    *string `json:"emoji"`
	Initials string  `json:"initials,omitempty"`
}

// updateProfile applies change to the caller's profile and answers it.
func (s *Server) updateProfile(w http.ResponseWriter, r *http.Request, p *principal, change func(*store.Profile) error) error {
	prof, err := s.store.ProfileOf(r.Context(), p.User.ID)
	if err != nil {
		return err
	}
	if err := change(&prof); err != nil {
		return err
	}
	if err := s.store.SetProfile(r.Context(), p.User.ID, prof); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, profileView(prof))
	return nil
}

func profileView(p store.Profile) map[string]any {
	var avatar any
	if p.Avatar != "" {
		avatar = json.RawMessage(p.Avatar)
	}
	var nick any
	if p.Nickname != "" {
		nick = p.Nickname
	}
	return map[string]any{"status": p.Status, "status_message": p.StatusMessage, "nickname": nick,
		"avatar": avatar, "anonymous": p.Anonymous}
}

// handleSetStatus answers PUT /api/me/status {status, status_message}.
func (s *Server) handleSetStatus(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		Status        string  `json:"status"`
		StatusMessage *string `json:"status_message"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	return s.updateProfile(w, r, p, func(prof *store.Profile) error {
		if !statuses[req.Status] {
			return errorf(http.StatusBadRequest, "status must be online, away, busy, dnd or offline")
		}
		prof.Status = req.Status
		if req.StatusMessage != nil {
			msg := strings.TrimSpace(*req.StatusMessage)
			if utf8.RuneCountInString(msg) > maxStatusMessage || strings.ContainsFunc(msg, isControl) {
				return errorf(http.StatusBadRequest, "status_message must be at most %d characters", maxStatusMessage)
			}
			prof.StatusMessage = msg
		}
		return nil
	})
}

// handleSetNickname answers PUT /api/me/nickname {nickname} ("" clears it).
func (s *Server) handleSetNickname(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		Nickname string `json:"nickname"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	return s.updateProfile(w, r, p, func(prof *store.Profile) error {
		nick := strings.TrimSpace(req.Nickname)
		if nick != "" && !nicknameRE.MatchString(nick) {
			return errorf(http.StatusBadRequest, "nickname must be 2-32 letters, digits, spaces or dashes")
		}
		prof.Nickname = nick
		return nil
	})
}

// handleSetAvatar answers PUT /api/me/avatar {color, emoji, initials}.
func (s *Server) handleSetAvatar(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req avatarJSON
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	return s.updateProfile(w, r, p, func(prof *store.Profile) error {
		if req.Color != "" && !colorRE.MatchString(req.Color) {
			return errorf(http.StatusBadRequest, "color must be #RRGGBB")
		}
		if n := utf8.RuneCountInString(req.Initials); n > 2 || strings.ContainsFunc(req.Initials, isControl) ||
			strings.ContainsRune(req.Initials, ' ') {
			return errorf(http.StatusBadRequest, "initials must be 1 or 2 characters")
		}
		if req.Emoji != nil {
			e := *req.Emoji
			if e == "" {
				req.Emoji = nil
			} else if utf8.RuneCountInString(e) > 8 || len(e) > 32 || strings.ContainsFunc(e, isControl) {
				return errorf(http.StatusBadRequest, "emoji must be one emoji")
			}
		}
		b, _ := json.Marshal(req)
		prof.Avatar = string(b)
		return nil
	})
}

// handleSetAnonymous answers PUT /api/me/anonymous {anonymous}.
func (s *Server) handleSetAnonymous(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		Anonymous *bool `json:"anonymous"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if req.Anonymous == nil {
		return errorf(http.StatusBadRequest, "anonymous (true or false) is required")
	}
	return s.updateProfile(w, r, p, func(prof *store.Profile) error {
		prof.Anonymous = *req.Anonymous
		return nil
	})
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }
