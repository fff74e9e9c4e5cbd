package control

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/relay"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id, typ, data string
}

// sseClient reads an /api/events stream.
type sseClient struct {
	t    *testing.T
	resp *http.Response
	ch   chan sseEvent
}

func (e *env) events(token, lastID string) *sseClient {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.http.URL+"/api/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("GET /api/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	c := &sseClient{t: e.t, resp: resp, ch: make(chan sseEvent, 1)} // a test that does not read stalls the socket
	go func() {
		defer close(c.ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					c.ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	e.t.Cleanup(c.close)
	return c
}

func (c *sseClient) close() { _ = c.resp.Body.Close() }

// event returns the next event that is not a notification (those are tested apart).
func (c *sseClient) event(within time.Duration) sseEvent {
	c.t.Helper()
	for {
		if ev := c.next(within); ev.typ != "notification" {
			return ev
		}
	}
}

func (c *sseClient) next(within time.Duration) sseEvent {
	c.t.Helper()
	select {
	case ev, ok := <-c.ch:
		if !ok {
			c.t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(within):
		c.t.Fatalf("no event within %s", within)
	}
	return sseEvent{}
}

// TestEventFeed: a client sees its stream go live and offline and its relays change, and
// nothing of other users' streams; after a reconnect with Last-Event-ID it gets what it
// missed, without loss or repeat.
func TestEventFeed(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	other := e.user(admin, "bob")
	st := e.createStream(admin, map[string]any{"title": "mine"})
	bobs := e.createStream(other, map[string]any{"title": "bob's"})

	feed := e.events(admin, "")
	p, err := e.hub.Publish(bobs.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p, err = e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	ev := feed.event(5 * time.Second)
	var data struct {
		StreamID int64  `json:"stream_id"`
		IsLive   int    `json:"is_live"`
		Title    string `json:"title"`
	}
	if err := json.Unmarshal([]byte(ev.data), &data); err != nil || ev.typ != EventStreamLive || data.StreamID != st.ID ||
		data.IsLive != 1 || data.Title != "mine" || ev.id == "" {
		t.Fatalf("first event %+v (%v), want my stream live", ev, err)
	}
	e.srv.RelayChanged(relay.Status{ID: 9, Stream: st.PlaybackID, State: relay.StateRetrying, LastError: "refused"})
	if ev := feed.event(5 * time.Second); ev.typ != "relay.state" || !strings.Contains(ev.data, `"state":"retrying"`) ||
		!strings.Contains(ev.data, `"relay_id":9`) {
		t.Fatalf("relay event %+v", ev)
	}
	lastSeen := ev.id
	feed.close()

	// Offline while disconnected; the reconnect with Last-Event-ID gets what came after the
	// id it gives.
	p.Close()
	waitFor(t, 5*time.Second, "offline", func() bool {
		s, _ := e.store.StreamByID(t.Context(), st.ID)
		return s.IsLive == 0
	})
	feed = e.events(admin, lastSeen)
	if ev := feed.event(5 * time.Second); ev.typ != "relay.state" {
		t.Fatalf("after resuming from %s: %+v, want the relay event first", lastSeen, ev)
	}
	if ev := feed.event(5 * time.Second); ev.typ != EventStreamOffline || !strings.Contains(ev.data, `"is_live":0`) {
		t.Fatalf("after resuming: %+v, want offline", ev)
	}
}

// TestEventFeedLag: a client that stops reading is not waited for; when it reads again it
// gets `event: lag` and newer events. A resume from an id the log no longer holds starts
// with `event: lag` too.
func TestEventFeedLag(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	feed := e.events(admin, "")
	// Give the handler time to subscribe, then flood while the test does not read: the
	// socket buffers fill, then the client's queue.
	time.Sleep(100 * time.Millisecond)
	big := strings.Repeat("x", 32<<10)
	stalled := make(chan struct{})
	go func() {
		defer close(stalled)
		for i := 0; i < 2000; i++ {
			e.srv.events.publish(1, "test.flood", map[string]any{"i": i, "pad": big})
		}
	}()
	select {
	case <-stalled:
	case <-time.After(10 * time.Second):
		t.Fatal("publishing waited for a slow client")
	}
	lag := false
	for !lag {
		lag = feed.next(10*time.Second).typ == "lag"
	}
	feed.close()

	for i := 0; i < eventLogSize; i++ {
		e.srv.events.publish(1, "test.fill", map[string]any{"i": i})
	}
	feed = e.events(admin, "1")
	if ev := feed.next(5 * time.Second); ev.typ != "lag" {
		t.Fatalf("resume from an id no longer kept: %+v, want lag first", ev)
	}
}
