package control

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/relaycast/relaycast/control/store"
)

// Signed playback tokens (ptk_...).
//
// A playback token lets whoever holds it watch one stream, over every protocol, until it
// expires. The owner (or an admin) issues it with POST /api/streams/{id}/playback-token
// and hands it to viewers who have no account. It is used in one of two ways:
//
//   - in place of the playback id in the URL: /api/stream/ptk_.../hls/index.m3u8,
//     .../ptk_.../webrtc/whep, rtmp://host/live/ptk_..., rtsp://host:8554/live/ptk_....
//     This is the form the API returns, because HLS players resolve the relative
//     playlist, segment and part URIs against the playlist's URL: a token in the path is
//     carried into every sub-request, a ?token= query would be lost after the first.
//   - as the viewer's credential (Authorization: Bearer or ?token=) next to the pub_ id.
//
// The token is stateless: nothing is stored per token. It is "ptk_" followed by the
// base64url encoding (no padding, canonical bits only) of 61 bytes:
//
//	version (1, = 1) | playback id (12 bytes: the hex digits of pub_...) |
//	expiry (8, Unix seconds, big-endian) | epoch (8, big-endian) | HMAC-SHA256 (32)
//
// The HMAC covers the first 29 bytes, under a key derived from the master key with its
// own purpose ("playback-token"), so a token is forged only with the master key. It is
// verified in constant time, and before any database lookup, so garbage costs nothing.
// The epoch is the stream's playback_epoch when the token was issued: POST
// /api/streams/{id}/playback-token/revoke increments it and so voids every token issued
// before. Regenerating the publish key does not touch playback tokens (the playback id
// stays); deleting the stream voids them (its playback id no longer exists).
const (
	ptkPrefix     = "ptk_"
	ptkVersion    = 1
	ptkSignedLen  = 1 + playbackIDBytes + 8 + 8
	ptkRawLen     = ptkSignedLen + sha256.Size
	ptkPurpose    = "playback-token"
	ptkDefaultTTL = time.Hour
	ptkMinTTL     = time.Minute
	ptkMaxTTL     = 24 * time.Hour
)

// ptkLen is the length of every playback token.
var ptkLen = len(ptkPrefix) + base64.RawURLEncoding.EncodedLen(ptkRawLen)

// ptkEncoding rejects non-canonical encodings, so that one token has one spelling.
var ptkEncoding = base64.RawURLEncoding.Strict()

// Reasons a playback token is refused (wrapped in egress.ErrForbidden by Resolve).
var (
	errPtkMalformed = errors.New("malformed playback token")
	errPtkForged    = errors.New("playback token signature does not verify")
)

// playbackToken is what a verified token says.
type playbackToken struct {
	// PlaybackID is the stream's pub_ id.
	PlaybackID string
	// Expires is the end of validity (second precision).
	Expires time.Time
	// Epoch is the stream's playback epoch at issue.
	Epoch int64
}

// mintPlaybackToken signs t under key (deriveKey(master, ptkPurpose)). t.PlaybackID
// must be a valid playback id.
func mintPlaybackToken(key []byte, t playbackToken) string {
	raw := make([]byte, ptkSignedLen, ptkRawLen)
	raw[0] = ptkVersion
	if _, err := hex.Decode(raw[1:1+playbackIDBytes], []byte(strings.TrimPrefix(t.PlaybackID, "pub_"))); err != nil {
		panic("control: minting a playback token for an invalid playback id")
	}
	binary.BigEndian.PutUint64(raw[1+playbackIDBytes:], uint64(t.Expires.Unix()))
	binary.BigEndian.PutUint64(raw[1+playbackIDBytes+8:], uint64(t.Epoch))
	raw = append(raw, ptkMAC(key, raw)...)
	return ptkPrefix + ptkEncoding.EncodeToString(raw)
}

// openPlaybackToken parses s and verifies its signature; it does not check the expiry or
// the epoch (the caller knows the time and the stream).
func openPlaybackToken(key []byte, s string) (playbackToken, error) {
	if len(s) != ptkLen || !strings.HasPrefix(s, ptkPrefix) {
		return playbackToken{}, errPtkMalformed
	}
	raw, err := ptkEncoding.DecodeString(s[len(ptkPrefix):])
	if err != nil || len(raw) != ptkRawLen || raw[0] != ptkVersion {
		return playbackToken{}, errPtkMalformed
	}
	if !hmac.Equal(ptkMAC(key, raw[:ptkSignedLen]), raw[ptkSignedLen:]) {
		return playbackToken{}, errPtkForged
	}
	return playbackToken{
		PlaybackID: "pub_" + hex.EncodeToString(raw[1:1+playbackIDBytes]),
		Expires:    time.Unix(int64(binary.BigEndian.Uint64(raw[1+playbackIDBytes:])), 0).UTC(),
		Epoch:      int64(binary.BigEndian.Uint64(raw[1+playbackIDBytes+8:])),
	}, nil
}

