package vod

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecord3Mbps measures the recorder's cost for one second of a 3 Mbps stream
// (30 fps H.264 with a 2 s GOP + AAC, 77 units) written to a real file: Matroska muxing,
// clusters, chunk cuts (every 60 s) and the writes. cpu-ms/media-s is the process CPU time
// per second of media, i.e. the CPU share of recording one live 3 Mbps stream (×0.1 %).
func BenchmarkRecord3Mbps(b *testing.B) {
	hub := bus.New(bus.Config{Logger: testLogger(b)})
	defer hub.Close()
	r, err := New(Config{Hub: hub, SpoolDir: b.TempDir(), ChunkDuration: time.Minute, Logger: testLogger(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	pub, err := hub.Publish("b", synthTracks())
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	rd, err := hub.Subscribe(b.Context(), "b", bus.ReaderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.Context())
	s := newSession(r, "b", SessionInfo{StreamName: "bench", Owner: 1, Start: time.Now()}, rd, ctx, cancel)
	defer s.rd.Close()
	gen := newSynthStream(pub.Tracks(), 3_000_000, 60)
	b.SetBytes(3_000_000 / 8)
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		end := time.Duration(i+1) * time.Second
		for {
			u := gen.next()
			s.handle(u)
			if u.DTS >= end {
				break
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(time.Millisecond)/float64(b.N), "cpu-ms/media-s")
	s.closePrev()
	s.closeChunk(true)
	if st := s.Stats(); st.Units == 0 || st.Dropped > 0 {
		b.Fatalf("stats %+v", st)
	}
}
