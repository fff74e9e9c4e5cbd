package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The end-to-end tests build the real binary, run it on loopback ports chosen by the
// kernel, and drive it with curl-like HTTP calls, ffmpeg and ffprobe.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func relaycastBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "relaycast-e2e")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "relaycast")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func requireTool(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s is required by this test (the README's test command installs it): %v", n, err)
		}
	}
}

// server is a running relaycast process.
type server struct {
	t       *testing.T
	cmd     *exec.Cmd
	http    string // http://127.0.0.1:port
	rtmp    string // 127.0.0.1:port
	rtmps   string
	logMu   sync.Mutex
	logs    bytes.Buffer
	exited  chan struct{}
	dataDir string
	addrs   map[string]string // listener name -> bound address, from the log
}

// addr returns the bound address of a listener ("rtsp", "rtmps", ...), "" when off.
func (s *server) addr(name string) string { return s.addrs[name] }

func startServer(t *testing.T, extra ...string) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), extra...)
}

// startServerIn starts relaycast on dataDir (a restart keeps its database, keys and spool).
func startServerIn(t *testing.T, dataDir string, extra ...string) *server {
	t.Helper()
	s := &server{t: t, exited: make(chan struct{}), dataDir: dataDir}
	args := append([]string{"serve",
		"--data-dir", s.dataDir,
		"--http-addr", "127.0.0.1:0",
		"--rtmp-addr", "127.0.0.1:0",
		"--rtmps-addr", "127.0.0.1:0",
		"--rtsp-addr", "", "--rtsps-addr", "", "--webrtc-addr", "",
		"--log-format", "json",
		"--reconnect-grace", "2s",
		"--api-rate-limit=-1", // the tests poll the API to time what they measure
	}, extra...)
	s.cmd = exec.Command(relaycastBinary(t), args...)
	s.cmd.Env = append(os.Environ(), "RELAYCAST_SECRET_KEY=")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan map[string]string, 1)
	go func() {
		defer close(s.exited)
		found := map[string]string{}
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			s.logMu.Lock()
			s.logs.Write(line)
			s.logs.WriteByte('\n')
			s.logMu.Unlock()
			var rec map[string]any
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			if rec["msg"] == "listening" {
				found[fmt.Sprint(rec["listener"])] = fmt.Sprint(rec["addr"])
			}
			if rec["msg"] == "relaycast started" && !sent {
				addrs <- found
				sent = true
			}
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(s.stop)
	select {
	case a := <-addrs:
		s.addrs = a
		s.http, s.rtmp, s.rtmps = "http://"+a["http"], a["rtmp"], a["rtmps"]
	case <-s.exited:
		t.Fatalf("relaycast exited at start:\n%s", s.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("relaycast did not start:\n%s", s.logText())
	}
	return s
}

// kill ends relaycast with SIGKILL, as a crash would.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *server) logText() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.logs.String()
}

func (s *server) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.t.Errorf("relaycast did not stop within 15 s of SIGINT")
	}
	if s.t.Failed() {
		s.t.Logf("relaycast log:\n%s", s.logText())
	}
}

// call does an HTTP request with an optional bearer token and JSON body, and decodes the
// JSON answer into out (if not nil). It returns the status code.
func (s *server) call(method, path, token string, body, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.http+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: status %d, body %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

func (s *server) mustCall(want int, method, path, token string, body, out any) {
	s.t.Helper()
	var raw json.RawMessage
	if got := s.call(method, path, token, body, &raw); got != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, got, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *server) login(user, pass string) string {
	s.t.Helper()
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	s.mustCall(200, "POST", "/api/token", "", map[string]string{"username": user, "password": pass}, &tok)
	if tok.Token == "" || tok.ExpiresAt == "" {
		s.t.Fatalf("login answer without token or expires_at: %+v", tok)
	}
	return tok.Token
}

type streamJSON struct {
	ID           int64             `json:"id"`
	Title        string            `json:"title"`
	StreamKey    string            `json:"stream_key"`
	PlaybackID   string            `json:"playback_id"`
	IsLive       int               `json:"is_live"`
	RTMPEnabled  bool              `json:"rtmp_enabled"`
	ViewerCount  int               `json:"viewer_count"`
	PlaybackURLs map[string]string `json:"playback_urls"`
}

func (s *server) stream(token string, id int64) streamJSON {
	s.t.Helper()
	var st streamJSON
	s.mustCall(200, "GET", fmt.Sprintf("/api/streams/%d", id), token, nil, &st)
	return st
}

func (s *server) waitLive(token string, id int64, want int, within time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := s.stream(token, id)
		if st.IsLive == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("stream %d is_live=%d, want %d after %v", id, st.IsLive, want, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// publish starts ffmpeg publishing a generated H.264 (2 s GOP at 30 fps) + AAC clip of the
// given length to url at real-time pace.
func publish(t *testing.T, ctx context.Context, url string, seconds int) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "96k",
		"-f", "flv", url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// probeCodecs runs ffprobe on url and returns the codec names it finds.
func probeCodecs(t *testing.T, url string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rw_timeout", "15000000",
		"-show_entries", "stream=codec_name", "-of", "json", url).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", url, err)
	}
	var res struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe output %q: %v", out, err)
	}
	var names []string
	for _, s := range res.Streams {
		names = append(names, s.CodecName)
	}
	return names
}

