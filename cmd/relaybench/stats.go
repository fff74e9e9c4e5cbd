package main

import (
	"math"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// protocol is a playback protocol a reader uses.
type protocol int

// Protocols; the zero value is no protocol.
const (
	protoUnknown protocol = iota
	protoRTMP
	protoRTSP
	protoHLS
	protoWHEP
)

// protocols lists the known protocols in report order.
var protocols = []protocol{protoRTMP, protoRTSP, protoHLS, protoWHEP}

func (p protocol) String() string {
	switch p {
	case protoRTMP:
		return "rtmp"
	case protoRTSP:
		return "rtsp"
	case protoHLS:
		return "hls"
	case protoWHEP:
		return "whep"
	}
	return "unknown"
}

// parseProtocol returns the protocol named s, protoUnknown for another name.
func parseProtocol(s string) protocol {
	for _, p := range protocols {
		if p.String() == s {
			return p
		}
	}
	return protoUnknown
}

// histogram counts durations in microseconds with a relative error of at most 1/64
// (1.6 %): exact below 64 µs, then 64 buckets per power of two. Record is lock-free, so
// that every reader of a protocol shares one histogram and memory stays flat however long
// the run.
type histogram struct {
	buckets [histBuckets]atomic.Uint64
	count   atomic.Uint64
	max     atomic.Uint64
}

const (
	histSub     = 64
	histBuckets = histSub + 58*histSub // up to 2^64 µs
)

// histBucket returns the bucket of v.
func histBucket(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - 7 // keep the top 7 bits: 64..127
	return histSub + shift*histSub + int(v>>shift) - histSub
}

// histValue returns the middle of bucket i.
func histValue(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	shift := (i - histSub) / histSub
	top := uint64(histSub + (i-histSub)%histSub)
	lo := top << shift
	return lo + (uint64(1)<<shift)/2
}

// record adds d (negative counts as 0).
func (h *histogram) record(d time.Duration) {
	us := uint64(max(d, 0) / time.Microsecond)
	h.buckets[histBucket(us)].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			break
		}
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100), 0 when empty.
func (h *histogram) percentile(p float64) time.Duration {
	n := h.count.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(p / 100 * float64(n)))
	rank = max(rank, 1)
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		if cum >= rank {
			return time.Duration(min(histValue(i), h.max.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of sorted, 0 when
// empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// readerStats is what one reader observed. Readers call its methods from their own
// goroutines (for RTSP and WHEP, the library's); the report reads it after they stopped,
// except bytes, which it also reads at the start of the measurement window.
type readerStats struct {
	proto  protocol
	stream int
	// frameDur is the clip's frame duration: a video timestamp step over 1.5 of it is a
	// gap (a frame missing).
	frameDur time.Duration
	// stallAfter is how long without media counts as a stall.
	stallAfter time.Duration
	lat        *histogram // the protocol's, shared
	// measuring is set during the measurement window: latency counts the frames that
	// arrive then, not the burst of cached frames a new reader starts with.
	measuring *atomic.Bool
	bytes     atomic.Int64

	mu              sync.Mutex
	start, first    time.Time // connect began; first keyframe arrived
	last            time.Time // last media (audio or video) arrived
	frames, stamped int64
	missed, foreign int64
	stalls, gaps    int
	lastSeq         uint64
	seqSet          bool
	lastDTS         time.Duration
	dtsSet          bool
	err             error
	// latSum, latN and latMax summarize this reader's latencies in the window.
	latSum, latMax time.Duration
	latN           int64
}

func newReaderStats(p protocol, stream int, frameDur, stallAfter time.Duration, lat *histogram, measuring *atomic.Bool) *readerStats {
	return &readerStats{proto: p, stream: stream, frameDur: frameDur, stallAfter: stallAfter, lat: lat, measuring: measuring}
}

// begin records when the reader started connecting: time to first frame counts from here.
func (r *readerStats) begin(t time.Time) {
	r.mu.Lock()
	r.start = t
	r.mu.Unlock()
}

// atLeastStallAfter raises the stall threshold to d: a player fetching whole segments
// gets media once per segment.
func (r *readerStats) atLeastStallAfter(d time.Duration) {
	r.mu.Lock()
	r.stallAfter = max(r.stallAfter, d)
	r.mu.Unlock()
}

// media records the arrival of any media; a silence longer than stallAfter since the
// previous arrival is a stall.
func (r *readerStats) media(at time.Time) {
	r.mu.Lock()
	r.mediaLocked(at)
	r.mu.Unlock()
}

func (r *readerStats) mediaLocked(at time.Time) {
	if !r.last.IsZero() && at.Sub(r.last) > r.stallAfter {
		r.stalls++
	}
	if at.After(r.last) {
		r.last = at
	}
}

// videoFrame is one received video frame.
type videoFrame struct {
	at      time.Time
	key     bool
	st      stamp
	stamped bool
	// dts, when hasDTS, is the frame's decoding timestamp (RTMP, RTSP).
	dts    time.Duration
	hasDTS bool
}

// video records a received video frame: time to first frame (at the first keyframe),
// latency from its stamp (in the window), frames missing between stamps, timestamp gaps.
func (r *readerStats) video(f videoFrame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mediaLocked(f.at)
	r.frames++
	if r.first.IsZero() && f.key {
		r.first = f.at
	}
	if f.hasDTS && r.frameDur > 0 {
		if r.dtsSet {
			if step := f.dts - r.lastDTS; step < 0 || step > r.frameDur*3/2 {
				r.gaps++
			}
		}
		r.lastDTS, r.dtsSet = f.dts, true
	}
	if !f.stamped {
		return
	}
	if int(f.st.Stream) != r.stream {
		r.foreign++
		return
	}
	r.stamped++
	if r.measuring.Load() {
		d := f.at.Sub(f.st.sentTime())
		r.lat.record(d)
		r.latSum += d
		r.latN++
		r.latMax = max(r.latMax, d)
	}
	if r.seqSet && f.st.Seq > r.lastSeq+1 {
		r.missed += int64(f.st.Seq - r.lastSeq - 1)
	}
	if !r.seqSet || f.st.Seq > r.lastSeq {
		r.lastSeq, r.seqSet = f.st.Seq, true
	}
}

// fail records why the reader ended early (the first error only).
func (r *readerStats) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// finish closes the books at the end of the run: a reader silent for longer than
// stallAfter at the end has one more stall.
func (r *readerStats) finish(end time.Time) {
	r.mu.Lock()
	if !r.last.IsZero() && end.Sub(r.last) > r.stallAfter {
		r.stalls++
	}
	r.mu.Unlock()
}

// ttff returns the time to first frame, false if no keyframe arrived.
func (r *readerStats) ttff() (time.Duration, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.first.IsZero() || r.start.IsZero() {
		return 0, false
	}
	return r.first.Sub(r.start), true
}

// sortDurations sorts d in place and returns it.
func sortDurations(d []time.Duration) []time.Duration {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d
}
