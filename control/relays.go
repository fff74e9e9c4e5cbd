package control

// Stream relays: the API, validation and stored rows of the destinations a live stream is
// pushed to, and the targets handed to the relay manager (RelayTargets). The wire contract
// is in doc.go, "Relays".

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/relay"
)

// Relay limits.
const (
	maxRelaysPerStream = 10
	maxRelayName       = 100
	maxRelayURL        = 1024
	maxRelayKey        = 512
)

// relaySealPurpose is the Sealer purpose of relay stream keys.
const relaySealPurpose = "relay-keys"

// RelayManager runs the relays of live streams. relay.Manager satisfies it.
type RelayManager interface {
	// Reload re-reads the targets of the bus stream with this id (a playback id) and
	// applies them at once if the stream is live.
	Reload(stream string)
	// Status returns the state and counters of relay id; false when the manager has none.
	Status(id int64) (relay.Status, bool)
}

var _ relay.TargetSource = (*Server)(nil)

// relayPlatform is a destination platform: its id, display name and default ingest URL
// ("" when the user must give one).
type relayPlatform struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	DefaultURL string `json:"default_url"`
}

// relayPlatforms is the answer of GET /api/relay-platforms, in this order.
var relayPlatforms = []relayPlatform{
	{ID: "twitch", Name: "Twitch", DefaultURL: "rtmp://live.twitch.tv/app"},
	{ID: "youtube", Name: "YouTube", DefaultURL: "rtmp://a.rtmp.youtube.com/live2"},
	{ID: "kick", Name: "Kick", DefaultURL: "rtmps://fa723fc1b171.global-contribute.live-video.net/app"},
	{ID: "portal", Name: "Portal", DefaultURL: ""},
	{ID: "custom", Name: "Custom", DefaultURL: ""},
}

func platformByID(id string) (relayPlatform, bool) {
	for _, p := range relayPlatforms {
		if p.ID == id {
			return p, true
		}
	}
	return relayPlatform{}, false
}

var errRelayNotFound = &apiError{http.StatusNotFound, "relay not found"}

// relayInput is the body of POST /api/streams/{id}/relays and PUT .../relays/{relay_id}.
// On creation platform, name and stream_key are required, rtmp_url too unless the
// platform has a default_url; enabled and tls_verify default to true. On update every
// field is optional and absent fields keep their value. An empty rtmp_url means the
// platform's default_url.
type relayInput struct {
	Platform  *string `json:"platform"`
	Name      *string `json:"name"`
	RTMPURL   *string `json:"rtmp_url"`
	StreamKey *string `json:"stream_key"`
	Enabled   *bool   `json:"enabled"`
	TLSVerify *bool   `json:"tls_verify"`
}

// apply validates in and writes it onto r, except the stream key, which it returns
// validated and in clear (ok false when in has none) for the caller to seal.
func (in relayInput) apply(r *store.Relay) (key string, ok bool, err error) {
	if in.Platform != nil {
		p, known := platformByID(strings.TrimSpace(*in.Platform))
		if !known {
			ids := make([]string, len(relayPlatforms))
			for i, p := range relayPlatforms {
				ids[i] = p.ID
			}
			return "", false, errorf(http.StatusBadRequest, "unknown platform %q (known: %s)", *in.Platform, strings.Join(ids, ", "))
		}
		r.Platform = p.ID
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if l := len([]rune(n)); l == 0 || l > maxRelayName {
			return "", false, errorf(http.StatusBadRequest, "name must be 1-%d characters", maxRelayName)
		}
		r.Name = n
	}
	if in.RTMPURL != nil {
		raw := strings.TrimSpace(*in.RTMPURL)
		if raw == "" {
			p, _ := platformByID(r.Platform)
			if p.DefaultURL == "" {
				return "", false, errorf(http.StatusBadRequest, "rtmp_url is required for platform %q", r.Platform)
			}
			raw = p.DefaultURL
		}
		if err := checkRelayURL(raw); err != nil {
			return "", false, err
		}
		r.RTMPURL = raw
	}
	if in.StreamKey != nil {
		key = strings.TrimSpace(*in.StreamKey)
		if err := checkRelayKey(key); err != nil {
			return "", false, err
		}
		ok = true
	}
	if in.Enabled != nil {
		r.Enabled = *in.Enabled
	}
	if in.TLSVerify != nil {
		r.TLSVerify = *in.TLSVerify
	}
	return key, ok, nil
}

