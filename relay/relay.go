package relay

import (
	"context"
	"time"
)

// Target is one destination of a stream.
type Target struct {
	// ID identifies the relay (its database id); statuses are kept by ID.
	ID int64
	// Name is the display name, for logs.
	Name string
	// URL is the complete publish URL, rtmp(s)://host[:port]/app/STREAMKEY. It is secret:
	// never logged or returned.
	URL string
	// SkipVerify turns off TLS certificate verification for rtmps (a self-signed
	// destination such as another relaycast's default certificate).
	SkipVerify bool
}

// TargetSource gives the enabled relay targets of a stream. control satisfies it.
type TargetSource interface {
	// RelayTargets returns the enabled targets of the bus stream with this id (the
	// stream's playback id); none for an unknown stream.
	RelayTargets(ctx context.Context, stream string) ([]Target, error)
}

// State is where a relay is.
type State int

// States.
const (
	StateUnknown    State = iota
	StateIdle             // the stream is offline (or the relay disabled)
	StateConnecting       // dialing the destination
	StateLive             // pushing
	StateRetrying         // waiting to dial again after a failure
	StateFailed           // the destination rejected the stream or the URL is unusable
)

var stateNames = [...]string{"unknown", "idle", "connecting", "live", "retrying", "failed"}

// String returns the state's API name: "idle", "connecting", "live", "retrying", "failed".
func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return stateNames[0]
	}
	return stateNames[s]
}

// MarshalText implements encoding.TextMarshaler.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Status is a relay's state and counters. Counters cover the current (or last) live
// session of the stream: they restart when the stream goes live again.
type Status struct {
	// ID is the relay's id; Stream its stream's bus id.
	ID     int64
	Stream string
	State  State
	// LastError is the latest failure, with the stream key redacted; kept after recovery.
	LastError string
	// ConnectedSince is when the current connection was accepted; zero unless StateLive.
	ConnectedSince time.Time
	// BytesSent counts bytes written to the destination over every connection.
	BytesSent uint64
	// Reconnects counts connections after the first one that was accepted, and failed
	// attempts after that: how often the relay had to come back.
	Reconnects int
	// Skipped counts units the destination was too slow for (the bus skipped them).
	Skipped uint64
}
