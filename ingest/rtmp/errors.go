package rtmp

import "errors"

var (
	// ErrMalformed is returned for an FLV tag, a codec configuration record or a frame that
	// cannot be parsed. The connection that sent it is closed.
	ErrMalformed = errors.New("rtmp: malformed media data")
	// ErrUnsupportedCodec is returned for a codec the server does not ingest (it takes H.264,
	// H.265 over Enhanced RTMP and AAC). The connection that sent it is closed.
	ErrUnsupportedCodec = errors.New("rtmp: unsupported codec")
	// ErrNoTracks is returned when a publisher sends media but no codec configuration
	// (sequence header) for any of it within the start timeout.
	ErrNoTracks = errors.New("rtmp: no codec configuration received")
	// ErrRefused is returned to a client whose connect, publish or play was refused; the
	// reason is in the server's log line, never on the wire.
	ErrRefused = errors.New("rtmp: refused")
	// ErrEndedByServer is returned when the server ended the publishing (the stream's key
	// was regenerated or the stream deleted); the connection is closed.
	ErrEndedByServer = errors.New("rtmp: publishing ended by the server")
)
