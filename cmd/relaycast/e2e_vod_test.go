package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/vod/storage/sftptest"
)

// vodServer starts relaycast with chunkDur chunks, an admin, a stream and VOD storage on a
// real OpenSSH sshd.
func vodServer(t *testing.T, dataDir, chunkDur string) (*server, string, streamJSON, *sftptest.Server) {
	t.Helper()
	srv := sftptest.Start(t, sftptest.Options{})
	s := startServerIn(t, dataDir, "--vod-chunk-duration", chunkDur)
	s.mustCall(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "correct horse"}, nil)
	tok := s.login("admin", "correct horse")
	var st streamJSON
	s.mustCall(200, "POST", "/api/streams", tok, map[string]any{"title": "My Show"}, &st)
	s.mustCall(200, "POST", "/api/vods/storage", tok, map[string]any{
		"host": srv.Host(), "port": srv.Port(), "username": srv.User(), "auth_method": "key",
		"private_key": string(srv.ClientKey()), "remote_path": srv.Root(),
	}, nil)
	return s, tok, st, srv
}

// remoteMKV lists the .mkv files under root (relative, sorted) and fails on a leftover
// .part file.
func remoteMKV(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasSuffix(p, ".part") {
			t.Errorf("leftover partial upload %s", rel)
		}
		if strings.HasSuffix(p, ".mkv") {
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// mkvDuration checks that file decodes without errors, has a video and an audio stream,
// and returns its duration.
func mkvDuration(t *testing.T, file string) float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-v", "error", "-i", file, "-f", "null", "-").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("%s does not decode cleanly: %v\n%s", file, err, out)
	}
	js, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
		"-of", "json", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var res struct {
		Streams []struct {
			CodecType string `json:"codec_type"`
		} `json:"streams"`
		Format struct {
			Duration string `json:"duration"`
		} `json:"format"`
	}
	if err := json.Unmarshal(js, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Streams) != 2 {
		t.Fatalf("%s has streams %+v, want video and audio", file, res.Streams)
	}
	d, _ := strconv.ParseFloat(res.Format.Duration, 64)
	if d <= 0 {
		t.Fatalf("%s has no duration", file)
	}
	return d
}

// TestEndToEndVOD: a 40 s stream recorded in 10 s chunks lands on the SFTP server as 4–5
// chunks that each decode, whose durations add up to the stream's within one GOP; the
// stream is Encoding (is_live 2) until the last chunk is uploaded; GET /api/vods lists them.
func TestEndToEndVOD(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	t.Parallel()
	s, tok, st, srv := vodServer(t, t.TempDir(), "10s")
	ff := publish(t, context.Background(), "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 40)
	s.waitLive(tok, st.ID, 1, 15*time.Second)
	_ = ff.Wait()
	s.waitLive(tok, st.ID, 0, 30*time.Second)

	files := remoteMKV(t, srv.Root())
	if len(files) < 4 || len(files) > 5 {
		t.Fatalf("remote chunks: %v, want 4–5", files)
	}
	total := 0.0
	for i, f := range files {
		if want := fmt.Sprintf("chunk_%03d.mkv", i); !strings.HasPrefix(f, "My Show/") || filepath.Base(f) != want {
			t.Fatalf("chunk %d is %q, want My Show/<session>/%s", i, f, want)
		}
		total += mkvDuration(t, filepath.Join(srv.Root(), f))
	}
	if math.Abs(total-40) > 2 { // one GOP: -g 60 at 30 fps
		t.Fatalf("chunks hold %.2f s of a 40 s stream", total)
	}
	t.Logf("%d chunks, %.2f s in all", len(files), total)

	var list struct {
		Files []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"files"`
	}
	s.mustCall(200, "GET", "/api/vods?sort=name&order=asc", tok, nil, &list)
	if len(list.Files) != len(files) || list.Files[0].Name != files[0] || list.Files[0].Size == 0 {
		t.Fatalf("GET /api/vods: %+v, remote %v", list.Files, files)
	}
}

// TestEndToEndVODStorageDown: the SFTP server is down while the stream runs; the stream
// stays Encoding (is_live 2) after it ends until the server is back and every chunk is
// uploaded.
func TestEndToEndVODStorageDown(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	t.Parallel()
	s, tok, st, srv := vodServer(t, t.TempDir(), "4s")
	srv.Stop()
	ff := publish(t, context.Background(), "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 14)
	s.waitLive(tok, st.ID, 1, 15*time.Second)
	_ = ff.Wait()
	s.waitLive(tok, st.ID, 2, 15*time.Second)
	time.Sleep(3 * time.Second)
	if got := s.stream(tok, st.ID).IsLive; got != 2 {
		t.Fatalf("is_live %d while chunks wait for the storage, want 2", got)
	}
	srv.Restart()
	s.waitLive(tok, st.ID, 0, 30*time.Second)
	files := remoteMKV(t, srv.Root())
	total := 0.0
	for _, f := range files {
		total += mkvDuration(t, filepath.Join(srv.Root(), f))
	}
	if len(files) < 3 || math.Abs(total-14) > 2 {
		t.Fatalf("after the storage came back: %v holding %.2f s of a 14 s stream", files, total)
	}
	if left := spoolFiles(t, filepath.Join(s.dataDir, "vod-spool")); len(left) != 0 {
		t.Fatalf("spool not emptied: %v", left)
	}
}

// TestEndToEndVODKilled: relaycast is killed with SIGKILL in the middle of a chunk and
// started again on the same data dir: every finished chunk and the partial one (readable
// up to within a second or so of the kill) reach the storage, none of them twice.
func TestEndToEndVODKilled(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	t.Parallel()
	dir := t.TempDir()
	s, tok, st, srv := vodServer(t, dir, "6s")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 30)
	defer func() { cancel(); _ = ff.Wait() }()
	s.waitLive(tok, st.ID, 1, 15*time.Second)
	live := time.Now()
	// Kill 3 s into the third chunk, once the first one is uploaded.
	deadline := time.Now().Add(20 * time.Second)
	for len(remoteMKV(t, srv.Root())) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Until(live.Add(15 * time.Second)))
	recorded := time.Since(live).Seconds()
	s.kill()
	firstLog := s.logText()
	cancel()
	_ = ff.Wait()

	s2 := startServerIn(t, dir, "--vod-chunk-duration", "6s")
	waitFor := time.Now().Add(30 * time.Second)
	for len(spoolFiles(t, filepath.Join(dir, "vod-spool"))) > 0 && time.Now().Before(waitFor) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := spoolFiles(t, filepath.Join(dir, "vod-spool")); len(left) != 0 {
		t.Fatalf("spool not emptied after the restart: %v", left)
	}
	files := remoteMKV(t, srv.Root())
	total := 0.0
	for i, f := range files {
		if filepath.Base(f) != fmt.Sprintf("chunk_%03d.mkv", i) {
			t.Fatalf("remote chunks %v", files)
		}
		total += mkvDuration(t, filepath.Join(srv.Root(), f))
	}
	t.Logf("killed %.1f s after going live; storage has %v holding %.2f s", recorded, files, total)
	if len(files) != 3 || total < recorded-2.5 || total > recorded+0.5 {
		t.Fatalf("storage has %v holding %.2f s; %.1f s were recorded before the kill", files, total, recorded)
	}
	// Nothing went up twice: each chunk was sent by exactly one process.
	all := firstLog + s2.logText()
	if n := strings.Count(all, `"already_there":false`); n != len(files) {
		t.Fatalf("%d uploads for %d chunks:\n%s", n, len(files), all)
	}
}

// spoolFiles lists the files under dir (none when it does not exist).
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}
