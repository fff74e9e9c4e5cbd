package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// noParts fails the test if a .part file is left anywhere below root.
func noParts(t testing.TB, root string) {
	t.Helper()
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, storage.PartSuffix) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// A several-MB file arrives byte for byte under its final name, parent directories
// created; uploading it again sends nothing.
func TestUpload(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv *sftptest.Server, cfg storage.Config) {
		c := dial(t, cfg)
		local, data := randomFile(t, 6<<20+12345)
		const rel = "Stream/2026-02-08_04-24-49/chunk_000.mkv"
		res, err := c.Upload(context.Background(), local, rel)
		if err != nil {
			t.Fatal(err)
		}
		want := storage.Result{Remote: rel, Size: int64(len(data)), Sent: int64(len(data))}
		if res != want {
			t.Fatalf("Result = %+v, want %+v", res, want)
		}
		sameFile(t, filepath.Join(srv.Root(), rel), data)
		noParts(t, srv.Root())

		// Nothing uploaded twice: same size remotely means done.
		before, _ := os.Stat(filepath.Join(srv.Root(), rel))
		res, err = c.Upload(context.Background(), local, "./Stream//2026-02-08_04-24-49/chunk_000.mkv")
		if err != nil {
			t.Fatal(err)
		}
		if !res.Skipped || res.Sent != 0 {
			t.Fatalf("second Upload = %+v, want Skipped", res)
		}
		after, _ := os.Stat(filepath.Join(srv.Root(), rel))
		if !os.SameFile(before, after) {
			t.Fatal("second Upload replaced the file")
		}
		// A leftover .part beside the complete file is removed.
		if err := os.WriteFile(filepath.Join(srv.Root(), rel+".part"), data[:100], 0o644); err != nil {
			t.Fatal(err)
		}
		if res, err := c.Upload(context.Background(), local, rel); err != nil || !res.Skipped {
			t.Fatalf("Upload with a leftover .part = %+v, %v", res, err)
		}
		noParts(t, srv.Root())

		// A remote file of another size is replaced.
		if err := os.WriteFile(filepath.Join(srv.Root(), "other.mkv"), []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
		if res, err = c.Upload(context.Background(), local, "other.mkv"); err != nil || res.Skipped {
			t.Fatalf("Upload over a stale file = %+v, %v", res, err)
		}
		sameFile(t, filepath.Join(srv.Root(), "other.mkv"), data)

		// An empty file.
		empty := filepath.Join(t.TempDir(), "empty.mkv")
		if err := os.WriteFile(empty, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Upload(context.Background(), empty, "empty.mkv"); err != nil {
			t.Fatal(err)
		}
		sameFile(t, filepath.Join(srv.Root(), "empty.mkv"), nil)

		// Onto a directory, or from a missing file.
		if _, err := c.Upload(context.Background(), local, "Stream"); !errors.Is(err, storage.ErrIsDir) {
			t.Fatalf("Upload onto a directory: %v, want ErrIsDir", err)
		}
		if _, err := c.Upload(context.Background(), filepath.Join(t.TempDir(), "missing"), "x.mkv"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Upload of a missing file: %v, want ErrNotExist", err)
		}
		noParts(t, srv.Root())
	})
}

// A .part holding the first half is continued: only the second half is sent.
func TestUploadResume(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv *sftptest.Server, cfg storage.Config) {
		c := dial(t, cfg)
		local, data := randomFile(t, 8<<20)
		half := len(data) / 2
		dst := filepath.Join(srv.Root(), "s", "chunk_001.mkv")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+".part", data[:half], 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := c.Upload(context.Background(), local, "s/chunk_001.mkv")
		if err != nil {
			t.Fatal(err)
		}
		if res.Resumed != int64(half) || res.Sent != int64(len(data)-half) {
			t.Fatalf("Result = %+v, want Resumed %d, Sent %d", res, half, len(data)-half)
		}
		sameFile(t, dst, data)
		noParts(t, srv.Root())
	})
}

