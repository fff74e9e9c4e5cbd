package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAPIClient runs the client against a fake of relaycast's API: login, a create that
// is rate limited once (429 with Retry-After), a refused call, and the URLs of the target.
func TestAPIClient(t *testing.T) {
	var limited atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/token", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"token":"jwt1","expires_at":"x"}`))
	})
	mux.HandleFunc("POST /api/streams", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer jwt1" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","status":401}`))
			return
		}
		if !limited.Swap(true) {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{"id":7,"stream_key":"live_k","playback_id":"pub_p",
			"playback_urls":{"hls":"http://public/api/stream/pub_p/hls/index.m3u8","webrtc":"http://public/api/stream/pub_p/webrtc/whep"},
			"publish_urls":{"rtmp":"rtmp://127.0.0.1:1999/live","whip":"http://public/api/stream/live_k/webrtc/whip"}}`))
	})
	mux.HandleFunc("DELETE /api/streams/7", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"message":"stream deleted"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx := context.Background()
	c := &apiClient{base: srv.URL, http: srv.Client()}
	if _, err := c.createStream(ctx, "x"); !errors.As(err, new(*apiError)) {
		t.Fatalf("create without login: %v", err)
	}
	if err := c.login(ctx, "u", "p"); err != nil || c.token != "jwt1" {
		t.Fatalf("login: %v %q", err, c.token)
	}
	start := time.Now()
	st, err := c.createStream(ctx, "x")
	if err != nil || st.ID != 7 || st.StreamKey != "live_k" {
		t.Fatalf("create: %+v %v", st, err)
	}
	if time.Since(start) < time.Second {
		t.Errorf("the 429 was retried before its Retry-After")
	}
	if err := c.deleteStream(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := c.setup(ctx, "u", "p"); err == nil {
		t.Fatal("setup on a server without it succeeded")
	}

	ep := endpoints{api: srv.URL, rtmp: "rtmp://h:1935/live", rtsp: "rtsp://h:8554/live"}
	tg := ep.fromAPI(0, st, false)
	want := streamTarget{id: 7, playbackID: "pub_p",
		rtmpPublish: "rtmp://127.0.0.1:1999/live/live_k", rtmpPlay: "rtmp://127.0.0.1:1999/live/pub_p",
		whip: "http://public/api/stream/live_k/webrtc/whip", rtspPlay: "rtsp://h:8554/live/pub_p",
		hls: "http://public/api/stream/pub_p/hls/index.m3u8", whep: "http://public/api/stream/pub_p/webrtc/whep"}
	if tg != want {
		t.Errorf("target\n got %+v\nwant %+v", tg, want)
	}
	if tg := ep.fromAPI(0, st, true); tg.rtmpPlay != "rtmp://h:1935/live/pub_p" {
		t.Errorf("-rtmp given: %q", tg.rtmpPlay)
	}
	if d, err := defaultEndpoint("http://10.0.0.5:8080", "rtsp", "8554"); err != nil || d != "rtsp://10.0.0.5:8554/live" {
		t.Errorf("defaultEndpoint: %q %v", d, err)
	}
}
