package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// statLine returns a /proc/<pid>/stat line with the given command name, parent and CPU
// times (the other fields as a real one of Linux 6.x has them).
func statLine(pid int, comm string, ppid int, utime, stime, cutime, cstime uint64) string {
	return fmt.Sprintf("%d (%s) S %d %d 1 0 -1 4194560 3180 0 0 0 %d %d %d %d 20 0 14 0 1484605 "+
		"2618152960 45463 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
		pid, comm, ppid, pid, utime, stime, cutime, cstime)
}

func TestParseStat(t *testing.T) {
	for _, comm := range []string{"relaycast", "a b", "x) S 1 2 (y", ")"} {
		st, err := parseStat([]byte(statLine(42, comm, 7, 150, 50, 30, 12)))
		if err != nil {
			t.Fatalf("comm %q: %v", comm, err)
		}
		if st != (procStat{ppid: 7, ticks: 200, childTicks: 42}) {
			t.Errorf("comm %q: %+v", comm, st)
		}
	}
	for _, bad := range []string{"", "42 relaycast S 1", "42 (x) S 1 2 3", "42 (x) S 1 1 1 0 -1 1 1 1 1 1 u 5 0 0 20"} {
		if _, err := parseStat([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseStat(%q): %v", bad, err)
		}
	}
}

func TestParseStatusRSS(t *testing.T) {
	status := "Name:\trelaycast\nState:\tS (sleeping)\nVmPeak:\t 2618152 kB\nVmRSS:\t   181852 kB\nThreads:\t14\n"
	if rss, err := parseStatusRSS([]byte(status)); err != nil || rss != 181852*1024 {
		t.Fatalf("rss %d, %v", rss, err)
	}
	for _, bad := range []string{"Name:\tkthreadd\nThreads:\t1\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseStatusRSS([]byte(bad)); !errors.Is(err, errProcFormat) {
			t.Errorf("parseStatusRSS(%q): %v", bad, err)
		}
	}
}

func TestCPUBetween(t *testing.T) {
	a := procSample{self: procStat{ticks: 1000, childTicks: 50}, children: map[int]uint64{10: 100, 11: 40}}
	// Child 11 exited and was waited for: its 70 ticks of life moved into childTicks.
	// Child 12 started.
	b := procSample{self: procStat{ticks: 1150, childTicks: 120}, children: map[int]uint64{10: 130, 12: 5}}
	self, children := cpuBetween(a, b)
	if self != 1500*time.Millisecond {
		t.Errorf("self %v, want 1.5s", self)
	}
	// 30 (child 10) + 5 (child 12) + 70 (child 11's life) - 40 (child 11 before a) = 65 ticks.
	if children != 650*time.Millisecond {
		t.Errorf("children %v, want 650ms", children)
	}
}

// fakeProc writes a /proc tree: pid 100 (the server) with children 101 and 102, and 103,
// a child of someone else.
func fakeProc(t *testing.T, serverTicks uint64, rssKB int) string {
	t.Helper()
	root := t.TempDir()
	write := func(pid int, stat, status string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"stat": stat, "status": status} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(100, statLine(100, "relaycast", 1, serverTicks, 0, 0, 0), fmt.Sprintf("VmRSS:\t%d kB\n", rssKB))
	write(101, statLine(101, "ffmpeg", 100, 30, 10, 0, 0), "VmRSS:\t1 kB\n")
	write(102, statLine(102, "ffmpeg", 100, 5, 0, 0, 0), "VmRSS:\t1 kB\n")
	write(103, statLine(103, "bash", 1, 999, 0, 0, 0), "VmRSS:\t1 kB\n")
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestProcSample(t *testing.T) {
	r := procReader{root: fakeProc(t, 500, 2048)}
	s, err := r.sample(100)
	if err != nil {
		t.Fatal(err)
	}
	if s.self.ticks != 500 || s.rss != 2048*1024 || len(s.children) != 2 || s.children[101] != 40 || s.children[102] != 5 {
		t.Fatalf("sample: %+v", s)
	}
	if _, err := r.sample(999); err == nil {
		t.Fatal("sample of a missing process")
	}
	m, err := startProcMonitor(r, 100)
	if err != nil {
		t.Fatal(err)
	}
	if m.peakRSS() != 2048*1024 {
		t.Errorf("peak RSS %d", m.peakRSS())
	}
	m.Close()
	m.Close()
	if _, err := startProcMonitor(r, 999); err == nil {
		t.Fatal("monitor of a missing process")
	}
}

func TestProcSelf(t *testing.T) {
	// The real /proc of this process parses.
	if _, err := (procReader{root: "/proc"}).sample(os.Getpid()); err != nil {
		t.Fatal(err)
	}
}

// FuzzParseProc checks that the /proc parsers never panic.
func FuzzParseProc(f *testing.F) {
	f.Add([]byte(statLine(1, "a) b", 0, 1, 2, 3, 4)))
	f.Add([]byte("VmRSS:\t 12 kB\n"))
	f.Add([]byte(")"))
	f.Fuzz(func(_ *testing.T, b []byte) {
		_, _ = parseStat(b)
		_, _ = parseStatusRSS(b)
	})
}
