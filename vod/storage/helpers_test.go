package storage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// keyConfig logs in with the server's client key, rooted at the server's temp dir.
func keyConfig(srv *sftptest.Server) storage.Config {
	return storage.Config{
		Host:        srv.Host(),
		Port:        srv.Port(),
		Username:    srv.User(),
		PrivateKey:  srv.ClientKey(),
		RemotePath:  srv.Root(),
		DialTimeout: 5 * time.Second,
	}
}

// passwordConfig logs in with the in-process server's password.
func passwordConfig(srv *sftptest.Server) storage.Config {
	cfg := keyConfig(srv)
	cfg.PrivateKey = nil
	cfg.Password = srv.Password()
	return cfg
}

// eachServer runs fn against OpenSSH sshd (key auth) and against the in-process server
// (password auth), as parallel subtests.
func eachServer(t *testing.T, fn func(t *testing.T, srv *sftptest.Server, cfg storage.Config)) {
	t.Helper()
	t.Run("openssh", func(t *testing.T) {
		t.Parallel()
		srv := sftptest.Start(t, sftptest.Options{})
		fn(t, srv, keyConfig(srv))
	})
	t.Run("inprocess", func(t *testing.T) {
		t.Parallel()
		srv := sftptest.Start(t, sftptest.Options{InProcess: true})
		fn(t, srv, passwordConfig(srv))
	})
}

func dial(t testing.TB, cfg storage.Config) *storage.Client {
	t.Helper()
	c, err := storage.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// randomFile writes n random bytes to a new file in a temp dir.
func randomFile(t testing.TB, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	p := filepath.Join(t.TempDir(), "local.mkv")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// sameFile fails the test unless the file at p holds want.
func sameFile(t testing.TB, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Fatalf("%s: %d bytes, want %d; first difference at %d", p, len(got), len(want), i)
	}
}

// tap is a Config.DialContext that counts the bytes the client writes; once threshold
// bytes are written it signals hit and holds every further write until release is
// closed or the connection is closed.
type tap struct {
	threshold int64
	hit       chan struct{}
	release   chan struct{}

	mu      sync.Mutex
	written int64
	fired   bool
}

func newTap(threshold int64) *tap {
	return &tap{threshold: threshold, hit: make(chan struct{}), release: make(chan struct{})}
}

func (tp *tap) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &tapConn{Conn: nc, tap: tp, closed: make(chan struct{})}, nil
}

type tapConn struct {
	net.Conn
	tap       *tap
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *tapConn) Write(p []byte) (int, error) {
	tp := c.tap
	tp.mu.Lock()
	tp.written += int64(len(p))
	over := tp.written >= tp.threshold
	if over && !tp.fired {
		tp.fired = true
		close(tp.hit)
	}
	tp.mu.Unlock()
	if over {
		select {
		case <-tp.release:
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	return c.Conn.Write(p)
}

func (c *tapConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// receive returns the next value from ch, failing the test if none comes within d.
func receive[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: nothing within %v", what, d)
		var zero T
		return zero
	}
}
