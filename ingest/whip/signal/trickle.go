package signal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// parseTrickle parses an application/trickle-ice-sdpfrag body (RFC 8840 §9): the
// candidates it carries, with the media section they belong to. ufrag is the session's
// remote ICE username fragment: a fragment with another ufrag is an ICE restart
// (errTrickleRestart).
func parseTrickle(body []byte, ufrag string) ([]webrtc.ICECandidateInit, error) {
	var out []webrtc.ICECandidateInit
	mline := -1
	mid := ""
	for line := range strings.Lines(string(body)) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			if ufrag != "" && line[len("a=ice-ufrag:"):] != ufrag {
				return nil, errTrickleRestart
			}
		case strings.HasPrefix(line, "m="):
			mline++
			mid = ""
		case strings.HasPrefix(line, "a=mid:"):
			mid = line[len("a=mid:"):]
		case strings.HasPrefix(line, "a=candidate:"):
			c := webrtc.ICECandidateInit{Candidate: line[len("a="):]}
			if mid != "" {
				m := mid
				c.SDPMid = &m
			}
			if mline >= 0 {
				if mline > 0xffff {
					return nil, errors.New("too many media sections")
				}
				i := uint16(mline)
				c.SDPMLineIndex = &i
			}
			out = append(out, c)
		case strings.HasPrefix(line, "a="), strings.HasPrefix(line, "c="):
			// a=ice-pwd, a=ice-options, a=end-of-candidates, ...: nothing to do.
		default:
			return nil, fmt.Errorf("unexpected line %q", truncate(line, 40))
		}
		if len(out) > 1000 {
			return nil, errors.New("too many candidates")
		}
	}
	return out, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
