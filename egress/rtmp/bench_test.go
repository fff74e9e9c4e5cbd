package rtmp

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// readerProcEnv makes the test binary a reader process for BenchmarkFanout: "ADDR NAME N"
// opens N RTMP players of NAME at ADDR, prints "ready" and reads (dropping the bytes) until
// its stdin closes. Readers run in their own process so that the benchmark's CPU figure
// (getrusage of its own process) is the server's alone.
const readerProcEnv = "RELAYCAST_RTMP_BENCH_READERS"

func readerProcess() int {
	f := strings.Fields(os.Getenv(readerProcEnv))
	if len(f) != 3 {
		return 2
	}
	n, _ := strconv.Atoi(f[2])
	var conns []*playClient
	for range n {
		p, err := tryDialPlay(f[0], false, f[1])
		if err != nil {
			fmt.Println("error", err)
			return 1
		}
		_ = p.conn.SetDeadline(time.Time{})
		conns = append(conns, p)
	}
	var wg sync.WaitGroup
	for _, p := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = io.Copy(io.Discard, p.conn)
		}()
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, p := range conns {
		_ = p.conn.Close()
	}
	wg.Wait()
	return 0
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFanout measures the server's CPU per RTMP reader of one 3 Mbps stream (30 fps
// video, AAC audio, real time), readers in a separate process over loopback. One op is one
// second of stream. RELAYCAST_BENCH_READERS (comma-separated) overrides the reader counts.
func BenchmarkFanout(b *testing.B) {
	counts := []int{1, 50, 500}
	if s := os.Getenv("RELAYCAST_BENCH_READERS"); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			counts = append(counts, n)
		}
	}
	for _, n := range counts {
		b.Run(fmt.Sprintf("readers=%d", n), func(b *testing.B) { benchFanout(b, n) })
	}
}

func benchFanout(b *testing.B, readers int) {
	e := newEnv(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startSynth(b, ctx, e.hub, "s1", 3_000_000, 1)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s pub_1 %d", readerProcEnv, e.in.Addr(), readers))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("reader process: %q", line)
	}
	// Let the joins (each sends its GOP) settle.
	<-time.After(time.Second)
	st0, cpu0, t0 := e.out.Stats(), cpuTime(), time.Now()
	b.ResetTimer()
	for range b.N {
		<-time.After(time.Second)
	}
	b.StopTimer()
	cpu, wall, st := cpuTime()-cpu0, time.Since(t0), e.out.Stats()
	perReader := float64(cpu) / wall.Seconds() / float64(readers) / 1e6
	b.ReportMetric(perReader, "cpu-ms/s/reader")
	b.ReportMetric(float64(cpu)/float64(wall), "cores")
	b.ReportMetric(float64(st.BytesOut-st0.BytesOut)/wall.Seconds()*8/1e6/float64(readers), "Mbps/reader")
	b.ReportMetric(float64(st.Skips-st0.Skips), "skips")
	if st.Viewers != int64(readers) {
		b.Fatalf("%d viewers, want %d", st.Viewers, readers)
	}
}
