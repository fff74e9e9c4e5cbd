package vod

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// publishSynth writes a synthetic stream to the hub at speed× real time until ctx ends,
// then closes the publisher. The returned channel closes when it stopped.
func publishSynth(t testing.TB, ctx context.Context, hub *bus.Hub, id string, bitrate int, speed float64) <-chan struct{} {
	t.Helper()
	pub, err := hub.Publish(id, synthTracks())
	if err != nil {
		t.Fatal(err)
	}
	gen := newSynthStream(pub.Tracks(), bitrate, 15)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer pub.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
		u := gen.next()
		for {
			for time.Duration(float64(u.DTS)/speed) <= time.Since(start) {
				u.Arrival = time.Now()
				pub.Write(u)
				u = gen.next()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { <-done })
	return done
}

// TestSpoolFull: when the spool reaches its limit the session finishes its chunk, records
// nothing (counting the drops) and shows ErrSpoolFull while the stream goes on; once the
// uploader deleted chunks, it records again in new chunks of the same session.
func TestSpoolFull(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var chunks []Chunk
	var states []bool
	e := newEnv(t, -1, func(c *Config) {
		c.ChunkDuration = 500 * time.Millisecond
		c.SpoolLimit = 300 << 10
		c.SpoolScanInterval = 50 * time.Millisecond
		c.OnChunk = func(ch Chunk) {
			mu.Lock()
			chunks = append(chunks, ch)
			mu.Unlock()
		}
		c.OnSpoolFull = func(_ *Session, full bool) {
			mu.Lock()
			states = append(states, full)
			mu.Unlock()
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stopped := publishSynth(t, ctx, e.hub, "s9", 2_000_000, 1) // 250 kB/s
	var s *Session
	waitFor(t, 10*time.Second, func() bool {
		s = e.rec.Session("s9")
		return s != nil && s.Stats().SpoolFull
	})
	if !errors.Is(s.Err(), ErrSpoolFull) {
		t.Fatalf("Err %v", s.Err())
	}
	waitFor(t, 5*time.Second, func() bool { return s.Stats().DroppedSpoolFull > 30 })
	st := s.Stats()
	mu.Lock()
	before := append([]Chunk(nil), chunks...)
	mu.Unlock()
	if st.Current != "" || len(before) == 0 || st.Chunks != len(before) {
		t.Fatalf("full: stats %+v, %d chunks reported", st, len(before))
	}
	used, limit := e.rec.SpoolUsage()
	if used < limit || used > limit+300<<10 {
		t.Fatalf("spool %d bytes, limit %d", used, limit)
	}
	// The uploader deletes what it uploaded.
	for _, c := range before {
		if err := os.Remove(c.Path); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, func() bool {
		st := s.Stats()
		return !st.SpoolFull && st.Chunks > len(before)
	})
	if s.Err() != nil {
		t.Fatalf("Err %v after the spool has room", s.Err())
	}
	cancel()
	<-stopped
	e.waitEnded(t, 10*time.Second)
	mu.Lock()
	defer mu.Unlock()
	if len(states) < 2 || !states[0] || states[1] {
		t.Fatalf("OnSpoolFull calls %v", states)
	}
	for i := 1; i < len(chunks); i++ {
		if chunks[i].Seq != chunks[i-1].Seq+1 || chunks[i].Session != chunks[0].Session {
			t.Fatalf("chunk %d: %+v after %+v", i, chunks[i], chunks[i-1])
		}
	}
	after := chunks[len(before)]
	m := readMKV(t, after.Path)
	if len(m.Segment.Cluster) == 0 || !m.Segment.Cluster[0].SimpleBlock[0].Keyframe {
		t.Fatalf("chunk after the pause does not start with a keyframe")
	}
	t.Logf("%d chunks before the spool filled, %d in all; %d units dropped while full",
		len(before), len(chunks), s.Stats().DroppedSpoolFull)
}

// TestRecorderAPI covers the component's life cycle and errors.
func TestRecorderAPI(t *testing.T) {
	t.Parallel()
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: testLogger(t)})
	defer hub.Close()
	for _, cfg := range []Config{{SpoolDir: t.TempDir()}, {Hub: hub}, {Hub: hub, SpoolDir: t.TempDir(), SpoolLimit: -1}} {
		if _, err := New(cfg); err == nil {
			t.Fatalf("New(%+v) succeeded", cfg)
		}
	}
	ended := 0
	r, err := New(Config{Hub: hub, SpoolDir: t.TempDir(), Logger: testLogger(t),
		OnSessionEnd: func(*Session) { ended++ }})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Recover(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("Recover on an empty spool: %v, %v", got, err)
	}
	if _, err := r.Start("nope", SessionInfo{StreamName: "x"}); !errors.Is(err, bus.ErrNotFound) {
		t.Fatalf("Start of a missing stream: %v", err)
	}
	pub, err := hub.Publish("a", synthTracks())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := r.Start("a", SessionInfo{Owner: -1}); !errors.Is(err, ErrInvalidInfo) {
		t.Fatalf("negative owner: %v", err)
	}
	if _, err := r.Start("", SessionInfo{}); !errors.Is(err, ErrInvalidInfo) {
		t.Fatalf("empty id: %v", err)
	}
	start := time.Date(2025, 3, 4, 5, 6, 7, 890, time.FixedZone("x", 3600))
	s, err := r.Start("a", SessionInfo{StreamName: "../../etc", Owner: 3, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	if s2, err := r.Start("a", SessionInfo{StreamName: "other"}); err != nil || s2 != s {
		t.Fatalf("second Start: %v, %v", s2, err)
	}
	if s.Rel() != "_._.._etc/2025-03-04_04-06-07" || len(r.Sessions()) != 1 || r.Session("a") != s {
		t.Fatalf("session %q, sessions %v", s.Rel(), r.Sessions())
	}
	if _, err := r.Recover(t.Context()); !errors.Is(err, ErrRecovering) {
		t.Fatalf("Recover after Start: %v", err)
	}
	s.Stop()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not end the session")
	}
	if ended != 1 || r.Session("a") != nil || s.Stats().Chunks != 0 {
		t.Fatalf("after Stop: %d ended, stats %+v", ended, s.Stats())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start("a", SessionInfo{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v", err)
	}
	if _, err := r.Recover(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recover after Close: %v", err)
	}
}

// TestCloseFinishesChunk: Close finishes the chunk being written (renamed, reported as
// final) and returns once every session ended.
func TestCloseFinishesChunk(t *testing.T) {
	t.Parallel()
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: testLogger(t)})
	defer hub.Close()
	var got []Chunk
	r, err := New(Config{Hub: hub, SpoolDir: t.TempDir(), Logger: testLogger(t),
		OnChunk: func(c Chunk) { got = append(got, c) }})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := hub.Publish("c", synthTracks())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s, err := r.Start("c", SessionInfo{StreamName: "close", Owner: 5})
	if err != nil {
		t.Fatal(err)
	}
	gen := newSynthStream(pub.Tracks(), 1_000_000, 30)
	for range 200 {
		pub.Write(gen.next())
	}
	waitFor(t, 5*time.Second, func() bool { return s.Stats().Units == 200 })
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Done():
	default:
		t.Fatal("Close returned before the session ended")
	}
	if len(got) != 1 || !got[0].Final || got[0].Duration < 2*time.Second {
		t.Fatalf("chunks %+v", got)
	}
	if _, err := os.Stat(got[0].Path); err != nil {
		t.Fatal(err)
	}
	m := readMKV(t, got[0].Path)
	if d := m.Segment.Info.Duration; d != float64(got[0].Duration.Milliseconds()) {
		t.Fatalf("Duration %v, reported %v", d, got[0].Duration)
	}
}
