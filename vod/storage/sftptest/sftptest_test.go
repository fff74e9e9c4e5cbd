package sftptest_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// connect logs in with the client key (or, when password is set, the password) and
// checks the host key.
func connect(t *testing.T, srv *sftptest.Server, password string) (*ssh.Client, *sftp.Client, error) {
	t.Helper()
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(srv.HostKey()))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ClientConfig{User: srv.User(), HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 5 * time.Second}
	if password != "" {
		cfg.Auth = []ssh.AuthMethod{ssh.Password(password)}
	} else {
		signer, err := ssh.ParsePrivateKey(srv.ClientKey())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(signer)}
	}
	conn, err := ssh.Dial("tcp", srv.Addr(), cfg)
	if err != nil {
		return nil, nil, err
	}
	sc, err := sftp.NewClient(conn)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	t.Cleanup(func() { sc.Close(); conn.Close() })
	return conn, sc, nil
}

// Both kinds of server serve SFTP on their port with their host key; Stop cuts open
// connections and refuses new ones; Restart serves again on the same port.
func TestServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts sftptest.Options
	}{
		{"openssh", sftptest.Options{}},
		{"inprocess", sftptest.Options{InProcess: true, Password: "pw-for-test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := sftptest.Start(t, tc.opts)
			if fi, err := os.Stat(srv.ClientKeyFile()); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("client key file: %v %v", fi, err)
			}
			_, sc, err := connect(t, srv, "")
			if err != nil {
				t.Fatal(err)
			}
			f, err := sc.Create(filepath.Join(srv.Root(), "hello.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if b, err := os.ReadFile(filepath.Join(srv.Root(), "hello.txt")); err != nil || string(b) != "hello" {
				t.Fatalf("hello.txt = %q, %v", b, err)
			}
			if tc.opts.InProcess {
				if srv.Password() != "pw-for-test" {
					t.Fatalf("Password() = %q", srv.Password())
				}
				if _, _, err := connect(t, srv, srv.Password()); err != nil {
					t.Fatalf("password login: %v", err)
				}
				if _, _, err := connect(t, srv, "wrong"); err == nil {
					t.Fatal("wrong password accepted")
				}
				if wd, err := sc.Getwd(); err != nil || wd != srv.Root() {
					t.Fatalf("login directory %q, %v; want Root()", wd, err)
				}
			}

			srv.Stop()
			srv.Stop() // twice is fine
			if _, err := sc.Stat(srv.Root()); err == nil {
				t.Fatal("a connection survived Stop")
			}
			// (Not "the port refuses": another process may bind the freed port meanwhile.)
			if _, _, err := connect(t, srv, ""); err == nil {
				t.Fatal("the server still serves after Stop")
			}
			port := srv.Port()
			srv.Restart()
			if srv.Port() != port {
				t.Fatalf("port %d after Restart, was %d", srv.Port(), port)
			}
			_, sc, err = connect(t, srv, "")
			if err != nil {
				t.Fatalf("after Restart: %v", err)
			}
			if _, err := sc.Stat(filepath.Join(srv.Root(), "hello.txt")); err != nil {
				t.Fatalf("after Restart: %v", err)
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	priv, pub := sftptest.GenerateKey(t)
	signer, err := ssh.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil || string(key.Marshal()) != string(signer.PublicKey().Marshal()) {
		t.Fatalf("public key %q does not match the private key: %v", pub, err)
	}
}
