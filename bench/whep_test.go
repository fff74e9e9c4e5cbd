package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/egress/whep/whepclient"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// BenchmarkWHEPViewers measures the server's CPU for 1 and 20 WebRTC viewers of one
// 720p30 3 Mbps H.264 + AAC RTMP stream, and separately the CPU of the shared AAC→Opus
// transcoder (the ffmpeg child of the server). Figures are per second of wall time over a
// 10 s window; the viewers are in this process, so only the server is measured.
func BenchmarkWHEPViewers(b *testing.B) {
	srv := startRelaycast(b)
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				measureViewers(b, srv, n)
			}
		})
	}
}

func measureViewers(b *testing.B, srv *relaycast, n int) {
	api, err := signal.NewAPI(true)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	players := make([]*whepclient.Player, 0, n)
	defer func() {
		for _, p := range players {
			_ = p.Close()
		}
	}()
	for i := 0; i < n; i++ {
		p, err := whepclient.Dial(ctx, srv.whep, whepclient.Options{API: api})
		if err != nil {
			b.Fatalf("viewer %d: %v", i, err)
		}
		players = append(players, p)
	}
	time.Sleep(3 * time.Second) // transcoder started, viewers past their keyframe burst
	window := 10 * time.Second
	s0, t0 := cpuTicks(b, srv.pid), childTicks(srv.pid)
	start := time.Now()
	time.Sleep(window)
	s1, t1 := cpuTicks(b, srv.pid), childTicks(srv.pid)
	secs := time.Since(start).Seconds()
	hz := 100.0 // CLK_TCK on Linux
	serverMS := float64(s1-s0) / hz * 1000 / secs
	transMS := float64(t1-t0) / hz * 1000 / secs
	var audio, video int64
	for _, p := range players {
		st := p.Stats()
		audio += st.AudioPackets
		video += st.VideoPackets
	}
	if audio == 0 || video == 0 {
		b.Fatalf("viewers received %d video and %d audio packets", video, audio)
	}
	b.ReportMetric(serverMS, "server-ms-cpu/s")
	b.ReportMetric(serverMS/float64(n), "ms-cpu/s/viewer")
	b.ReportMetric(transMS, "transcoder-ms-cpu/s")
}

type relaycast struct {
	pid  int
	whep string
}

// startRelaycast builds and runs relaycast on loopback ports, creates a stream and
// publishes a 3 Mbps clip to it with ffmpeg (-c copy, so ffmpeg's encoder is not measured).
func startRelaycast(b *testing.B) *relaycast {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "relaycast")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/relaycast").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	clip := filepath.Join(dir, "clip.flv")
	if out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "20", "-c:v", "libx264", "-preset", "veryfast",
		"-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "6000k", "-g", "60", "-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", clip).CombinedOutput(); err != nil {
		b.Fatalf("clip: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--http-addr", "127.0.0.1:0",
		"--rtmp-addr", "127.0.0.1:0", "--rtmps-addr", "", "--rtsp-addr", "", "--rtsps-addr", "",
		"--webrtc-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	addrs := map[string]string{}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			if rec["msg"] == "listening" {
				addrs[fmt.Sprint(rec["listener"])] = fmt.Sprint(rec["addr"])
			}
			if rec["msg"] == "relaycast started" {
				break
			}
		}
	}
	go func() { // keep draining the log
		for sc.Scan() {
		}
	}()
	api := "http://" + addrs["http"]
	call := func(path, token string, body any, out any) {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", api+path, bytes.NewReader(raw))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			b.Fatal(err)
		}
	}
	var setup, tok map[string]any
	call("/api/setup", "", map[string]string{"username": "bench", "password": "benchbench"}, &setup)
	call("/api/token", "", map[string]string{"username": "bench", "password": "benchbench"}, &tok)
	var st struct {
		StreamKey    string            `json:"stream_key"`
		PlaybackURLs map[string]string `json:"playback_urls"`
	}
	call("/api/streams", fmt.Sprint(tok["token"]), map[string]string{"title": "bench"}, &st)
	ff := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clip,
		"-c", "copy", "-f", "flv", "rtmp://"+addrs["rtmp"]+"/live/"+st.StreamKey)
	if err := ff.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ff.Process.Kill(); _ = ff.Wait() })
	time.Sleep(3 * time.Second)
	return &relaycast{pid: cmd.Process.Pid, whep: st.PlaybackURLs["webrtc"]}
}

// cpuTicks returns a process's user+system CPU ticks from /proc.
func cpuTicks(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// childTicks sums the CPU ticks of a process's live children (the transcoders).
func childTicks(pid int) int64 {
	var sum int64
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		raw, _ := os.ReadFile(t)
		for _, c := range strings.Fields(string(raw)) {
			cp, _ := strconv.Atoi(c)
			if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cp)); err == nil {
				f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
				u, _ := strconv.ParseInt(f[11], 10, 64)
				s, _ := strconv.ParseInt(f[12], 10, 64)
				sum += u + s
			}
		}
	}
	return sum
}
