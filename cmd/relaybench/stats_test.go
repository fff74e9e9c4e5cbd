package main

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

func TestProtocolString(t *testing.T) {
	for _, c := range []struct {
		p    protocol
		name string
	}{
		{protoUnknown, "unknown"},
		{protoRTMP, "rtmp"},
		{protoRTSP, "rtsp"},
		{protoHLS, "hls"},
		{protoWHEP, "whep"},
		{protocol(99), "unknown"},
	} {
		if got := c.p.String(); got != c.name {
			t.Errorf("%d.String() = %q, want %q", c.p, got, c.name)
		}
		if c.p != protoUnknown && c.p != 99 && parseProtocol(c.name) != c.p {
			t.Errorf("parseProtocol(%q) = %v", c.name, parseProtocol(c.name))
		}
	}
	if parseProtocol("srt") != protoUnknown || parseProtocol("unknown") != protoUnknown {
		t.Error("parseProtocol accepts an unknown name")
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, c := range []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 50, 2 * time.Millisecond}, // nearest rank: ceil(0.5*4) = 2nd
		{ms(1, 2, 3, 4), 51, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 100, 4 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 1, 1 * time.Millisecond},
	} {
		if got := percentile(c.in, c.p); got != c.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", c.in, c.p, got, c.want)
		}
	}
	if s := sortDurations(ms(3, 1, 2)); s[0] != time.Millisecond || s[2] != 3*time.Millisecond {
		t.Errorf("sortDurations: %v", s)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Buckets never decrease with the value, and every value's bucket holds it within 1/64.
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<20 + 12345, 1 << 40, math.MaxUint64} {
		b := histBucket(v)
		if b < prev || b >= histBuckets {
			t.Fatalf("bucket of %d = %d after %d (of %d)", v, b, prev, histBuckets)
		}
		prev = b
		mid := histValue(b)
		if diff := math.Abs(float64(mid) - float64(v)); diff > float64(v)/64+1 {
			t.Errorf("value %d in bucket %d of middle %d: off by %.0f", v, b, mid, diff)
		}
	}
	for i := 0; i < histBuckets-1; i++ {
		if histValue(i) >= histValue(i+1) {
			t.Fatalf("bucket %d's middle %d ≥ bucket %d's %d", i, histValue(i), i+1, histValue(i+1))
		}
	}
}

func TestHistogramPercentiles(t *testing.T) {
	var h histogram
	if h.percentile(50) != 0 {
		t.Fatal("empty histogram")
	}
	r := rand.New(rand.NewPCG(1, 2))
	var exact []time.Duration
	for range 100_000 {
		// Log-normal-ish latencies from 50 µs to seconds.
		d := time.Duration(math.Exp(r.NormFloat64()*1.5+8)) * time.Microsecond
		exact = append(exact, d.Truncate(time.Microsecond))
		h.record(d)
	}
	h.record(-time.Second) // counts as 0
	exact = sortDurations(append(exact, 0))
	for _, p := range []float64{1, 50, 90, 99, 99.9, 100} {
		want, got := percentile(exact, p), h.percentile(p)
		if diff := math.Abs(float64(got - want)); diff > float64(want)/64+float64(time.Microsecond) {
			t.Errorf("p%v = %v, exact %v", p, got, want)
		}
	}
	if h.count.Load() != uint64(len(exact)) || time.Duration(h.max.Load())*time.Microsecond != exact[len(exact)-1] {
		t.Errorf("count %d max %d µs", h.count.Load(), h.max.Load())
	}
}

func TestReaderStats(t *testing.T) {
	var (
		lat       histogram
		measuring atomic.Bool
	)
	frame := 33 * time.Millisecond
	r := newReaderStats(protoRTMP, 1, frame, 2*time.Second, &lat, &measuring)
	t0 := time.Unix(1000, 0)
	r.begin(t0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	st := func(seq uint64, sent time.Duration) stamp {
		return stamp{Stream: 1, Seq: seq, Sent: at(sent).UnixNano()}
	}

	// A non-key frame first: no time to first frame yet.
	r.video(videoFrame{at: at(10 * time.Millisecond), st: st(0, 0), stamped: true, dts: 0, hasDTS: true})
	if _, ok := r.ttff(); ok {
		t.Fatal("ttff before a keyframe")
	}
	measuring.Store(true)
	r.video(videoFrame{at: at(20 * time.Millisecond), key: true, st: st(1, 15*time.Millisecond), stamped: true,
		dts: frame, hasDTS: true})
	// Frames 2 and 3 missing: a missed count of 2 and a timestamp gap.
	r.video(videoFrame{at: at(140 * time.Millisecond), st: st(4, 130*time.Millisecond), stamped: true,
		dts: 4 * frame, hasDTS: true})
	// Another stream's frame, and a frame without stamp.
	r.video(videoFrame{at: at(170 * time.Millisecond), st: stamp{Stream: 0, Seq: 5}, stamped: true,
		dts: 5 * frame, hasDTS: true})
	r.video(videoFrame{at: at(200 * time.Millisecond), dts: 6 * frame, hasDTS: true})
	// 2.5 s of silence, then audio: a stall. Timestamps going back: a gap.
	r.media(at(2700 * time.Millisecond))
	r.video(videoFrame{at: at(2710 * time.Millisecond), st: st(5, 2700*time.Millisecond), stamped: true,
		dts: 0, hasDTS: true})
	r.finish(at(5 * time.Second)) // silent again at the end: another stall

	if d, ok := r.ttff(); !ok || d != 20*time.Millisecond {
		t.Errorf("ttff %v %v", d, ok)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frames != 6 || r.stamped != 4 || r.missed != 2 || r.foreign != 1 || r.stalls != 2 || r.gaps != 2 {
		t.Errorf("frames %d stamped %d missed %d foreign %d stalls %d gaps %d, want 6 4 2 1 2 2",
			r.frames, r.stamped, r.missed, r.foreign, r.stalls, r.gaps)
	}
	// Latency counted only while measuring: 5, 10 and 10 ms (within the histogram's 1/64).
	near := func(got, want time.Duration) bool { return got >= want && got <= want+want/64 }
	if lat.count.Load() != 3 || !near(lat.percentile(50), 10*time.Millisecond) || !near(lat.percentile(1), 5*time.Millisecond) {
		t.Errorf("latency: %d samples, p50 %v, p1 %v", lat.count.Load(), lat.percentile(50), lat.percentile(1))
	}
}

func TestParseReaders(t *testing.T) {
	got, err := parseReaders("rtmp=50, hls=10,whep=5,rtmp=1,rtsp=0")
	if err != nil || got[protoRTMP] != 51 || got[protoHLS] != 10 || got[protoWHEP] != 5 || got[protoRTSP] != 0 {
		t.Fatalf("parseReaders: %v %v", got, err)
	}
	if got, err := parseReaders(""); err != nil || len(got) != 0 {
		t.Fatalf("no readers: %v %v", got, err)
	}
	for _, bad := range []string{"rtmp", "srt=1", "rtmp=-1", "hls=x"} {
		if _, err := parseReaders(bad); err == nil {
			t.Errorf("parseReaders(%q) accepted", bad)
		}
	}
}
