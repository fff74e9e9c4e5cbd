package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// The operations behind /api/sftp/vod/* work, relative to RemotePath.
func TestFileOperations(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv *sftptest.Server, cfg storage.Config) {
		ctx := context.Background()
		c := dial(t, cfg)
		root := srv.Root()
		data := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // 300 KiB: several packets

		// Mkdir creates parents; again is fine; over a file is ErrNotDir.
		for range 2 {
			if err := c.Mkdir("S/2026-01-01_00-00-00"); err != nil {
				t.Fatal(err)
			}
		}
		if fi, err := os.Stat(filepath.Join(root, "S/2026-01-01_00-00-00")); err != nil || !fi.IsDir() {
			t.Fatalf("Mkdir did not create the directory: %v", err)
		}

		// WriteFile, then over an existing file.
		const p = "S/2026-01-01_00-00-00/chunk_000.mkv"
		if n, err := c.WriteFile(ctx, p, strings.NewReader("first version")); err != nil || n != 13 {
			t.Fatalf("WriteFile = %d, %v", n, err)
		}
		if n, err := c.WriteFile(ctx, p, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("WriteFile over = %d, %v", n, err)
		}
		sameFile(t, filepath.Join(root, p), data)
		if _, err := c.WriteFile(ctx, "new/dir/notes.txt", strings.NewReader("hello\n")); err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(root, "new/dir/notes.txt"), []byte("hello\n"))
		if err := c.Mkdir(p); !errors.Is(err, storage.ErrNotDir) {
			t.Fatalf("Mkdir over a file: %v, want ErrNotDir", err)
		}
		if _, err := c.WriteFile(ctx, "S", strings.NewReader("x")); !errors.Is(err, storage.ErrIsDir) {
			t.Fatalf("WriteFile over a directory: %v, want ErrIsDir", err)
		}
		// A failing reader leaves nothing behind.
		if _, err := c.WriteFile(ctx, "broken.txt", io.MultiReader(strings.NewReader("abc"), errReader{})); err == nil {
			t.Fatal("WriteFile with a failing reader succeeded")
		}
		if _, err := os.Lstat(filepath.Join(root, "broken.txt")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("broken.txt exists: %v", err)
		}

		// Stat.
		e, err := c.Stat(p)
		if err != nil || e.Size != int64(len(data)) || e.IsDir() || e.Name != "chunk_000.mkv" || e.Path != p || e.ModTime.IsZero() {
			t.Fatalf("Stat = %+v, %v", e, err)
		}
		if e, err := c.Stat("S"); err != nil || !e.IsDir() {
			t.Fatalf("Stat dir = %+v, %v", e, err)
		}
		if _, err := c.Stat("missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Stat missing: %v, want ErrNotExist", err)
		}

		// List: sorted, paths relative to RemotePath; "." is RemotePath.
		if err := os.WriteFile(filepath.Join(root, "S/2026-01-01_00-00-00/chunk_001.MKV"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		entries, err := c.List(ctx, "S/2026-01-01_00-00-00")
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 2 || entries[0].Name != "chunk_000.mkv" || entries[1].Path != "S/2026-01-01_00-00-00/chunk_001.MKV" {
			t.Fatalf("List = %+v", entries)
		}
		if top, err := c.List(ctx, "."); err != nil || len(top) != 2 || top[0].Name != "S" || !top[0].IsDir() {
			t.Fatalf("List(.) = %+v, %v", top, err)
		}
		if _, err := c.List(ctx, p); !errors.Is(err, storage.ErrNotDir) {
			t.Fatalf("List of a file: %v, want ErrNotDir", err)
		}

		// ListFiles: recursive, by extension, case-insensitive, symlinks not followed.
		if err := os.Symlink(filepath.Join(root, "S"), filepath.Join(root, "new/link-to-S")); err != nil {
			t.Fatal(err)
		}
		files, err := c.ListFiles(ctx, ".", ".mkv")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range files {
			names = append(names, f.Path)
		}
		if got := strings.Join(names, ","); got != "S/2026-01-01_00-00-00/chunk_000.mkv,S/2026-01-01_00-00-00/chunk_001.MKV" {
			t.Fatalf("ListFiles = %s", got)
		}

		// Open: whole, ranges, through Read and through WriteTo (io.Copy).
		for _, r := range []struct{ off, limit int64 }{{0, -1}, {100, 1000}, {int64(len(data)) - 10, 1000}, {0, 0}, {int64(len(data)), -1}} {
			end := int64(len(data))
			if r.limit >= 0 {
				end = min(end, r.off+r.limit)
			}
			want := data[r.off:end]
			for _, viaCopy := range []bool{false, true} {
				rc, err := c.Open(p, r.off, r.limit)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if viaCopy {
					_, err = io.Copy(&got, rc)
				} else {
					_, err = got.ReadFrom(struct{ io.Reader }{rc})
				}
				rc.Close()
				if err != nil || !bytes.Equal(got.Bytes(), want) {
					t.Fatalf("Open(%d, %d) copy=%v: %d bytes, %v; want %d bytes", r.off, r.limit, viaCopy, got.Len(), err, len(want))
				}
			}
		}
		if _, err := c.Open("S", 0, -1); !errors.Is(err, storage.ErrIsDir) {
			t.Fatalf("Open dir: %v, want ErrIsDir", err)
		}
		if _, err := c.Open("missing.mkv", 0, -1); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Open missing: %v, want ErrNotExist", err)
		}

		// Rename: not over an existing file, not from a missing one.
		if err := c.Rename("new/dir/notes.txt", "new/notes.txt"); err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(root, "new/notes.txt"), []byte("hello\n"))
		if err := c.Rename("new/notes.txt", p); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Rename over a file: %v, want ErrExist", err)
		}
		if err := c.Rename("new/gone.txt", "new/x.txt"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Rename of a missing file: %v, want ErrNotExist", err)
		}
		if err := c.Rename(".", "elsewhere"); !errors.Is(err, storage.ErrBadPath) {
			t.Fatalf("Rename of the root: %v, want ErrBadPath", err)
		}

		// Remove: files, symlinks (not their target), empty directories; a non-empty
		// directory only recursively; never the root.
		if err := c.Remove("new/link-to-S", false); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Fatalf("removing a symlink touched its target: %v", err)
		}
		if err := c.Remove("new/notes.txt", false); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove("new/dir", false); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove("S", false); !errors.Is(err, storage.ErrNotEmpty) {
			t.Fatalf("Remove of a non-empty directory: %v, want ErrNotEmpty", err)
		}
		if err := c.Remove("S", true); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove("missing", false); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Remove missing: %v, want ErrNotExist", err)
		}
		if err := c.Remove(".", true); !errors.Is(err, storage.ErrBadPath) {
			t.Fatalf("Remove of the root: %v, want ErrBadPath", err)
		}
		if top, err := c.List(ctx, "."); err != nil || len(top) != 1 || top[0].Name != "new" {
			t.Fatalf("List(.) at the end = %+v, %v", top, err)
		}
		noParts(t, root)
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("reader broke") }

