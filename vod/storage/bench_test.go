package storage_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

const throughputSize = 64 << 20

// cliUpload runs OpenSSH's sftp (batch mode) or scp to put local at remote.
func cliUpload(tb testing.TB, tool string, srv *sftptest.Server, local, remote string) {
	tb.Helper()
	common := []string{"-F", "/dev/null", "-i", srv.ClientKeyFile(), "-P", strconv.Itoa(srv.Port()),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-q"}
	var cmd *exec.Cmd
	switch tool {
	case "sftp":
		batch := filepath.Join(tb.TempDir(), "batch")
		if err := os.WriteFile(batch, fmt.Appendf(nil, "put %s %s\n", local, remote), 0o644); err != nil {
			tb.Fatal(err)
		}
		cmd = exec.Command("sftp", append(common, "-b", batch, srv.User()+"@"+srv.Host())...)
	case "scp":
		cmd = exec.Command("scp", append(common, local, srv.User()+"@"+srv.Host()+":"+remote)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s (openssh-client) failed: %v\n%s", tool, err, out)
	}
}

// TestUploadThroughput logs the upload throughput of a 64 MB file to a loopback sshd:
// this package against OpenSSH's own sftp and scp clients. It asserts nothing about
// timing. Not parallel, so that it runs alone.
func TestUploadThroughput(t *testing.T) {
	srv := sftptest.Start(t, sftptest.Options{})
	local, _ := randomFile(t, throughputSize)
	c := dial(t, keyConfig(srv))
	const runs = 3
	measure := func(name string, upload func(remote string)) {
		var rates []float64
		for i := range runs {
			remote := fmt.Sprintf("run-%d.mkv", i)
			start := time.Now()
			upload(remote)
			rates = append(rates, throughputSize/1e6/time.Since(start).Seconds())
			if err := os.Remove(filepath.Join(srv.Root(), remote)); err != nil {
				t.Fatal(err)
			}
		}
		slices.Sort(rates)
		t.Logf("%-22s 64 MiB to loopback sshd: median %6.1f MB/s (runs %.1f)", name, rates[len(rates)/2], rates)
	}
	measure("vod/storage Upload", func(remote string) {
		if _, err := c.Upload(context.Background(), local, remote); err != nil {
			t.Fatal(err)
		}
	})
	measure("sftp -b put", func(remote string) { cliUpload(t, "sftp", srv, local, filepath.Join(srv.Root(), remote)) })
	measure("scp", func(remote string) { cliUpload(t, "scp", srv, local, filepath.Join(srv.Root(), remote)) })
}

// BenchmarkUpload measures MB/s of a 64 MiB upload to a loopback server:
// go test -run '^$' -bench Upload ./vod/storage/
func BenchmarkUpload(b *testing.B) {
	local, _ := randomFile(b, throughputSize)
	servers := map[string]*sftptest.Server{
		"openssh":   sftptest.Start(b, sftptest.Options{}),
		"inprocess": sftptest.Start(b, sftptest.Options{InProcess: true}),
	}
	for _, name := range []string{"openssh", "inprocess"} {
		srv := servers[name]
		b.Run("storage/"+name, func(b *testing.B) {
			c := dial(b, keyConfig(srv))
			b.SetBytes(throughputSize)
			for i := 0; b.Loop(); i++ {
				remote := fmt.Sprintf("bench-%d.mkv", i)
				if _, err := c.Upload(context.Background(), local, remote); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = os.Remove(filepath.Join(srv.Root(), remote))
				b.StartTimer()
			}
		})
	}
	for _, tool := range []string{"sftp", "scp"} {
		srv := servers["openssh"]
		b.Run(tool+"/openssh", func(b *testing.B) {
			b.SetBytes(throughputSize)
			for b.Loop() {
				cliUpload(b, tool, srv, local, filepath.Join(srv.Root(), "cli.mkv"))
			}
		})
	}
}
