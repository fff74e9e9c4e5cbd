package whip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// pathPrefix and pathSuffix frame the endpoint: /api/stream/{stream_key}/webrtc/whip, and
// its session resources /api/stream/{stream_key}/webrtc/whip/{session_id}.
const (
	pathPrefix = "/api/stream/"
	pathSuffix = "/webrtc/whip"
)

// Content types of the WHIP exchange (RFC 9725 §4.2, §4.3.1).
const (
	contentTypeSDP     = "application/sdp"
	contentTypeTrickle = "application/trickle-ice-sdpfrag"
)

// maxSDPSize caps an offer or a trickle fragment. Real offers are a few KiB.
const maxSDPSize = 128 << 10

// parsePath splits a request path into the stream key and, for a session resource, the
// session id.
func parsePath(p string) (key, session string, ok bool) {
	rest, ok := strings.CutPrefix(p, pathPrefix)
	if !ok {
		return "", "", false
	}
	key, rest, ok = strings.Cut(rest, pathSuffix)
	if !ok || key == "" || strings.Contains(key, "/") {
		return "", "", false
	}
	switch {
	case rest == "" || rest == "/":
		return key, "", true
	case strings.HasPrefix(rest, "/"):
		session = rest[1:]
		if session == "" || strings.Contains(session, "/") {
			return "", "", false
		}
		return key, session, true
	}
	return "", "", false
}

// errorBody is relaycast's error shape.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg, Status: status})
}

// readBody checks the Content-Type and reads a bounded body. It writes the error itself
// and returns ok=false on failure.
func readBody(w http.ResponseWriter, r *http.Request, want string) ([]byte, bool) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.EqualFold(mt, want) {
		writeError(w, http.StatusUnsupportedMediaType, "content type must be "+want)
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSDPSize+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "cannot read request body")
		return nil, false
	}
	if len(b) > maxSDPSize {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return nil, false
	}
	return b, true
}

// linkHeaders returns the ICE servers as Link header values (RFC 9725 §4.6), so that
// clients such as OBS learn the STUN/TURN servers from the POST response.
func linkHeaders(servers []webrtc.ICEServer) []string {
	var out []string
	for _, s := range servers {
		for _, u := range s.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if s.Username != "" {
				v += fmt.Sprintf("; username=%s", strconv.Quote(s.Username))
			}
			if c, ok := s.Credential.(string); ok && c != "" {
				v += fmt.Sprintf(`; credential=%s; credential-type="password"`, strconv.Quote(c))
			}
			out = append(out, v)
		}
	}
	return out
}

// resourceURL is the Location of a session.
func resourceURL(key, session string) string {
	return pathPrefix + url.PathEscape(key) + pathSuffix + "/" + session
}

// errTrickleRestart: the fragment asks for an ICE restart, which sessions do not support.
var errTrickleRestart = errors.New("ice restart not supported")

// parseTrickle parses an application/trickle-ice-sdpfrag body (RFC 8840 §9): the
// candidates it carries, with the media section they belong to. ufrag is the session's
// remote ICE username fragment: a fragment with another ufrag is an ICE restart.
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
