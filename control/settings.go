package control

// Server settings (admin): switches and retention periods that take effect at once, kept
// in the settings table. GET/PUT /api/admin/settings; PUT changes only the fields given.
//
//   - rtmp_plain_enabled (RTMP_PLAIN_ENABLED): accept plain RTMP publishing at all; the
//     --rtmp-plain-enabled flag gives the value until an admin sets one.
//   - registration_enabled: POST /api/register accepts invite codes.
//   - chat_retention_days, notification_retention_days, activity_retention_days: data
//     retention (1 to 3650 days; defaults 7, 30 and 90).

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

const serverSettingsKey = "server_settings"

// serverSettings are the admin-editable settings.
type serverSettings struct {
	RTMPPlainEnabled          bool `json:"rtmp_plain_enabled"`
	RegistrationEnabled       bool `json:"registration_enabled"`
	ChatRetentionDays         int  `json:"chat_retention_days"`
	NotificationRetentionDays int  `json:"notification_retention_days"`
	ActivityRetentionDays     int  `json:"activity_retention_days"`
}

// settingsCell holds the current settings for lock-free reads on hot paths (publish
// authorization).
type settingsCell struct {
	p atomic.Pointer[serverSettings]
}

func (s *Server) settings() serverSettings { return *s.set.p.Load() }

func days(n int) time.Duration { return time.Duration(n) * 24 * time.Hour }

// loadSettings reads the stored settings over the defaults (New calls it).
func (s *Server) loadSettings(ctx context.Context) error {
	cur := serverSettings{RTMPPlainEnabled: s.cfg.RTMPPlainEnabled, RegistrationEnabled: true,
		ChatRetentionDays: 7, NotificationRetentionDays: int(notificationKeep / (24 * time.Hour)),
		ActivityRetentionDays: int(activityKeep / (24 * time.Hour))}
	raw, ok, err := s.store.Setting(ctx, serverSettingsKey)
	if err != nil {
		return err
	}
	if ok {
		_ = json.Unmarshal([]byte(raw), &cur) // fields absent from an older value keep their default
	}
	s.applySettings(cur)
	return nil
}

func (s *Server) applySettings(cur serverSettings) {
	s.set.p.Store(&cur)
	if s.cfg.Chat != nil {
		s.cfg.Chat.SetRetention(days(cur.ChatRetentionDays))
	}
}

// handleGetSettings answers GET /api/admin/settings.
func (s *Server) handleGetSettings(w http.ResponseWriter, _ *http.Request, _ *principal) error {
	writeJSON(w, http.StatusOK, s.settings())
	return nil
}

// handlePutSettings answers PUT /api/admin/settings.
func (s *Server) handlePutSettings(w http.ResponseWriter, r *http.Request, p *principal) error {
	var req struct {
		RTMPPlainEnabled          *bool `json:"rtmp_plain_enabled"`
		RegistrationEnabled       *bool `json:"registration_enabled"`
		ChatRetentionDays         *int  `json:"chat_retention_days"`
		NotificationRetentionDays *int  `json:"notification_retention_days"`
		ActivityRetentionDays     *int  `json:"activity_retention_days"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	s.setMu.Lock()
	defer s.setMu.Unlock()
	cur := s.settings()
	if req.RTMPPlainEnabled != nil {
		cur.RTMPPlainEnabled = *req.RTMPPlainEnabled
	}
	if req.RegistrationEnabled != nil {
		cur.RegistrationEnabled = *req.RegistrationEnabled
	}
	for _, f := range []struct {
		in   *int
		out  *int
		name string
	}{
		{req.ChatRetentionDays, &cur.ChatRetentionDays, "chat_retention_days"},
		{req.NotificationRetentionDays, &cur.NotificationRetentionDays, "notification_retention_days"},
		{req.ActivityRetentionDays, &cur.ActivityRetentionDays, "activity_retention_days"},
	} {
		if f.in == nil {
			continue
		}
		if *f.in < 1 || *f.in > 3650 {
			return errorf(http.StatusBadRequest, "%s must be 1 to 3650", f.name)
		}
		*f.out = *f.in
	}
	b, _ := json.Marshal(cur)
	if err := s.store.SetSetting(r.Context(), serverSettingsKey, string(b)); err != nil {
		return err
	}
	s.applySettings(cur)
	s.log.Info("server settings changed", "by", p.User.ID, "settings", string(b))
	s.activity(r.Context(), p.User.ID, "settings_changed", string(b))
	writeJSON(w, http.StatusOK, cur)
	return nil
}
