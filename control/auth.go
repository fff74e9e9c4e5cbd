package control

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/relaycast/relaycast/control/store"
)

// principal is an authenticated caller.
type principal struct {
	User store.User
	// Scopes of the credential ("*" for login tokens).
	Scopes string
	// JTI is the login token's id (empty for API keys).
	JTI string
	// APIKeyID is the API key's id (0 for login tokens).
	APIKeyID int64
}

// jwtIssuer is the iss claim of relaycast's login tokens.
const jwtIssuer = "relaycast"

// credential returns the bearer credential of r: the Authorization header, else ?token=.
// A malformed Authorization header is an error rather than a fall back.
func credential(r *http.Request) (string, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return "", errorf(http.StatusUnauthorized, "Authorization header must be \"Bearer <token>\"")
		}
		return strings.TrimSpace(tok), nil
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		return tok, nil
	}
	return "", errorf(http.StatusUnauthorized, "Unauthorized: missing credentials")
}

// authenticate checks the credential of r.
func (s *Server) authenticate(r *http.Request) (*principal, error) {
	tok, err := credential(r)
	if err != nil {
		return nil, err
	}
	return s.verifyCredential(r.Context(), tok, &usage{ip: clientIP(r), ua: userAgent(r)})
}

// usage is where a credential was used from, recorded as its last use.
type usage struct {
	ip, ua string
}

// verifyCredential checks a login token (JWT) or an API key (portal_...): its signature or
// hash, expiry and revocation, and that its user still exists. It is the one credential
// check of relaycast: the API middleware (authenticate) and playback (Resolve) both call
// it. A refused credential is an *apiError with status 401; any other error is a database
// failure. With use non-nil it records the last use (sessions: time, IP and User-Agent;
// API keys: time); playback passes nil, as that would be a database write per HLS request.
func (s *Server) verifyCredential(ctx context.Context, tok string, use *usage) (*principal, error) {
	if strings.HasPrefix(tok, kindAPIKey+"_") {
		return s.authAPIKey(ctx, tok, use)
	}
	return s.authJWT(ctx, tok, use)
}

func (s *Server) authAPIKey(ctx context.Context, tok string, use *usage) (*principal, error) {
	if kind, ok := parseSecret(tok); !ok || kind != kindAPIKey {
		return nil, errorf(http.StatusUnauthorized, "invalid API key")
	}
	hash := hashSecret(tok)
	k, err := s.store.APIKeyByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && subtle.ConstantTimeCompare(k.Hash, hash) != 1) {
		return nil, errorf(http.StatusUnauthorized, "invalid API key")
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case k.Revoked:
		return nil, errorf(http.StatusUnauthorized, "API key revoked")
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return nil, errorf(http.StatusUnauthorized, "API key expired")
	}
	u, err := s.store.UserByID(ctx, k.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if use != nil {
		if err := s.store.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.log.Warn("api key last use", "err", err)
		}
	}
	return &principal{User: u, Scopes: k.Scopes, APIKeyID: k.ID}, nil
}

// issueToken creates a login token for u, recorded as a session.
func (s *Server) issueToken(ctx context.Context, u store.User, ip, ua string) (string, time.Time, error) {
	now := s.now()
	exp := now.Add(sessionTTL)
	jti := newID()
	claims := jwt.RegisteredClaims{
		Issuer:    jwtIssuer,
		Subject:   strconv.FormatInt(u.ID, 10),
		ID:        jti,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.jwtKey)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := s.store.CreateSession(ctx, store.Session{JTI: jti, UserID: u.ID, CreatedAt: now, ExpiresAt: exp,
		LastUsedAt: now, LastIP: ip, LastUA: ua}); err != nil {
		return "", time.Time{}, err
	}
	// The JWT's exp has second precision: report that, so clients see what is enforced.
	return signed, claims.ExpiresAt.Time.UTC(), nil
}

func (s *Server) authJWT(ctx context.Context, tok string, use *usage) (*principal, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return s.jwtKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(jwtIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.now))
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, errorf(http.StatusUnauthorized, "token expired")
	}
	if err != nil || claims.ID == "" {
		return nil, errorf(http.StatusUnauthorized, "invalid token")
	}
	sess, err := s.store.SessionByJTI(ctx, claims.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errorf(http.StatusUnauthorized, "invalid token")
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	switch {
	case sess.Revoked:
		return nil, errorf(http.StatusUnauthorized, "token revoked")
	case !now.Before(sess.ExpiresAt):
		return nil, errorf(http.StatusUnauthorized, "token expired")
	case strconv.FormatInt(sess.UserID, 10) != claims.Subject:
		return nil, errorf(http.StatusUnauthorized, "invalid token")
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnauthorized
	}
	if err != nil {
		return nil, err
	}
	if use != nil {
		if err := s.store.TouchSession(ctx, sess.JTI, use.ip, use.ua, now); err != nil {
			s.log.Warn("session last use", "err", err)
		}
	}
	return &principal{User: u, Scopes: scopeAll, JTI: sess.JTI}, nil
}

// clientIP is the remote address without its port. X-Forwarded-For is not trusted: a
// reverse proxy in front of relaycast makes every client share its address for the
// rate limits (documented limitation).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// userAgent is the User-Agent, capped for storage.
func userAgent(r *http.Request) string {
	ua := r.UserAgent()
	if len(ua) > 256 {
		ua = ua[:256]
	}
	return ua
}

// authed wraps a handler that needs a caller allowed the scope need.
func (s *Server) authed(need string, h func(http.ResponseWriter, *http.Request, *principal) error) http.Handler {
	return s.handle(func(w http.ResponseWriter, r *http.Request) error {
		p, err := s.authenticate(r)
		if err != nil {
			return err
		}
		if info := reqInfoFrom(r.Context()); info != nil {
			info.userID = p.User.ID
		}
		if s.apiLimit != nil {
			key := "u:" + strconv.FormatInt(p.User.ID, 10)
			if p.APIKeyID != 0 {
				key = "k:" + strconv.FormatInt(p.APIKeyID, 10)
			}
			if !s.limit(w, s.apiLimit, key) {
				return nil
			}
		}
		if !scopesAllow(p.Scopes, need) {
			return errorf(http.StatusForbidden, "API key lacks the %q scope", need)
		}
		return h(w, r, p)
	})
}

// admin wraps a handler for administrators (full-scope credentials only).
func (s *Server) admin(h func(http.ResponseWriter, *http.Request, *principal) error) http.Handler {
	return s.authed(scopeAll, func(w http.ResponseWriter, r *http.Request, p *principal) error {
		if !p.User.IsAdmin {
			return errAdminOnly
		}
		return h(w, r, p)
	})
}
