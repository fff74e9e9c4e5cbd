package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5/test"
	"github.com/sirupsen/logrus"
)

func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// relaycastProc is a relaycast binary running on loopback ports the kernel chose.
type relaycastProc struct {
	cmd    *exec.Cmd
	addrs  map[string]string // listener -> bound address, from the "listening" log lines
	exited chan struct{}
	mu     sync.Mutex
	logs   bytes.Buffer
}

func (p *relaycastProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// stop ends relaycast with SIGINT and waits for it (and for its log reader).
func (p *relaycastProc) stop(t *testing.T) {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		t.Errorf("relaycast did not stop within 15 s of SIGINT")
	}
}

// startRelaycast builds cmd/relaycast and starts it with RTMP, RTSP (TCP) and WebRTC on.
func startRelaycast(t *testing.T) *relaycastProc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "relaycast")
	if out, err := exec.Command("go", "build", "-o", bin, "../relaycast").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/relaycast: %v\n%s", err, out)
	}
	p := &relaycastProc{exited: make(chan struct{}), addrs: map[string]string{}}
	p.cmd = exec.Command(bin, "serve", "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--rtmp-addr", "127.0.0.1:0", "--rtmps-addr", "",
		"--rtsp-addr", "127.0.0.1:0", "--rtsps-addr", "", "--rtsp-udp-addr", "",
		"--webrtc-addr", "127.0.0.1:0", "--log-format", "json")
	p.cmd.Env = append(os.Environ(), "RELAYCAST_SECRET_KEY=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		defer close(p.exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Bytes()
			p.mu.Lock()
			p.logs.Write(line)
			p.logs.WriteByte('\n')
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil {
				if rec["msg"] == "listening" {
					p.addrs[fmt.Sprint(rec["listener"])] = fmt.Sprint(rec["addr"])
				}
				if rec["msg"] == "relaycast started" {
					once.Do(func() { close(started) })
				}
			}
			p.mu.Unlock()
		}
		_ = p.cmd.Wait()
	}()
	select {
	case <-started:
	case <-p.exited:
		t.Fatalf("relaycast exited at start:\n%s", p.logText())
	case <-time.After(30 * time.Second):
		p.stop(t)
		t.Fatalf("relaycast did not start:\n%s", p.logText())
	}
	return p
}

// TestEndToEnd runs relaybench for about 8 s against the real relaycast binary: one
// stream published over RTMP with stamps, read over RTMP, RTSP, LL-HLS and WHEP. Every
// reader must get media and a first frame, RTMP must measure latency, the JSON report must
// parse, and nothing may be left running.
func TestEndToEnd(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
	checkRoutines := test.CheckRoutines(t)
	srv := startRelaycast(t)
	stopped := false
	defer func() {
		if !stopped {
			srv.stop(t)
		}
		if t.Failed() {
			t.Logf("relaycast log:\n%s", srv.logText())
		}
	}()

	readers := map[string]int{"rtmp": 3, "rtsp": 2, "hls": 2, "whep": 2}
	args := []string{
		"-api", "http://" + srv.addrs["http"], "-setup", "-user", "bench", "-password", "relaybench password",
		"-pid", strconv.Itoa(srv.cmd.Process.Pid), "-rtsp", "rtsp://" + srv.addrs["rtsp"] + "/live",
		"-readers", "rtmp=3,rtsp=2,hls=2,whep=2", "-warmup", "1500ms", "-duration", "4s",
		"-clip-dir", t.TempDir(), "-width", "640", "-height", "360", "-video-kbps", "1500", "-gop", "30",
		"-clip-duration", "3s", "-json", "-json-readers",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := runContext(ctx, args, &stdout, &stderr)
	t.Logf("relaybench ran %.1f s:\n%s", time.Since(start).Seconds(), stderr.String())
	if code != 0 {
		t.Fatalf("relaybench exited with %d", code)
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON report: %v\n%s", err, stdout.String())
	}
	if rep.Server == nil || rep.Server.CPUCores <= 0 || rep.Server.RSSMB <= 0 {
		t.Errorf("server figures: %+v", rep.Server)
	}
	if len(rep.Publisher) != 1 || rep.Publisher[0].Error != "" || rep.Publisher[0].Frames == 0 {
		t.Errorf("publisher: %+v", rep.Publisher)
	}
	for name, n := range readers {
		pr, ok := rep.Protocols[name]
		switch {
		case !ok:
			t.Errorf("%s: no figures", name)
			continue
		case pr.Readers != n || pr.WithMedia != n || pr.Failed != 0:
			t.Errorf("%s: %d readers, %d with media, %d failed (%v); want %d with media", name, pr.Readers,
				pr.WithMedia, pr.Failed, pr.Errors, n)
		case pr.TTFFMs == nil:
			t.Errorf("%s: no time to first frame", name)
		case pr.MbpsMin <= 0:
			t.Errorf("%s: a reader got nothing in the window (min %.2f Mbps)", name, pr.MbpsMin)
		}
		t.Logf("%s: ttff %+v, latency %+v %s", name, pr.TTFFMs, pr.LatencyMs, pr.LatencyNote)
	}
	if r := rep.Protocols["rtmp"]; r.LatencyMs == nil || r.LatencySamples == 0 || r.LatencyMs.P50 > 1000 {
		t.Errorf("rtmp latency not measured: %+v, %d samples, %q", r.LatencyMs, r.LatencySamples, r.LatencyNote)
	}
	if len(rep.Readers) != 9 {
		t.Errorf("%d readers in the JSON, want 9", len(rep.Readers))
	}
	srv.stop(t)
	stopped = true
	checkRoutines()
}