// checkRelayURL accepts an ingest base: rtmp:// or rtmps://, a host, an optional port, an
// application path, and nothing that could hide a secret or be misread (user info, query,
// fragment, spaces, control characters). The stream key is appended as the last path
// segment (relayURL), so it must not be part of the URL.
func checkRelayURL(raw string) error {
	if len(raw) > maxRelayURL {
		return errorf(http.StatusBadRequest, "rtmp_url must be at most %d characters", maxRelayURL)
	}
	if hasSpaceOrControl(raw) {
		return errorf(http.StatusBadRequest, "rtmp_url must not contain spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Opaque != "" {
		return errorf(http.StatusBadRequest, "rtmp_url must be a URL starting with rtmp:// or rtmps://")
	}
	if u.Hostname() == "" {
		return errorf(http.StatusBadRequest, "rtmp_url has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errorf(http.StatusBadRequest, "rtmp_url has an invalid port")
		}
	}
	if u.User != nil {
		return errorf(http.StatusBadRequest, "rtmp_url must not contain user info")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(raw, "?#") {
		return errorf(http.StatusBadRequest, "rtmp_url must not have a query or fragment: put the whole stream key in stream_key")
	}
	if strings.Trim(u.Path, "/") == "" {
		return errorf(http.StatusBadRequest, "rtmp_url needs an application path, e.g. rtmp://host/app")
	}
	// The path must be written as it goes on the wire (RFC 3986 path characters, escapes
	// valid): else the URL the key is appended to would be re-escaped differently and the
	// key would not be the last segment the destination reads.
	if p := rawPath(raw); !validPath(p) || u.EscapedPath() != p {
		return errorf(http.StatusBadRequest, "rtmp_url has characters that are not allowed in a URL path")
	}
	return nil
}

// rawPath returns the path of an rtmp(s) URL as written: what follows scheme://authority.
func rawPath(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		return rest[i:]
	}
	return ""
}

// validPath reports whether p has only RFC 3986 path characters.
func validPath(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@%/", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// checkRelayKey accepts a destination stream key: 1 to 512 bytes of UTF-8 without spaces
// or control characters.
func checkRelayKey(key string) error {
	if key == "" {
		return errorf(http.StatusBadRequest, "stream_key is required")
	}
	if len(key) > maxRelayKey {
		return errorf(http.StatusBadRequest, "stream_key must be at most %d bytes", maxRelayKey)
	}
	if !utf8.ValidString(key) || hasSpaceOrControl(key) {
		return errorf(http.StatusBadRequest, "stream_key must not contain spaces or control characters")
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

// relayURL is the publish URL of a relay: the ingest base, "/", the escaped stream key.
// egress/rtmp unescapes the last segment, so a key with '?' or '/' arrives intact.
func relayURL(base, key string) string {
	return strings.TrimRight(base, "/") + "/" + url.PathEscape(key)
}

// relayKeyAAD is the associated data of a relay's sealed key: the stream id, which a relay
// never changes, so that a sealed key copied to another stream's row does not open.
func relayKeyAAD(streamID int64) []byte {
	return []byte("stream:" + strconv.FormatInt(streamID, 10))
}

// relayJSON is a relay on the wire. Field order is the wire order. The stream key is
// never sent. The status fields come from the relay manager: a relay it does not know (the
// stream has not been live since the start, or no manager runs) is "idle" with zero
// counters; a disabled one is "idle" with the counters and last_error of its last run.
// connected_since is RFC 3339 while "live", else null.
type relayJSON struct {
	ID             int64   `json:"id"`
	StreamID       int64   `json:"stream_id"`
	Platform       string  `json:"platform"`
	Name           string  `json:"name"`
	RTMPURL        string  `json:"rtmp_url"`
	HasStreamKey   bool    `json:"has_stream_key"`
	Enabled        bool    `json:"enabled"`
	TLSVerify      bool    `json:"tls_verify"`
	CreatedAt      string  `json:"created_at"`
	UpdatedAt      string  `json:"updated_at"`
	State          string  `json:"state"`
	LastError      string  `json:"last_error"`
	ConnectedSince *string `json:"connected_since"`
	BytesSent      uint64  `json:"bytes_sent"`
	Reconnects     int     `json:"reconnects"`
	Skipped        uint64  `json:"skipped"`
}

// relayView renders r with its status.
func (s *Server) relayView(r store.Relay) relayJSON {
	v := relayJSON{
		ID: r.ID, StreamID: r.StreamID, Platform: r.Platform, Name: r.Name, RTMPURL: r.RTMPURL,
		HasStreamKey: len(r.StreamKey) > 0, Enabled: r.Enabled, TLSVerify: r.TLSVerify,
		CreatedAt: apiTime(r.CreatedAt), UpdatedAt: apiTime(r.UpdatedAt),
		State: relay.StateIdle.String(),
	}
	if s.cfg.Relays == nil {
		return v
	}
	st, ok := s.cfg.Relays.Status(r.ID)
	if !ok {
		return v
	}
	v.LastError, v.BytesSent, v.Reconnects, v.Skipped = st.LastError, st.BytesSent, st.Reconnects, st.Skipped
	// A relay just disabled may still be reported by the manager for a moment.
	if r.Enabled && st.State != relay.StateUnknown {
		v.State = st.State.String()
	}
	if v.State == relay.StateLive.String() {
		v.ConnectedSince = apiTimePtr(st.ConnectedSince)
	}
	return v
}

// reloadRelays tells the relay manager that the relays of a stream changed.
func (s *Server) reloadRelays(playbackID string) {
	if s.cfg.Relays != nil {
		s.cfg.Relays.Reload(playbackID)
	}
}

// relayFor returns the stream streamID and its relay relayID if p owns the stream.
func (s *Server) relayFor(ctx context.Context, p *principal, streamID, relayID int64) (store.Stream, store.Relay, error) {
	st, err := s.streamFor(ctx, p, streamID, true)
	if err != nil {
		return store.Stream{}, store.Relay{}, err
	}
	r, err := s.store.RelayByID(ctx, relayID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.StreamID != st.ID) {
		return store.Stream{}, store.Relay{}, errRelayNotFound
	}
	return st, r, err
}

// listRelays returns the relays of stream streamID, which p must own.
func (s *Server) listRelays(ctx context.Context, p *principal, streamID int64) ([]store.Relay, error) {
	st, err := s.streamFor(ctx, p, streamID, true)
	if err != nil {
		return nil, err
	}
	return s.store.ListRelaysByStream(ctx, st.ID)
}

// createRelay adds a relay to stream streamID, which p must own; at most
// maxRelaysPerStream per stream.
func (s *Server) createRelay(ctx context.Context, p *principal, streamID int64, in relayInput) (store.Relay, error) {
	st, err := s.streamFor(ctx, p, streamID, true)
	if err != nil {
		return store.Relay{}, err
	}
	switch {
	case in.Platform == nil:
		return store.Relay{}, errorf(http.StatusBadRequest, "platform is required")
	case in.Name == nil:
		return store.Relay{}, errorf(http.StatusBadRequest, "name is required")
	case in.StreamKey == nil:
		return store.Relay{}, errorf(http.StatusBadRequest, "stream_key is required")
	}
	if in.RTMPURL == nil {
		in.RTMPURL = new(string) // the platform's default, or an error
	}
	now := s.now()
	r := store.Relay{StreamID: st.ID, Enabled: true, TLSVerify: true, CreatedAt: now, UpdatedAt: now}
	key, _, err := in.apply(&r)
	if err != nil {
		return store.Relay{}, err
	}
	r.StreamKey = s.relayKeys.Seal([]byte(key), relayKeyAAD(st.ID))
	r, err = s.store.CreateRelay(ctx, r, maxRelaysPerStream)
	switch {
	case errors.Is(err, store.ErrLimit):
		return store.Relay{}, errorf(http.StatusBadRequest, "a stream has at most %d relays: delete one first", maxRelaysPerStream)
	case errors.Is(err, store.ErrNotFound):
		return store.Relay{}, errStreamNotFound // deleted meanwhile
	case err != nil:
		return store.Relay{}, err
	}
	s.reloadRelays(st.PlaybackID)
	return r, nil
}

// updateRelay applies in to relay relayID of stream streamID, which p must own. The
// stored key is replaced only when in has one.
func (s *Server) updateRelay(ctx context.Context, p *principal, streamID, relayID int64, in relayInput) (store.Relay, error) {
	st, r, err := s.relayFor(ctx, p, streamID, relayID)
	if err != nil {
		return store.Relay{}, err
	}
	key, newKey, err := in.apply(&r)
	if err != nil {
		return store.Relay{}, err
	}
	if newKey {
		r.StreamKey = s.relayKeys.Seal([]byte(key), relayKeyAAD(st.ID))
	}
	r.UpdatedAt = s.now()
	if err := s.store.UpdateRelay(ctx, r); errors.Is(err, store.ErrNotFound) {
		return store.Relay{}, errRelayNotFound
	} else if err != nil {
		return store.Relay{}, err
	}
	s.reloadRelays(st.PlaybackID)
	return r, nil
}

// deleteRelay deletes relay relayID of stream streamID, which p must own; a running relay
// stops.
func (s *Server) deleteRelay(ctx context.Context, p *principal, streamID, relayID int64) error {
	st, r, err := s.relayFor(ctx, p, streamID, relayID)
	if err != nil {
		return err
	}
	if err := s.store.DeleteRelay(ctx, st.ID, r.ID); errors.Is(err, store.ErrNotFound) {
		return errRelayNotFound
	} else if err != nil {
		return err
	}
	s.reloadRelays(st.PlaybackID)
	return nil
}

// RelayTargets implements relay.TargetSource: the enabled relays of the stream whose
// playback id is stream, with their keys opened. An unknown stream has none. A relay whose
// key cannot be opened (the master key changed) is left out and logged.
func (s *Server) RelayTargets(ctx context.Context, stream string) ([]relay.Target, error) {
	st, err := s.store.StreamByPlaybackID(ctx, stream)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("control: relay targets: %w", err)
	}
	list, err := s.store.ListRelaysByStream(ctx, st.ID)
	if err != nil {
		return nil, fmt.Errorf("control: relay targets: %w", err)
	}
	var out []relay.Target
	for _, r := range list {
		if !r.Enabled {
			continue
		}
		key, err := s.relayKeys.Open(r.StreamKey, relayKeyAAD(st.ID))
		if err != nil {
			s.log.Warn("relay stream key cannot be opened (was the secret key changed?); relay skipped",
				"stream_id", st.ID, "relay_id", r.ID)
			continue
		}
		out = append(out, relay.Target{ID: r.ID, Name: r.Name, URL: relayURL(r.RTMPURL, string(key)), SkipVerify: !r.TLSVerify})
	}
	return out, nil
}

// relayPathID returns the numeric {relay_id} of the route.
func relayPathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(mux.Vars(r)["relay_id"], 10, 64)
	if err != nil || id <= 0 {
		return 0, errRelayNotFound
	}
	return id, nil
}

// handleRelayPlatforms answers GET /api/relay-platforms.
func (s *Server) handleRelayPlatforms(w http.ResponseWriter, r *http.Request, p *principal) error {
	writeJSON(w, http.StatusOK, map[string]any{"platforms": relayPlatforms})
	return nil
}

// handleListRelays answers GET /api/streams/{id}/relays.
func (s *Server) handleListRelays(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	list, err := s.listRelays(r.Context(), p, id)
	if err != nil {
		return err
	}
	out := make([]relayJSON, 0, len(list))
	for _, rl := range list {
		out = append(out, s.relayView(rl))
	}
	writeJSON(w, http.StatusOK, map[string]any{"relays": out})
	return nil
}

// handleCreateRelay answers POST /api/streams/{id}/relays with the new relay.
func (s *Server) handleCreateRelay(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var in relayInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	rl, err := s.createRelay(r.Context(), p, id, in)
	if err != nil {
		return err
	}
	s.log.Info("relay created", "user_id", p.User.ID, "stream_id", rl.StreamID, "relay_id", rl.ID, "platform", rl.Platform)
	s.activity(r.Context(), p.User.ID, "relay_added", fmt.Sprintf("Added the relay %q (%s) to stream %d", rl.Name, rl.Platform, rl.StreamID))
	writeJSON(w, http.StatusOK, s.relayView(rl))
	return nil
}

// handleUpdateRelay answers PUT /api/streams/{id}/relays/{relay_id}.
func (s *Server) handleUpdateRelay(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	relayID, err := relayPathID(r)
	if err != nil {
		return err
	}
	var in relayInput
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	rl, err := s.updateRelay(r.Context(), p, id, relayID, in)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.relayView(rl))
	return nil
}

// handleDeleteRelay answers DELETE /api/streams/{id}/relays/{relay_id}.
func (s *Server) handleDeleteRelay(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	relayID, err := relayPathID(r)
	if err != nil {
		return err
	}
	if err := s.deleteRelay(r.Context(), p, id, relayID); err != nil {
		return err
	}
	s.log.Info("relay deleted", "user_id", p.User.ID, "stream_id", id, "relay_id", relayID)
	s.activity(r.Context(), p.User.ID, "relay_deleted", fmt.Sprintf("Deleted relay %d of stream %d", relayID, id))
	writeJSON(w, http.StatusOK, map[string]string{"message": "relay deleted"})
	return nil
}
