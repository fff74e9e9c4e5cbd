package control

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadSecretKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadSecretKey(dir, "")
	if err != nil || len(k1) != 32 {
		t.Fatalf("generate: %x %v", k1, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", fi.Mode(), err)
	}
	k2, err := LoadSecretKey(dir, "")
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatal("the generated key is not reused")
	}
	raw := bytes.Repeat([]byte{0xab}, 32)
	for _, v := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), " " + hex.EncodeToString(raw) + "\n"} {
		k, err := LoadSecretKey(dir, v)
		if err != nil || !bytes.Equal(k, raw) {
			t.Fatalf("value %q: %x %v", v, k, err)
		}
	}
	pass := "correct horse battery staple"
	sum := sha256.Sum256([]byte(pass))
	if k, err := LoadSecretKey(dir, pass); err != nil || !bytes.Equal(k, sum[:]) {
		t.Fatalf("passphrase: %v", err)
	}
	if _, err := LoadSecretKey(dir, "short"); err == nil {
		t.Fatal("short passphrase accepted")
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "secret.key"), []byte("not a key"), 0o600)
	if _, err := LoadSecretKey(bad, ""); err == nil {
		t.Fatal("a corrupt secret.key was replaced or accepted")
	}
}

func TestSealer(t *testing.T) {
	master := bytes.Repeat([]byte{1}, 32)
	s, err := NewSealer(master, "relay-keys")
	if err != nil {
		t.Fatal(err)
	}
	pt := []byte("rtmp stream key of twitch")
	sealed := s.Seal(pt, []byte("relay:1"))
	if bytes.Contains(sealed, pt) {
		t.Fatal("plaintext visible")
	}
	if again := s.Seal(pt, []byte("relay:1")); bytes.Equal(again, sealed) {
		t.Fatal("two seals are equal: nonce reuse")
	}
	got, err := s.Open(sealed, []byte("relay:1"))
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := s.Open(sealed, []byte("relay:2")); !errors.Is(err, ErrSealed) {
		t.Fatalf("wrong aad: %v", err)
	}
	other, _ := NewSealer(master, "chat")
	if _, err := other.Open(sealed, []byte("relay:1")); !errors.Is(err, ErrSealed) {
		t.Fatalf("other purpose: %v", err)
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	for _, b := range [][]byte{tampered, nil, sealed[:10], append([]byte{2}, sealed[1:]...)} {
		if _, err := s.Open(b, []byte("relay:1")); !errors.Is(err, ErrSealed) {
			t.Fatalf("bad input opened: %v", err)
		}
	}
	if _, err := NewSealer(master[:16], "x"); err == nil {
		t.Fatal("short master accepted")
	}
	if empty, err := s.Open(s.Seal(nil, nil), nil); err != nil || len(empty) != 0 {
		t.Fatalf("empty plaintext: %v", err)
	}
}

func TestPasswordHashProductionCost(t *testing.T) {
	saved := argonCost
	argonCost.memory, argonCost.time, argonCost.threads = 19*1024, 2, 1
	h := hashPassword("hunter22")
	argonCost = saved
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q", h)
	}
	if !verifyPassword(h, "hunter22") || verifyPassword(h, "hunter23") {
		t.Fatal("verify")
	}
	if verifyPassword("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$"+strings.Repeat("A", 43), "x") {
		t.Fatal("a 4 GiB hash was accepted")
	}
}

func TestSecretFormats(t *testing.T) {
	for _, kind := range []string{kindStreamKey, kindRTMPToken, kindAPIKey} {
		full, hash, prefix := newSecret(kind)
		if k, ok := parseSecret(full); !ok || k != kind {
			t.Fatalf("parse %q: %q %v", prefix, k, ok)
		}
		if !strings.HasPrefix(full, prefix) || len(prefix) != len(kind)+1+displayChars || !bytes.Equal(hash, hashSecret(full)) {
			t.Fatalf("prefix %q", prefix)
		}
	}
	for _, s := range []string{"", "live_", "live", "pub_0", "sk_" + strings.Repeat("a", 64), "live_" + strings.Repeat("A", 64),
		"live_" + strings.Repeat("a", 63), "live_" + strings.Repeat("a", 65), "live_" + strings.Repeat("g", 64)} {
		if _, ok := parseSecret(s); ok {
			t.Fatalf("accepted %q", s)
		}
	}
	if id := newPlaybackID(); !validPlaybackID(id) || validPlaybackID(id+"0") || validPlaybackID("live_"+id[4:]) {
		t.Fatalf("playback id %q", id)
	}
}
