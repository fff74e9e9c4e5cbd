package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestDeps enforces the package dependency rules of ARCHITECTURE.md: nothing in bus knows
// about HTTP, the control plane or a database; ingest and egress never import control,
// nor does ingest import egress (media flows one way); chat reaches storage only through
// the interface it declares (control satisfies it). egress may use ingest's protocol
// helpers that both directions share (ingest/whip/signal: the WHIP resource model that
// WHEP mirrors) and the ingest contracts, never an ingest server. A rule ending in /...
// forbids the whole tree; allowed names exceptions (relay pushes through egress/rtmp, which
// checks what a destination answers with ingest/rtmpguard, the AMF0 check both RTMP
// directions share).
func TestDeps(t *testing.T) {
	const mod = "github.com/relaycast/relaycast/"
	rules := []struct {
		pkg       string
		forbidden []string
	}{
		{"bus", []string{"net/http", mod + "control/...", mod + "ingest/...", mod + "egress/...", "database/sql", "modernc.org/sqlite/...", "github.com/jackc/pgx/..."}},
		{"ingest/...", []string{mod + "control/...", mod + "egress/...", "database/sql", "modernc.org/sqlite/..."}},
		{"relay", []string{mod + "control/...", mod + "ingest/...", "database/sql", "modernc.org/sqlite/..."}},
		{"vod/...", []string{mod + "control/...", mod + "ingest/...", mod + "egress/...", "database/sql", "modernc.org/sqlite/..."}},
		{"egress/...", []string{mod + "control/...", mod + "ingest/rtmp/...", mod + "ingest/rtsp/...", "database/sql", "modernc.org/sqlite/..."}},
		{"chat", []string{mod + "control/...", mod + "bus", mod + "ingest/...", mod + "egress/...", "database/sql", "modernc.org/sqlite/..."}},
	}
	allowed := map[string][]string{"relay": {mod + "ingest/rtmpguard"}}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if slices.Contains(allowed[r.pkg], dep) {
				continue
			}
			for _, f := range r.forbidden {
				prefix, tree := strings.CutSuffix(f, "/...")
				if dep == prefix || (tree && strings.HasPrefix(dep, prefix+"/")) {
					t.Errorf("%s depends on %s", r.pkg, dep)
				}
			}
		}
	}
}
