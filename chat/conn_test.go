package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestSlowClientDisconnected: a client that never reads fills its send queue and is
// disconnected; the sender and the other members keep receiving everything.
func TestSlowClientDisconnected(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.SendQueue = 16; c.RateLimit = -1 })
	// The slow client reads nothing after its handshake, through a small receive buffer.
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	slow, _, err := d.Dial(h.wsURL("u1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if err := slow.WriteJSON(map[string]any{"type": "join", "channel": "general"}); err != nil {
		t.Fatal(err)
	}
	sender := h.connect("u2", "general")
	reader := h.connect("u3", "general")
	sender.expect("user_joined")
	waitFor(t, 5*time.Second, "the slow client's join", func() bool { return h.hub.Stats().Connections == 3 })

	text := strings.Repeat("x", maxMessageRunes)
	sent := 0
	for ; h.hub.Stats().SlowDisconnects == 0; sent++ {
		if sent == 20000 {
			t.Fatal("the slow client was never disconnected")
		}
		sender.send(map[string]any{"type": "message", "channel": "general", "message": text})
		// The others keep pace, so that only the slow client falls behind.
		sender.nextMessage()
		reader.nextMessage()
	}
	waitFor(t, 5*time.Second, "the slow client's removal", func() bool { return h.hub.Stats().Connections == 2 })
	sender.send(map[string]any{"type": "message", "channel": "general", "message": "after"})
	if e := reader.nextMessage(); e.str("message") != "after" {
		t.Fatalf("after: %v", e)
	}
	if e := sender.nextMessage(); e.str("message") != "after" {
		t.Fatalf("after: %v", e)
	}
	t.Logf("slow client dropped after %d messages", sent)
}

