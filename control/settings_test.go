package control

import (
	"context"
	"testing"

	"github.com/relaycast/relaycast/ingest"
)

// TestServerSettings: admins read and change the settings, which apply at once (plain
// RTMP refused, registration closed) and survive a restart of the control plane.
func TestServerSettings(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	st := e.createStream(admin, map[string]any{"title": "s"})
	var set serverSettings
	e.call(200, "GET", "/api/admin/settings", admin, nil, &set)
	if !set.RTMPPlainEnabled || !set.RegistrationEnabled || set.ChatRetentionDays != 7 || set.NotificationRetentionDays != 30 || set.ActivityRetentionDays != 90 {
		t.Fatalf("defaults %+v", set)
	}
	e.wantError(403, "GET", "/api/admin/settings", bob, nil)
	e.wantError(400, "PUT", "/api/admin/settings", admin, map[string]any{"chat_retention_days": 0})

	plain := ingest.Request{Protocol: ingest.ProtocolRTMP, Key: st.StreamKey, RemoteAddr: "127.0.0.1:1"}
	if _, err := e.srv.Authorize(context.Background(), plain); err != nil {
		t.Fatalf("plain RTMP with the setting on: %v", err)
	}
	e.call(200, "PUT", "/api/admin/settings", admin, map[string]any{"rtmp_plain_enabled": false, "registration_enabled": false, "chat_retention_days": 3}, &set)
	if set.RTMPPlainEnabled || set.RegistrationEnabled || set.ChatRetentionDays != 3 || set.ActivityRetentionDays != 90 {
		t.Fatalf("after PUT %+v", set)
	}
	if _, err := e.srv.Authorize(context.Background(), plain); err == nil {
		t.Fatal("plain RTMP accepted with the setting off")
	}
	e.wantError(403, "POST", "/api/register", "", map[string]string{"username": "carol", "password": "long enough pw", "invite_code": "X"})

	// A new control plane on the same database keeps them.
	srv2, err := New(Config{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 32), RTMPPlainEnabled: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Close()
	if got := srv2.settings(); got.RTMPPlainEnabled || got.ChatRetentionDays != 3 {
		t.Fatalf("after a restart %+v", got)
	}
}