// ptkMAC is the HMAC-SHA256 of a token's signed bytes.
func ptkMAC(key, signed []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(signed)
	return m.Sum(nil)
}

// playbackTokenRequest is the body of POST /api/streams/{id}/playback-token (optional).
type playbackTokenRequest struct {
	// ExpiresIn is the validity in seconds: 60-86400, default 3600.
	ExpiresIn *int `json:"expires_in"`
}

// playbackTokenJSON is the answer to POST /api/streams/{id}/playback-token. The URLs
// carry the token in place of the playback id; rtmp, rtmps, rtsp and rtsps are present
// when that listener is configured.
type playbackTokenJSON struct {
	Token        string            `json:"token"`
	ExpiresAt    string            `json:"expires_at"`
	ExpiresIn    int               `json:"expires_in"`
	PlaybackURLs tokenPlaybackURLs `json:"playback_urls"`
}

type tokenPlaybackURLs struct {
	HLS    string `json:"hls"`
	WebRTC string `json:"webrtc"`
	RTMP   string `json:"rtmp,omitempty"`
	RTMPS  string `json:"rtmps,omitempty"`
	RTSP   string `json:"rtsp,omitempty"`
	RTSPS  string `json:"rtsps,omitempty"`
}

// issuePlaybackToken makes a playback token for stream id, which p must own or p must be
// an admin. It works for public streams too (it then adds nothing but an expiry).
func (s *Server) issuePlaybackToken(ctx context.Context, p *principal, id int64, req playbackTokenRequest) (playbackTokenJSON, error) {
	ttl := ptkDefaultTTL
	if n := req.ExpiresIn; n != nil {
		if *n < int(ptkMinTTL.Seconds()) || *n > int(ptkMaxTTL.Seconds()) {
			return playbackTokenJSON{}, errorf(http.StatusBadRequest, "expires_in must be %d-%d seconds",
				int(ptkMinTTL.Seconds()), int(ptkMaxTTL.Seconds()))
		}
		ttl = time.Duration(*n) * time.Second
	}
	st, err := s.streamFor(ctx, p, id, false)
	if err != nil {
		return playbackTokenJSON{}, err
	}
	exp := time.Unix(s.now().Add(ttl).Unix(), 0).UTC()
	tok := mintPlaybackToken(s.ptkKey, playbackToken{PlaybackID: st.PlaybackID, Expires: exp, Epoch: st.PlaybackEpoch})
	base := s.cfg.PublicURL + "/api/stream/" + tok
	out := playbackTokenJSON{
		Token:        tok,
		ExpiresAt:    apiTime(exp),
		ExpiresIn:    int(ttl.Seconds()),
		PlaybackURLs: tokenPlaybackURLs{HLS: base + "/hls/index.m3u8", WebRTC: base + "/webrtc/whep"},
	}
	join := func(b string) string {
		if b == "" {
			return ""
		}
		return strings.TrimRight(b, "/") + "/" + tok
	}
	out.PlaybackURLs.RTMP, out.PlaybackURLs.RTMPS = join(s.cfg.RTMPURL), join(s.cfg.RTMPSURL)
	out.PlaybackURLs.RTSP, out.PlaybackURLs.RTSPS = join(s.cfg.RTSPURL), join(s.cfg.RTSPSURL)
	return out, nil
}

// revokePlaybackTokens voids every playback token of stream id issued so far (owner or
// admin). It takes effect at once: the stream's cached access entry is dropped.
func (s *Server) revokePlaybackTokens(ctx context.Context, p *principal, id int64) error {
	st, err := s.streamFor(ctx, p, id, false)
	if err != nil {
		return err
	}
	if _, err := s.store.BumpPlaybackEpoch(ctx, st.ID); errors.Is(err, store.ErrNotFound) {
		return errStreamNotFound
	} else if err != nil {
		return err
	}
	s.resolve.forget(st.PlaybackID)
	return nil
}

// handlePlaybackToken answers POST /api/streams/{id}/playback-token {expires_in}.
func (s *Server) handlePlaybackToken(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var req playbackTokenRequest
	if err := decodeOptionalJSON(w, r, &req); err != nil {
		return err
	}
	out, err := s.issuePlaybackToken(r.Context(), p, id, req)
	if err != nil {
		return err
	}
	s.log.Info("playback token issued", "user_id", p.User.ID, "stream_id", id, "expires_at", out.ExpiresAt)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleRevokePlaybackTokens answers POST /api/streams/{id}/playback-token/revoke.
func (s *Server) handleRevokePlaybackTokens(w http.ResponseWriter, r *http.Request, p *principal) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	var empty struct{}
	if err := decodeOptionalJSON(w, r, &empty); err != nil {
		return err
	}
	if err := s.revokePlaybackTokens(r.Context(), p, id); err != nil {
		return err
	}
	s.log.Info("playback tokens revoked", "user_id", p.User.ID, "stream_id", id)
	writeJSON(w, http.StatusOK, map[string]string{"message": "playback tokens revoked"})
	return nil
}
