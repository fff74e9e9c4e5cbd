package control

import (
	"bytes"
	"strings"
	"testing"
)

// TestPprofAdminOnly locks who may read the runtime profiles: nobody without a credential
// (401), no non-admin (403), both in the API's error shape; an administrator gets every
// profile.
func TestPprofAdminOnly(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	user := e.user(admin, "viewer")

	paths := []string{
		"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1",
		"/debug/pprof/symbol", "/debug/pprof/trace?seconds=0.1",
		"/debug/pprof/heap", "/debug/pprof/goroutine", "/debug/pprof/allocs",
		"/debug/pprof/block", "/debug/pprof/mutex", "/debug/pprof/threadcreate",
	}
	for _, p := range paths {
		e.wantError(401, "GET", p, "", nil)
		e.wantError(403, "GET", p, user, nil)
	}
	e.wantError(401, "POST", "/debug/pprof/symbol", "", "0x1")
	e.wantError(403, "POST", "/debug/pprof/symbol", user, "0x1")

	for _, p := range paths {
		code, body, hdr := e.do("GET", p, admin, nil)
		if code != 200 || len(body) == 0 {
			t.Fatalf("GET %s as admin: %d, %d bytes: %.200s", p, code, len(body), body)
		}
		if cc := hdr.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET %s: Cache-Control %q", p, cc)
		}
	}
	// Text forms say what they are.
	for p, want := range map[string]string{
		"/debug/pprof/":                  "Types of profiles available",
		"/debug/pprof/goroutine?debug=1": "goroutine profile:",
		"/debug/pprof/heap?debug=1":      "heap profile:",
	} {
		_, body, _ := e.do("GET", p, admin, nil)
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("GET %s: no %q in %.200s", p, want, body)
		}
	}
	// Binary profiles are gzipped protobufs.
	_, body, _ := e.do("GET", "/debug/pprof/heap", admin, nil)
	if !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Errorf("heap profile is not gzip: % x", body[:min(len(body), 8)])
	}
	if code, body, _ := e.do("POST", "/debug/pprof/symbol", admin, "0x1"); code != 200 ||
		!strings.Contains(string(body), "num_symbols") {
		t.Errorf("POST symbol as admin: %d %s", code, body)
	}
	// An unknown profile name is pprof's 404 (behind the same check).
	e.wantError(401, "GET", "/debug/pprof/nosuch", "", nil)
	if code, _, _ := e.do("GET", "/debug/pprof/nosuch", admin, nil); code != 404 {
		t.Errorf("unknown profile: %d, want 404", code)
	}
}
