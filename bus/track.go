package bus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"
)

// Codec identifies the coding of a track's units.
type Codec int

// Codecs carried by the bus. The zero value is CodecUnknown.
const (
	CodecUnknown Codec = iota
	CodecH264
	CodecH265
	CodecVP8
	CodecVP9
	CodecAV1
	CodecAAC
	CodecOpus
)

var codecNames = [...]string{"unknown", "h264", "h265", "vp8", "vp9", "av1", "aac", "opus"}

// String returns the codec's lower-case name, as ffprobe spells it.
func (c Codec) String() string {
	if c < 0 || int(c) >= len(codecNames) {
		return "unknown"
	}
	return codecNames[c]
}

// IsVideo reports whether the codec is a video codec.
func (c Codec) IsVideo() bool {
	switch c {
	case CodecH264, CodecH265, CodecVP8, CodecVP9, CodecAV1:
		return true
	}
	return false
}

// IsAudio reports whether the codec is an audio codec.
func (c Codec) IsAudio() bool { return c == CodecAAC || c == CodecOpus }

// Track describes one elementary stream of a publisher. A Track is immutable once given to
// the bus: new codec parameters come as a new *Track (Publisher.SetTrack), and a unit whose
// Track pointer differs from the previous one tells a muxer that the parameters changed.
type Track struct {
	// Index is the track's position in the publisher's track list. It stays the same when
	// SetTrack replaces the track's parameters.
	Index int
	// Codec is the coding of the track's units.
	Codec Codec
	// ClockRate is the codec's native clock (90000 for video, the sample rate for audio).
	ClockRate int
	// Config is the codec configuration record, in the form MP4, FLV and Matroska carry it:
	// AVCDecoderConfigurationRecord (H.264), HEVCDecoderConfigurationRecord (H.265),
	// AudioSpecificConfig (AAC), OpusHead (Opus, may be empty).
	Config []byte
	// BFrames reports that the video has B-frames (PTS differs from DTS). WebRTC cannot
	// carry such video as is.
	BFrames bool
	// Width and Height of the video, when known.
	Width, Height int
	// SampleRate and Channels of the audio, when known.
	SampleRate, Channels int
}

// SameParams reports whether t and o describe the same coding, so that a muxer reading
// units of o can continue where it read units of t.
func (t *Track) SameParams(o *Track) bool {
	if t == o {
		return true
	}
	if t == nil || o == nil {
		return false
	}
	return t.Codec == o.Codec && t.ClockRate == o.ClockRate && bytes.Equal(t.Config, o.Config) &&
		t.BFrames == o.BFrames
}

// Unit is one access unit: a video frame or an audio frame. Units are immutable once
// written and shared by pointer between all readers; a reader must not modify one.
type Unit struct {
	// Track the unit belongs to.
	Track *Track
	// PTS and DTS are the presentation and decoding times on the stream's timeline. They are
	// the publisher's own timestamps (shifted on a reconnect so that they continue).
	PTS, DTS time.Duration
	// Key marks a video keyframe (IDR) or, for audio, every unit.
	Key bool
	// Payload is the coded data. H.264/H.265: the NAL units of the access unit, each behind a
	// 4-byte big-endian length (AVCC form). AAC: one raw access unit. Opus: one packet.
	// VP8/VP9/AV1: one frame / temporal unit.
	Payload []byte
	// Arrival is when the unit reached the server.
	Arrival time.Time
}

// NextNALU splits the first NAL unit off an AVCC payload (4-byte lengths). ok is false at
// the end of b or when b is malformed.
func NextNALU(b []byte) (nalu, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) || n == 0 {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// SplitNALUs returns the NAL units of an AVCC payload (not for the per-reader hot path: it
// allocates the slice).
func SplitNALUs(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		nalu, rest, ok := NextNALU(b)
		if !ok {
			return nil, ErrMalformed
		}
		out = append(out, nalu)
		b = rest
	}
	return out, nil
}

