package storage_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage"
	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// Closing Clients and stopping servers leaves no goroutine behind (the keepalive, the
// cancel watch, pkg/sftp's and x/crypto/ssh's readers, the in-process server's). Not
// parallel: it counts every goroutine of the process.
func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		local, _ := randomFile(t, 3<<20)
		for _, opts := range []sftptest.Options{{}, {InProcess: true}} {
			srv := sftptest.Start(t, opts)
			cfg := keyConfig(srv)
			cfg.KeepAlive = 300 * time.Millisecond
			c, err := storage.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if _, err := c.Upload(ctx, local, "a/b.mkv"); err != nil {
				t.Fatal(err)
			}
			cancel()
			if _, err := c.List(context.Background(), "a"); err != nil {
				t.Fatal(err)
			}
			c.Close()
			c.Close()
			srv.Stop()
			// A Client whose server vanished closes cleanly too.
			srv.Restart()
			c, err = storage.Dial(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			c.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			stacks := string(buf[:n])
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), stacks[:min(len(stacks), 20000)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
