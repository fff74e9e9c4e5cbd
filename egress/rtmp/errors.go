package rtmp

import "errors"

var (
	// ErrClosed is returned by Play after Close, and by a Publisher after its Close.
	ErrClosed = errors.New("rtmp: closed")
	// ErrNotFound: the playback id is unknown or its stream is offline. The player got
	// NetStream.Play.StreamNotFound.
	ErrNotFound = errors.New("rtmp: stream not found")
	// ErrForbidden: the resolver refused the viewer. The player got NetStream.Play.Failed.
	ErrForbidden = errors.New("rtmp: forbidden")
	// ErrStreamEnded: the stream ended while the viewer watched it.
	ErrStreamEnded = errors.New("rtmp: stream ended")
	// ErrRejected is returned by Dial when the remote server refuses the connect or the
	// publish (wrong application or stream key); the error text has the server's status
	// code and description.
	ErrRejected = errors.New("rtmp: rejected by server")
	// ErrBadURL is returned by Dial for a URL that is not rtmp(s)://host[:port]/app/name.
	ErrBadURL = errors.New("rtmp: bad url")
	// ErrProtocol is returned by Dial and a Publisher for an answer that breaks the RTMP
	// protocol.
	ErrProtocol = errors.New("rtmp: protocol error")
)
