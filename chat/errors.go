package chat

import (
	"errors"
	"fmt"
)

// Sentinel errors. Domain methods return them wrapped in an *Error whose message is fit
// to show a user; errors.Is matches the sentinel. Store implementations return
// ErrNotFound, ErrConflict and ErrLimit bare.
var (
	// ErrNotFound: no such channel or message, or one the user may not see.
	ErrNotFound = errors.New("chat: not found")
	// ErrForbidden: the user may not do this (not the author, not a moderator).
	ErrForbidden = errors.New("chat: forbidden")
	// ErrInvalid: a field is missing or out of its limits.
	ErrInvalid = errors.New("chat: invalid request")
	// ErrConflict: a unique value (a channel name) is taken, or the state already holds
	// (a message already pinned).
	ErrConflict = errors.New("chat: conflict")
	// ErrLimit: a per-message or per-channel limit is reached (reactions, pins).
	ErrLimit = errors.New("chat: limit reached")
	// ErrRateLimited: the user sends messages faster than the rate limit.
	ErrRateLimited = errors.New("chat: rate limited")
	// ErrTooManyConnections: the user already has the maximum number of connections.
	ErrTooManyConnections = errors.New("chat: too many connections")
	// ErrClosed: the hub is closed.
	ErrClosed = errors.New("chat: hub closed")
	// ErrMalformed: a client frame is not a JSON object of the protocol.
	ErrMalformed = errors.New("chat: malformed message")
)

// Error is a domain error: Kind is one of the sentinels above, Msg the text shown to the
// user (in a WebSocket "error" message or a REST error body).
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Kind }

// errf returns an *Error of kind with a formatted message.
func errf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// User-facing messages named by the API reference or shared by several operations.
const (
	msgRateLimited = "Slow down! You're sending messages too fast."
	msgNoChannel   = "channel not found"
	msgNoMessage   = "message not found"
	msgNotJoined   = "join the channel first"
)