// JoinNALUs builds an AVCC payload from NAL units.
func JoinNALUs(nalus [][]byte) []byte {
	n := 0
	for _, u := range nalus {
		n += 4 + len(u)
	}
	out := make([]byte, 0, n)
	for _, u := range nalus {
		out = binary.BigEndian.AppendUint32(out, uint32(len(u)))
		out = append(out, u...)
	}
	return out
}

// ErrMalformed is returned for a codec payload or configuration record that cannot be parsed.
var ErrMalformed = errors.New("bus: malformed codec data")

// ParseAVCConfig returns the SPS and PPS of an AVCDecoderConfigurationRecord
// (ISO/IEC 14496-15 §5.3.3.1).
func ParseAVCConfig(b []byte) (sps, pps [][]byte, err error) {
	if len(b) < 7 || b[0] != 1 {
		return nil, nil, ErrMalformed
	}
	p := 5
	nsps := int(b[p] & 0x1f)
	p++
	for i := 0; i < nsps; i++ {
		if p+2 > len(b) {
			return nil, nil, ErrMalformed
		}
		l := int(binary.BigEndian.Uint16(b[p:]))
		p += 2
		if l == 0 || p+l > len(b) {
			return nil, nil, ErrMalformed
		}
		sps = append(sps, b[p:p+l])
		p += l
	}
	if p >= len(b) {
		return nil, nil, ErrMalformed
	}
	npps := int(b[p])
	p++
	for i := 0; i < npps; i++ {
		if p+2 > len(b) {
			return nil, nil, ErrMalformed
		}
		l := int(binary.BigEndian.Uint16(b[p:]))
		p += 2
		if l == 0 || p+l > len(b) {
			return nil, nil, ErrMalformed
		}
		pps = append(pps, b[p:p+l])
		p += l
	}
	if len(sps) == 0 || len(pps) == 0 {
		return nil, nil, ErrMalformed
	}
	return sps, pps, nil
}

// ParseHEVCConfig returns the VPS, SPS and PPS NAL units of an
// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1). The record must hold an SPS
// and a PPS; the VPS may be missing (callers that need one check).
func ParseHEVCConfig(b []byte) (vps, sps, pps [][]byte, err error) {
	// 22 bytes of fixed fields, then numOfArrays.
	if len(b) < 23 || b[0] != 1 {
		return nil, nil, nil, ErrMalformed
	}
	narrays := int(b[22])
	p := 23
	for i := 0; i < narrays; i++ {
		if p+3 > len(b) {
			return nil, nil, nil, ErrMalformed
		}
		typ := b[p] & 0x3f
		n := int(binary.BigEndian.Uint16(b[p+1:]))
		p += 3
		for j := 0; j < n; j++ {
			if p+2 > len(b) {
				return nil, nil, nil, ErrMalformed
			}
			l := int(binary.BigEndian.Uint16(b[p:]))
			p += 2
			if l == 0 || p+l > len(b) {
				return nil, nil, nil, ErrMalformed
			}
			switch typ {
			case 32:
				vps = append(vps, b[p:p+l])
			case 33:
				sps = append(sps, b[p:p+l])
			case 34:
				pps = append(pps, b[p:p+l])
			}
			p += l
		}
	}
	if len(sps) == 0 || len(pps) == 0 {
		return nil, nil, nil, ErrMalformed
	}
	return vps, sps, pps, nil
}

// AVCConfig builds an AVCDecoderConfigurationRecord from one SPS and one PPS.
func AVCConfig(sps, pps []byte) ([]byte, error) {
	if len(sps) < 4 || len(pps) == 0 || len(sps) > 0xffff || len(pps) > 0xffff {
		return nil, ErrMalformed
	}
	out := []byte{1, sps[1], sps[2], sps[3], 0xff, 0xe1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(sps)))
	out = append(out, sps...)
	out = append(out, 1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(pps)))
	out = append(out, pps...)
	return out, nil
}
