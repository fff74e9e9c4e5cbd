package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/relaycast/relaycast/egress/whep/whepclient"
	"github.com/relaycast/relaycast/ingest/whip/whipclient"
)

// The WebRTC end-to-end tests drive the real binary with the project's own WHIP and WHEP
// clients (ingest/whip/whipclient, egress/whep/whepclient) over loopback ICE: the server
// is started with --webrtc-addr 127.0.0.1:0, and the clients' default API allows loopback
// candidates.

// checkRefusal asserts that err is an endpoint's refusal with status in relaycast's
// {"error","status"} shape.
func checkRefusal(t *testing.T, what string, err error, status int) {
	t.Helper()
	var se *whipclient.StatusError // the same type as whepclient.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("%s: error %v, want a %d refusal", what, err, status)
	}
	checkErrorShape(t, what, se.StatusCode, se.Body, status)
}

// checkErrorShape asserts an answer's status and its {"error","status"} body.
func checkErrorShape(t *testing.T, what string, code int, body []byte, status int) {
	t.Helper()
	var e struct {
		Error  *string `json:"error"`
		Status int     `json:"status"`
	}
	if err := json.Unmarshal(body, &e); err != nil || code != status || e.Status != status ||
		e.Error == nil || *e.Error == "" {
		t.Fatalf("%s: %d %s (%v), want %d in the {\"error\",\"status\"} shape", what, code, body, err, status)
	}
}

// postSDP POSTs body as application/sdp and returns the status and the body.
func postSDP(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/sdp", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// waitStats polls a player's observations until cond holds.
func waitStats(t *testing.T, p *whepclient.Player, within time.Duration, what string, cond func(whepclient.Stats) bool) whepclient.Stats {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := p.Stats()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: %+v", what, within, st)
		}
		time.Sleep(20 * time.Millisecond) // media arrives over real sockets: nothing to wait on
	}
}

// checkSPS asserts that an H.264 SPS describes width x height.
func checkSPS(t *testing.T, sps []byte, width, height int) {
	t.Helper()
	var s h264.SPS
	if err := s.Unmarshal(sps); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if s.Width() != width || s.Height() != height {
		t.Fatalf("SPS %dx%d, want %dx%d", s.Width(), s.Height(), width, height)
	}
}

func TestEndToEndWebRTCErrors(t *testing.T) {
	s, _, st := mediaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	whipURL := s.http + "/api/stream/" + st.StreamKey + "/webrtc/whip"

	// Bad SDP.
	code, body := postSDP(t, whipURL, "v=0\r\nthis is not sdp")
	checkErrorShape(t, "bad SDP", code, body, http.StatusBadRequest)

	// An unknown stream key over WHIP.
	_, err := whipclient.Dial(ctx, s.http+"/api/stream/live_notakey/webrtc/whip", whipclient.Options{})
	checkRefusal(t, "WHIP with an unknown key", err, http.StatusUnauthorized)
	if strings.Contains(err.Error(), "live_notakey") {
		t.Fatalf("the client's error carries the key: %v", err)
	}

	// WHEP for a stream that is offline.
	if !strings.HasSuffix(st.PlaybackURLs["webrtc"], "/api/stream/"+st.PlaybackID+"/webrtc/whep") {
		t.Fatalf("playback_urls.webrtc %q", st.PlaybackURLs["webrtc"])
	}
	_, err = whepclient.Dial(ctx, st.PlaybackURLs["webrtc"], whepclient.Options{})
	checkRefusal(t, "WHEP of an offline stream", err, http.StatusNotFound)
}

