package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// mediaServer starts relaycast with every ingest and playback listener on loopback ports
// and returns it with an admin token and one stream.
func mediaServer(t *testing.T) (*server, string, streamJSON) {
	t.Helper()
	s := startServer(t, "--rtsp-addr", "127.0.0.1:0", "--rtsps-addr", "127.0.0.1:0", "--rtsp-udp-addr", "127.0.0.1:0",
		"--webrtc-addr", "127.0.0.1:0")
	s.mustCall(200, "POST", "/api/setup", "", map[string]string{"username": "admin", "password": "correct horse"}, nil)
	admin := s.login("admin", "correct horse")
	var st streamJSON
	s.mustCall(200, "POST", "/api/streams", admin, map[string]any{"title": "media"}, &st)
	return s, admin, st
}

// decodes runs ffmpeg reading url for a few seconds into the null muxer and fails the test
// if it cannot decode video and audio without errors.
func decodes(t *testing.T, url string, extra ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := append([]string{"-hide_banner", "-loglevel", "error"}, extra...)
	args = append(args, "-i", url, "-t", "2", "-map", "0:v", "-map", "0:a", "-f", "null", "-")
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg reading %s: %v\n%s", url, err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Fatalf("ffmpeg reading %s reported errors:\n%s", url, s)
	}
}

func TestEndToEndRTSP(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	s, admin, st := mediaServer(t)
	if s.addr("rtsp") == "" || s.addr("rtsps") == "" {
		t.Fatalf("no RTSP listeners in the log:\n%s", s.logText())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// ffmpeg publishes over RTSP (TCP): HLS viewers get h264 + aac.
	ff := publishTo(t, ctx, 8, "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+s.addr("rtsp")+"/live/"+st.StreamKey)
	waitPlaylist(t, st.PlaybackURLs["hls"], 15*time.Second)
	s.waitLive(admin, st.ID, 1, 5*time.Second)
	if names := probeCodecs(t, st.PlaybackURLs["hls"]); !hasCodecs(names, "h264", "aac") {
		t.Fatalf("HLS of an RTSP publisher: codecs %v, want h264 and aac", names)
	}
	// ...and RTSP readers, over TCP and UDP, decode it.
	readURL := "rtsp://" + s.addr("rtsp") + "/live/" + st.PlaybackID
	decodes(t, readURL, "-rtsp_transport", "tcp")
	decodes(t, readURL, "-rtsp_transport", "udp")
	if err := ff.Wait(); err != nil {
		t.Fatalf("ffmpeg RTSP publish: %v", err)
	}

	// A wrong key is refused.
	bad := publishTo(t, ctx, 2, "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://"+s.addr("rtsp")+"/live/live_wrong")
	if err := bad.Wait(); err == nil {
		t.Fatal("RTSP publish with a wrong key succeeded")
	}
}

// publishTo is publish with the output options given: ffmpeg sends a generated H.264 +
// AAC clip of the given length at real-time pace.
func publishTo(t *testing.T, ctx context.Context, seconds int, output ...string) *exec.Cmd {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "30", "-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "96k"}
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args, output...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}