// snapshot records every path below dir with its size and content digest, symlinks as
// their target.
func snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[p] = "-> " + target
		case d.IsDir():
			out[p] = "dir"
		default:
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Path traversal, lexical or through symlinks on the server, is refused with ErrBadPath
// by every operation, and nothing inside or outside RemotePath changes.
func TestPathTraversal(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv *sftptest.Server, cfg storage.Config) {
		ctx := context.Background()
		root := srv.Root()
		outside := filepath.Join(t.TempDir(), "outside")
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(outside, 0o755))
		must(os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("secret"), 0o644))
		must(os.MkdirAll(filepath.Join(root, "inside"), 0o755))
		must(os.WriteFile(filepath.Join(root, "inside/f.mkv"), []byte("inside"), 0o644))
		must(os.Symlink(outside, filepath.Join(root, "escape")))                       // absolute
		must(os.Symlink("../outside", filepath.Join(root, "rel-escape")))              // relative
		must(os.Symlink("escape/secret.txt", filepath.Join(root, "file-escape")))      // through another link
		must(os.Symlink("inside/../../outside", filepath.Join(root, "dotdot-escape"))) // .. inside a target
		must(os.Symlink("loop", filepath.Join(root, "loop")))
		must(os.Symlink("inside", filepath.Join(root, "ok-link"))) // stays inside: allowed
		before := snapshot(t, root)
		for p, v := range snapshot(t, outside) {
			before[p] = v
		}

		c := dial(t, cfg)
		local, _ := randomFile(t, 1000)

		// Paths bad in every position.
		bad := []string{
			"", "..", "../x", "/etc/passwd", "a/../../b", "a/..", "./../x", "a\\..\\b", "a\x00b", "a\nb", "a\x7fb",
			"\xff\xfe", "escape/secret.txt", "rel-escape/secret.txt", "dotdot-escape/secret.txt",
			"escape/new.mkv", "escape/sub/dir", "loop/x",
		}
		// Paths bad only where the last component is followed (a symlink itself may be
		// renamed or removed: that changes nothing outside).
		badFollowed := []string{"escape", "rel-escape", "file-escape", "dotdot-escape", "loop"}

		type op struct {
			name   string
			follow bool
			do     func(p string) error
		}
		ops := []op{
			{"List", true, func(p string) error { _, err := c.List(ctx, p); return err }},
			{"ListFiles", true, func(p string) error { _, err := c.ListFiles(ctx, p, ".mkv"); return err }},
			{"Stat", true, func(p string) error { _, err := c.Stat(p); return err }},
			{"Open", true, func(p string) error {
				rc, err := c.Open(p, 0, -1)
				if err == nil {
					rc.Close()
				}
				return err
			}},
			{"Mkdir", true, func(p string) error { return c.Mkdir(p) }},
			{"WriteFile", true, func(p string) error { _, err := c.WriteFile(ctx, p, strings.NewReader("pwned")); return err }},
			{"Upload", true, func(p string) error { _, err := c.Upload(ctx, local, p); return err }},
			{"Rename from", false, func(p string) error { return c.Rename(p, "inside/moved") }},
			{"Rename to", false, func(p string) error { return c.Rename("inside/f.mkv", p) }},
			{"Remove", false, func(p string) error { return c.Remove(p, true) }},
		}
		for _, o := range ops {
			paths := bad
			if o.follow {
				paths = append(append([]string(nil), bad...), badFollowed...)
			}
			for _, p := range paths {
				if err := o.do(p); !errors.Is(err, storage.ErrBadPath) {
					t.Errorf("%s(%q) = %v, want ErrBadPath", o.name, p, err)
				}
			}
		}
		for _, p := range bad {
			if _, err := storage.Clean(p); !errors.Is(err, storage.ErrBadPath) && !strings.Contains(p, "escape") && p != "loop/x" {
				t.Errorf("Clean(%q) = %v, want ErrBadPath", p, err)
			}
		}
		after := snapshot(t, root)
		for p, v := range snapshot(t, outside) {
			after[p] = v
		}
		for p, v := range before {
			if after[p] != v {
				t.Errorf("%s changed: %q -> %q", p, v, after[p])
			}
		}
		for p := range after {
			if _, ok := before[p]; !ok {
				t.Errorf("%s appeared", p)
			}
		}

		// A symlink that stays inside RemotePath works.
		if e, err := c.Stat("ok-link/f.mkv"); err != nil || e.Size != 6 {
			t.Fatalf("Stat through an inside symlink = %+v, %v", e, err)
		}
		if _, err := c.WriteFile(ctx, "ok-link/g.mkv", strings.NewReader("ok")); err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(root, "inside/g.mkv"), []byte("ok"))
	})
}
