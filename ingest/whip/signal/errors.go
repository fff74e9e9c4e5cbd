package signal

import "errors"

var (
	// ErrBadOffer marks negotiation errors caused by the offer: [Server.Start] answers
	// them with 400.
	ErrBadOffer = errors.New("bad offer")
	// ErrClosed is returned by [Server.Add] once the Server is closing.
	ErrClosed = errors.New("server is shutting down")

	// errTrickleRestart: the fragment asks for an ICE restart, which sessions do not
	// support.
	errTrickleRestart = errors.New("ice restart not supported")
)