func hasCodecs(names []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, n := range names {
			found = found || n == w
		}
		if !found {
			return false
		}
	}
	return true
}

// waitPlaylist polls url until it answers 200 with a media playlist, and returns how long
// that took.
func waitPlaylist(t *testing.T, url string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	for time.Since(start) < within {
		resp, err := client.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && bytes.Contains(b, []byte("#EXT")) {
				return time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no playlist at %s within %v", url, within)
	return 0
}

func TestEndToEnd(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	s := startServer(t)

	// Health and first-run setup.
	var health map[string]any
	s.mustCall(200, "GET", "/health", "", nil, &health)
	if health["status"] != "ok" || health["service"] != "relaycast" {
		t.Fatalf("health: %v", health)
	}
	s.mustCall(200, "GET", "/readyz", "", nil, nil)
	var setup map[string]any
	s.mustCall(200, "GET", "/api/setup", "", nil, &setup)
	if setup["is_setup"] != false {
		t.Fatalf("fresh server says is_setup=%v", setup["is_setup"])
	}
	s.mustCall(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "correct horse"}, nil)
	s.mustCall(400, "POST", "/api/setup", "", map[string]string{"username": "again", "password": "correct horse"}, nil)
	admin := s.login("admin", "correct horse")

	// Unauthenticated calls get 401 in the error shape.
	var apiErr map[string]any
	if code := s.call("GET", "/api/streams", "", nil, &apiErr); code != 401 || apiErr["status"] != float64(401) || apiErr["error"] == "" {
		t.Fatalf("unauthenticated: %d %v", code, apiErr)
	}

	var st streamJSON
	s.mustCall(200, "POST", "/api/streams", admin, map[string]any{"title": "E2E"}, &st)
	if !strings.HasPrefix(st.StreamKey, "live_") || !strings.HasPrefix(st.PlaybackID, "pub_") {
		t.Fatalf("stream key %q playback id %q", ephemeral(st.StreamKey), st.PlaybackID)
	}
	hlsURL := st.PlaybackURLs["hls"]
	if !strings.Contains(hlsURL, st.PlaybackID) || strings.Contains(hlsURL, st.StreamKey) {
		t.Fatalf("hls url %q must carry the playback id, never the key", hlsURL)
	}
	if got := s.stream(admin, st.ID); got.StreamKey != "" {
		t.Fatal("GET /api/streams/{id} shows the secret stream key again")
	}

	t.Run("rtmp", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		start := time.Now()
		ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 8)
		took := waitPlaylist(t, hlsURL, 15*time.Second)
		t.Logf("ffmpeg start -> playable HLS playlist: %v (GOP 2 s)", took)
		s.waitLive(admin, st.ID, 1, 5*time.Second)
		if names := probeCodecs(t, hlsURL); !hasCodecs(names, "h264", "aac") {
			t.Fatalf("HLS codecs %v, want h264 and aac", names)
		}
		// RTMP playback of the same stream, by playback id.
		if names := probeCodecs(t, "rtmp://"+s.rtmp+"/live/"+st.PlaybackID); !hasCodecs(names, "h264", "aac") {
			t.Fatalf("RTMP playback codecs %v, want h264 and aac", names)
		}
		// The metrics carry the stream and the bytes served.
		resp, err := http.Get(s.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{"relaycast_live_streams 1", `relaycast_stream_readers{protocol="hls",stream="` + st.PlaybackID + `"} 1`,
			"relaycast_hls_bytes_out_total", "relaycast_rtmp_play_bytes_out_total"} {
			if !strings.Contains(string(metrics), want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if err := ff.Wait(); err != nil {
			t.Fatalf("ffmpeg publish: %v", err)
		}
		t.Logf("publish ran %v", time.Since(start))
		s.waitLive(admin, st.ID, 0, 10*time.Second)
	})

	t.Run("rtmps", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ff := publish(t, ctx, "rtmps://"+s.rtmps+"/live/"+st.StreamKey, 6)
		waitPlaylist(t, hlsURL, 15*time.Second)
		s.waitLive(admin, st.ID, 1, 5*time.Second)
		if names := probeCodecs(t, hlsURL); !hasCodecs(names, "h264", "aac") {
			t.Fatalf("HLS codecs over RTMPS %v, want h264 and aac", names)
		}
		if err := ff.Wait(); err != nil {
			t.Fatalf("ffmpeg publish over RTMPS: %v", err)
		}
		s.waitLive(admin, st.ID, 0, 10*time.Second)
	})

	t.Run("regenerated key drops the publisher", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 20)
		s.waitLive(admin, st.ID, 1, 10*time.Second)
		var fresh streamJSON
		s.mustCall(200, "POST", fmt.Sprintf("/api/streams/%d/regenerate-key", st.ID), admin, nil, &fresh)
		if fresh.StreamKey == "" || fresh.StreamKey == st.StreamKey {
			t.Fatal("regenerate-key gave no new key")
		}
		done := make(chan error, 1)
		go func() { done <- ff.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the publisher with the old key is still connected 5 s after regenerate-key")
		}
		if err := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 1).Wait(); err == nil {
			t.Fatal("the old key still publishes")
		}
		st.StreamKey = fresh.StreamKey
		s.waitLive(admin, st.ID, 0, 10*time.Second)
	})

	t.Run("wrong key refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		start := time.Now()
		ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/live_notakey", 5)
		if err := ff.Wait(); err == nil {
			t.Fatal("ffmpeg published with a wrong key")
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Fatalf("wrong key refused only after %v", took)
		}
		if !strings.Contains(s.logText(), "live_nota***") {
			t.Error("no log line names the (redacted) refused key")
		}
		if strings.Contains(s.logText(), st.StreamKey) {
			t.Fatal("the log contains a secret stream key")
		}
	})

	t.Run("rtmp token single use with reconnect grace", func(t *testing.T) {
		s.mustCall(400, "POST", fmt.Sprintf("/api/streams/%d/rtmp-token", st.ID), admin, nil, nil)
		s.mustCall(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"rtmp_enabled": true}, nil)
		var tok struct {
			Token     string `json:"token"`
			ExpiresIn int    `json:"expires_in"`
			RTMPURL   string `json:"rtmp_url"`
		}
		s.mustCall(200, "POST", fmt.Sprintf("/api/streams/%d/rtmp-token", st.ID), admin, nil, &tok)
		if !strings.HasPrefix(tok.Token, "rtmp_") || tok.ExpiresIn != 900 || tok.RTMPURL == "" {
			t.Fatalf("rtmp token answer: %+v", tok)
		}
		url := "rtmp://" + s.rtmp + "/live/" + tok.Token
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := publish(t, ctx, url, 2).Wait(); err != nil {
			t.Fatalf("first use of the token: %v", err)
		}
		// Within the 30 s reconnect grace the same token works again.
		if err := publish(t, ctx, url, 1).Wait(); err != nil {
			t.Fatalf("reconnect within the grace: %v", err)
		}
		time.Sleep(31 * time.Second) // the token's reconnect grace is 30 s by the API's definition
		if err := publish(t, ctx, url, 1).Wait(); err == nil {
			t.Fatal("the token worked again after its 30 s grace")
		}
	})

	t.Run("other users", func(t *testing.T) {
		s.mustCall(200, "POST", "/api/admin/users", admin, map[string]any{"username": "bob", "password": "bob's password"}, nil)
		bob := s.login("bob", "bob's password")
		path := fmt.Sprintf("/api/streams/%d", st.ID)
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			var body any
			if m == "PUT" {
				body = map[string]any{"title": "mine now"}
			}
			if code := s.call(m, path, bob, body, nil); code != 404 && code != 403 {
				t.Fatalf("bob %s %s: %d, want 404/403", m, path, code)
			}
		}
		if code := s.call("POST", path+"/regenerate-key", bob, nil, nil); code != 404 && code != 403 {
			t.Fatalf("bob regenerates admin's key: %d", code)
		}
		if code := s.call("GET", "/api/admin/users", bob, nil, nil); code != 403 {
			t.Fatalf("bob lists users: %d, want 403", code)
		}
	})
}

// ephemeral hides a secret in a failure message.
func ephemeral(s string) string {
	if len(s) > 9 {
		return s[:9] + "***"
	}
	return s
}
