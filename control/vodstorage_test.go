package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// storageBody is the POST /api/vods/storage body for srv: key auth for sshd, password
// auth for the in-process server.
func storageBody(srv *sftptest.Server, password bool) map[string]any {
	b := map[string]any{"host": srv.Host(), "port": srv.Port(), "username": srv.User(), "remote_path": srv.Root()}
	if password {
		b["auth_method"], b["password"] = "password", srv.Password()
	} else {
		b["auth_method"], b["private_key"] = "key", string(srv.ClientKey())
	}
	return b
}

// vodStorageAnswer is the "storage" object of GET/POST /api/vods/storage.
type vodStorageAnswer struct {
	Storage *vodStorageJSON `json:"storage"`
}

func (e *env) getVODStorage(token string) *vodStorageJSON {
	e.t.Helper()
	var out vodStorageAnswer
	e.call(200, "GET", "/api/vods/storage", token, nil, &out)
	return out.Storage
}

// TestVODStorageConfig: save, read (redacted), update keeping secrets, validation, delete.
func TestVODStorageConfig(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	if st := e.getVODStorage(admin); st != nil {
		t.Fatalf("storage before any: %+v", st)
	}
	if msg := e.wantError(404, "GET", "/api/vods", admin, nil); !strings.Contains(msg, "no VOD storage") {
		t.Fatalf("list without storage: %q", msg)
	}
	e.wantError(404, "DELETE", "/api/vods/storage", admin, nil)
	e.wantError(404, "POST", "/api/vods/storage/test", admin, nil)
	e.wantError(404, "GET", "/api/sftp/vod/list", admin, nil)

	const password = "pw-needle-3f9a1c77d2"
	keyPEM, _ := sftptest.GenerateKey(t)
	base := map[string]any{"host": "Storage.Example.com", "username": "vod", "auth_method": "password",
		"password": password, "remote_path": "/home/vod/vods"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	for _, tc := range []struct {
		body map[string]any
		want string
	}{
		{with("host", nil), "host is required"},
		{with("host", "ssh://storage.example.com"), "host must be"},
		{with("host", "a b"), "host must be"},
		{with("port", 0), "port must be 1-65535"},
		{with("port", 65536), "port must be 1-65535"},
		{with("username", nil), "username is required"},
		{with("username", "a\nb"), "username must be"},
		{with("auth_method", "kerberos"), "auth_method must be"},
		{with("password", nil), "password is required"},
		{with("password", ""), "password is required"},
		{with("auth_method", "key"), "private_key is required"},
		{with("auth_method", "key", "private_key", "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"), "private_key must be"},
		{with("remote_path", "/a\x00b"), "remote_path must be"},
		{with("host_key", "not a key"), "host_key must be"},
	} {
		if msg := e.wantError(400, "POST", "/api/vods/storage", admin, tc.body); !strings.Contains(msg, tc.want) {
			t.Errorf("%v: %q, want %q", tc.body, msg, tc.want)
		}
	}
	if msg := e.wantError(400, "POST", "/api/vods/storage", admin, `{"host":"h","bogus":1}`); !strings.Contains(msg, "bogus") {
		t.Fatalf("unknown field: %q", msg)
	}

	var saved struct {
		Message string          `json:"message"`
		Storage json.RawMessage `json:"storage"`
	}
	raw := e.call(200, "POST", "/api/vods/storage", admin, base, &saved)
	if bytes.Contains(raw, []byte(password)) {
		t.Fatalf("POST answer shows the password: %s", raw)
	}
	st := e.getVODStorage(admin)
	if st.Host != "storage.example.com" || st.Port != 22 || st.Username != "vod" || st.AuthMethod != "password" ||
		st.RemotePath != "/home/vod/vods" || !st.HasPassword || st.HasKey || st.HasPassphrase || st.HostKey != nil ||
		st.HostKeyFingerprint != nil || !st.RecordingEnabled {
		t.Fatalf("saved %+v", st)
	}
	// Update without the password: the stored one stays (empty counts as absent).
	e.call(200, "POST", "/api/vods/storage", admin, map[string]any{"remote_path": "vods", "password": "", "recording_enabled": false}, nil)
	if st := e.getVODStorage(admin); !st.HasPassword || st.RemotePath != "vods" || st.RecordingEnabled {
		t.Fatalf("updated %+v", st)
	}
	// Moving to another port needs the password again: it is only sent where it was given for.
	if msg := e.wantError(400, "POST", "/api/vods/storage", admin, map[string]any{"port": 2222}); !strings.Contains(msg, "password is required") {
		t.Fatalf("port change without password: %q", msg)
	}
	// Switching to key auth drops the password.
	e.call(200, "POST", "/api/vods/storage", admin, map[string]any{"auth_method": "key", "private_key": string(keyPEM)}, nil)
	if st := e.getVODStorage(admin); st.HasPassword || !st.HasKey || st.AuthMethod != "key" {
		t.Fatalf("key auth %+v", st)
	}
	keyBody := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")[2]
	if raw := e.call(200, "GET", "/api/vods/storage", admin, nil, nil); bytes.Contains(raw, []byte(keyBody)) || bytes.Contains(raw, []byte(password)) {
		t.Fatalf("GET shows a secret: %s", raw)
	}
	cfg, enabled, err := e.srv.VODStorage(context.Background(), userID(t, e, admin))
	if err != nil || enabled || string(cfg.PrivateKey) != string(keyPEM) || cfg.Password != "" || cfg.Host != "storage.example.com" ||
		cfg.Port != 22 || cfg.RemotePath != "vods" || strings.Contains(fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg), "PRIVATE KEY") {
		t.Fatalf("VODStorage: %v %v %v", cfg, enabled, err)
	}

	// Neither secret reaches the database files in clear, while the host does.
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil && suffix == "" {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte("storage.example.com")) {
		t.Fatal("the host is not in the database files: wrong files?")
	}
	for _, secret := range []string{password, keyBody} {
		if bytes.Contains(all, []byte(secret)) {
			t.Fatalf("the database files contain %q in clear", secret)
		}
	}

	// Another user sees nothing of it.
	other := e.user(admin, "other")
	if st := e.getVODStorage(other); st != nil {
		t.Fatalf("other user sees %+v", st)
	}

	e.call(200, "DELETE", "/api/vods/storage", admin, nil, nil)
	if st := e.getVODStorage(admin); st != nil {
		t.Fatalf("after delete: %+v", st)
	}
	if cfg, enabled, err := e.srv.VODStorage(context.Background(), userID(t, e, admin)); err != nil || enabled || cfg.Host != "" {
		t.Fatalf("VODStorage after delete: %v %v %v", cfg, enabled, err)
	}
}

