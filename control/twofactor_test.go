package control

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// TestTwoFactor: setup, verify (backup codes shown once), login needing a TOTP code that
// works once, backup codes that work once, disable; the secret is sealed at rest.
func TestTwoFactor(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var setup struct {
		Secret string `json:"secret"`
		URI    string `json:"provisioning_uri"`
	}
	e.call(200, "POST", "/api/user/2fa/setup", admin, nil, &setup)
	if len(setup.Secret) < 16 || !strings.HasPrefix(setup.URI, "otpauth://totp/relaycast:admin?") || !strings.Contains(setup.URI, setup.Secret) {
		t.Fatalf("setup %+v", setup)
	}
	code := func() string {
		c, err := totp.GenerateCode(setup.Secret, e.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	e.wantError(400, "POST", "/api/user/2fa/verify", admin, map[string]string{"code": "000000"})
	var verified struct {
		BackupCodes []string `json:"backup_codes"`
	}
	e.call(200, "POST", "/api/user/2fa/verify", admin, map[string]string{"code": code()}, &verified)
	if len(verified.BackupCodes) != 10 {
		t.Fatalf("backup codes %v", verified.BackupCodes)
	}
	var status struct {
		Enabled   bool `json:"enabled"`
		Remaining int  `json:"backup_codes_remaining"`
	}
	e.call(200, "GET", "/api/user/2fa/status", admin, nil, &status)
	if !status.Enabled || status.Remaining != 10 {
		t.Fatalf("status %+v", status)
	}
	var me struct {
		TOTPEnabled bool `json:"totp_enabled"`
	}
	e.call(200, "GET", "/api/me", admin, nil, &me)
	if !me.TOTPEnabled {
		t.Fatal("/api/me: totp_enabled false")
	}

	creds := func(c string) map[string]string {
		return map[string]string{"username": "admin", "password": "admin password", "totp_code": c}
	}
	if msg := e.wantError(401, "POST", "/api/token", "", creds("")); msg != "two-factor code required" {
		t.Fatalf("login without a code: %q", msg)
	}
	e.wantError(401, "POST", "/api/token", "", creds("123456"))
	// The code used to verify was used once already: a new time step brings a new one.
	e.clock.Advance(30 * time.Second)
	c := code()
	e.call(200, "POST", "/api/token", "", creds(c), nil)
	e.wantError(401, "POST", "/api/token", "", creds(c)) // the same code again: refused
	e.call(200, "POST", "/api/token", "", creds(verified.BackupCodes[3]), nil)
	e.wantError(401, "POST", "/api/token", "", creds(verified.BackupCodes[3]))
	e.call(200, "GET", "/api/user/2fa/status", admin, nil, &status)
	if status.Remaining != 9 {
		t.Fatalf("backup codes remaining %d after using one", status.Remaining)
	}

	// At rest: the secret and the backup codes are nowhere in the database files.
	for _, f := range []string{e.dbPath, e.dbPath + "-wal"} {
		data, _ := os.ReadFile(f)
		if bytes.Contains(data, []byte(setup.Secret)) || bytes.Contains(data, []byte(verified.BackupCodes[0])) {
			t.Fatalf("%s holds the 2FA secret or a backup code in plain text", f)
		}
	}

	e.wantError(400, "POST", "/api/user/2fa/setup", admin, nil) // enabled: disable first
	e.wantError(400, "POST", "/api/user/2fa/disable", admin, map[string]string{"code": "111111"})
	e.clock.Advance(30 * time.Second)
	e.call(200, "POST", "/api/user/2fa/disable", admin, map[string]string{"code": code()}, nil)
	e.call(200, "POST", "/api/token", "", creds(""), nil)
	e.call(200, "GET", "/api/user/2fa/status", admin, nil, &status)
	if status.Enabled || status.Remaining != 0 {
		t.Fatalf("after disable: %+v", status)
	}
}
