package control

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/ingest"
)

// Authorize implements ingest.Authorizer.
//
//   - A permanent key (live_...) is accepted over every protocol, except over cleartext
//     ones (plain RTMP, plain RTSP) when Config.RTMPPlainKeys is false, and over plain RTMP
//     when Config.RTMPPlainEnabled is false (ErrForbidden).
//   - A single-use token (rtmp_...) needs Config.RTMPPlainEnabled and the stream's
//     rtmp_enabled (ErrForbidden otherwise). It is accepted over any protocol: it exists
//     for plain RTMP, and it is no weaker over TLS. Its first use must come within 15 min
//     of its creation; after that it only works again for a reconnect, within 30 s after
//     the previous publisher with it was released (Release). Of two concurrent uses only
//     one wins (one atomic UPDATE).
//
// The grant's StreamID is the stream's playback id; its Token (for rtmp_ tokens) is the
// token's SHA-256 in hex, a handle for Release that is safe to log. Error messages never
// contain the key.
func (s *Server) Authorize(ctx context.Context, req ingest.Request) (ingest.Grant, error) {
	kind, ok := parseSecret(req.Key)
	if !ok {
		return ingest.Grant{}, fmt.Errorf("malformed stream key: %w", ingest.ErrUnauthorized)
	}
	plainRTMP := req.Protocol == ingest.ProtocolRTMP
	if plainRTMP && !s.settings().RTMPPlainEnabled {
		return ingest.Grant{}, fmt.Errorf("plain RTMP is disabled on this server; use RTMPS: %w", ingest.ErrForbidden)
	}
	switch kind {
	case kindStreamKey:
		st, err := s.store.StreamByKeyHash(ctx, hashSecret(req.Key))
		if errors.Is(err, store.ErrNotFound) {
			return ingest.Grant{}, fmt.Errorf("unknown stream key: %w", ingest.ErrUnauthorized)
		}
		if err != nil {
			return ingest.Grant{}, fmt.Errorf("authorize: %w", err)
		}
		if !req.Protocol.Secure() && !s.cfg.RTMPPlainKeys {
			return ingest.Grant{}, fmt.Errorf("the permanent stream key is not accepted over %s; use RTMPS or a single-use rtmp_ token: %w",
				req.Protocol, ingest.ErrForbidden)
		}
		return ingest.Grant{StreamID: st.PlaybackID, Name: st.Title}, nil
	case kindRTMPToken:
		return s.authorizeToken(ctx, req)
	default:
		return ingest.Grant{}, fmt.Errorf("not a publish key: %w", ingest.ErrUnauthorized)
	}
}

func (s *Server) authorizeToken(ctx context.Context, req ingest.Request) (ingest.Grant, error) {
	hash := hashSecret(req.Key)
	tok, err := s.store.RTMPTokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return ingest.Grant{}, fmt.Errorf("unknown rtmp token: %w", ingest.ErrUnauthorized)
	}
	if err != nil {
		return ingest.Grant{}, fmt.Errorf("authorize: %w", err)
	}
	st, err := s.store.StreamByID(ctx, tok.StreamID)
	if err != nil {
		return ingest.Grant{}, fmt.Errorf("rtmp token of a deleted stream: %w", ingest.ErrUnauthorized)
	}
	if !s.settings().RTMPPlainEnabled {
		return ingest.Grant{}, fmt.Errorf("plain RTMP (and its tokens) is disabled on this server: %w", ingest.ErrForbidden)
	}
	if !st.RTMPEnabled {
		return ingest.Grant{}, fmt.Errorf("RTMP is not enabled for stream %d: %w", st.ID, ingest.ErrForbidden)
	}
	won, err := s.store.ClaimRTMPToken(ctx, hash, s.now(), rtmpTokenGrace)
	if err != nil {
		return ingest.Grant{}, fmt.Errorf("authorize: %w", err)
	}
	if !won {
		return ingest.Grant{}, fmt.Errorf("rtmp token already used or expired: %w", ingest.ErrUnauthorized)
	}
	return ingest.Grant{StreamID: st.PlaybackID, Name: st.Title, Token: hex.EncodeToString(hash)}, nil
}

// Release implements ingest.Authorizer: for a token grant it records when the publisher
// stopped, which starts the token's 30 s reconnect grace.
func (s *Server) Release(g ingest.Grant) {
	if g.Token == "" {
		return
	}
	hash, err := hex.DecodeString(g.Token)
	if err != nil {
		return
	}
	ctx, cancel := dbCtx()
	defer cancel()
	if err := s.store.ReleaseRTMPToken(ctx, hash, s.now()); err != nil {
		s.log.Warn("release rtmp token", "stream", g.StreamID, "err", err)
	}
}