// TestVODStorageWireShape locks the JSON field names of a storage.
func TestVODStorageWireShape(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	e.call(200, "POST", "/api/vods/storage", admin, map[string]any{"host": "h", "username": "u", "password": "p"}, nil)
	var m map[string]map[string]json.RawMessage
	e.call(200, "GET", "/api/vods/storage", admin, nil, &m)
	const want = "auth_method,created_at,has_key,has_passphrase,has_password,host,host_key,host_key_fingerprint,port,recording_enabled,remote_path,updated_at,username"
	if got := strings.Join(sortedKeys(m["storage"]), ","); got != want {
		t.Fatalf("storage keys\n got %s\nwant %s", got, want)
	}
	if string(m["storage"]["host_key"]) != "null" || string(m["storage"]["remote_path"]) != `""` {
		t.Fatalf("storage %v", m["storage"])
	}
}

// TestVODScopes: vods:read reads, vods:write writes, streams scopes reach nothing of it.
func TestVODScopes(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	var ro, rw, streams apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "ro", "scopes": "vods:read"}, &ro)
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "rw", "scopes": "vods:write"}, &rw)
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "st", "scopes": "streams:*"}, &streams)
	body := map[string]any{"host": "h", "username": "u", "password": "p"}
	e.wantError(403, "POST", "/api/vods/storage", ro.APIKey, body)
	e.wantError(403, "GET", "/api/vods/storage", streams.APIKey, nil)
	e.wantError(403, "GET", "/api/sftp/vod/list", streams.APIKey, nil)
	e.call(200, "POST", "/api/vods/storage", rw.APIKey, body, nil)
	e.call(200, "GET", "/api/vods/storage", ro.APIKey, nil, nil)
	e.call(200, "GET", "/api/vods/storage", rw.APIKey, nil, nil)
	e.wantError(403, "DELETE", "/api/vods/x.mkv", ro.APIKey, nil)
	e.wantError(403, "POST", "/api/sftp/vod/mkdir", ro.APIKey, map[string]any{"path": "x"})
	e.wantError(403, "POST", "/api/vods/storage/test", ro.APIKey, nil)
}

