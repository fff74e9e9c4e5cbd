package rtmp

import (
	"bytes"
	"encoding/binary"

	"github.com/yutopp/go-amf0"
	"github.com/yutopp/go-rtmp/message"
)

// ChunkSize is the outgoing RTMP chunk size of every connection this package writes to
// (announced with Set Chunk Size before anything else).
const ChunkSize = 4096

// Chunk streams used for outgoing messages (the ids nginx-rtmp uses). Every message starts
// with a type-0 chunk header — absolute timestamp, length, type and message stream id — so
// a message's bytes do not depend on what was sent before on its chunk stream: the same
// bytes are valid for every viewer, wherever it joined.
const (
	csidControl = 2
	csidCommand = 3
	csidData    = 5
	csidAudio   = 6
	csidVideo   = 7
)

// RTMP message type ids (RTMP 1.0 §5.4, §7.1).
const (
	typeSetChunkSize = 1
	typeUserControl  = 4
	typeAudio        = 8
	typeVideo        = 9
	typeDataAMF0     = 18
	typeCommandAMF0  = 20
)

// extendedTimestamp is the 24-bit timestamp field's escape value.
const extendedTimestamp = 0xffffff

// messageSize returns the number of bytes appendMessage appends for a body of n bytes.
func messageSize(n int, ts uint32) int {
	ext := 0
	if ts >= extendedTimestamp {
		ext = 4
	}
	cont := 0
	if n > ChunkSize {
		cont = (n - 1) / ChunkSize
	}
	return 12 + ext + n + cont*(1+ext)
}

// appendMessage appends one RTMP message, chunked: a type-0 chunk header, then type-3
// continuation headers every ChunkSize bytes of body. body is the concatenation of a and b
// (a tag header and a payload, without copying them together first). An extended
// timestamp is repeated after every continuation header, as RTMP 1.0 §5.3.1.3, ffmpeg and
// librtmp have it.
func appendMessage(dst []byte, csid byte, typ byte, msid uint32, ts uint32, a, b []byte) []byte {
	n := len(a) + len(b)
	dst = grow(dst, messageSize(n, ts))
	tsField := ts
	if ts >= extendedTimestamp {
		tsField = extendedTimestamp
	}
	dst = append(dst, csid&0x3f, byte(tsField>>16), byte(tsField>>8), byte(tsField),
		byte(n>>16), byte(n>>8), byte(n), typ)
	dst = binary.LittleEndian.AppendUint32(dst, msid)
	if tsField == extendedTimestamp {
		dst = binary.BigEndian.AppendUint32(dst, ts)
	}
	room := ChunkSize
	for _, part := range [2][]byte{a, b} {
		for len(part) > 0 {
			if room == 0 {
				dst = append(dst, 0xc0|csid&0x3f)
				if tsField == extendedTimestamp {
					dst = binary.BigEndian.AppendUint32(dst, ts)
				}
				room = ChunkSize
			}
			k := min(room, len(part))
			dst = append(dst, part[:k]...)
			part = part[k:]
			room -= k
		}
	}
	return dst
}

// grow makes room for n more bytes in one allocation.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}

// appendSetChunkSize appends a Set Chunk Size message announcing ChunkSize.
func appendSetChunkSize(dst []byte) []byte {
	var body [4]byte
	binary.BigEndian.PutUint32(body[:], ChunkSize)
	return appendMessage(dst, csidControl, typeSetChunkSize, 0, 0, body[:], nil)
}

// appendUserControl appends a User Control message with event typ and a 32-bit value.
func appendUserControl(dst []byte, event uint16, value uint32) []byte {
	var body [6]byte
	binary.BigEndian.PutUint16(body[:], event)
	binary.BigEndian.PutUint32(body[2:], value)
	return appendMessage(dst, csidControl, typeUserControl, 0, 0, body[:], nil)
}

// User Control event types (RTMP 1.0 §7.1.7).
const (
	eventStreamBegin  = 0
	eventStreamEOF    = 1
	eventPingRequest  = 6
	eventPingResponse = 7
)

// amf0Values encodes values one after the other in AMF0.
func amf0Values(values ...any) []byte {
	var buf bytes.Buffer
	enc := amf0.NewEncoder(&buf)
	for _, v := range values {
		// Only strings, numbers, booleans, nil and maps of them are passed here, which
		// go-amf0 always encodes.
		_ = enc.Encode(v)
	}
	return buf.Bytes()
}

// appendCommand appends an AMF0 command message.
func appendCommand(dst []byte, csid byte, msid uint32, name string, txn float64, args ...any) []byte {
	body := amf0Values(append([]any{name, txn}, args...)...)
	return appendMessage(dst, csid, typeCommandAMF0, msid, 0, body, nil)
}

// onStatus builds the info object of an onStatus command.
func statusInfo(level, code, desc string) map[string]any {
	return map[string]any{"level": level, "code": code, "description": desc}
}

// appendOnStatus appends an onStatus command on message stream msid.
func appendOnStatus(dst []byte, msid uint32, level string, code message.NetStreamOnStatusCode, desc string) []byte {
	return appendCommand(dst, csidData, msid, "onStatus", 0, nil, statusInfo(level, string(code), desc))
}
