package bus

import (
	"context"
	"testing"
	"time"
)

// TestFanoutAllocs guards the hot path: writing a unit to a stream with many readers and
// delivering it to each of them (Next and TryNext, every media filter) allocates nothing.
// It runs in short mode too, so that `go test ./bus` (deploy/test.sh runs it with -race)
// fails as soon as a change adds an allocation per unit or per reader.
//
// The count holds under the race detector as well (measured with Go 1.26: 0 with and
// without -race). testing.AllocsPerRun divides with an integer division, so a stray
// allocation of another goroutine during the 200 runs does not fail the test; one per unit
// (or per reader) does.
func TestFanoutAllocs(t *testing.T) {
	h := newTestHub(t, Config{RingSize: 1 << 10, DropLogInterval: time.Hour})
	p, err := h.Publish("allocs", []*Track{testVideo, testAudio})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const readers = 64
	rs := make([]*Reader, readers)
	for i := range rs {
		opts := ReaderOptions{Start: StartLive, Viewer: i%2 == 0, Protocol: "test", PaceByVideo: i%8 < 2}
		switch i % 4 {
		case 1:
			opts.Media = MediaVideo
		case 2:
			opts.Media = MediaAudio
		}
		r, err := h.Subscribe(ctx, "allocs", opts)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = r
		defer r.Close()
	}
	// Units are made up front: what is measured is the bus, not the publisher.
	payload := make([]byte, 1200)
	const gop = 60
	units := make([]*Unit, 0, 4*gop)
	for i := range cap(units) / 2 {
		ts := time.Duration(i) * time.Second / 30
		units = append(units,
			&Unit{Track: testVideo, PTS: ts, DTS: ts, Key: i%gop == 0, Payload: payload},
			&Unit{Track: testAudio, PTS: ts, DTS: ts, Key: true, Payload: payload[:200]})
	}
	n := 0
	allocs := testing.AllocsPerRun(200, func() {
		u := units[n%len(units)]
		n++
		p.Write(u)
		for i, r := range rs {
			want := u
			if (r.opts.Media == MediaVideo && !u.Track.Codec.IsVideo()) ||
				(r.opts.Media == MediaAudio && !u.Track.Codec.IsAudio()) {
				want = nil
			}
			var got *Unit
			switch {
			case i%2 == 0:
				got = r.TryNext()
			case want == nil:
				continue // Next would wait for the next unit of its kind
			default:
				// A unit is ready: Next returns it without waiting.
				var err error
				if got, err = r.Next(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if got != want {
				t.Fatalf("reader %d got %p, want %p", i, got, want)
			}
		}
	})
	for i, r := range rs {
		if r.Dropped() != 0 {
			t.Fatalf("reader %d dropped %d units", i, r.Dropped())
		}
	}
	if allocs > 0 {
		t.Fatalf("fan-out of one unit to %d readers allocates %v times; want 0", readers, allocs)
	}
}