// TestVODStorageTest: the test endpoint pins the host key on first use, refuses another
// key afterwards (naming both fingerprints), re-pins after host_key "" and reports
// authentication and connection failures as 502 without secrets.
func TestVODStorageTest(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	a := sftptest.Start(t, sftptest.Options{})                // OpenSSH, key auth
	b := sftptest.Start(t, sftptest.Options{InProcess: true}) // another host key, password auth
	if err := os.MkdirAll(filepath.Join(a.Root(), "S", "2026-02-08_04-24-49"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(a.Root(), "S", "2026-02-08_04-24-49", "chunk_000.mkv"), []byte("mkv"), 0o644)
	os.WriteFile(filepath.Join(a.Root(), "notes.txt"), []byte("txt"), 0o644)

	e.call(200, "POST", "/api/vods/storage", admin, storageBody(a, false), nil)
	var res vodTestResult
	e.call(200, "POST", "/api/vods/storage/test", admin, nil, &res)
	aKey, _ := storage.ParseHostKey(a.HostKey())
	if !res.Success || res.FilesFound != 1 || res.RemotePath != a.Root() || res.HostKey != a.HostKey() ||
		res.HostKeyFingerprint != aKey.Fingerprint() || !res.HostKeyPinned || !strings.Contains(res.Message, "1 MKV") {
		t.Fatalf("test: %+v", res)
	}
	st := e.getVODStorage(admin)
	if st.HostKey == nil || *st.HostKey != a.HostKey() || *st.HostKeyFingerprint != aKey.Fingerprint() {
		t.Fatalf("pinned %+v", st)
	}
	cfg, enabled, err := e.srv.VODStorage(context.Background(), userID(t, e, admin))
	if err != nil || !enabled || cfg.HostKey != a.HostKey() {
		t.Fatalf("VODStorage: %v %v %v", cfg, enabled, err)
	}

	// Point the storage at b while keeping a's key pinned: refused, naming both keys.
	bBody := storageBody(b, true)
	bBody["host_key"] = a.HostKey()
	e.call(200, "POST", "/api/vods/storage", admin, bBody, nil)
	bKey, _ := storage.ParseHostKey(b.HostKey())
	for _, call := range [][2]string{{"POST", "/api/vods/storage/test"}, {"GET", "/api/vods"}, {"GET", "/api/sftp/vod/list"}} {
		msg := e.wantError(502, call[0], call[1], admin, nil)
		if !strings.Contains(msg, "host key mismatch") || !strings.Contains(msg, aKey.Fingerprint()) || !strings.Contains(msg, bKey.Fingerprint()) {
			t.Fatalf("%s %s: %q", call[0], call[1], msg)
		}
	}
	if st := e.getVODStorage(admin); *st.HostKey != a.HostKey() {
		t.Fatal("a mismatch changed the pinned key")
	}
	// The uploader's pin refuses another key too, and accepts the pinned one.
	uid := userID(t, e, admin)
	if err := e.srv.PinVODHostKey(context.Background(), uid, b.HostKey()); err == nil || !strings.Contains(err.Error(), bKey.Fingerprint()) {
		t.Fatalf("PinVODHostKey over a pinned key: %v", err)
	}
	if err := e.srv.PinVODHostKey(context.Background(), uid, a.HostKey()); err != nil {
		t.Fatalf("PinVODHostKey of the pinned key: %v", err)
	}

	// host_key "" clears the pin; the next connection pins b's key.
	e.call(200, "POST", "/api/vods/storage", admin, map[string]any{"host_key": ""}, nil)
	var list struct {
		Files []vodFileJSON `json:"files"`
		Path  string        `json:"path"`
	}
	e.call(200, "GET", "/api/vods", admin, nil, &list)
	if st := e.getVODStorage(admin); st.HostKey == nil || *st.HostKey != b.HostKey() {
		t.Fatalf("not re-pinned on first use: %+v", st)
	}

	// A body tests without saving: a wrong password is a 502 that does not show it.
	msg := e.wantError(502, "POST", "/api/vods/storage/test", admin, map[string]any{"password": "wrong-needle-pw"})
	if !strings.Contains(msg, "authentication failed") || strings.Contains(msg, "wrong-needle-pw") || strings.Contains(msg, b.Password()) {
		t.Fatalf("wrong password: %q", msg)
	}
	e.call(200, "POST", "/api/vods/storage/test", admin, nil, &res)
	if msg := e.wantError(502, "POST", "/api/vods/storage/test", admin, map[string]any{"remote_path": filepath.Join(b.Root(), "notes")}); !strings.Contains(msg, "remote path") {
		t.Fatalf("missing remote path: %q", msg)
	}
	// The uploader's TOFU: with no pin, PinVODHostKey pins.
	e.call(200, "POST", "/api/vods/storage", admin, map[string]any{"host_key": ""}, nil)
	if err := e.srv.PinVODHostKey(context.Background(), uid, b.HostKey()+" comment"); err != nil {
		t.Fatal(err)
	}
	if st := e.getVODStorage(admin); *st.HostKey != b.HostKey() {
		t.Fatalf("PinVODHostKey: %+v", st)
	}

	// Unreachable: 502 with a clear message.
	b.Stop()
	if msg := e.wantError(502, "GET", "/api/vods", admin, nil); !strings.Contains(msg, "VOD storage") {
		t.Fatalf("unreachable: %q", msg)
	}
}