// TestKeepalive: a client that answers pings stays; one that goes silent is dropped
// after PongWait.
func TestKeepalive(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = 50 * time.Millisecond; c.PongWait = 500 * time.Millisecond })
	alive := h.dial("u1") // its reader answers pings
	silent, _, err := websocket.DefaultDialer.Dial(h.wsURL("u2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	waitFor(t, 3*time.Second, "the silent client's removal", func() bool { return h.hub.Stats().Connections == 1 })
	time.Sleep(time.Second) // two pong waits more: the answering client stays
	alive.expect("unread_counts")
	alive.send(map[string]any{"type": "join", "channel": "general"})
	alive.expect("channel_info")
	if n := h.hub.Stats().Connections; n != 1 {
		t.Fatalf("connections %d", n)
	}
}

// TestMalformedFrames: a frame that is not a protocol message closes that connection
// only (1007 for bad JSON, 1003 for binary); an unknown type is answered and tolerated.
func TestMalformedFrames(t *testing.T) {
	h := newHarness(t)
	ok := h.connect("u1", "general")
	for _, tc := range []struct {
		kind int
		data string
		code int
	}{
		{websocket.TextMessage, "not json", websocket.CloseInvalidFramePayloadData},
		{websocket.TextMessage, `["join"]`, websocket.CloseInvalidFramePayloadData},
		{websocket.TextMessage, `{"type": 5}`, websocket.CloseInvalidFramePayloadData},
		{websocket.TextMessage, `{"channel": "general"}`, websocket.CloseInvalidFramePayloadData},
		{websocket.TextMessage, `{"type": "delete", "message_id": "42"}`, websocket.CloseInvalidFramePayloadData},
		{websocket.BinaryMessage, `{"type": "join"}`, websocket.CloseUnsupportedData},
		{websocket.TextMessage, `{"type": "message", "message": "` + strings.Repeat("x", maxFrameBytes) + `"}`, websocket.CloseMessageTooBig},
	} {
		bad := h.dial("u2")
		bad.expect("unread_counts")
		if err := bad.ws.WriteMessage(tc.kind, []byte(tc.data)); err != nil {
			t.Fatal(err)
		}
		err := bad.waitClosed(2 * time.Second)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != tc.code {
			t.Errorf("%.40q: closed with %v, want code %d", tc.data, err, tc.code)
		}
	}
	waitFor(t, 2*time.Second, "the bad connections' removal", func() bool { return h.hub.Stats().Connections == 1 })
	if st := h.hub.Stats(); st.MalformedCloses != 6 {
		t.Errorf("malformed closes %d, want 6 (the oversized frame is the library's)", st.MalformedCloses)
	}
	ok.send(map[string]any{"type": "message", "channel": "general", "message": "still here"})
	ok.expect("message")
}

// TestConnectionLimit: a user has at most 10 connections; the 11th gets 429 with the
// API's error body, and a slot frees when one closes.
func TestConnectionLimit(t *testing.T) {
	h := newHarness(t)
	var conns []*client
	for range 10 {
		conns = append(conns, h.dial("u1"))
	}
	_, resp, err := websocket.DefaultDialer.Dial(h.wsURL("u1"), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th connection: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	var eb map[string]any
	if json.Unmarshal(body, &eb) != nil || eb["status"] != float64(429) || !strings.Contains(eb["error"].(string), "10") {
		t.Fatalf("body %s", body)
	}
	h.dial("u2") // other users are not affected
	waitFor(t, 2*time.Second, "registration", func() bool { return h.hub.Stats().Connections == 11 })
	conns[0].ws.Close()
	waitFor(t, 2*time.Second, "a free slot", func() bool { return h.hub.Stats().Connections == 10 })
	h.dial("u1")
}

// TestOrigin: browsers must come from the server's own origin unless AllowAnyOrigin.
func TestOrigin(t *testing.T) {
	h := newHarness(t)
	host := strings.TrimPrefix(h.srv.URL, "http://")
	dial := func(h *harness, origin string) (*http.Response, error) {
		hdr := http.Header{}
		if origin != "" {
			hdr.Set("Origin", origin)
		}
		ws, resp, err := websocket.DefaultDialer.Dial(h.wsURL("u1"), hdr)
		if err == nil {
			ws.Close()
		}
		return resp, err
	}
	if _, err := dial(h, ""); err != nil {
		t.Fatalf("no origin: %v", err)
	}
	if _, err := dial(h, "http://"+host); err != nil {
		t.Fatalf("same origin: %v", err)
	}
	resp, err := dial(h, "http://evil.example")
	if err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != `{"error":"origin not allowed","status":403}`+"\n" {
		t.Fatalf("body %s", body)
	}
	any := newHarness(t, func(c *Config) { c.AllowAnyOrigin = true })
	if _, err := dial(any, "http://evil.example"); err != nil {
		t.Fatalf("any origin: %v", err)
	}
}

// TestCloseDisconnectsAndWaits: Close says goodbye (1001) to every client, returns after
// every connection's goroutines ended, refuses new ones and is safe twice.
func TestCloseDisconnectsAndWaits(t *testing.T) {
	before := runtime.NumGoroutine()
	h := newHarness(t)
	var clients []*client
	for i := range 5 {
		clients = append(clients, h.connect(fmt.Sprintf("u%d", i), "general"))
	}
	h.hub.Close()
	for _, c := range clients {
		var ce *websocket.CloseError
		if err := c.waitClosed(2 * time.Second); !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("closed with %v", err)
		}
	}
	_, resp, err := websocket.DefaultDialer.Dial(h.wsURL("u1"), nil)
	if err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after close: %v", err)
	}
	h.hub.Close()
	h.srv.Close()
	for _, c := range clients {
		c.ws.Close()
	}
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestDisconnectUser closes every connection of a removed account.
func TestDisconnectUser(t *testing.T) {
	h := newHarness(t)
	a, b := h.dial("u1"), h.dial("u1")
	c := h.dial("u2")
	waitFor(t, 2*time.Second, "registration", func() bool { return h.hub.Stats().Connections == 3 })
	h.hub.DisconnectUser(h.users["u1"].ID)
	a.waitClosed(2 * time.Second)
	b.waitClosed(2 * time.Second)
	c.expect("unread_counts")
	waitFor(t, 2*time.Second, "removal", func() bool { return h.hub.OnlineUsers() == 1 })
}
