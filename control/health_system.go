package control

// System health for admins (GET /api/admin/system): the machine's CPU load, memory and the
// data directory's disk, and the relaycast process's own figures. Read from /proc and
// statfs on Linux; fields that cannot be read are left out.

import (
	"bufio"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/relaycast/relaycast/bus"
)

var processStart = time.Now()

// meminfo returns /proc/meminfo's fields in bytes.
func meminfo() map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, ...).
func procStatus(field string) (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseUint(f[0], 10, 64)
			return n * 1024, err == nil
		}
	}
	return 0, false
}

// handleSystemHealth answers GET /api/admin/system.
func (s *Server) handleSystemHealth(w http.ResponseWriter, r *http.Request, _ *principal) error {
	cpu := map[string]any{"cores": runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			var load []float64
			for _, x := range f[:3] {
				v, _ := strconv.ParseFloat(x, 64)
				load = append(load, v)
			}
			cpu["load_avg"] = load
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		cpu["process_seconds"] = float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	}
	mem := map[string]any{}
	if m := meminfo(); m["MemTotal"] > 0 {
		mem["total"], mem["available"] = m["MemTotal"], m["MemAvailable"]
		mem["used_percent"] = 100 * float64(m["MemTotal"]-m["MemAvailable"]) / float64(m["MemTotal"])
	}
	disk := map[string]any{}
	if s.cfg.DataDir != "" {
		var st syscall.Statfs_t
		if syscall.Statfs(s.cfg.DataDir, &st) == nil {
			total, free := st.Blocks*uint64(st.Bsize), st.Bavail*uint64(st.Bsize)
			disk["path"], disk["total"], disk["free"] = s.cfg.DataDir, total, free
			if total > 0 {
				disk["used_percent"] = 100 * float64(total-free) / float64(total)
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	proc := map[string]any{"pid": os.Getpid(), "version": s.cfg.Version, "go": runtime.Version(),
		"uptime_seconds": int64(time.Since(processStart).Seconds()), "goroutines": runtime.NumGoroutine(),
		"heap_bytes": ms.HeapAlloc}
	if rss, ok := procStatus("VmRSS"); ok {
		proc["rss_bytes"] = rss
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		proc["open_files"] = len(fds)
	}
	live := 0
	for _, st := range s.hub.Streams() {
		if st.State() == bus.StateLive {
			live++
		}
	}
	proc["live_streams"] = live
	writeJSON(w, http.StatusOK, map[string]any{"cpu": cpu, "memory": mem, "disk": disk, "process": proc})
	return nil
}
