package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, which Linux fixes at
// 100 for the /proc interface whatever the kernel's own tick rate.
const userHZ = 100

// errProcFormat is a /proc file relaybench cannot read.
var errProcFormat = errors.New("unexpected /proc format")

// procStat is what relaybench reads from /proc/<pid>/stat: CPU times in USER_HZ ticks.
type procStat struct {
	ppid int
	// ticks is utime + stime: the process's own CPU time, every thread.
	ticks uint64
	// childTicks is cutime + cstime: the CPU time of its children that exited and were
	// waited for.
	childTicks uint64
}

// parseStat parses the contents of /proc/<pid>/stat (proc(5)). The command name, field 2,
// may hold spaces and parentheses: fields are counted from its last ')'.
func parseStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("%w: stat without command name", errProcFormat)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 17-3+1 {
		return procStat{}, fmt.Errorf("%w: stat has %d fields", errProcFormat, len(f)+2)
	}
	num := func(n int) (uint64, error) {
		v, err := strconv.ParseUint(string(f[n-3]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: stat field %d: %v", errProcFormat, n, err)
		}
		return v, nil
	}
	var v [5]uint64
	for k, n := range []int{4, 14, 15, 16, 17} {
		x, err := num(n)
		if err != nil {
			return procStat{}, err
		}
		v[k] = x
	}
	return procStat{ppid: int(v[0]), ticks: v[1] + v[2], childTicks: v[3] + v[4]}, nil
}

// parseStatusRSS returns the resident set size in bytes from the contents of
// /proc/<pid>/status (its VmRSS line).
func parseStatusRSS(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%w: VmRSS line %q", errProcFormat, bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%w: VmRSS: %v", errProcFormat, err)
		}
		return kb * 1024, nil
	}
	return 0, fmt.Errorf("%w: status without VmRSS (a kernel thread or a zombie?)", errProcFormat)
}

// procSample is one reading of a process: its CPU, its children's, and its memory.
type procSample struct {
	at       time.Time
	self     procStat
	children map[int]uint64 // live children: pid -> ticks
	rss      uint64
}

// procReader reads processes under a /proc root (the real one, or a test's copy).
type procReader struct{ root string }

func (p procReader) stat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	return parseStat(b)
}

// sample reads pid's stat and status and the stat of every process whose parent it is.
func (p procReader) sample(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	var err error
	if s.self, err = p.stat(pid); err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	b, err := os.ReadFile(filepath.Join(p.root, strconv.Itoa(pid), "status"))
	if err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	if s.rss, err = parseStatusRSS(b); err != nil {
		return s, fmt.Errorf("process %d: %w", pid, err)
	}
	s.children = map[int]uint64{}
	ents, err := os.ReadDir(p.root)
	if err != nil {
		return s, err
	}
	for _, e := range ents {
		cpid, err := strconv.Atoi(e.Name())
		if err != nil || cpid == pid {
			continue
		}
		st, err := p.stat(cpid)
		if err != nil || st.ppid != pid {
			continue // gone meanwhile, or not a child
		}
		s.children[cpid] = st.ticks
	}
	return s, nil
}

// cpuBetween returns the process's CPU time between two samples and its children's.
// Children's time counts while they run (their own ticks) and, once they exited and were
// waited for, through the parent's cutime/cstime — which then holds their whole life, so
// what a gone child had used before a was already counted and is taken off.
func cpuBetween(a, b procSample) (self, children time.Duration) {
	tick := time.Second / userHZ
	self = time.Duration(b.self.ticks-min(a.self.ticks, b.self.ticks)) * tick
	var ct int64
	for pid, t := range b.children {
		ct += int64(t) - int64(a.children[pid])
	}
	for pid, t := range a.children {
		if _, ok := b.children[pid]; !ok {
			ct -= int64(t)
		}
	}
	ct += int64(b.self.childTicks) - int64(a.self.childTicks)
	return self, time.Duration(max(ct, 0)) * tick
}

// procMonitor samples a process every second for its peak RSS, and on demand at the
// window's edges.
type procMonitor struct {
	r   procReader
	pid int

	mu      sync.Mutex
	maxRSS  uint64
	lastErr error

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startProcMonitor takes a first sample (failing if pid cannot be read) and starts the
// sampler. Close stops it.
func startProcMonitor(r procReader, pid int) (*procMonitor, error) {
	s, err := r.sample(pid)
	if err != nil {
		return nil, err
	}
	m := &procMonitor{r: r, pid: pid, maxRSS: s.rss, stop: make(chan struct{}), done: make(chan struct{})}
	go m.run()
	return m, nil
}

func (m *procMonitor) run() {
	defer close(m.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			if _, err := m.sample(); err != nil {
				return
			}
		}
	}
}

// sample reads the process now and updates the peak RSS.
func (m *procMonitor) sample() (procSample, error) {
	s, err := m.r.sample(m.pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.lastErr = err
		return s, err
	}
	m.maxRSS = max(m.maxRSS, s.rss)
	return s, nil
}

// peakRSS returns the largest RSS seen.
func (m *procMonitor) peakRSS() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxRSS
}

// Close stops the sampler and waits for it. It is safe to call twice.
func (m *procMonitor) Close() {
	m.stopOnce.Do(func() { close(m.stop) })
	<-m.done
}

// waitCtx waits for d or until ctx ends, and reports whether d passed.
func waitCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