// Before resuming, the .part's head and tail are compared with the local file: a hole
// (writes lost out of order), another file's data or a .part longer than the file are
// not continued blindly.
func TestUploadResumeVerifies(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	c := dial(t, keyConfig(srv))
	local, data := randomFile(t, 6<<20)
	n := len(data)
	hole := func() []byte { // the last 96 KiB of the first 5 MiB never arrived
		p := append([]byte(nil), data[:5<<20]...)
		clear(p[len(p)-96<<10:])
		return p
	}()
	otherHead := append([]byte("not this file"), data[13:4<<20]...)
	longer := append(append([]byte(nil), data...), "trailing"...)
	for _, tc := range []struct {
		name    string
		part    []byte
		resumed int64
	}{
		{"hole in the tail", hole, 5<<20 - 96<<10},
		{"other file", otherHead, 0},
		{"longer than local", longer, 0},
		{"complete", data, int64(n)},
	} {
		rel := strings.ReplaceAll(tc.name, " ", "_") + ".mkv"
		dst := filepath.Join(srv.Root(), rel)
		if err := os.WriteFile(dst+".part", tc.part, 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := c.Upload(context.Background(), local, rel)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if res.Resumed != tc.resumed || res.Sent != int64(n)-tc.resumed {
			t.Fatalf("%s: Result = %+v, want Resumed %d", tc.name, res, tc.resumed)
		}
		sameFile(t, dst, data)
	}
	noParts(t, srv.Root())
}

// The server goes down in the middle of an upload: Upload fails; once the server is back
// (same port) a new Client's Upload continues from what arrived and the file is whole.
func TestUploadServerDownAndBack(t *testing.T) {
	t.Parallel()
	eachServer(t, func(t *testing.T, srv *sftptest.Server, cfg storage.Config) {
		local, data := randomFile(t, 24<<20)
		tp := newTap(6 << 20)
		tapped := cfg
		tapped.DialContext = tp.dial
		c := dial(t, tapped)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Upload(context.Background(), local, "live/chunk_002.mkv")
			errc <- err
		}()
		receive(t, tp.hit, 10*time.Second, "6 MB written")
		srv.Stop()
		close(tp.release) // what the client still sends goes to a closed connection
		if err := receive(t, errc, 10*time.Second, "Upload to a stopped server"); err == nil {
			t.Fatal("Upload succeeded although the server stopped at 6 MB of 24")
		}
		if _, err := os.Stat(filepath.Join(srv.Root(), "live/chunk_002.mkv")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the final name exists after a broken upload: %v", err)
		}
		if _, err := storage.Dial(context.Background(), cfg); err == nil {
			t.Fatal("Dial succeeded while the server is down")
		}

		srv.Restart()
		c2 := dial(t, cfg)
		res, err := c2.Upload(context.Background(), local, "live/chunk_002.mkv")
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("after restart: %+v", res)
		if res.Resumed <= 0 || res.Resumed >= int64(len(data)) || res.Sent != int64(len(data))-res.Resumed {
			t.Fatalf("Result = %+v, want a resume from what arrived before the outage", res)
		}
		sameFile(t, filepath.Join(srv.Root(), "live/chunk_002.mkv"), data)
		noParts(t, srv.Root())
	})
}

// Cancelling the context stops an upload mid-way; the Client stays usable and the next
// Upload resumes.
func TestUploadCancel(t *testing.T) {
	t.Parallel()
	srv := sftptest.Start(t, sftptest.Options{})
	local, data := randomFile(t, 16<<20)
	tp := newTap(4 << 20)
	cfg := keyConfig(srv)
	cfg.DialContext = tp.dial
	c := dial(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := c.Upload(ctx, local, "c.mkv")
		errc <- err
	}()
	receive(t, tp.hit, 10*time.Second, "4 MB written")
	cancel()
	close(tp.release)
	if err := receive(t, errc, 5*time.Second, "cancelled Upload"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Upload: %v, want context.Canceled", err)
	}
	res, err := c.Upload(context.Background(), local, "c.mkv")
	if err != nil {
		t.Fatalf("Upload after cancel: %v", err)
	}
	if res.Resumed == 0 {
		t.Fatalf("Result = %+v, want a resume", res)
	}
	sameFile(t, filepath.Join(srv.Root(), "c.mkv"), data)
}
