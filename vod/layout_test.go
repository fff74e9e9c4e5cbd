package vod

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSanitizeName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"My Stream", "My Stream"},
		{"  padded  ", "padded"},
		{"a/b\\c", "a_b_c"},
		{"..", "_."},
		{"../../etc/passwd", "_._.._etc_passwd"},
		{".hidden", "_hidden"},
		{"", "stream"},
		{"   ", "stream"},
		{"Café ☕", "Caf_ _"},
		{"tab\there\nnl", "tab_here_nl"},
		{"ok_-.123", "ok_-.123"},
		{"nul\x00byte", "nul_byte"},
		{strings.Repeat("x", 300), strings.Repeat("x", maxNameLen)},
	} {
		if got := SanitizeName(tc.in); got != tc.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

var nameRe = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9 _.-]*$`)

// FuzzSanitizeName: any input gives a safe, non-empty, stable path component.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"", "..", "a/b", "Café", " .x ", strings.Repeat("é", 200)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := SanitizeName(s)
		if !nameRe.MatchString(got) || len(got) > maxNameLen+1 || strings.HasSuffix(got, " ") {
			t.Fatalf("SanitizeName(%q) = %q", s, got)
		}
		if again := SanitizeName(got); again != got {
			t.Fatalf("SanitizeName is not stable: %q → %q → %q", s, got, again)
		}
	})
}

func TestParseRel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		rel  string
		ok   bool
		rec  bool
		want Chunk
	}{
		{"42/My Stream/2025-01-02_03-04-05/chunk_001.mkv", true, false,
			Chunk{Owner: 42, Session: "My Stream/2025-01-02_03-04-05", Seq: 1, Rel: "My Stream/2025-01-02_03-04-05/chunk_001.mkv"}},
		{"7/s/2025-01-02_03-04-05/chunk_1234.mkv.rec", true, true,
			Chunk{Owner: 7, Session: "s/2025-01-02_03-04-05", Seq: 1234, Rel: "s/2025-01-02_03-04-05/chunk_1234.mkv"}},
		{"42/My Stream/2025-01-02_03-04-05/chunk_01.mkv", false, false, Chunk{}},
		{"42/My Stream/2025-01-02_03-04-05/chunk_000.mkv", true, false,
			Chunk{Owner: 42, Session: "My Stream/2025-01-02_03-04-05", Seq: 0, Rel: "My Stream/2025-01-02_03-04-05/chunk_000.mkv"}},
		{"42/My Stream/2025-01-02_03-04-05/chunk_00.mkv", false, false, Chunk{}},
		{"42/My Stream/2025-01-02_03-04-05/chunk_001.mkv.broken", false, false, Chunk{}},
		{"42/.hidden/2025-01-02_03-04-05/chunk_001.mkv", false, false, Chunk{}},
		{"042/s/2025-01-02_03-04-05/chunk_001.mkv", false, false, Chunk{}},
		{"-1/s/2025-01-02_03-04-05/chunk_001.mkv", false, false, Chunk{}},
		{"42/s/2025-13-02_03-04-05/chunk_001.mkv", false, false, Chunk{}},
		{"42/s/chunk_001.mkv", false, false, Chunk{}},
		{"journal.json", false, false, Chunk{}},
	} {
		got, rec, ok := parseRel(tc.rel)
		if ok != tc.ok || rec != tc.rec || got != tc.want {
			t.Errorf("parseRel(%q) = %+v, %v, %v; want %+v, %v, %v", tc.rel, got, rec, ok, tc.want, tc.rec, tc.ok)
		}
	}
	info := SessionInfo{StreamName: "a/b", Start: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	if c, _, ok := parseRel("1/" + info.sessionRel() + "/" + chunkName(FirstSeq)); !ok || c.Seq != FirstSeq {
		t.Fatalf("the recorder's own names do not parse: %+v", c)
	}
}

// FuzzRepair feeds arbitrary files to the repair of unfinished chunks: it must never
// panic, and a file it repaired must read back and repair to itself.
func FuzzRepair(f *testing.F) {
	rec, done := synthChunk(f, 2, 8_000)
	f.Add(rec)
	f.Add(done)
	f.Add(rec[:len(rec)/2])
	f.Add(rec[:400])
	f.Add([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4<<20 {
			return
		}
		m := &memFile{b: append([]byte(nil), b...)}
		n, dur, err := repair(m, int64(len(b)))
		if err != nil {
			return
		}
		if n != int64(len(m.b)) || dur < 0 {
			t.Fatalf("size %d of %d, duration %d", n, len(m.b), dur)
		}
		if s, err := scanChunk(m, n, true); err != nil || !s.hasDuration || s.clusters == 0 {
			t.Fatalf("repaired file does not read back: %v", err)
		}
		again := &memFile{b: append([]byte(nil), m.b...)}
		if _, _, err := repair(again, n); err != nil || !bytes.Equal(again.b, m.b) {
			t.Fatalf("repairing again changed the file (%v)", err)
		}
	})
}
