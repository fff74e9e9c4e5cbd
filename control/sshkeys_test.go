package control

import (
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// TestSSHKeys: generated key pairs (ed25519 default, rsa) whose private key is shown once
// and matches the stored public key; list, get, authorized_keys, delete; another user sees
// none of them.
func TestSSHKeys(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	type keyJSON struct {
		ID          int64  `json:"id"`
		Name        string `json:"name"`
		KeyType     string `json:"key_type"`
		PublicKey   string `json:"public_key"`
		PrivateKey  string `json:"private_key"`
		Fingerprint string `json:"fingerprint"`
	}
	var ed, rs keyJSON
	e.call(200, "POST", "/api/ssh-keys", admin, map[string]string{"name": "vod storage"}, &ed)
	e.call(200, "POST", "/api/ssh-keys", admin, map[string]string{"name": "old box", "key_type": "rsa"}, &rs)
	e.wantError(400, "POST", "/api/ssh-keys", admin, map[string]string{"name": "x", "key_type": "dsa"})
	e.wantError(400, "POST", "/api/ssh-keys", admin, map[string]string{"name": ""})
	for _, k := range []keyJSON{ed, rs} {
		signer, err := ssh.ParsePrivateKey([]byte(k.PrivateKey))
		if err != nil {
			t.Fatalf("%s: private key does not parse: %v", k.KeyType, err)
		}
		pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		if pub != k.PublicKey || ssh.FingerprintSHA256(signer.PublicKey()) != k.Fingerprint {
			t.Fatalf("%s: private key does not match %s", k.KeyType, k.PublicKey)
		}
	}
	if !strings.HasPrefix(ed.PublicKey, "ssh-ed25519 ") || ed.KeyType != "ed25519" || !strings.HasPrefix(rs.PublicKey, "ssh-rsa ") {
		t.Fatalf("key types %q %q", ed.PublicKey[:12], rs.PublicKey[:8])
	}
	var list struct {
		Keys []keyJSON `json:"keys"`
	}
	e.call(200, "GET", "/api/ssh-keys", admin, nil, &list)
	if len(list.Keys) != 2 || list.Keys[0].PrivateKey != "" || list.Keys[0].PublicKey != ed.PublicKey {
		t.Fatalf("list %+v", list)
	}
	var one keyJSON
	e.call(200, "GET", fmt.Sprintf("/api/ssh-keys/%d", rs.ID), admin, nil, &one)
	if one.PrivateKey != "" || one.Name != "old box" {
		t.Fatalf("get %+v", one)
	}
	_, body, _ := e.do("GET", "/api/ssh-keys/authorized", admin, nil)
	if got := string(body); got != ed.PublicKey+" vod_storage\n"+rs.PublicKey+" old_box\n" {
		t.Fatalf("authorized_keys:\n%s", got)
	}
	e.wantError(404, "GET", fmt.Sprintf("/api/ssh-keys/%d", ed.ID), bob, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/ssh-keys/%d", ed.ID), bob, nil)
	e.call(200, "DELETE", fmt.Sprintf("/api/ssh-keys/%d", ed.ID), admin, nil, nil)
	e.call(200, "GET", "/api/ssh-keys", admin, nil, &list)
	if len(list.Keys) != 1 {
		t.Fatalf("after delete: %+v", list)
	}
}
