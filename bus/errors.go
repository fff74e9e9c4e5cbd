package bus

import "errors"

var (
	// ErrBusy is returned by Hub.Publish when the stream already has a publisher.
	ErrBusy = errors.New("bus: stream already has a publisher")
	// ErrEnded is returned by Reader.Next when the stream ended (its grace period ran out).
	ErrEnded = errors.New("bus: stream ended")
	// ErrClosed is returned when the reader, the publisher or the hub was closed.
	ErrClosed = errors.New("bus: closed")
	// ErrNotFound is returned by Hub.Subscribe when the stream does not exist and the
	// reader did not ask to wait for a publisher.
	ErrNotFound = errors.New("bus: stream not found")
	// ErrNoTracks is returned by Hub.Publish when it is given no track.
	ErrNoTracks = errors.New("bus: no tracks")
)
