// Package ingest declares what every ingest protocol (ingest/rtmp, and later ingest/rtsp
// and ingest/whip) needs from the rest of relaycast: an Authorizer that turns the key a
// publisher presents into a bus stream id. The control plane implements it; ingest
// packages never import control.
package ingest

import (
	"context"
	"errors"
)

// Protocol names an ingest protocol.
type Protocol string

// Ingest protocols.
const (
	ProtocolRTMP  Protocol = "rtmp"
	ProtocolRTMPS Protocol = "rtmps"
	ProtocolRTSP  Protocol = "rtsp"
	ProtocolRTSPS Protocol = "rtsps"
	ProtocolWHIP  Protocol = "whip"
)

// Secure reports whether the protocol runs over TLS (WHIP is served over the HTTP(S)
// listener and counts as secure: the key travels in a request path, not a plain socket).
func (p Protocol) Secure() bool {
	return p == ProtocolRTMPS || p == ProtocolRTSPS || p == ProtocolWHIP
}

// Request is what a publisher presented.
type Request struct {
	Protocol Protocol
	// Key is the stream key or single-use token from the URL (live_..., rtmp_...).
	Key string
	// RemoteAddr is the publisher's address, for logs and audit.
	RemoteAddr string
}

// Grant is what an accepted publisher may do.
type Grant struct {
	// StreamID is the bus stream to publish to (the stream's public playback id).
	StreamID string
	// Name is a label for logs (the stream title); never a secret.
	Name string
	// Token is set when the publisher used a single-use token; Release tells the Authorizer
	// when its publishing ended so the token's reconnect grace can start.
	Token string
}

// Authorizer decides who may publish. Implementations must be safe for concurrent use.
type Authorizer interface {
	// Authorize checks the request. It returns an error wrapping ErrUnauthorized (wrong
	// key, used or expired token) or ErrForbidden (the key is right but this protocol is
	// not allowed for it) for a refusal, with a message safe to log (no secret in it).
	Authorize(ctx context.Context, req Request) (Grant, error)
	// Release is called once when a publisher admitted with g stops publishing.
	Release(g Grant)
}

var (
	// ErrUnauthorized: the key or token is not valid.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the key is valid but not allowed over this protocol.
	ErrForbidden = errors.New("forbidden")
)

// RedactKey returns a form of a stream key or token that is safe to log: its prefix and
// first characters only.
func RedactKey(key string) string {
	const keep = 9
	if len(key) <= keep {
		return "***"
	}
	return key[:keep] + "***"
}
