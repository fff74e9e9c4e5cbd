package signal

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// newTestClient makes a Client with a loopback-only peer connection and one
// receive-only video transceiver.
func newTestClient(t *testing.T, token string) *Client {
	t.Helper()
	api, err := NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{
		Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := NewClient(ctx, pc, ClientConfig{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if !strings.Contains(c.Offer(), "a=candidate:") || !strings.Contains(c.Offer(), "a=recvonly") {
		t.Fatalf("offer without candidates or direction:\n%s", c.Offer())
	}
	return c
}

// TestClientRefusals checks how the client half reports what an endpoint answers, and
// that its errors never carry the endpoint URL (it holds a stream key or a token).
func TestClientRefusals(t *testing.T) {
	const secret = "live_secretkey123"
	cases := []struct {
		name    string
		handler http.HandlerFunc
		status  int    // a *StatusError with this status, 0: another error
		want    string // in the error's text
	}{
		{"json error", func(w http.ResponseWriter, r *http.Request) {
			WriteError(w, http.StatusUnauthorized, "unknown stream key")
		}, http.StatusUnauthorized, "401 Unauthorized: unknown stream key"},
		{"text error", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "upstream broke", http.StatusBadGateway)
		}, http.StatusBadGateway, "upstream broke"},
		{"no location", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/sdp")
			w.WriteHeader(http.StatusCreated)
		}, 0, "without a valid Location"},
		{"not sdp", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/api/stream/x/webrtc/whip/s1")
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusCreated)
		}, 0, "answer content type"},
		{"bad answer", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "/api/stream/x/webrtc/whip/s1")
			w.Header().Set("Content-Type", "application/sdp")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte("v=0\r\nnot an answer"))
		}, 0, "set remote description"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gotAuth, gotType, gotBody string
			deleted := ""
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodDelete {
					deleted = r.URL.Path
					w.WriteHeader(http.StatusOK)
					return
				}
				gotAuth, gotType = r.Header.Get("Authorization"), r.Header.Get("Content-Type")
				b := make([]byte, 1<<16)
				n, _ := r.Body.Read(b)
				gotBody = string(b[:n])
				tc.handler(w, r)
			}))
			defer hs.Close()
			c := newTestClient(t, "tok")
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := c.Connect(ctx, hs.URL+"/api/stream/"+secret+"/webrtc/whip")
			if err == nil {
				t.Fatal("Connect succeeded")
			}
			if gotAuth != "Bearer tok" || gotType != "application/sdp" || !strings.HasPrefix(gotBody, "v=0") {
				t.Fatalf("request: auth %q, type %q, body %.20q", gotAuth, gotType, gotBody)
			}
			var se *StatusError
			if isStatus := errors.As(err, &se); isStatus != (tc.status != 0) || (isStatus && se.StatusCode != tc.status) {
				t.Fatalf("error %v (%T), want status %d", err, err, tc.status)
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
				t.Fatalf("error %q: want %q in it and no key", err, tc.want)
			}
			// Close DELETEs the resource only if the server created one.
			_ = c.Close()
			if c.Resource() != "" && deleted != "/api/stream/x/webrtc/whip/s1" {
				t.Fatalf("resource %q, DELETE of %q", c.Resource(), deleted)
			}
			if c.Resource() == "" && deleted != "" {
				t.Fatalf("DELETE of %q without a resource", deleted)
			}
		})
	}

	// A transport error does not carry the URL either.
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL + "/api/stream/" + secret + "/webrtc/whip"
	hs.Close()
	c := newTestClient(t, "")
	err := c.Connect(context.Background(), url)
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("Connect to a closed server: %v", err)
	}
	if err := c.Connect(context.Background(), url); err == nil {
		t.Fatal("a second Connect was accepted")
	}
}
