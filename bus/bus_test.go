package bus

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var (
	testVideo = &Track{Codec: CodecH264, ClockRate: 90000, Config: []byte{1, 2, 3}}
	testAudio = &Track{Codec: CodecAAC, ClockRate: 48000, Config: []byte{0x11, 0x90}}
)

func newTestHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	h := New(cfg)
	t.Cleanup(h.Close)
	return h
}

// frame returns video unit n of a 30 fps stream with a keyframe every gop frames.
func frame(n, gop int) *Unit {
	ts := time.Duration(n) * time.Second / 30
	return &Unit{Track: testVideo, PTS: ts, DTS: ts, Key: n%gop == 0, Payload: []byte{byte(n)}, Arrival: time.Now()}
}

func next(t *testing.T, r *Reader) *Unit {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	u, err := r.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return u
}

func TestReaderGetsUnitsInOrder(t *testing.T) {
	h := newTestHub(t, Config{})
	p, err := h.Publish("s", []*Track{testVideo, testAudio})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Subscribe(context.Background(), "s", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for i := 0; i < 100; i++ {
		p.Write(frame(i, 30))
	}
	for i := 0; i < 100; i++ {
		if u := next(t, r); int(u.Payload[0]) != i {
			t.Fatalf("unit %d: got payload %d", i, u.Payload[0])
		}
	}
	if r.Dropped() != 0 {
		t.Fatalf("dropped %d", r.Dropped())
	}
}

func TestNewReaderStartsAtCachedKeyframeWithTrueTimestamps(t *testing.T) {
	h := newTestHub(t, Config{})
	p, _ := h.Publish("s", []*Track{testVideo})
	for i := 0; i < 75; i++ { // keyframes at 0, 30, 60
		p.Write(frame(i, 30))
	}
	start := time.Now()
	r, err := h.Subscribe(context.Background(), "s", ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u := next(t, r)
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Fatalf("first keyframe took %v", elapsed)
	}
	if !u.Key || u.Payload[0] != 60 {
		t.Fatalf("first unit: key=%v n=%d, want keyframe 60", u.Key, u.Payload[0])
	}
	if want := 2 * time.Second; u.PTS != want {
		t.Fatalf("replayed PTS %v, want the original %v", u.PTS, want)
	}
	for i := 61; i < 75; i++ {
		if u := next(t, r); int(u.Payload[0]) != i {
			t.Fatalf("got %d want %d", u.Payload[0], i)
		}
	}
}

func TestStartLiveAndWaitForKeyframe(t *testing.T) {
	h := newTestHub(t, Config{})
	p, _ := h.Publish("s", []*Track{testVideo})
	p.Write(frame(0, 30))
	p.Write(frame(1, 30))
	live, _ := h.Subscribe(context.Background(), "s", ReaderOptions{Start: StartLive})
	defer live.Close()
	p.Write(frame(2, 30))
	if u := next(t, live); u.Payload[0] != 2 {
		t.Fatalf("live reader got %d, want 2", u.Payload[0])
	}
}

func TestAudioBeforeFirstKeyframeIsSkipped(t *testing.T) {
	h := newTestHub(t, Config{})
	p, _ := h.Publish("s", []*Track{testVideo, testAudio})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{})
	defer r.Close()
	p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{100}})
	p.Write(frame(1, 30)) // not a keyframe
	p.Write(frame(30, 30))
	if u := next(t, r); u.Payload[0] != 30 {
		t.Fatalf("reader started at %d, want the keyframe 30", u.Payload[0])
	}
}

func TestMediaFilter(t *testing.T) {
	h := newTestHub(t, Config{})
	p, _ := h.Publish("s", []*Track{testVideo, testAudio})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{Media: MediaAudio, Start: StartLive})
	defer r.Close()
	p.Write(frame(0, 30))
	p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{7}})
	if u := next(t, r); u.Track != testAudio {
		t.Fatalf("audio-only reader got %v", u.Track.Codec)
	}
}

