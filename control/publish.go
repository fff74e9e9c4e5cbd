package control

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/egress"
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
	if plainRTMP && !s.cfg.RTMPPlainEnabled {
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
	if !s.cfg.RTMPPlainEnabled {
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

// Resolve implements egress.Resolver: a playback id (pub_...) resolves to itself, the bus
// stream id, when a stream has it; anything else (including publish keys) is
// egress.ErrNotFound.
//
// Private streams (is_public false) are unlisted, not protected: anyone who has the
// playback id may watch, as with an unlisted video. They are only left out of
// /api/streams/public and /api/streams/open. Access control for viewers is later work;
// the Request carries the viewer's Token for it.
//
// Known ids are cached for a few seconds: HLS clients ask for a part several times a
// second.
func (s *Server) Resolve(ctx context.Context, req egress.Request) (string, error) {
	if !validPlaybackID(req.ID) {
		return "", egress.ErrNotFound
	}
	now := s.now()
	if s.resolve.known(req.ID, now) {
		return req.ID, nil
	}
	st, err := s.store.StreamByPlaybackID(ctx, req.ID)
	if errors.Is(err, store.ErrNotFound) {
		return "", egress.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("resolve: %w", err)
	}
	s.resolve.add(st.PlaybackID, now.Add(resolveCacheTTL))
	return st.PlaybackID, nil
}

// resolveCache remembers playback ids that exist, until an expiry.
type resolveCache struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

func (c *resolveCache) known(id string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.ids[id]
	return ok && now.Before(exp)
}

func (c *resolveCache) add(id string, exp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = make(map[string]time.Time)
	}
	c.ids[id] = exp
}

func (c *resolveCache) forget(id string) {
	c.mu.Lock()
	delete(c.ids, id)
	c.mu.Unlock()
}

func (c *resolveCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, exp := range c.ids {
		if !now.Before(exp) {
			delete(c.ids, id)
		}
	}
}
