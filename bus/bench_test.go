package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkFanout measures the cost of delivering one unit to N readers, each driven by its
// own goroutine as egress drives them. ns/op and allocs/op are per unit written; the
// ns/delivery metric divides by the number of readers.
func BenchmarkFanout(b *testing.B) {
	for _, readers := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("readers=%d", readers), func(b *testing.B) {
			benchFanout(b, readers)
		})
	}
}

func benchFanout(b *testing.B, readers int) {
	h := New(Config{RingSize: 1 << 14, DropLogInterval: time.Hour})
	defer h.Close()
	p, err := h.Publish("bench", []*Track{testVideo})
	if err != nil {
		b.Fatal(err)
	}
	// Units are made before the timer: what is measured is the bus, not the publisher.
	units := make([]*Unit, b.N)
	payload := make([]byte, 1200)
	for i := range units {
		ts := time.Duration(i) * time.Millisecond
		units[i] = &Unit{Track: testVideo, PTS: ts, DTS: ts, Key: i%60 == 0, Payload: payload}
	}
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rs := make([]*Reader, readers)
	for i := range rs {
		r, err := h.Subscribe(ctx, "bench", ReaderOptions{Start: StartLive})
		if err != nil {
			b.Fatal(err)
		}
		rs[i] = r
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, r := range rs {
		wg.Add(1)
		go func(r *Reader) {
			defer wg.Done()
			for got := uint64(0); got+r.Dropped() < uint64(b.N); got++ {
				if _, err := r.Next(ctx); err != nil {
					return
				}
			}
		}(r)
	}
	for _, u := range units {
		p.Write(u)
	}
	wg.Wait()
	b.StopTimer()
	var dropped uint64
	for _, r := range rs {
		dropped += r.Dropped()
		r.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(readers), "ns/delivery")
	b.ReportMetric(float64(dropped)/float64(b.N)/float64(readers), "drop-ratio")
}

// BenchmarkNextHot measures one reader taking units that are already in the ring: the pure
// per-unit delivery path (no scheduling), which must not allocate.
func BenchmarkNextHot(b *testing.B) {
	h := New(Config{RingSize: 1 << 12})
	defer h.Close()
	p, _ := h.Publish("bench", []*Track{testVideo})
	r, _ := h.Subscribe(context.Background(), "bench", ReaderOptions{Start: StartLive})
	defer r.Close()
	u := &Unit{Track: testVideo, Key: true, Payload: make([]byte, 1200)}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Write(u)
		if _, err := r.Next(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFirstKeyframe measures how long a new reader of a live stream waits for its first
// unit: with the GOP cache it is the cached keyframe, served at once.
func BenchmarkFirstKeyframe(b *testing.B) {
	h := New(Config{})
	defer h.Close()
	p, _ := h.Publish("bench", []*Track{testVideo, testAudio})
	for i := 0; i < 45; i++ { // a 2 s GOP at 30 fps, 1.5 s into it, with audio
		p.Write(frame(i, 60))
		p.Write(&Unit{Track: testAudio, Key: true, Payload: []byte{1}})
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := h.Subscribe(ctx, "bench", ReaderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		u, err := r.Next(ctx)
		if err != nil || !u.Key || !u.Track.Codec.IsVideo() {
			b.Fatalf("first unit %+v %v", u, err)
		}
		r.Close()
	}
}
