package control

import (
	"errors"
	"math"
	"testing"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	for _, tc := range []struct {
		h       string
		size    int64
		start   int64
		length  int64
		partial bool
		err     bool
	}{
		{h: "", size: size},
		{h: "bytes=0-99", size: size, start: 0, length: 100, partial: true},
		{h: "bytes=990-", size: size, start: 990, length: 10, partial: true},
		{h: "bytes=990-5000", size: size, start: 990, length: 10, partial: true},
		{h: "bytes=-10", size: size, start: 990, length: 10, partial: true},
		{h: "bytes=-5000", size: size, start: 0, length: size, partial: true},
		{h: "bytes=999-999", size: size, start: 999, length: 1, partial: true},
		{h: "BYTES = 1-2", size: size, start: 1, length: 2, partial: true},
		{h: "bytes= 1-2 ,", size: size, start: 1, length: 2, partial: true},
		{h: "bytes=0-99999999999999999999999", size: size, start: 0, length: size, partial: true},
		{h: "bytes=0-1,3-4", size: size},
		{h: "pages=1-2", size: size},
		{h: "bytes=1000-", size: size, err: true},
		{h: "bytes=99999999999999999999999-", size: size, err: true},
		{h: "bytes=5-4", size: size, err: true},
		{h: "bytes=-0", size: size, err: true},
		{h: "bytes=-", size: size, err: true},
		{h: "bytes=", size: size, err: true},
		{h: "bytes=,", size: size, err: true},
		{h: "bytes=1", size: size, err: true},
		{h: "bytes=+1-2", size: size, err: true},
		{h: "bytes=1-+2", size: size, err: true},
		{h: "bytes=0x1-2", size: size, err: true},
		{h: "bytes 0-1", size: size, err: true},
		{h: "bytes=0-", size: 0, err: true},
		{h: "bytes=-1", size: 0, err: true},
	} {
		r, partial, err := parseRange(tc.h, tc.size)
		if tc.err != (err != nil) || partial != tc.partial || (partial && (r.start != tc.start || r.length != tc.length)) {
			t.Errorf("%q (size %d): %+v %v %v", tc.h, tc.size, r, partial, err)
		}
		if err != nil && !errors.Is(err, errRangeNotSatisfiable) {
			t.Errorf("%q: error %v", tc.h, err)
		}
	}
	if got := (byteRange{start: 10, length: 5}).contentRange(100); got != "bytes 10-14/100" {
		t.Fatalf("content range %q", got)
	}
}

func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-99", "bytes=-10", "bytes=5-", "bytes=0-1,2-3", "bytes=99999999999999999999-", "x=1-2", "bytes=-"} {
		f.Add(h, int64(1000))
	}
	f.Add("bytes=0-0", int64(0))
	f.Add("bytes=-1", int64(math.MaxInt64))
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			return // sizes come from a file's Stat
		}
		r, partial, err := parseRange(h, size)
		if err != nil && partial {
			t.Fatalf("%q: partial with an error", h)
		}
		if partial && (r.start < 0 || r.length <= 0 || r.start > size-r.length) {
			t.Fatalf("%q (size %d): range %+v outside the resource", h, size, r)
		}
	})
}
