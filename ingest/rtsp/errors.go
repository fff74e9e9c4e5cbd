package rtsp

import "errors"

var (
	// ErrUnsupportedCodec is returned for an announced format the server does not ingest (it
	// takes H.264, MPEG-4 audio (AAC, generic or LATM) and Opus). Such a media is left out;
	// a publisher with none of them is refused.
	ErrUnsupportedCodec = errors.New("rtsp: unsupported codec")
	// ErrMalformed is returned for codec data that cannot be parsed.
	ErrMalformed = errors.New("rtsp: malformed media data")
	// ErrNoParams is returned when an H.264 publisher sends neither sprop-parameter-sets nor
	// in-band SPS/PPS before its buffer of early units runs full.
	ErrNoParams = errors.New("rtsp: no H.264 parameter sets received")
	// ErrEndedByServer is returned when the server ended the publishing (the stream's key
	// was regenerated or the stream deleted); the session is closed.
	ErrEndedByServer = errors.New("rtsp: publishing ended by the server")
)