// TestEndToEndWebRTCPlayRTMP: ffmpeg publishes H.264 + AAC over RTMP; a WHEP viewer gets
// the H.264 passed through and the AAC transcoded to Opus by the server, and counts in
// viewer_count. Then the stream turns private: WHEP needs a playback token.
func TestEndToEndWebRTCPlayRTMP(t *testing.T) {
	requireTool(t, "ffmpeg")
	s, admin, st := mediaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ff := publish(t, ctx, "rtmp://"+s.rtmp+"/live/"+st.StreamKey, 20)
	defer func() {
		cancel()
		_ = ff.Wait() // interrupted: its error is expected
	}()
	s.waitLive(admin, st.ID, 1, 10*time.Second)

	start := time.Now()
	p, err := whepclient.Dial(ctx, st.PlaybackURLs["webrtc"], whepclient.Options{KeepOpusTimestamps: 200})
	if err != nil {
		t.Fatalf("WHEP: %v", err)
	}
	defer p.Close()
	connected := time.Since(start)
	stats := waitStats(t, p, 10*time.Second, "H.264 SPS and 25 Opus packets", func(st whepclient.Stats) bool {
		return st.SPS != nil && st.AudioPackets >= 25
	})
	t.Logf("WHEP: connected in %v, first keyframe after %v, first Opus after %v", connected,
		stats.FirstKeyframe.Sub(start), stats.FirstAudio.Sub(start))
	if !strings.EqualFold(stats.VideoCodec, "video/H264") || !strings.EqualFold(stats.AudioCodec, "audio/opus") {
		t.Fatalf("tracks %q and %q, want H.264 and Opus", stats.VideoCodec, stats.AudioCodec)
	}
	checkSPS(t, stats.SPS, 640, 360)
	if stats.BadOpus != 0 {
		t.Fatalf("%d invalid Opus packets", stats.BadOpus)
	}
	// The transcoded Opus runs on: timestamps advance, mostly by 20 ms (960 ticks).
	ts := p.OpusTimestamps()
	steps20 := 0
	for i := 1; i < len(ts); i++ {
		d := int32(ts[i] - ts[i-1])
		if d <= 0 {
			t.Fatalf("Opus timestamp %d after %d", ts[i], ts[i-1])
		}
		if d == 960 {
			steps20++
		}
	}
	if steps20 < (len(ts)-1)*8/10 {
		t.Fatalf("only %d of %d Opus steps are 20 ms", steps20, len(ts)-1)
	}

	// The viewer counts.
	deadline := time.Now().Add(5 * time.Second)
	for s.stream(admin, st.ID).ViewerCount < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("viewer_count %d with a WHEP viewer playing", s.stream(admin, st.ID).ViewerCount)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A private stream: no WHEP without a token; a playback token in place of the
	// playback id plays.
	s.mustCall(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"is_public": false}, nil)
	_, err = whepclient.Dial(ctx, st.PlaybackURLs["webrtc"], whepclient.Options{})
	checkRefusal(t, "WHEP of a private stream without a token", err, http.StatusForbidden)
	var tok struct {
		Token        string            `json:"token"`
		PlaybackURLs map[string]string `json:"playback_urls"`
	}
	s.mustCall(200, "POST", fmt.Sprintf("/api/streams/%d/playback-token", st.ID), admin, nil, &tok)
	if !strings.HasPrefix(tok.Token, "ptk_") {
		t.Fatalf("playback token %q", ephemeral(tok.Token))
	}
	ptkURL := strings.Replace(st.PlaybackURLs["webrtc"], st.PlaybackID, tok.Token, 1)
	if got := tok.PlaybackURLs["webrtc"]; got != ptkURL {
		t.Fatalf("token's webrtc URL %q, want %q", ephemeral(got), ephemeral(ptkURL))
	}
	priv, err := whepclient.Dial(ctx, ptkURL, whepclient.Options{}) // 201, then connected
	if err != nil {
		t.Fatalf("WHEP with a playback token: %v", err)
	}
	defer priv.Close()
	stats = waitStats(t, priv, 10*time.Second, "video with a playback token", func(st whepclient.Stats) bool {
		return st.SPS != nil
	})
	checkSPS(t, stats.SPS, 640, 360)
	if err := priv.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
}

// TestEndToEndWebRTCPublishWHIP: a WHIP publisher sends H.264 + Opus to the stream key
// URL of the create-stream answer; HLS carries both, RTMP playback the video.
func TestEndToEndWebRTCPublishWHIP(t *testing.T) {
	requireTool(t, "ffmpeg", "ffprobe")
	s, admin, _ := mediaServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var st struct {
		streamJSON
		PublishURLs map[string]string `json:"publish_urls"`
	}
	s.mustCall(200, "POST", "/api/streams", admin, map[string]any{"title": "whip"}, &st)
	whipURL := st.PublishURLs["whip"]
	if !strings.HasPrefix(whipURL, s.http+"/api/stream/"+st.StreamKey+"/webrtc/whip") {
		t.Fatalf("publish_urls.whip %q", ephemeral(whipURL))
	}

	m, err := whipclient.Generate(ctx, t.TempDir(), whipclient.GenerateOptions{Width: 640, Height: 360})
	if err != nil {
		t.Fatalf("test media: %v", err)
	}
	start := time.Now()
	p, err := whipclient.Dial(ctx, whipURL, whipclient.Options{})
	if err != nil {
		t.Fatalf("WHIP: %v", err)
	}
	t.Logf("WHIP connected in %v", time.Since(start))
	defer p.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.Stream(ctx, m, whipclient.StreamOptions{Loop: true}) // until Close or ctx
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	s.waitLive(admin, st.ID, 1, 10*time.Second)
	hlsURL := st.PlaybackURLs["hls"]
	waitPlaylist(t, hlsURL, 15*time.Second)
	t.Logf("WHIP POST -> playable HLS playlist: %v (GOP 1 s)", time.Since(start))
	if names := probeCodecs(t, hlsURL); !hasCodecs(names, "h264", "opus") {
		t.Fatalf("HLS of a WHIP publisher: codecs %v, want h264 and opus", names)
	}
	names := probeCodecs(t, "rtmp://"+s.rtmp+"/live/"+st.PlaybackID)
	if !hasCodecs(names, "h264") {
		t.Fatalf("RTMP playback of a WHIP publisher: codecs %v, want h264", names)
	}
	if hasCodecs(names, "aac") || hasCodecs(names, "opus") || hasCodecs(names, "mp3") {
		t.Logf("RTMP playback: codecs %v", names)
	} else {
		t.Logf("RTMP playback: codecs %v; no audio, by design (RTMP carries no Opus)", names)
	}

	// DELETE ends the session: the stream goes offline after the reconnect grace (2 s).
	if err := p.Close(); err != nil {
		t.Fatalf("DELETE: %v", err)
	}
	s.waitLive(admin, st.ID, 0, 10*time.Second)
}
