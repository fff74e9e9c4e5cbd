package control

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// byteRange is a satisfiable range of a resource: length bytes from start.
type byteRange struct {
	start, length int64
}

// contentRange is the Content-Range value of r in a resource of size bytes.
func (r byteRange) contentRange(size int64) string {
	return "bytes " + strconv.FormatInt(r.start, 10) + "-" + strconv.FormatInt(r.start+r.length-1, 10) + "/" +
		strconv.FormatInt(size, 10)
}

// errRangeNotSatisfiable: the Range header is malformed or selects nothing of the resource
// (416).
var errRangeNotSatisfiable = errors.New("range not satisfiable")

// parseRange interprets a Range header (RFC 9110 §14.2) for a resource of size bytes. It
// returns the range and true for one satisfiable byte range; false (send the whole
// resource with 200) when there is no header, the unit is not bytes, or several ranges are
// asked for (a server may ignore Range; multipart/byteranges is not offered); and
// errRangeNotSatisfiable (416) for a malformed bytes range or one that starts at or past
// the end. A last-pos past the end is clipped; "-N" is the last N bytes.
func parseRange(h string, size int64) (byteRange, bool, error) {
	if h == "" {
		return byteRange{}, false, nil
	}
	unit, set, ok := strings.Cut(h, "=")
	if !ok || !strings.EqualFold(strings.TrimSpace(unit), "bytes") {
		if !ok {
			return byteRange{}, false, errRangeNotSatisfiable
		}
		return byteRange{}, false, nil
	}
	var specs []string
	for spec := range strings.SplitSeq(set, ",") {
		if spec = strings.Trim(spec, " \t"); spec != "" {
			specs = append(specs, spec)
		}
	}
	switch {
	case len(specs) == 0:
		return byteRange{}, false, errRangeNotSatisfiable
	case len(specs) > 1:
		return byteRange{}, false, nil
	}
	first, last, ok := strings.Cut(specs[0], "-")
	if !ok {
		return byteRange{}, false, errRangeNotSatisfiable
	}
	if first == "" {
		n, ok := parseRangeInt(last)
		if !ok || n == 0 || size == 0 {
			return byteRange{}, false, errRangeNotSatisfiable
		}
		n = min(n, size)
		return byteRange{start: size - n, length: n}, true, nil
	}
	start, ok := parseRangeInt(first)
	if !ok || start >= size {
		return byteRange{}, false, errRangeNotSatisfiable
	}
	end := size - 1
	if last != "" {
		l, ok := parseRangeInt(last)
		if !ok || l < start {
			return byteRange{}, false, errRangeNotSatisfiable
		}
		end = min(l, end)
	}
	return byteRange{start: start, length: end - start + 1}, true, nil
}

// parseRangeInt parses 1*DIGIT; values past int64 saturate (they are past any end).
func parseRangeInt(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, true // only ErrRange is possible for digits
	}
	return n, true
}
