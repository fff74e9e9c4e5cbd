package control

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/vod"
)

var (
	testVideo = &bus.Track{Codec: bus.CodecH264, ClockRate: 90000, Config: []byte{1}, Width: 1280, Height: 720, BFrames: true}
	testAudio = &bus.Track{Codec: bus.CodecAAC, ClockRate: 48000, Config: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2}
)

func TestLiveStateFollowsTheBus(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "live"})
	var mu sync.Mutex
	var events []StreamEvent
	cancel := e.srv.Subscribe(func(ev StreamEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	defer cancel()
	get := func() streamJSON {
		var out streamJSON
		e.call(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, &out)
		return out
	}

	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo, testAudio})
	if err != nil {
		t.Fatal(err)
	}
	p.Write(&bus.Unit{Track: testVideo, Key: true, Payload: make([]byte, 1000), Arrival: time.Now()})
	waitFor(t, 5*time.Second, "is_live 1", func() bool { return get().IsLive == 1 })
	r, err := e.hub.Subscribe(context.Background(), st.PlaybackID, bus.ReaderOptions{Viewer: true})
	if err != nil {
		t.Fatal(err)
	}
	got := get()
	if got.ViewerCount != 1 || got.LastLiveAt == nil || got.Stats == nil {
		t.Fatalf("live stream %+v", got)
	}
	if s := got.Stats; s.VideoCodec != "h264" || s.Resolution != "1280x720" || s.AudioCodec != "aac" || !s.BFrames ||
		len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "B-frames") || s.Readers != 1 {
		t.Fatalf("stats %+v", s)
	}
	var open struct {
		Streams []streamJSON `json:"streams"`
	}
	e.call(200, "GET", "/api/streams/open", admin, nil, &open)
	if len(open.Streams) != 1 || open.Streams[0].ViewerCount != 1 {
		t.Fatalf("open %+v", open)
	}
	r.Close()

	// Publisher leaves: still live during the grace, then offline.
	p.Close()
	waitFor(t, 5*time.Second, "is_live 0", func() bool { return get().IsLive == 0 })
	if got := get(); got.Stats != nil {
		t.Fatalf("offline stream has stats %+v", got.Stats)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[0].Type != EventStreamLive || events[1].Type != EventStreamOffline {
		t.Fatalf("events %+v", events)
	}
	for _, ev := range events {
		if ev.StreamID != st.ID || ev.PlaybackID != st.PlaybackID || ev.OwnerID != 1 || ev.Time.IsZero() {
			t.Fatalf("event %+v", ev)
		}
	}
}

func TestReconnectWithinGraceStaysLive(t *testing.T) {
	e := newEnv(t, func(_ *Config, b *bus.Config) { b.ReconnectGrace = time.Hour })
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "live"})
	var mu sync.Mutex
	var n int
	defer e.srv.Subscribe(func(StreamEvent) { mu.Lock(); n++; mu.Unlock() })()
	p, _ := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	waitFor(t, 5*time.Second, "live event", func() bool { mu.Lock(); defer mu.Unlock(); return n == 1 })
	p.Close()
	p2, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	// Flush the live queue by closing: no offline event must have come.
	e.srv.Close()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Fatalf("%d events for a reconnect within the grace, want only the first live", n)
	}
}

func TestNewResetsStaleLiveStreams(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "crashed"})
	if _, _, err := e.store.SetLive(context.Background(), st.PlaybackID, true, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	got, err := e.store.StreamByID(context.Background(), st.ID)
	if err != nil || got.IsLive != store.Offline {
		t.Fatalf("after New: is_live %d %v", got.IsLive, err)
	}
}

func TestNewPicksUpStreamsAlreadyLive(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "early"})
	p, _ := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	defer p.Close()
	waitFor(t, 5*time.Second, "first server marks it live", func() bool {
		s, _ := e.store.StreamByID(context.Background(), st.ID)
		return s.IsLive == 1
	})
	// A second server on the same store resets it, then sees the hub's live stream.
	srv, err := New(Config{Store: e.store, Hub: e.hub, SecretKey: make([]byte, 32)})
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	s, _ := e.store.StreamByID(context.Background(), st.ID)
	if s.IsLive != 1 {
		t.Fatalf("is_live %d after New with a live hub stream", s.IsLive)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRegenerateKeyAndDeleteDropThePublisher(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "kick"})
	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/regenerate-key", st.ID), admin, nil, nil)
	select {
	case <-p.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("regenerate-key left the publisher connected")
	}
	if s := e.hub.Stream(st.PlaybackID).State(); s != bus.StateIdle {
		t.Fatalf("after regenerate-key the stream is %v, want idle (grace for the owner)", s)
	}
	p2, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, nil)
	select {
	case <-p2.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("deleting the stream left the publisher connected")
	}
	if e.hub.Stream(st.PlaybackID) != nil {
		t.Fatal("the deleted stream is still on the bus")
	}
}

// fakeRecorder is a Recorder whose Encoding state the test sets.
type fakeRecorder struct {
	mu       sync.Mutex
	encoding bool
	started  []string
}

func (f *fakeRecorder) StreamLive(stream string, owner int64, name string, record bool, _ time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, fmt.Sprintf("%s/%d/%s/%v", stream, owner, name, record))
}

func (f *fakeRecorder) Encoding(string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.encoding
}

func (f *fakeRecorder) Uploads(int64) []vod.SessionUpload {
	return []vod.SessionUpload{{Session: "rec/2026-01-02_03-04-05", Recorded: 2, Uploaded: 1, Pending: 1}}
}

// TestEncodingState: a stream whose recording is still being uploaded when it ends is
// Encoding (is_live 2) until EncodingDone; recording starts when it goes live.
func TestEncodingState(t *testing.T) {
	rec := &fakeRecorder{encoding: true}
	e := newEnv(t, func(c *Config, _ *bus.Config) { c.VOD = rec })
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "rec", "record": true})
	get := func() int {
		var out streamJSON
		e.call(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, &out)
		return out.IsLive
	}
	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "is_live 1", func() bool { return get() == 1 })
	rec.mu.Lock()
	if want := st.PlaybackID + "/1/rec/true"; len(rec.started) != 1 || rec.started[0] != want {
		t.Fatalf("recording started %v, want [%s]", rec.started, want)
	}
	rec.mu.Unlock()
	p.Close()
	waitFor(t, 5*time.Second, "is_live 2", func() bool { return get() == 2 })
	time.Sleep(100 * time.Millisecond)
	if got := get(); got != 2 {
		t.Fatalf("is_live %d before the upload finished", got)
	}
	var up struct {
		Sessions []vod.SessionUpload `json:"sessions"`
	}
	e.call(200, "GET", "/api/vods/uploads", admin, nil, &up)
	if len(up.Sessions) != 1 || up.Sessions[0].Pending != 1 {
		t.Fatalf("uploads %+v", up)
	}
	rec.mu.Lock()
	rec.encoding = false
	rec.mu.Unlock()
	e.srv.EncodingDone(st.PlaybackID)
	waitFor(t, 5*time.Second, "is_live 0", func() bool { return get() == 0 })
}
