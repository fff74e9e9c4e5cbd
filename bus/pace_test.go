package bus

import (
	"context"
	"errors"
	"testing"
)

// woken reports whether r was woken since the last call (and takes the wake-up).
func woken(r *Reader) bool {
	select {
	case <-r.wake:
		return true
	default:
		return false
	}
}

// TestPaceByVideo checks the wake-up policy of readers that pace by video: audio units do not
// wake them while the stream has video (they come with the next video unit, in order), every
// paceLimit-th unit without video does, and so does the end of the stream. Readers that do
// not pace are woken by every unit.
func TestPaceByVideo(t *testing.T) {
	h := newTestHub(t, Config{ReconnectGrace: -1})
	p, err := h.Publish("s", []*Track{testVideo, testAudio})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	paced, err := h.Subscribe(ctx, "s", ReaderOptions{Start: StartLive, PaceByVideo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer paced.Close()
	plain, err := h.Subscribe(ctx, "s", ReaderOptions{Start: StartLive})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	woken(paced)
	woken(plain)

	a1 := &Unit{Track: testAudio, Key: true, Payload: []byte{1}}
	p.Write(a1)
	if !woken(plain) || woken(paced) {
		t.Fatal("audio unit: want the plain reader woken, the paced one not")
	}
	v1 := frame(0, 30)
	p.Write(v1)
	if !woken(paced) {
		t.Fatal("video unit: paced reader not woken")
	}
	// It then takes the audio unit and the video unit, in order, without waiting.
	for _, r := range []*Reader{paced, plain} {
		for _, want := range []*Unit{a1, v1} {
			if u, err := r.Next(ctx); err != nil || u != want {
				t.Fatalf("Next: %v %v, want %p", u, err, want)
			}
		}
	}

	// paceLimit units without video wake it too.
	for i := range paceLimit {
		p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{byte(i)}})
		if w := woken(paced); w != (i == paceLimit-1) {
			t.Fatalf("audio unit %d of %d: woken %v", i+1, paceLimit, w)
		}
	}
	for range paceLimit {
		if u := paced.TryNext(); u == nil || u.Track != testAudio {
			t.Fatalf("paced reader: %v, want an audio unit", u)
		}
	}

	// The end of the stream wakes it; it gets what is left, then ErrEnded.
	last := &Unit{Track: testAudio, Key: true, Payload: []byte{2}}
	p.Write(last)
	if woken(paced) {
		t.Fatal("audio unit before the end woke the paced reader")
	}
	p.Close()
	if !woken(paced) {
		t.Fatal("end of the stream did not wake the paced reader")
	}
	if u, err := paced.Next(ctx); u != last || err != nil {
		t.Fatalf("after the end: %v %v, want the last unit", u, err)
	}
	if _, err := paced.Next(ctx); !errors.Is(err, ErrEnded) {
		t.Fatalf("after the last unit: %v, want ErrEnded", err)
	}
}

// TestPaceByVideoWithoutVideo checks that in a stream without video every unit wakes a reader
// that paces by video.
func TestPaceByVideoWithoutVideo(t *testing.T) {
	h := newTestHub(t, Config{})
	p, err := h.Publish("s", []*Track{testAudio})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Subscribe(context.Background(), "s", ReaderOptions{Start: StartLive, PaceByVideo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	woken(r)
	for i := range 3 {
		p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{byte(i)}})
		if !woken(r) {
			t.Fatalf("audio unit %d of an audio-only stream did not wake the reader", i)
		}
	}
}

// TestSetPaceByVideo checks that turning pacing off makes audio units wake the reader again.
func TestSetPaceByVideo(t *testing.T) {
	h := newTestHub(t, Config{})
	p, err := h.Publish("s", []*Track{testVideo, testAudio})
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Subscribe(context.Background(), "s", ReaderOptions{Start: StartLive, PaceByVideo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{1}})
	if woken(r) {
		t.Fatal("paced reader woken by audio")
	}
	r.SetPaceByVideo(false)
	if !woken(r) {
		t.Fatal("SetPaceByVideo(false) did not wake the reader for the audio written before")
	}
	p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{2}})
	if !woken(r) {
		t.Fatal("audio unit did not wake a reader whose pacing was turned off")
	}
}
