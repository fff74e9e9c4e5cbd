package whipclient

import (
	"errors"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

var (
	// ErrNoTrack is returned by a write to a kind the Publisher was created without
	// (CodecNone).
	ErrNoTrack = errors.New("whipclient: no track of this kind")
	// ErrCodec is returned by New for a codec that is not of the option's kind.
	ErrCodec = errors.New("whipclient: codec not valid for this kind")
	// ErrClosed is returned by Stream when the peer connection failed or was closed.
	ErrClosed = errors.New("whipclient: peer connection closed")
)

// StatusError is the endpoint's refusal of the POST (or of the DELETE): 400 bad offer,
// 401 unknown key, 409 the stream already has a publisher, ... Its Message is the
// "error" of relaycast's {"error","status"} body.
type StatusError = signal.StatusError
