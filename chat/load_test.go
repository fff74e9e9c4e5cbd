package chat

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestLoad: 500 WebSocket clients over TCP in one channel, 50 messages per second from
// ten of them for a few seconds: every client receives every message, in order; the p99
// fan-out latency (send to receipt, client to client) is logged.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const (
		clients = 500
		senders = 10
		rate    = 50 // messages per second, all senders together
	)
	duration, queue := 6*time.Second, 0 // default queue
	if raceEnabled {
		// The race detector makes the test's own 500 readers ~10x slower than real
		// clients: a shorter run, and room for them to lag by more than 5 s.
		duration, queue = 3*time.Second, 1024
	}
	total := int(duration.Seconds()) * rate
	h := newHarness(t, func(c *Config) { c.RateLimit = -1; c.SendQueue = queue })

	// Each client connects, joins and reads from then on: first until the warm-up message
	// (the join phase's backlog of user_joined), then this run's messages, checking their
	// order and measuring their latency.
	type result struct {
		latencies []time.Duration
		got       int
		err       error
	}
	conns := make([]*websocket.Conn, clients)
	results := make([]result, clients)
	var joined, warm, done sync.WaitGroup
	var finished atomic.Int32
	sem := make(chan struct{}, 50) // connections being set up at once
	for i := range clients {
		joined.Add(1)
		warm.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			res := &results[i]
			fail := func(err error) {
				res.err = err
				if conns[i] == nil {
					joined.Done()
				}
				if res.latencies == nil {
					warm.Done()
				}
			}
			sem <- struct{}{}
			ws, _, err := websocket.DefaultDialer.Dial(h.wsURL(fmt.Sprintf("u%d", i)), nil)
			if err == nil {
				err = ws.WriteJSON(map[string]any{"type": "join", "channel": "general"})
			}
			for err == nil { // until the last message of the join, "users"
				var data []byte
				if _, data, err = ws.ReadMessage(); err == nil && strings.HasPrefix(string(data), `{"type":"users"`) {
					break
				}
			}
			<-sem
			if err != nil {
				fail(err)
				return
			}
			conns[i] = ws
			joined.Done()
			last := int64(0)
			for res.got < total {
				_, data, err := ws.ReadMessage()
				if err != nil {
					fail(err)
					return
				}
				now := time.Now()
				var m struct {
					Type    string `json:"type"`
					ID      int64  `json:"id"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal(data, &m); err != nil {
					fail(err)
					return
				}
				switch {
				case m.Type != "message": // user_joined of later clients
					continue
				case m.Message == "warm-up":
					res.latencies = make([]time.Duration, 0, total)
					warm.Done()
					last = m.ID
					continue
				case res.latencies == nil:
					fail(fmt.Errorf("message %q before the warm-up", m.Message))
					return
				case m.ID <= last:
					fail(fmt.Errorf("message %d after %d", m.ID, last))
					return
				}
				last = m.ID
				sent, err := strconv.ParseInt(m.Message, 10, 64)
				if err != nil {
					fail(err)
					return
				}
				res.latencies = append(res.latencies, now.Sub(time.Unix(0, sent)))
				res.got++
			}
			finished.Add(1)
		}()
	}
	t.Cleanup(func() {
		for _, ws := range conns {
			if ws != nil {
				ws.Close() // ends the readers
			}
		}
		done.Wait()
	})
	joined.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("client %d: %v", i, r.err)
		}
	}
	if err := conns[0].WriteJSON(map[string]any{"type": "message", "channel": "general", "message": "warm-up"}); err != nil {
		t.Fatal(err)
	}
	warm.Wait()

	// Senders: one message every 1/rate s, round robin over the first clients (each
	// connection has one writer: this goroutine).
	start := time.Now()
	tick := time.NewTicker(time.Second / rate)
	for n := range total {
		<-tick.C
		ws := conns[n%senders]
		msg := map[string]any{"type": "message", "channel": "general", "message": strconv.FormatInt(time.Now().UnixNano(), 10)}
		if err := ws.WriteJSON(msg); err != nil {
			t.Fatal(err)
		}
	}
	tick.Stop()
	sendTime := time.Since(start)

	waitCh := make(chan struct{})
	go func() { done.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d clients received all %d messages", finished.Load(), clients, total)
	}
	var all []time.Duration
	for i, r := range results {
		if r.err != nil || r.got != total {
			t.Fatalf("client %d: %d of %d messages: %v", i, r.got, total, r.err)
		}
		all = append(all, r.latencies...)
	}
	slices.Sort(all)
	pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)] }
	st := h.hub.Stats()
	t.Logf("%d clients, %d messages at %d/s in %v (race=%v): %d deliveries; fan-out latency p50 %v, p99 %v, max %v; slow disconnects %d",
		clients, total, rate, sendTime.Round(time.Millisecond), raceEnabled, len(all), pct(0.5), pct(0.99), all[len(all)-1],
		st.SlowDisconnects)
	if st.SlowDisconnects != 0 {
		t.Fatalf("%d clients were dropped as slow", st.SlowDisconnects)
	}
}
