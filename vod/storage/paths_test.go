package storage_test

import (
	"errors"
	"path"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/relaycast/relaycast/vod/storage"
)

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string // want "" means ErrBadPath
	}{
		{"chunk_000.mkv", "chunk_000.mkv"},
		{"Stream/2026-02-08_04-24-49/chunk_000.mkv", "Stream/2026-02-08_04-24-49/chunk_000.mkv"},
		{"a//b/./c/", "a/b/c"},
		{"./a", "a"},
		{".", "."},
		{"./", "."},
		{"a/.", "a"},
		{"...", "..."},
		{"..a/b..", "..a/b.."},
		{"name with spaces/ünïcödé.mkv", "name with spaces/ünïcödé.mkv"},
		{"", ""},
		{"..", ""},
		{"../x", ""},
		{"a/../b", ""},
		{"a/../../b", ""},
		{"a/..", ""},
		{"/etc/passwd", ""},
		{"/", ""},
		{"//x", ""},
		{`a\b`, ""},
		{`..\x`, ""},
		{"a\x00b", ""},
		{"a\tb", ""},
		{"a\rb", ""},
		{"a\x7f", ""},
		{"a\u0085b", ""}, // C1 control (NEL)
		{"\xc0\xaf", ""}, // overlong "/" in invalid UTF-8
		{strings.Repeat("a/", 2049), ""},
	} {
		got, err := storage.Clean(tc.in)
		if tc.want == "" {
			if !errors.Is(err, storage.ErrBadPath) {
				t.Errorf("Clean(%q) = %q, %v; want ErrBadPath", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Clean(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// FuzzCleanPath: whatever Clean accepts stays below the root when joined to it, is in
// canonical form and holds no character the policy forbids.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{
		"a/b", "..", "../x", "/etc/passwd", "a/../../b", ".", "a//b/", `a\b`, "a\x00b",
		"....//..//", "./.././", "ü/..ü", "%2e%2e/x", "a/./../b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := storage.Clean(in)
		if err != nil {
			if !errors.Is(err, storage.ErrBadPath) {
				t.Fatalf("Clean(%q): error %v does not wrap ErrBadPath", in, err)
			}
			return
		}
		const root = "/srv/vods"
		joined := path.Join(root, got)
		if joined != root && !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("Clean(%q) = %q escapes: %s", in, got, joined)
		}
		if got == "" || path.IsAbs(got) || got != path.Clean(got) {
			t.Fatalf("Clean(%q) = %q: not a clean relative path", in, got)
		}
		for seg := range strings.SplitSeq(got, "/") {
			if seg == ".." || (seg == "." && got != ".") {
				t.Fatalf("Clean(%q) = %q keeps segment %q", in, got, seg)
			}
		}
		if !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return r == '\\' || unicode.IsControl(r) }) {
			t.Fatalf("Clean(%q) = %q keeps a forbidden character", in, got)
		}
		if again, err := storage.Clean(got); err != nil || again != got {
			t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", in, again, err, got)
		}
	})
}
