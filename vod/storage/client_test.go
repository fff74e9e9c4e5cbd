package storage_test

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// Trust on first use reports the key sshd presents, in the form ssh-keygen shows; pinning
// it (as a key line, with a comment, or as a fingerprint) then connects.
func TestHostKeyTrustOnFirstUseThenPin(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	cfg := keyConfig(srv)
	c := dial(t, cfg)
	key := c.HostKey()
	if key.String() != srv.HostKey() {
		t.Fatalf("HostKey() = %q, server has %q", key, srv.HostKey())
	}
	if key.Type() != ssh.KeyAlgoED25519 {
		t.Fatalf("Type() = %q", key.Type())
	}
	pub := filepath.Join(t.TempDir(), "host.pub")
	if err := os.WriteFile(pub, []byte(key.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", pub).Output()
	if err != nil {
		t.Fatalf("ssh-keygen (openssh-client) -l: %v", err)
	}
	if fields := strings.Fields(string(out)); len(fields) < 2 || fields[1] != key.Fingerprint() {
		t.Fatalf("Fingerprint() = %s, ssh-keygen says %s", key.Fingerprint(), out)
	}
	for _, pin := range []string{key.String(), key.String() + " relaycast@storage\n", key.Fingerprint()} {
		cfg.HostKey = pin
		c := dial(t, cfg)
		if c.HostKey().String() != srv.HostKey() {
			t.Fatalf("pinned %q: HostKey() = %q", pin, c.HostKey())
		}
	}
	if _, err := storage.ParseHostKey("ssh-ed25519 not-base64"); !errors.Is(err, storage.ErrConfig) {
		t.Fatalf("ParseHostKey(garbage) = %v, want ErrConfig", err)
	}
}

// A pinned key the server does not present is refused with both fingerprints named: a
// wrong pin against sshd, and a server that changed its key (another server on the
// pinned address).
func TestHostKeyMismatch(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	_, wrong := sftptest.GenerateKey(t)
	wrongKey, err := storage.ParseHostKey(wrong)
	if err != nil {
		t.Fatal(err)
	}
	presented := storage.HostKey{}
	if presented, err = storage.ParseHostKey(srv.HostKey()); err != nil {
		t.Fatal(err)
	}
	for _, pin := range []string{wrong, wrongKey.Fingerprint()} {
		cfg := keyConfig(srv)
		cfg.HostKey = pin
		c, err := storage.Dial(context.Background(), cfg)
		if err == nil {
			c.Close()
			t.Fatalf("pin %q: Dial succeeded", pin)
		}
		var mm *storage.HostKeyMismatchError
		if !errors.Is(err, storage.ErrHostKeyMismatch) || !errors.As(err, &mm) {
			t.Fatalf("pin %q: err = %v, want ErrHostKeyMismatch", pin, err)
		}
		if mm.Expected != wrongKey.Fingerprint() || mm.Presented != presented.Fingerprint() || mm.PresentedKey.String() != srv.HostKey() {
			t.Fatalf("mismatch names %s / %s, want %s / %s", mm.Expected, mm.Presented, wrongKey.Fingerprint(), presented.Fingerprint())
		}
		if !strings.Contains(err.Error(), mm.Expected) || !strings.Contains(err.Error(), mm.Presented) {
			t.Fatalf("message %q does not name both fingerprints", err)
		}
	}

	// The same address answered later by a server with another host key.
	a := sftptest.Start(t, sftptest.Options{InProcess: true})
	b := sftptest.Start(t, sftptest.Options{InProcess: true})
	cfg := passwordConfig(a)
	cfg.HostKey = dial(t, cfg).HostKey().String()
	cfg.Port, cfg.Password = b.Port(), b.Password()
	if _, err := storage.Dial(context.Background(), cfg); !errors.Is(err, storage.ErrHostKeyMismatch) {
		t.Fatalf("changed host key: err = %v, want ErrHostKeyMismatch", err)
	}
}

// Password authentication (in-process server) and key authentication; refused
// credentials give ErrAuth, and no error carries the secret.
func TestAuth(t *testing.T) {
	t.Parallel()
	inproc := sftptest.Start(t, sftptest.Options{InProcess: true})
	sshd := sftptest.Start(t, sftptest.Options{})
	otherKey, _ := sftptest.GenerateKey(t)

	dial(t, passwordConfig(inproc))
	dial(t, keyConfig(inproc))
	dial(t, keyConfig(sshd))

	// Both set: the key is offered first, the password is not needed.
	both := keyConfig(sshd)
	both.Password = "unused-" + inproc.Password()
	dial(t, both)

	wrongPassword := passwordConfig(inproc)
	wrongPassword.Password = "hunter2-" + inproc.Password()
	wrongKey := keyConfig(sshd)
	wrongKey.PrivateKey = otherKey
	passwordToSSHD := passwordConfig(sshd) // sshd here has password authentication off
	passwordToSSHD.Password = "hunter2-secret"
	for name, cfg := range map[string]storage.Config{
		"wrong password": wrongPassword, "unknown key": wrongKey, "password to sshd": passwordToSSHD,
	} {
		_, err := storage.Dial(context.Background(), cfg)
		if !errors.Is(err, storage.ErrAuth) {
			t.Fatalf("%s: err = %v, want ErrAuth", name, err)
		}
		msg := err.Error()
		if (cfg.Password != "" && strings.Contains(msg, cfg.Password)) || strings.Contains(msg, "PRIVATE KEY") {
			t.Fatalf("%s: error leaks a secret: %q", name, msg)
		}
	}
}

// An encrypted private key works with its passphrase and is a config error without it.
func TestEncryptedKey(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	raw, err := ssh.ParseRawPrivateKey(srv.ClientKey())
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := keyConfig(srv)
	cfg.PrivateKey = pem.EncodeToMemory(block)
	cfg.Passphrase = "correct horse"
	dial(t, cfg)

	cfg.Passphrase = ""
	if _, err := storage.Dial(context.Background(), cfg); !errors.Is(err, storage.ErrConfig) {
		t.Fatalf("no passphrase: err = %v, want ErrConfig", err)
	}
	cfg.Passphrase = "wrong horse"
	_, err = storage.Dial(context.Background(), cfg)
	if !errors.Is(err, storage.ErrConfig) || strings.Contains(err.Error(), "wrong horse") {
		t.Fatalf("wrong passphrase: err = %v, want ErrConfig without the passphrase", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	ok := storage.Config{Host: "127.0.0.1", Username: "u", Password: "p"}
	for name, mutate := range map[string]func(*storage.Config){
		"no host":     func(c *storage.Config) { c.Host = "" },
		"no username": func(c *storage.Config) { c.Username = "" },
		"no secret":   func(c *storage.Config) { c.Password = "" },
		"bad port":    func(c *storage.Config) { c.Port = 70000 },
		"bad key":     func(c *storage.Config) { c.PrivateKey = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n") },
		"bad pin":     func(c *storage.Config) { c.HostKey = "ssh-ed25519" },
	} {
		cfg := ok
		mutate(&cfg)
		if _, err := storage.Dial(context.Background(), cfg); !errors.Is(err, storage.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
}

// Printing a Config never shows its secrets.
func TestConfigStringRedacts(t *testing.T) {
	t.Parallel()
	cfg := storage.Config{Host: "h", Username: "u", Password: "s3cret-pw", PrivateKey: []byte("KEYMATERIAL"), Passphrase: "s3cret-pp", RemotePath: "/vods"}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg)} {
		if strings.Contains(s, "s3cret") || strings.Contains(s, "KEYMATERIAL") {
			t.Fatalf("Config printed with a secret: %s", s)
		}
	}
	if got := cfg.String(); got != "sftp://u@h:22/vods (password:true key:true)" {
		t.Fatalf("String() = %q", got)
	}
}

// A server that accepts TCP but never speaks SSH fails Dial at DialTimeout; a cancelled
// context fails it at once.
func TestDialTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range held {
			c.Close()
		}
	}()
	cfg := storage.Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Username: "u", Password: "p", DialTimeout: 300 * time.Millisecond}
	start := time.Now()
	_, err = storage.Dial(context.Background(), cfg)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("silent server: err = %v after %v, want DeadlineExceeded after ~300ms", err, time.Since(start))
	}

	cfg.DialTimeout = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start = time.Now()
	_, err = storage.Dial(ctx, cfg)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("cancelled: err = %v after %v, want Canceled", err, time.Since(start))
	}

	srvDown := sftptest.Start(t, sftptest.Options{InProcess: true})
	srvDown.Stop()
	cfg.Port = srvDown.Port()
	if _, err := storage.Dial(context.Background(), cfg); err == nil {
		t.Fatal("Dial to a stopped server succeeded")
	}
}

// A server that stops answering is detected by the keepalive: the operation blocked on
// it fails instead of hanging.
func TestKeepAliveUnblocksHungServer(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	local, _ := randomFile(t, 16<<20)
	tp := newTap(2 << 20) // never released: the link goes silent after 2 MB
	cfg := keyConfig(srv)
	cfg.DialContext = tp.dial
	cfg.KeepAlive = 200 * time.Millisecond
	c := dial(t, cfg)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Upload(context.Background(), local, "hung.mkv")
		errc <- err
	}()
	receive(t, tp.hit, 10*time.Second, "2 MB written")
	if err := receive(t, errc, 5*time.Second, "Upload over a hung link"); err == nil {
		t.Fatal("Upload succeeded over a link that went silent")
	}
}
