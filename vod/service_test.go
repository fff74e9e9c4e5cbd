package vod

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	ingestrtmp "github.com/relaycast/relaycast/ingest/rtmp"
	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// fakeStorage is the owners' storage settings, as control keeps them.
type fakeStorage struct {
	mu     sync.Mutex
	cfg    storage.Config
	ok     bool
	pinned []string
}

func (f *fakeStorage) VODStorage(context.Context, int64) (storage.Config, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cfg, f.ok, nil
}

func (f *fakeStorage) PinVODHostKey(_ context.Context, _ int64, key string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pinned = append(f.pinned, key)
	f.cfg.HostKey = key
	return nil
}

// remoteChunks lists the .mkv files (and any leftover .part) below root, relative to it.
func remoteChunks(t testing.TB, root string) (mkv, part []string) {
	t.Helper()
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case strings.HasSuffix(p, ".mkv"):
			mkv = append(mkv, rel)
		case strings.HasSuffix(p, storage.PartSuffix):
			part = append(part, rel)
		}
		return nil
	})
	sort.Strings(mkv)
	return mkv, part
}

type svcEnv struct {
	hub   *bus.Hub
	addr  string
	spool string
	store *fakeStorage
	srv   *sftptest.Server
	done  chan string
}

func newSvcEnv(t *testing.T) *svcEnv {
	t.Helper()
	log := testLogger(t)
	e := &svcEnv{hub: bus.New(bus.Config{ReconnectGrace: -1, Logger: log}), spool: t.TempDir(),
		done: make(chan string, 8)}
	t.Cleanup(e.hub.Close)
	e.srv = sftptest.Start(t, sftptest.Options{})
	e.store = &fakeStorage{ok: true, cfg: storage.Config{Host: e.srv.Host(), Port: e.srv.Port(),
		Username: e.srv.User(), PrivateKey: e.srv.ClientKey(), RemotePath: e.srv.Root()}}
	in, err := ingestrtmp.New(ingestrtmp.Config{Addr: "127.0.0.1:0", Hub: e.hub, Auth: fakeAuth{},
		PlainEnabled: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	e.addr = in.Addr().String()
	return e
}

func (e *svcEnv) service(t *testing.T) *Service {
	t.Helper()
	svc, err := NewService(ServiceConfig{Hub: e.hub, SpoolDir: e.spool, ChunkDuration: 2 * time.Second,
		Storage: e.store, UploadMinBackoff: 100 * time.Millisecond, UploadMaxBackoff: 500 * time.Millisecond,
		OnEncodingDone: func(stream string) { e.done <- stream }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	unwatch := e.hub.Watch(func(ev bus.Event) {
		if ev.Type == bus.EventLive && !ev.Resumed {
			svc.StreamLive(ev.Stream.ID(), 7, "My Show", true, time.Now())
		}
	})
	t.Cleanup(unwatch)
	return svc
}

// TestServiceStorageDown: the SFTP server is down for the first half of the stream; every
// chunk still arrives once it is back, the stream stays Encoding until then, the spool
// ends empty and the host key was pinned on first use.
func TestServiceStorageDown(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newSvcEnv(t)
	svc := e.service(t)
	e.srv.Stop()

	ffmpegPublish(t, "rtmp://"+e.addr+"/live/live_key1", 8)
	waitFor(t, 15*time.Second, func() bool { return e.hub.Stream("s1") != nil })
	time.Sleep(4 * time.Second)
	if !svc.Encoding("s1") {
		t.Fatal("not encoding while recording")
	}
	if ups := svc.Uploads(7); len(ups) != 1 || !ups[0].Recording || ups[0].Pending == 0 || ups[0].LastError == "" {
		t.Fatalf("progress while recording with the storage down: %+v", ups)
	}
	e.srv.Restart()
	// The stream ends; uploading goes on until every chunk is there.
	waitFor(t, 20*time.Second, func() bool { s := e.hub.Stream("s1"); return s == nil || s.State() == bus.StateEnded })
	select {
	case s := <-e.done:
		if s != "s1" {
			t.Fatalf("encoding done for %q", s)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("encoding not done: %+v", svc.Uploads(-1))
	}
	if svc.Encoding("s1") {
		t.Fatal("still encoding after every chunk was uploaded")
	}
	mkv, part := remoteChunks(t, e.srv.Root())
	ups := svc.Uploads(7)
	t.Logf("remote: %v; uploads %+v", mkv, ups)
	if len(mkv) < 3 || len(part) != 0 {
		t.Fatalf("remote chunks %v, parts %v", mkv, part)
	}
	if len(ups) != 1 || ups[0].Uploaded != len(mkv) || ups[0].Pending != 0 || !ups[0].Done || ups[0].Recording || ups[0].LastError == "" {
		t.Fatalf("upload progress %+v (want the failures while the server was down recorded)", ups)
	}
	var total float64
	for _, m := range mkv {
		if !strings.HasPrefix(m, "My Show/") {
			t.Fatalf("remote name %q", m)
		}
		p := filepath.Join(e.srv.Root(), m)
		if s := decode(t, p); s != "" {
			t.Fatalf("%s decodes with errors: %s", m, s)
		}
		total += ffprobe(t, p).duration()
	}
	if total < 6 || total > 9 {
		t.Fatalf("chunks hold %.2f s of an 8 s stream", total)
	}
	if left := spoolFiles(t, e.spool); len(left) != 0 {
		t.Fatalf("spool not emptied: %v", left)
	}
	if len(e.store.pinned) != 1 || !strings.HasPrefix(e.store.pinned[0], "ssh-") {
		t.Fatalf("host key pinned %v", e.store.pinned)
	}
}

// TestServiceRestart: chunks left in the spool by a stopped service (storage down) are
// uploaded by the next one, each once.
func TestServiceRestart(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newSvcEnv(t)
	svc := e.service(t)
	e.srv.Stop()
	ffmpegPublish(t, "rtmp://"+e.addr+"/live/live_key1", 6)
	waitFor(t, 15*time.Second, func() bool { return e.hub.Stream("s1") != nil })
	time.Sleep(3 * time.Second)
	_ = svc.Close() // mid-stream: the chunk being written is finished
	left := spoolFiles(t, e.spool)
	if len(left) == 0 {
		t.Fatal("nothing in the spool")
	}
	e.srv.Restart()
	svc2, err := NewService(ServiceConfig{Hub: e.hub, SpoolDir: e.spool, Storage: e.store,
		UploadMinBackoff: 100 * time.Millisecond, UploadMaxBackoff: 500 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc2.Close() })
	waitFor(t, 20*time.Second, func() bool { return len(spoolFiles(t, e.spool)) == 0 })
	mkv, part := remoteChunks(t, e.srv.Root())
	if len(mkv) != len(left) || len(part) != 0 {
		t.Fatalf("spool had %v; remote has %v (parts %v)", left, mkv, part)
	}
	ups := svc2.Uploads(-1)
	if len(ups) != 1 || ups[0].Uploaded != len(left) || !ups[0].Done {
		t.Fatalf("uploads %+v", ups)
	}
}
