package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/egress"
)

// Resolve implements egress.Resolver for every playback protocol (HLS, WHEP, RTMP, RTSP):
// it maps the id in the viewer's URL to the bus stream id (the stream's playback id) and
// decides whether the viewer may watch.
//
// req.ID is either a playback id (pub_...) or a signed playback token (ptk_..., see
// playbacktoken.go) in its place:
//
//   - pub_ of a public stream: plays, whatever req.Token holds (a stale or foreign
//     credential never breaks public playback).
//   - pub_ of a private stream (is_public false): req.Token must be the owner's credential
//     or an admin's — a login token (JWT) or an API key with streams:read (or wider),
//     checked by verifyCredential exactly as the API checks it (signature or hash,
//     expiry, revocation, user still exists) — or a valid playback token of this stream.
//     No token, or any other credential: egress.ErrForbidden.
//   - ptk_: the token alone decides, for public and private streams alike. A malformed
//     or forged token, an expired one, or one issued before the last revoke:
//     egress.ErrForbidden. A genuine token of a deleted stream: egress.ErrNotFound.
//
// Anything else (publish keys included) and unknown playback ids are egress.ErrNotFound.
// A refused credential wraps egress.ErrForbidden with the reason; no error contains the
// token. Any other error is a database failure.
//
// The check runs on every call: HLS calls Resolve for every playlist, segment and part,
// so an HLS viewer loses access at the next request; WHEP, RTMP and RTSP call it when a
// viewer connects, and a connected viewer is not cut when its token later expires.
// Playback does not update a credential's last_used_at (a database write per HLS
// request). Credentials in ?token= travel in clear over plain RTMP and RTSP: prefer a
// short-lived playback token there.
//
// What is cached (a few seconds, resolveCacheTTL) is the stream's access facts — owner,
// visibility, playback epoch — never a yes/no, so that the decision is made for each
// request. Changing the visibility (PUT), revoking playback tokens and deleting the
// stream or its owner drop the entry at once.
func (s *Server) Resolve(ctx context.Context, req egress.Request) (string, error) {
	now := s.now()
	if strings.HasPrefix(req.ID, ptkPrefix) {
		tok, err := s.openToken(req.ID, now)
		if err != nil {
			return "", err
		}
		a, err := s.streamAccess(ctx, tok.PlaybackID, now)
		if err != nil {
			return "", err
		}
		if err := tokenMatches(tok, a); err != nil {
			return "", err
		}
		return a.playbackID, nil
	}
	if !validPlaybackID(req.ID) {
		return "", egress.ErrNotFound
	}
	a, err := s.streamAccess(ctx, req.ID, now)
	if err != nil {
		return "", err
	}
	if a.public {
		return a.playbackID, nil
	}
	if err := s.mayWatchPrivate(ctx, a, req.Token, now); err != nil {
		return "", err
	}
	return a.playbackID, nil
}

// forbidden wraps egress.ErrForbidden with a reason (never the token).
func forbidden(reason string) error {
	return fmt.Errorf("%s: %w", reason, egress.ErrForbidden)
}

// openToken verifies a playback token's signature and expiry.
func (s *Server) openToken(raw string, now time.Time) (playbackToken, error) {
	tok, err := openPlaybackToken(s.ptkKey, raw)
	if err != nil {
		return playbackToken{}, forbidden(err.Error())
	}
	if !now.Before(tok.Expires) {
		return playbackToken{}, forbidden("playback token expired")
	}
	return tok, nil
}

// tokenMatches checks a verified token against the stream it is presented for.
func tokenMatches(tok playbackToken, a streamAccess) error {
	switch {
	case tok.PlaybackID != a.playbackID:
		return forbidden("playback token of another stream")
	case tok.Epoch != a.epoch:
		return forbidden("playback token revoked")
	}
	return nil
}

// mayWatchPrivate decides whether token lets its holder watch private stream a.
func (s *Server) mayWatchPrivate(ctx context.Context, a streamAccess, token string, now time.Time) error {
	if token == "" {
		return forbidden("private stream: a token is required")
	}
	if strings.HasPrefix(token, ptkPrefix) {
		tok, err := s.openToken(token, now)
		if err != nil {
			return err
		}
		return tokenMatches(tok, a)
	}
	p, err := s.verifyCredential(ctx, token, nil)
	var ae *apiError
	if errors.As(err, &ae) {
		return forbidden("private stream: " + ae.Msg)
	}
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if !scopesAllow(p.Scopes, scopeStreamsRead) {
		return forbidden("private stream: API key lacks the streams:read scope")
	}
	if p.User.ID != a.ownerID && !p.User.IsAdmin {
		return forbidden("private stream: not the owner")
	}
	return nil
}

// streamAccess is what Resolve needs to know about a stream, and what it caches.
type streamAccess struct {
	playbackID string
	ownerID    int64
	public     bool
	epoch      int64
}

// streamAccess returns the access facts of the stream with playbackID, from the cache or
// the database; egress.ErrNotFound when there is no such stream.
func (s *Server) streamAccess(ctx context.Context, playbackID string, now time.Time) (streamAccess, error) {
	if a, ok := s.resolve.get(playbackID, now); ok {
		return a, nil
	}
	gen := s.resolve.generation()
	st, err := s.store.StreamByPlaybackID(ctx, playbackID)
	if errors.Is(err, store.ErrNotFound) {
		return streamAccess{}, egress.ErrNotFound
	}
	if err != nil {
		return streamAccess{}, fmt.Errorf("resolve: %w", err)
	}
	a := streamAccess{playbackID: st.PlaybackID, ownerID: st.UserID, public: st.IsPublic, epoch: st.PlaybackEpoch}
	s.resolve.put(a, now.Add(resolveCacheTTL), gen)
	return a, nil
}

// resolveCache keeps the access facts of recently resolved streams until an expiry.
type resolveCache struct {
	mu sync.Mutex
	m  map[string]cachedAccess
	// gen counts invalidations. An entry read from the database before an invalidation
	// is not stored after it (put with an older gen): otherwise a Resolve racing a PUT
	// could cache the visibility from before the change.
	gen uint64
}

type cachedAccess struct {
	a   streamAccess
	exp time.Time
}

func (c *resolveCache) get(id string, now time.Time) (streamAccess, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[id]
	if !ok || !now.Before(e.exp) {
		return streamAccess{}, false
	}
	return e.a, true
}

func (c *resolveCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores a unless an invalidation happened since gen was read.
func (c *resolveCache) put(a streamAccess, exp time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if c.m == nil {
		c.m = make(map[string]cachedAccess)
	}
	c.m[a.playbackID] = cachedAccess{a: a, exp: exp}
}

// forget drops the entry of one stream.
func (c *resolveCache) forget(id string) {
	c.mu.Lock()
	c.gen++
	delete(c.m, id)
	c.mu.Unlock()
}

// clear drops every entry (a user and all their streams were deleted).
func (c *resolveCache) clear() {
	c.mu.Lock()
	c.gen++
	clear(c.m)
	c.mu.Unlock()
}

func (c *resolveCache) prune(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.m {
		if !now.Before(e.exp) {
			delete(c.m, id)
		}
	}
}
