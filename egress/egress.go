// Package egress declares what every playback protocol (egress/hls, and later egress/whep,
// egress/rtmp, egress/rtsp) needs from the rest of relaycast: a Resolver that turns the
// playback id in a viewer's URL into a bus stream id and checks access. The control plane
// implements it; egress packages never import control.
package egress

import (
	"context"
	"errors"
)

// Request is what a viewer presented.
type Request struct {
	// Protocol is "hls", "whep", "rtmp" or "rtsp".
	Protocol string
	// ID is the playback id from the URL (pub_...).
	ID string
	// Token is the viewer's credential, if any (Bearer or ?token=).
	Token string
	// RemoteAddr is the viewer's address.
	RemoteAddr string
}

// Resolver maps playback ids to bus streams. Implementations must be safe for concurrent use.
type Resolver interface {
	// Resolve returns the bus stream id for req, or an error wrapping ErrNotFound or
	// ErrForbidden.
	Resolve(ctx context.Context, req Request) (streamID string, err error)
}

var (
	// ErrNotFound: no stream has this playback id.
	ErrNotFound = errors.New("stream not found")
	// ErrForbidden: the viewer may not watch this stream.
	ErrForbidden = errors.New("forbidden")
)
