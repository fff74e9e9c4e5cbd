package main

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type relayJSON struct {
	ID             int64   `json:"id"`
	StreamID       int64   `json:"stream_id"`
	Platform       string  `json:"platform"`
	Name           string  `json:"name"`
	RTMPURL        string  `json:"rtmp_url"`
	HasStreamKey   bool    `json:"has_stream_key"`
	Enabled        bool    `json:"enabled"`
	TLSVerify      bool    `json:"tls_verify"`
	State          string  `json:"state"`
	LastError      string  `json:"last_error"`
	ConnectedSince *string `json:"connected_since"`
	BytesSent      uint64  `json:"bytes_sent"`
	Reconnects     int     `json:"reconnects"`
}

func (s *server) relays(token string, streamID int64) map[string]relayJSON {
	s.t.Helper()
	var out struct {
		Relays []relayJSON `json:"relays"`
	}
	s.mustCall(200, "GET", fmt.Sprintf("/api/streams/%d/relays", streamID), token, nil, &out)
	m := make(map[string]relayJSON, len(out.Relays))
	for _, r := range out.Relays {
		m[r.Name] = r
	}
	return m
}

// waitRelay polls the relay list until the relay named name satisfies cond.
func (s *server) waitRelay(token string, streamID int64, name string, within time.Duration, cond func(relayJSON) bool) relayJSON {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := s.relays(token, streamID)[name]
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("relay %q: %+v after %s", name, r, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rtmpSink is an `ffmpeg -listen 1` RTMP server copying what it gets into FLV files.
type rtmpSink struct {
	t    *testing.T
	addr string
	n    int
	cmd  *exec.Cmd
	out  string
	logs bytes.Buffer
}

func newRTMPSink(t *testing.T) *rtmpSink {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rtmpSink{t: t, addr: l.Addr().String()}
	_ = l.Close()
	t.Cleanup(s.kill)
	return s
}

func (s *rtmpSink) url() string { return "rtmp://" + s.addr + "/live" }

func (s *rtmpSink) start() {
	s.n++
	s.out = filepath.Join(s.t.TempDir(), fmt.Sprintf("sink%d.flv", s.n))
	s.cmd = exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-listen", "1", "-analyzeduration", "500000", "-i", s.url()+"/sink_secret_key", "-c", "copy", "-flush_packets", "1", "-f", "flv", s.out)
	s.cmd.Stderr = &s.logs
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *rtmpSink) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// videoFrames returns the first video stream's codec and frame count in file.
func videoFrames(t *testing.T, file string) (string, int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var codec string
	var frames int
	f := strings.Split(strings.TrimSpace(string(out)), ",")
	codec = f[0]
	if len(f) > 1 {
		_, _ = fmt.Sscan(f[1], &frames)
	}
	return codec, frames
}

// TestEndToEndRelays: a stream published to relaycast A goes out through its relays to
// relaycast B over RTMP and RTMPS (self-signed, verification off for that relay) and to an
// ffmpeg RTMP sink; a silent destination is retried without holding anything up; a
// killed sink is reconnected to within 5 s of its return while the other relays carry
// on; the keys are nowhere in A's database files.
func TestEndToEndRelays(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	t.Parallel()
	a := startServer(t, "--relay-dial-timeout", "2s")
	b := startServer(t)
	for _, s := range []*server{a, b} {
		s.mustCall(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "correct horse"}, nil)
	}
	tokA, tokB := a.login("admin", "correct horse"), b.login("admin", "correct horse")
	var src, dstPlain, dstTLS streamJSON
	a.mustCall(200, "POST", "/api/streams", tokA, map[string]any{"title": "source"}, &src)
	b.mustCall(200, "POST", "/api/streams", tokB, map[string]any{"title": "via rtmp"}, &dstPlain)
	b.mustCall(200, "POST", "/api/streams", tokB, map[string]any{"title": "via rtmps"}, &dstTLS)

	sink := newRTMPSink(t)
	sink.start()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, 64)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				close(held)
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		_ = silent.Close()
		for c := range held {
			_ = c.Close()
		}
	})

	path := fmt.Sprintf("/api/streams/%d/relays", src.ID)
	for _, r := range []map[string]any{
		{"platform": "portal", "name": "B rtmp", "rtmp_url": "rtmp://" + b.rtmp + "/live", "stream_key": dstPlain.StreamKey},
		{"platform": "portal", "name": "B rtmps", "rtmp_url": "rtmps://" + b.rtmps + "/live", "stream_key": dstTLS.StreamKey, "tls_verify": false},
		{"platform": "custom", "name": "sink", "rtmp_url": sink.url(), "stream_key": "sink_secret_key"},
		{"platform": "custom", "name": "silent", "rtmp_url": "rtmp://" + silent.Addr().String() + "/app", "stream_key": "silent_secret_key"},
	} {
		if code := a.call("POST", path, tokA, r, nil); code != 201 && code != 200 {
			t.Fatalf("POST %s %v: %d", path, r["name"], code)
		}
	}
	// No key in plain text in A's database files.
	files, _ := filepath.Glob(filepath.Join(a.dataDir, "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, key := range []string{dstPlain.StreamKey, dstTLS.StreamKey, "sink_secret_key", "silent_secret_key"} {
			if bytes.Contains(data, []byte(key)) {
				t.Fatalf("%s contains a relay key in plain text", f)
			}
		}
	}
	for name, r := range a.relays(tokA, src.ID) {
		if !r.HasStreamKey || r.State != "idle" {
			t.Fatalf("relay %q before going live: %+v", name, r)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()
	ff := publish(t, ctx, "rtmp://"+a.rtmp+"/live/"+src.StreamKey, 60)
	defer func() { cancel(); _ = ff.Wait() }()
	a.waitLive(tokA, src.ID, 1, 15*time.Second)
	aLive := time.Since(started)
	b.waitLive(tokB, dstPlain.ID, 1, 15*time.Second)
	t.Logf("publish → A live %s → B live %s", aLive.Round(time.Millisecond), (time.Since(started) - aLive).Round(time.Millisecond))
	b.waitLive(tokB, dstTLS.ID, 1, 15*time.Second)

	for _, st := range []streamJSON{dstPlain, dstTLS} {
		if names := probeCodecs(t, b.stream(tokB, st.ID).PlaybackURLs["hls"]); !hasCodecs(names, "h264", "aac") {
			t.Fatalf("B's HLS of %q has codecs %v, want h264 and aac", st.Title, names)
		}
	}
	// The live stream's dynamic thumbnail (ffmpeg decodes its newest keyframe).
	if resp, err := http.Get(a.http + "/api/stream/" + src.PlaybackID + "/thumbnail"); err != nil {
		t.Fatal(err)
	} else {
		img, err := jpeg.Decode(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || img.Bounds().Dx() != 640 {
			t.Fatalf("thumbnail: %d %v", resp.StatusCode, err)
		}
	}
	live := func(r relayJSON) bool { return r.State == "live" && r.ConnectedSince != nil && r.BytesSent > 0 }
	bPlain := a.waitRelay(tokA, src.ID, "B rtmp", 10*time.Second, live)
	a.waitRelay(tokA, src.ID, "B rtmps", 10*time.Second, live)
	a.waitRelay(tokA, src.ID, "sink", 10*time.Second, live)
	r := a.waitRelay(tokA, src.ID, "silent", 10*time.Second, func(r relayJSON) bool { return r.State == "retrying" })
	silentID := r.ID
	if !strings.Contains(r.LastError, "no answer within 2s") || strings.Contains(r.LastError, "silent_secret_key") {
		t.Fatalf("silent relay: last_error %q", r.LastError)
	}

	// Kill the sink mid-stream and bring it back.
	time.Sleep(4 * time.Second)
	sink.kill()
	if codec, frames := videoFrames(t, sink.out); codec != "h264" || frames < 30 {
		t.Fatalf("sink received %q with %d video frames", codec, frames)
	}
	a.waitRelay(tokA, src.ID, "sink", 15*time.Second, func(r relayJSON) bool { return r.State == "retrying" && r.LastError != "" })
	time.Sleep(3 * time.Second)
	back := time.Now()
	sink.start()
	r = a.waitRelay(tokA, src.ID, "sink", 5*time.Second, live)
	t.Logf("sink back: relay live again after %s (reconnects %d)", time.Since(back).Round(time.Millisecond), r.Reconnects)
	if r.Reconnects < 1 {
		t.Fatalf("sink relay after a reconnect: %+v", r)
	}
	now := a.relays(tokA, src.ID)["B rtmp"]
	if now.State != "live" || now.Reconnects != 0 || *now.ConnectedSince != *bPlain.ConnectedSince || now.BytesSent <= bPlain.BytesSent {
		t.Fatalf("the B relay was disturbed: %+v then %+v", bPlain, now)
	}

	resp, err := http.Get(a.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`relaycast_relays{state="live"} 3`,
		fmt.Sprintf(`relaycast_relay_up{relay_id="%d",stream="%s"} 1`, bPlain.ID, src.PlaybackID),
		fmt.Sprintf(`relaycast_relay_up{relay_id="%d",stream="%s"} 0`, silentID, src.PlaybackID)} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Fatalf("/metrics has no %s", want)
		}
	}

	// The publisher stops: once A's grace is over the relays stop and B's streams end.
	cancel()
	_ = ff.Wait()
	a.waitLive(tokA, src.ID, 0, 15*time.Second)
	for _, name := range []string{"B rtmp", "B rtmps", "sink", "silent"} {
		a.waitRelay(tokA, src.ID, name, 5*time.Second, func(r relayJSON) bool { return r.State == "idle" })
	}
	b.waitLive(tokB, dstPlain.ID, 0, 15*time.Second)
}
