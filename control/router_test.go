package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/bus"
)

func TestHealthAndReadiness(t *testing.T) {
	var notReady atomic.Pointer[error]
	e := newEnv(t, withConfig(func(c *Config) {
		c.Ready = func() error {
			if p := notReady.Load(); p != nil {
				return *p
			}
			return nil
		}
	}))
	var h map[string]string
	e.call(200, "GET", "/health", "", nil, &h)
	if h["status"] != "ok" || h["service"] != "relaycast" || h["version"] != "test" || len(h) != 3 {
		t.Fatalf("/health %v", h)
	}
	e.call(200, "GET", "/healthz", "", nil, nil)
	e.call(200, "GET", "/readyz", "", nil, nil)
	errNotReady := errors.New("listeners not ready")
	notReady.Store(&errNotReady)
	if msg := e.wantError(503, "GET", "/readyz", "", nil); !strings.Contains(msg, "listeners not ready") {
		t.Fatalf("readyz: %q", msg)
	}
	notReady.Store(nil)
	e.store.Close()
	e.wantError(503, "GET", "/readyz", "", nil)
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, withConfig(func(c *Config) { c.Metrics = reg }))
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "m"})
	p, _ := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	defer p.Close()
	p.Write(&bus.Unit{Track: testVideo, Key: true, Payload: make([]byte, 100)})
	r, err := e.hub.Subscribe(context.Background(), st.PlaybackID, bus.ReaderOptions{Protocol: "rtmp", Viewer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	e.do("GET", "/nope", "", nil)
	_, raw, _ := e.do("GET", "/metrics", "", nil)
	text := string(raw)
	for _, want := range []string{
		"relaycast_live_streams 1",
		`relaycast_stream_bytes_in_total{stream="` + st.PlaybackID + `"} 100`,
		`relaycast_stream_readers{protocol="rtmp",stream="` + st.PlaybackID + `"} 1`,
		`relaycast_stream_viewers{stream="` + st.PlaybackID + `"} 1`,
		`relaycast_bus_dropped_units_total{stream="` + st.PlaybackID + `"} 0`,
		`relaycast_http_requests_total{code="200",method="POST",route="/api/streams"} 1`,
		`relaycast_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`relaycast_http_request_duration_seconds_bucket{route="/api/token"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	// A second server on the same registry is refused; closing frees the names.
	if _, err := New(Config{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 32), Metrics: reg}); err == nil {
		t.Fatal("two servers registered on one registry")
	}
	e.srv.Close()
	srv, err := New(Config{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 32), Metrics: reg})
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	srv.Close()
}

func TestCORS(t *testing.T) {
	off := newEnv(t)
	req, _ := http.NewRequest("OPTIONS", off.http.URL+"/api/streams", nil)
	req.Header.Set("Origin", "https://example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.StatusCode != 405 {
		t.Fatalf("CORS off: %d %v", resp.StatusCode, resp.Header)
	}

	on := newEnv(t, withConfig(func(c *Config) { c.CORS = true }))
	req, _ = http.NewRequest("OPTIONS", on.http.URL+"/api/streams", nil)
	req.Header.Set("Origin", "https://example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 204 || h.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		h.Get("Access-Control-Allow-Headers") != "authorization, content-type" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	req, _ = http.NewRequest("GET", on.http.URL+"/api/streams", nil)
	req.Header.Set("Origin", "https://example.com")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("CORS on a 401: %d %v", resp.StatusCode, resp.Header)
	}
}

func TestHLSMount(t *testing.T) {
	var gotPath atomic.Value
	e := newEnv(t, withConfig(func(c *Config) {
		c.HLS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gotPath.Store(r.URL.Path)
			w.Write([]byte("#EXTM3U\n"))
		})
	}))
	code, raw, _ := e.do("GET", "/api/stream/pub_0123/hls/index.m3u8?token=x", "", nil)
	got, _ := gotPath.Load().(string)
	if code != 200 || string(raw) != "#EXTM3U\n" || got != "/api/stream/pub_0123/hls/index.m3u8" {
		t.Fatalf("hls: %d %q %q", code, raw, got)
	}
	noHLS := newEnv(t)
	noHLS.wantError(404, "GET", "/api/stream/pub_0123/hls/index.m3u8", "", nil)
}

func TestNewValidatesConfig(t *testing.T) {
	e := newEnv(t)
	for _, cfg := range []Config{
		{Hub: e.hub, SecretKey: make([]byte, 32)},
		{Store: e.store, SecretKey: make([]byte, 32)},
		{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 16)},
	} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("New accepted %+v", cfg)
		}
	}
}
