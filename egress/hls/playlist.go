package hls

import (
	"bytes"
	"strconv"
	"strings"
)

// gohlslib starts every Low-Latency HLS media playlist with seven EXT-X-GAP segments
// (gap.mp4), which Apple's players require. Chromium's native HLS player does not know
// EXT-X-GAP: it fetches gap.mp4, gets a 404 and stops with a demuxer error, so for the
// first ~7 segment durations of every stream it would not play. Clients other than Apple's
// get the playlist without its leading gaps; EXT-X-MEDIA-SEQUENCE moves up by as many
// segments, so every real segment keeps its sequence number.

// keepsGaps reports whether the client is one of Apple's players (Safari, any iOS
// browser, AVFoundation), which want the gaps.
func keepsGaps(userAgent string) bool {
	if strings.Contains(userAgent, "AppleCoreMedia") || strings.Contains(userAgent, "iPhone") ||
		strings.Contains(userAgent, "iPad") || strings.Contains(userAgent, "iPod") {
		return true
	}
	// Safari on macOS; Chrome and Edge on macOS also say Macintosh and Safari.
	return strings.Contains(userAgent, "Macintosh") && strings.Contains(userAgent, "Safari/") &&
		!strings.Contains(userAgent, "Chrome/") && !strings.Contains(userAgent, "Chromium/")
}

// segmentTags are the tags that belong to the next segment of a media playlist.
var segmentTags = []string{"#EXT-X-GAP", "#EXTINF:", "#EXT-X-PROGRAM-DATE-TIME:", "#EXT-X-DISCONTINUITY",
	"#EXT-X-BITRATE:", "#EXT-X-BYTERANGE:", "#EXT-X-PART:"}

func isSegmentTag(line []byte) bool {
	for _, t := range segmentTags {
		if bytes.HasPrefix(line, []byte(t)) {
			return true
		}
	}
	return false
}

// isGapURI reports whether a segment URI line names gohlslib's gap placeholder.
func isGapURI(line []byte) bool {
	uri, _, _ := bytes.Cut(line, []byte("?"))
	return bytes.Equal(uri, []byte("gap.mp4"))
}

// stripLeadingGaps removes the gap segments in front of a media playlist's first real
// segment and raises EXT-X-MEDIA-SEQUENCE by their number. Any other playlist is returned
// as it is.
func stripLeadingGaps(pl []byte) []byte {
	if !bytes.Contains(pl, []byte("#EXT-X-GAP")) {
		return pl
	}
	out := make([]byte, 0, len(pl))
	var pending [][]byte // segment tags since the last URI
	gaps := 0
	seqLine := -1 // offset in out of the EXT-X-MEDIA-SEQUENCE line
	for rest := pl; len(rest) > 0; {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		switch {
		case len(line) == 0:
		case isSegmentTag(line):
			pending = append(pending, line)
		case line[0] == '#':
			if len(pending) > 0 {
				pending = append(pending, line) // inside a segment: keep the order
				continue
			}
			if bytes.HasPrefix(line, []byte("#EXT-X-MEDIA-SEQUENCE:")) {
				seqLine = len(out)
			}
			out = append(append(out, line...), '\n')
		case isGapURI(line):
			pending = pending[:0]
			gaps++
		default: // the first real segment: the rest stays as it is
			for _, p := range pending {
				out = append(append(out, p...), '\n')
			}
			pending = nil
			out = append(append(out, line...), '\n')
			out = append(out, rest...)
			rest = nil
		}
	}
	for _, p := range pending {
		out = append(append(out, p...), '\n')
	}
	if gaps == 0 || seqLine < 0 {
		return pl
	}
	end := bytes.IndexByte(out[seqLine:], '\n')
	if end < 0 {
		return pl
	}
	n, err := strconv.ParseUint(string(out[seqLine+len("#EXT-X-MEDIA-SEQUENCE:"):seqLine+end]), 10, 64)
	if err != nil {
		return pl
	}
	fixed := append([]byte(nil), out[:seqLine]...)
	fixed = append(fixed, "#EXT-X-MEDIA-SEQUENCE:"...)
	fixed = strconv.AppendUint(fixed, n+uint64(gaps), 10)
	return append(fixed, out[seqLine+end:]...)
}
