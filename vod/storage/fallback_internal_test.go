package storage

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// Without posix-rename@openssh.com, replacing an existing file removes it and renames.
func TestReplaceWithoutPosixRename(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	c, err := Dial(context.Background(), Config{Host: srv.Host(), Port: srv.Port(), Username: srv.User(), PrivateKey: srv.ClientKey(), RemotePath: srv.Root()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.posixRename || !c.fsync {
		t.Fatalf("OpenSSH should offer posix-rename and fsync: %v %v", c.posixRename, c.fsync)
	}
	c.posixRename, c.fsync = false, false
	for _, content := range []string{"one", "two, longer"} {
		if _, err := c.WriteFile(context.Background(), "f.txt", strings.NewReader(content)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(srv.Root(), "f.txt"))
		if err != nil || string(got) != content {
			t.Fatalf("f.txt = %q, %v; want %q", got, err, content)
		}
	}
}
