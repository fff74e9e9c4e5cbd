package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// Test (POST /api/vods/storage/test) reports the host key to pin and the .mkv count, and
// names an unusable RemotePath while still reporting the host key.
func TestTest(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	root := srv.Root()
	for _, p := range []string{"a/s1/chunk_000.mkv", "a/s1/chunk_001.mkv", "b/chunk_000.mkv", "notes.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, root)
	cfg := keyConfig(srv)
	res, err := storage.Test(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := storage.ParseHostKey(srv.HostKey())
	want := storage.TestResult{HostKey: srv.HostKey(), Fingerprint: key.Fingerprint(), RemotePath: root, MKVFiles: 3}
	if res != want {
		t.Fatalf("Test = %+v, want %+v", res, want)
	}
	if after := snapshot(t, root); len(after) != len(before) {
		t.Fatalf("Test left files behind: %v", after)
	}

	// An unusable RemotePath.
	for name, remote := range map[string]string{
		"missing":   filepath.Join(root, "nope"),
		"not a dir": filepath.Join(root, "notes.txt"),
	} {
		cfg.RemotePath = remote
		res, err := storage.Test(context.Background(), cfg)
		if !errors.Is(err, storage.ErrRemotePath) {
			t.Fatalf("%s: err = %v, want ErrRemotePath", name, err)
		}
		if res.HostKey != srv.HostKey() || res.Fingerprint == "" {
			t.Fatalf("%s: result %+v lacks the host key", name, res)
		}
	}
	if os.Geteuid() != 0 { // root writes through any mode
		ro := filepath.Join(root, "readonly")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		cfg.RemotePath = ro
		if _, err := storage.Test(context.Background(), cfg); !errors.Is(err, storage.ErrRemotePath) {
			t.Fatalf("read-only: err = %v, want ErrRemotePath", err)
		}
	}

	// Failures before the connection: no host key to report.
	cfg.RemotePath = root
	cfg.PrivateKey, _ = sftptest.GenerateKey(t)
	if res, err := storage.Test(context.Background(), cfg); !errors.Is(err, storage.ErrAuth) || res.HostKey != "" {
		t.Fatalf("wrong key: %+v, %v; want ErrAuth", res, err)
	}
}

// An empty RemotePath is the login directory; a relative one is below it.
func TestRemotePathRelative(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{InProcess: true}) // login directory = Root()
	if err := os.Mkdir(filepath.Join(srv.Root(), "vods"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := passwordConfig(srv)
	for remote, want := range map[string]string{"": srv.Root(), "vods": filepath.Join(srv.Root(), "vods"), "vods/": filepath.Join(srv.Root(), "vods")} {
		cfg.RemotePath = remote
		if got := dial(t, cfg).Root(); got != want {
			t.Fatalf("RemotePath %q: Root() = %q, want %q", remote, got, want)
		}
	}
	// A RemotePath that is a symlink resolves to its target.
	if err := os.Symlink("vods", filepath.Join(srv.Root(), "link")); err != nil {
		t.Fatal(err)
	}
	cfg.RemotePath = filepath.Join(srv.Root(), "link")
	if got := dial(t, cfg).Root(); got != filepath.Join(srv.Root(), "vods") {
		t.Fatalf("symlinked RemotePath: Root() = %q", got)
	}
}