func TestSlowReaderSkipsToNewestKeyframeAndWriterNeverWaits(t *testing.T) {
	h := newTestHub(t, Config{RingSize: 64, DropLogInterval: time.Hour})
	p, _ := h.Publish("s", []*Track{testVideo})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{Start: StartLive})
	defer r.Close()
	// The reader reads nothing while 200 units are written: the writer must not block.
	done := make(chan struct{})
	go func() {
		for i := 0; i < 200; i++ {
			p.Write(frame(i, 10))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("writer blocked on a reader that reads nothing")
	}
	u := next(t, r)
	if !u.Key || u.Payload[0] != 190 {
		t.Fatalf("after overrun got n=%d key=%v, want the newest keyframe 190", u.Payload[0], u.Key)
	}
	if r.Dropped() != 190 {
		t.Fatalf("reader dropped %d, want 190", r.Dropped())
	}
	if d := h.Stream("s").Stats().Dropped; d != 190 {
		t.Fatalf("stream dropped %d, want 190", d)
	}
}

func TestConcurrentReaders(t *testing.T) {
	h := newTestHub(t, Config{RingSize: 4096})
	p, _ := h.Publish("s", []*Track{testVideo})
	const readers, units = 16, 2000
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		r, err := h.Subscribe(context.Background(), "s", ReaderOptions{Start: StartLive})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			want := time.Duration(0)
			for n := 0; n < units; n++ {
				u, err := r.Next(ctx)
				if err != nil {
					errs <- err
					return
				}
				if u.DTS != want {
					errs <- errors.New("out of order")
					return
				}
				want += time.Millisecond
			}
		}()
	}
	for n := 0; n < units; n++ {
		ts := time.Duration(n) * time.Millisecond
		p.Write(&Unit{Track: testVideo, DTS: ts, PTS: ts, Key: n%50 == 0, Payload: []byte{1}})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSecondPublisherIsBusy(t *testing.T) {
	h := newTestHub(t, Config{})
	if _, err := h.Publish("s", []*Track{testVideo}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish("s", []*Track{testVideo}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second publish: %v, want ErrBusy", err)
	}
	if _, err := h.Publish("t", nil); !errors.Is(err, ErrNoTracks) {
		t.Fatalf("no tracks: %v", err)
	}
}

func TestReconnectWithinGraceKeepsReadersAndContinuesTimestamps(t *testing.T) {
	h := newTestHub(t, Config{ReconnectGrace: time.Second})
	var mu sync.Mutex
	var got []EventType
	h.Watch(func(e Event) {
		mu.Lock()
		got = append(got, e.Type)
		mu.Unlock()
	})
	p, _ := h.Publish("s", []*Track{testVideo})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{})
	defer r.Close()
	for i := 0; i < 30; i++ {
		p.Write(frame(i, 30))
	}
	p.Close()
	if st := h.Stream("s").State(); st != StateIdle {
		t.Fatalf("state after close %v, want idle", st)
	}
	// The same parameters again: the reader keeps the same *Track.
	p2, err := h.Publish("s", []*Track{{Codec: CodecH264, ClockRate: 90000, Config: []byte{1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if p2.Track(0) != testVideo {
		t.Fatal("resumed publisher got a new track for unchanged parameters")
	}
	u := frame(0, 30) // the new publisher starts its clock at zero again
	u.Track = p2.Track(0)
	p2.Write(u)
	var last *Unit
	for i := 0; i < 31; i++ {
		last = next(t, r)
	}
	// The resumed timeline continues one frame step after the last unit, whatever the
	// outage lasted.
	if d := last.DTS - time.Second; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("resumed DTS %v, want the next frame time 1s", last.DTS)
	}
	p2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.Next(ctx); !errors.Is(err, ErrEnded) {
		t.Fatalf("after grace: %v, want ErrEnded", err)
	}
	h.Close()
	mu.Lock()
	defer mu.Unlock()
	want := []EventType{EventLive, EventIdle, EventLive, EventIdle, EventEnded}
	if len(got) != len(want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

func TestSubscribeWaitsForPublisher(t *testing.T) {
	h := newTestHub(t, Config{})
	if _, err := h.Subscribe(context.Background(), "s", ReaderOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("subscribe to nothing: %v", err)
	}
	r, err := h.Subscribe(context.Background(), "s", ReaderOptions{Wait: true, Viewer: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Publish("s", []*Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	p.Write(frame(0, 30))
	if u := next(t, r); u.Payload[0] != 0 {
		t.Fatal("waiting reader missed the first unit")
	}
	if v := h.Stream("s").Stats().Viewers; v != 1 {
		t.Fatalf("viewers %d, want 1", v)
	}
	r.Close()
	r.Close()
	if v := h.Stream("s").Stats().Viewers; v != 0 {
		t.Fatalf("viewers after close %d, want 0", v)
	}
}

func TestCloseUnblocksReaders(t *testing.T) {
	h := New(Config{})
	h.Publish("s", []*Track{testVideo})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{})
	errc := make(chan error, 1)
	go func() {
		_, err := r.Next(context.Background())
		errc <- err
	}()
	h.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("reader not woken by Close")
	}
}

func TestEnumStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{CodecUnknown.String(), "unknown"}, {CodecH264.String(), "h264"}, {CodecAAC.String(), "aac"},
		{Codec(99).String(), "unknown"}, {EventLive.String(), "live"}, {EventType(-1).String(), "unknown"},
		{StateIdle.String(), "idle"}, {State(42).String(), "unknown"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q want %q", tc.got, tc.want)
		}
	}
}

func TestAVCConfigRoundTrip(t *testing.T) {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac}
	pps := []byte{0x68, 0xee, 0x3c, 0x80}
	cfg, err := AVCConfig(sps, pps)
	if err != nil {
		t.Fatal(err)
	}
	s, p, err := ParseAVCConfig(cfg)
	if err != nil || string(s[0]) != string(sps) || string(p[0]) != string(pps) {
		t.Fatalf("round trip: %x %x %v", s, p, err)
	}
	payload := JoinNALUs([][]byte{sps, pps})
	nalus, err := SplitNALUs(payload)
	if err != nil || len(nalus) != 2 {
		t.Fatalf("split: %v %v", nalus, err)
	}
	if _, err := SplitNALUs([]byte{0, 0, 0, 9, 1}); err == nil {
		t.Fatal("truncated payload accepted")
	}
}

func FuzzParseAVCConfig(f *testing.F) {
	cfg, _ := AVCConfig([]byte{0x67, 0x64, 0x00, 0x1f}, []byte{0x68, 0xee})
	f.Add(cfg)
	f.Add([]byte{1, 0, 0, 0, 0, 0xe1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		sps, pps, err := ParseAVCConfig(b)
		if err == nil && (len(sps) == 0 || len(pps) == 0) {
			t.Fatal("accepted a record without parameter sets")
		}
		_, _ = SplitNALUs(b)
	})
}

func TestKickAndEnd(t *testing.T) {
	h := newTestHub(t, Config{ReconnectGrace: time.Minute})
	p, _ := h.Publish("s", []*Track{testVideo})
	r, _ := h.Subscribe(context.Background(), "s", ReaderOptions{})
	defer r.Close()
	p.Write(frame(0, 30))
	if !h.Kick("s") {
		t.Fatal("Kick found no publisher")
	}
	select {
	case <-p.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed by Kick")
	}
	p.Write(frame(1, 30)) // dropped: the publisher was kicked
	if st := h.Stream("s").State(); st != StateIdle {
		t.Fatalf("after Kick: %v, want idle (grace for a legitimate reconnect)", st)
	}
	p2, err := h.Publish("s", []*Track{testVideo})
	if err != nil {
		t.Fatalf("publish after kick: %v", err)
	}
	if !h.End("s") {
		t.Fatal("End found no stream")
	}
	<-p2.Done()
	next(t, r) // frame 0 is still delivered
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := r.Next(ctx); !errors.Is(err, ErrEnded) {
		t.Fatalf("after End: %v, want ErrEnded", err)
	}
	if h.Kick("nope") || h.End("nope") {
		t.Fatal("Kick/End of an unknown stream")
	}
}
