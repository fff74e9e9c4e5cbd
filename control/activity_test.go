package control

import (
	"fmt"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// TestActivity: sign-ins, stream creation, start and end, and relay changes are logged;
// admins see everyone's entries, users their own; limit is bounded.
func TestActivity(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	st := e.createStream(bob, map[string]any{"title": "bob live"})
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/relays", st.ID), bob, map[string]any{
		"platform": "custom", "name": "backup", "rtmp_url": "rtmp://127.0.0.1:1/live", "stream_key": "k"}, nil)
	p, err := e.hub.Publish(st.PlaybackID, []*bus.Track{testVideo})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	type entry struct {
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
		Action   string `json:"action"`
		Details  string `json:"details"`
	}
	var out struct {
		Activities []entry `json:"activities"`
	}
	waitFor(t, 5*time.Second, "stream_ended", func() bool {
		e.call(200, "GET", "/api/activity", bob, nil, &out)
		return len(out.Activities) > 0 && out.Activities[0].Action == "stream_ended"
	})
	var actions []string
	for _, a := range out.Activities {
		if a.Username != "bob" {
			t.Fatalf("bob sees %+v", a)
		}
		actions = append(actions, a.Action)
	}
	if got := fmt.Sprint(actions); got != "[stream_ended stream_started relay_added stream_created login]" {
		t.Fatalf("bob's activity %s", got)
	}
	e.call(200, "GET", "/api/activity?limit=50", admin, nil, &out)
	seen := map[string]bool{}
	for _, a := range out.Activities {
		seen[a.Username] = true
	}
	if !seen["admin"] || !seen["bob"] {
		t.Fatalf("admin sees %+v", out.Activities)
	}
	e.wantError(400, "GET", "/api/activity?limit=51", admin, nil)
}

// TestSystemHealth: admins get the machine's and the process's figures.
func TestSystemHealth(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.DataDir = t.TempDir() }))
	admin := e.setup()
	var h struct {
		CPU struct {
			Cores   int       `json:"cores"`
			LoadAvg []float64 `json:"load_avg"`
		} `json:"cpu"`
		Memory struct {
			Total uint64 `json:"total"`
		} `json:"memory"`
		Disk struct {
			Total uint64 `json:"total"`
			Free  uint64 `json:"free"`
		} `json:"disk"`
		Process struct {
			PID        int    `json:"pid"`
			RSS        uint64 `json:"rss_bytes"`
			Goroutines int    `json:"goroutines"`
		} `json:"process"`
	}
	e.call(200, "GET", "/api/admin/system", admin, nil, &h)
	if h.CPU.Cores < 1 || len(h.CPU.LoadAvg) != 3 || h.Memory.Total == 0 || h.Disk.Total == 0 || h.Disk.Free > h.Disk.Total ||
		h.Process.PID == 0 || h.Process.RSS == 0 || h.Process.Goroutines == 0 {
		t.Fatalf("system health %+v", h)
	}
	bob := e.user(admin, "bob")
	e.wantError(403, "GET", "/api/admin/system", bob, nil)
}
