package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"
)

// browser is headless Chromium driven over the W3C WebDriver protocol by chromedriver
// (Debian's chromium and chromium-driver packages, which the README's test command
// installs).
type browser struct {
	t       *testing.T
	base    string // http://127.0.0.1:port/session/ID
	driver  *exec.Cmd
	profile string
}

func startBrowser(t *testing.T) *browser {
	t.Helper()
	requireTool(t, "chromium", "chromedriver")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	b := &browser{t: t, profile: t.TempDir()}
	b.driver = exec.Command("chromedriver", fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	if err := b.driver.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.close)
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if resp, err := http.Get(root + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			t.Fatal("chromedriver did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": "/usr/bin/chromium",
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--autoplay-policy=no-user-gesture-required", "--user-data-dir=" + b.profile,
				"--window-size=1280,800"},
		},
	}}}
	var out struct {
		Value struct {
			SessionID string `json:"sessionId"`
		} `json:"value"`
	}
	b.base = root
	b.do("POST", "/session", caps, &out)
	if out.Value.SessionID == "" {
		t.Fatal("chromedriver gave no session")
	}
	b.base = root + "/session/" + out.Value.SessionID
	return b
}

func (b *browser) do(method, path string, body, out any) {
	b.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, method, b.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *browser) open(url string) { b.do("POST", "/url", map[string]string{"url": url}, nil) }

// eval runs a JavaScript function body and decodes what it returns into out.
func (b *browser) eval(script string, out any) {
	b.t.Helper()
	var res struct {
		Value json.RawMessage `json:"value"`
	}
	b.do("POST", "/execute/sync", map[string]any{"script": script, "args": []any{}}, &res)
	if err := json.Unmarshal(res.Value, out); err != nil {
		b.t.Fatalf("eval %q: %v (%s)", script, err, res.Value)
	}
}

func (b *browser) screenshot(path string) {
	var res struct {
		Value []byte `json:"value"`
	}
	b.do("GET", "/screenshot", nil, &res)
	_ = os.WriteFile(path, res.Value, 0o644)
}

func (b *browser) close() {
	if b.base != "" {
		req, _ := http.NewRequest("DELETE", b.base, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	if b.driver.Process != nil {
		_ = b.driver.Process.Kill()
		_ = b.driver.Wait()
	}
}

// playerState is what the watch page reports about its <video>.
type playerState struct {
	Mode        string  `json:"mode"`
	Error       string  `json:"error"`
	CurrentTime float64 `json:"currentTime"`
	AudioTracks int     `json:"audioTracks"`
	AudioBytes  int64   `json:"audioBytes"`
	VideoWidth  int     `json:"videoWidth"`
}

const playerStateJS = `const v = document.getElementById('video'); const p = window.relaycastPlayer || {};
let audio = 0;
if (v.srcObject) audio = v.srcObject.getAudioTracks().length;
else if (v.audioTracks) audio = v.audioTracks.length;
else if (v.webkitAudioDecodedByteCount > 0 || v.mozHasAudio) audio = 1;
return {mode: p.mode || '', error: p.error || '', currentTime: v.currentTime, audioTracks: audio, audioBytes: p.audioBytes || 0, videoWidth: v.videoWidth};`

// waitPlaying waits until the watch page plays in the given mode with advancing time.
func (b *browser) waitPlaying(mode string, within time.Duration) playerState {
	b.t.Helper()
	deadline := time.Now().Add(within)
	var st playerState
	var first float64 = -1
	for time.Now().Before(deadline) {
		b.eval(playerStateJS, &st)
		if st.Mode == mode && st.CurrentTime > 0 {
			if first < 0 {
				first = st.CurrentTime
			} else if st.CurrentTime > first+1 {
				return st
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	b.screenshot(b.t.TempDir() + "/page.png")
	b.t.Fatalf("the page did not play over %s within %v: %+v", mode, within, st)
	return st
}

func TestBrowserWatchPage(t *testing.T) {
	requireTool(t, "ffmpeg")
	s, admin, st := mediaServer(t)
	b := startBrowser(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 50)
	defer func() { cancel(); _ = ff.Wait() }()
	started := time.Now()
	s.waitLive(admin, st.ID, 1, 10*time.Second)

	t.Run("whep", func(t *testing.T) {
		b.t = t
		b.open(s.http + "/watch/" + st.PlaybackID + "?mode=whep")
		got := b.waitPlaying("whep", 20*time.Second)
		if got.AudioTracks < 1 || got.VideoWidth != 640 {
			t.Fatalf("WHEP playback: %+v, want an audio track and 640 px video", got)
		}
		// The AAC of the RTMP publisher reaches the browser as Opus (the server transcodes).
		deadline := time.Now().Add(5 * time.Second)
		for got.AudioBytes == 0 && time.Now().Before(deadline) {
			time.Sleep(250 * time.Millisecond)
			b.eval(playerStateJS, &got)
		}
		if got.AudioBytes == 0 {
			t.Fatalf("WHEP playback received no audio bytes: %+v", got)
		}
	})
	t.Run("hls", func(t *testing.T) {
		b.t = t
		// Chromium's native HLS player fails to start on a live LL-HLS playlist that holds
		// only the stream's first segment (DEMUXER_ERROR_COULD_NOT_PARSE; a known
		// limitation, see the README): open the page once the playlist has a full window.
		if wait := 20*time.Second - time.Since(started); wait > 0 {
			time.Sleep(wait)
		}
		b.open(s.http + "/watch/" + st.PlaybackID + "?mode=hls")
		got := b.waitPlaying("hls", 25*time.Second)
		if got.VideoWidth != 640 {
			t.Fatalf("HLS playback: %+v, want 640 px video", got)
		}
	})
}
