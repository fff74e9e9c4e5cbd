package rtmpguard

import "errors"

var (
	// ErrMalformed is returned by CheckAMF0 for a body that is not a sequence of complete
	// AMF0 values, or that go-amf0 v0.1.0 would read differently or allocate too much for;
	// by Conn.Read when a client's command or data message has such a body.
	ErrMalformed = errors.New("rtmpguard: malformed AMF0")
	// ErrChunkStream is returned by Conn.Read when a client's chunk stream breaks RTMP's
	// framing (a message of length 0, a header that changes a message in progress, a bad
	// Set Chunk Size) or a per-connection limit (chunk streams, bytes of messages being
	// assembled).
	ErrChunkStream = errors.New("rtmpguard: malformed rtmp chunk stream")
)
