package signal

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"
)

// pathPrefix and Config.Suffix frame an endpoint, /api/stream/{id}/webrtc/whip, and its
// session resources, /api/stream/{id}/webrtc/whip/{session_id}.
const pathPrefix = "/api/stream/"

// Content types of the WHIP and WHEP exchanges (RFC 9725 §4.2, §4.3.1).
const (
	contentTypeSDP     = "application/sdp"
	contentTypeTrickle = "application/trickle-ice-sdpfrag"
)

// maxSDPSize caps an offer or a trickle fragment. Real offers are a few KiB.
const maxSDPSize = 128 << 10

// parsePath splits a request path into the endpoint's id (WHIP: the stream key, WHEP: the
// playback id) and, for a session resource, the session id.
func parsePath(p, suffix string) (id, session string, ok bool) {
	rest, ok := strings.CutPrefix(p, pathPrefix)
	if !ok {
		return "", "", false
	}
	id, rest, ok = strings.Cut(rest, suffix)
	if !ok || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	switch {
	case rest == "" || rest == "/":
		return id, "", true
	case strings.HasPrefix(rest, "/"):
		session = rest[1:]
		if session == "" || strings.Contains(session, "/") {
			return "", "", false
		}
		return id, session, true
	}
	return "", "", false
}

// resourceURL is the Location of a session.
func resourceURL(suffix, id, session string) string {
	return pathPrefix + url.PathEscape(id) + suffix + "/" + session
}

// errorBody is relaycast's error shape.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// WriteError writes an error response in relaycast's JSON shape {"error","status"}.
func WriteError(w http.ResponseWriter, status int, msg string) {
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
		WriteError(w, http.StatusUnsupportedMediaType, "content type must be "+want)
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxSDPSize+1))
	if err != nil {
		WriteError(w, http.StatusBadRequest, "cannot read request body")
		return nil, false
	}
	if len(b) > maxSDPSize {
		WriteError(w, http.StatusRequestEntityTooLarge, "request body too large")
		return nil, false
	}
	return b, true
}

// options answers a preflight or capability request. The Access-Control-Allow-Origin
// header is the control plane's (--cors).
func options(w http.ResponseWriter, allow string) {
	h := w.Header()
	h.Set("Allow", allow)
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Access-Control-Allow-Methods", allow)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	w.WriteHeader(http.StatusNoContent)
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
