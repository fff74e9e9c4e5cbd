package main

import (
	"encoding/binary"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// The stamp: an H.264 SEI NAL unit (ITU-T H.264 §7.3.2.3) holding one
// user_data_unregistered message (payload type 5, §D.1.6) whose 16-byte UUID is stampUUID,
// followed by the stamp's fields, big-endian:
//
//	stream  uint32  index of the publisher (0..K-1)
//	seq     uint64  frame number of that publisher, from 0, over clip loops
//	sent    int64   wall clock when the publisher wrote the frame, Unix nanoseconds
//
// Decoders ignore unregistered user data they do not know, so the stream stays playable.

// stampUUID identifies relaybench's stamps among other user_data_unregistered messages
// (x264 writes its own, with its settings).
var stampUUID = [16]byte{'r', 'e', 'l', 'a', 'y', 'b', 'e', 'n', 'c', 'h', '/', 's', 't', 'a', 'm', 'p'}

const (
	naluTypeSEI        = 6
	seiUserDataUnreg   = 5
	stampPayloadLength = 16 + 4 + 8 + 8
)

// stamp is what a publisher writes into every video frame.
type stamp struct {
	Stream uint32
	Seq    uint64
	Sent   int64 // Unix nanoseconds
}

// sentTime returns the stamp's wall-clock time.
func (s stamp) sentTime() time.Time { return time.Unix(0, s.Sent) }

// appendStampNALU appends the SEI NAL unit carrying s to dst (no length prefix or start
// code) and returns it. Emulation prevention bytes are inserted where the RBSP needs them.
func appendStampNALU(dst []byte, s stamp) []byte {
	var rbsp [2 + stampPayloadLength + 1]byte
	rbsp[0] = seiUserDataUnreg
	rbsp[1] = stampPayloadLength
	p := rbsp[2:]
	copy(p, stampUUID[:])
	binary.BigEndian.PutUint32(p[16:], s.Stream)
	binary.BigEndian.PutUint64(p[20:], s.Seq)
	binary.BigEndian.PutUint64(p[28:], uint64(s.Sent))
	rbsp[len(rbsp)-1] = 0x80 // rbsp_trailing_bits
	dst = append(dst, naluTypeSEI)
	return appendEmulationPrevented(dst, rbsp[:])
}

// appendEmulationPrevented appends rbsp to dst with an emulation prevention byte (0x03)
// after every two zero bytes that a byte ≤ 3 follows (H.264 §7.4.1).
func appendEmulationPrevented(dst, rbsp []byte) []byte {
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			dst = append(dst, 3)
			zeros = 0
		}
		dst = append(dst, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return dst
}

// parseStamp returns the stamp held by nalu, an H.264 NAL unit without start code or
// length, if it is an SEI NAL unit with a relaybench user_data_unregistered message. It
// never panics, whatever the input.
func parseStamp(nalu []byte) (stamp, bool) {
	if len(nalu) < 2 || nalu[0]&0x1f != naluTypeSEI {
		return stamp{}, false
	}
	// A stamp's SEI NAL unit is about 40 bytes: skip big ones (x264's settings) unread.
	if len(nalu) > 256 {
		return stamp{}, false
	}
	b := h264.EmulationPreventionRemove(nalu[1:])
	for len(b) > 1 { // sei_message()s until rbsp_trailing_bits
		typ, n := seiNumber(b)
		if n == 0 {
			return stamp{}, false
		}
		b = b[n:]
		size, n := seiNumber(b)
		if n == 0 || size > len(b)-n {
			return stamp{}, false
		}
		payload := b[n : n+size]
		b = b[n+size:]
		if typ != seiUserDataUnreg || size < stampPayloadLength || [16]byte(payload[:16]) != stampUUID {
			continue
		}
		return stamp{
			Stream: binary.BigEndian.Uint32(payload[16:]),
			Seq:    binary.BigEndian.Uint64(payload[20:]),
			Sent:   int64(binary.BigEndian.Uint64(payload[28:])),
		}, true
	}
	return stamp{}, false
}

// seiNumber reads an SEI payload type or size: a run of 0xFF bytes, each adding 255, then
// a last byte. n is the bytes read, 0 when b ends first.
func seiNumber(b []byte) (v, n int) {
	for i, c := range b {
		v += int(c)
		if c != 0xff {
			return v, i + 1
		}
		if v > 1<<20 {
			return 0, 0
		}
	}
	return 0, 0
}

// stampInAVCC returns the first stamp among the NAL units of an AVCC payload (4-byte
// big-endian lengths). Only NAL units before the first slice are looked at: the stamp is
// written there.
func stampInAVCC(b []byte) (stamp, bool) {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n <= 0 || n > len(b) {
			return stamp{}, false
		}
		nalu := b[:n]
		b = b[n:]
		switch typ := nalu[0] & 0x1f; {
		case typ == naluTypeSEI:
			if s, ok := parseStamp(nalu); ok {
				return s, true
			}
		case typ >= 1 && typ <= 5:
			return stamp{}, false
		}
	}
	return stamp{}, false
}

// stampInNALUs is stampInAVCC for an access unit already split into NAL units.
func stampInNALUs(au [][]byte) (stamp, bool) {
	for _, nalu := range au {
		if len(nalu) == 0 {
			continue
		}
		switch typ := nalu[0] & 0x1f; {
		case typ == naluTypeSEI:
			if s, ok := parseStamp(nalu); ok {
				return s, true
			}
		case typ >= 1 && typ <= 5:
			return stamp{}, false
		}
	}
	return stamp{}, false
}

// hasIDR reports whether an AVCC payload holds an IDR slice.
func hasIDR(b []byte) bool {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		b = b[4:]
		if n <= 0 || n > len(b) {
			return false
		}
		if b[0]&0x1f == byte(h264.NALUTypeIDR) {
			return true
		}
		b = b[n:]
	}
	return false
}

// nalusHaveIDR reports whether an access unit holds an IDR slice.
func nalusHaveIDR(au [][]byte) bool {
	for _, n := range au {
		if len(n) > 0 && n[0]&0x1f == byte(h264.NALUTypeIDR) {
			return true
		}
	}
	return false
}
