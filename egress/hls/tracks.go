package hls

import (
	"fmt"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/relaycast/relaycast/bus"
)

// trackWriter feeds the units of one bus track to a gohlslib muxer.
type trackWriter struct {
	bus   *bus.Track
	hls   *gohlslib.Track
	codec bus.Codec
	// params are the parameter sets (H.264: SPS, PPS; H.265: VPS, SPS, PPS) put in front of
	// every keyframe that does not carry them in-band: RTMP sends them only once, in the
	// sequence header, and a segment that starts without them cannot be decoded.
	params [][]byte
}

// newTrackWriter maps a bus track to a gohlslib track. It returns an error for a codec that
// the variant cannot carry or a configuration record it cannot parse.
func newTrackWriter(t *bus.Track, variant gohlslib.MuxerVariant) (*trackWriter, error) {
	tw := &trackWriter{bus: t, codec: t.Codec}
	mpegts := variant == gohlslib.MuxerVariantMPEGTS
	switch t.Codec {
	case bus.CodecH264:
		c := &codecs.H264{}
		// A missing or broken record is tolerated: the muxer picks SPS/PPS up in-band.
		if sps, pps, err := bus.ParseAVCConfig(t.Config); err == nil {
			c.SPS, c.PPS = sps[0], pps[0]
			tw.params = [][]byte{sps[0], pps[0]}
		}
		tw.hls = &gohlslib.Track{Codec: c, ClockRate: 90000}
	case bus.CodecH265:
		if mpegts {
			return nil, fmt.Errorf("h265 needs an fMP4 variant")
		}
		c := &codecs.H265{}
		if vps, sps, pps, err := bus.ParseHEVCConfig(t.Config); err == nil && len(vps) > 0 {
			c.VPS, c.SPS, c.PPS = vps[0], sps[0], pps[0]
			tw.params = [][]byte{vps[0], sps[0], pps[0]}
		}
		tw.hls = &gohlslib.Track{Codec: c, ClockRate: 90000}
	case bus.CodecAAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config); err != nil {
			return nil, fmt.Errorf("aac config: %w", err)
		}
		tw.hls = &gohlslib.Track{Codec: &codecs.MPEG4Audio{Config: asc}, ClockRate: asc.SampleRate}
	case bus.CodecOpus:
		if mpegts {
			return nil, fmt.Errorf("opus needs an fMP4 variant")
		}
		tw.hls = &gohlslib.Track{Codec: &codecs.Opus{ChannelCount: opusChannels(t)}, ClockRate: 48000}
	case bus.CodecVP9:
		if mpegts {
			return nil, fmt.Errorf("vp9 needs an fMP4 variant")
		}
		// WHIP tracks carry no configuration record: these are placeholders (profile 0,
		// 8 bits, 4:2:0) that the muxer replaces with the values of the first keyframe's
		// uncompressed header before it writes the init segment.
		tw.hls = &gohlslib.Track{Codec: &codecs.VP9{
			Width: t.Width, Height: t.Height, Profile: 0, BitDepth: 8, ChromaSubsampling: 1,
		}, ClockRate: 90000}
	case bus.CodecAV1:
		if mpegts {
			return nil, fmt.Errorf("av1 needs an fMP4 variant")
		}
		// The muxer takes the sequence header OBU from the first temporal unit that carries
		// one (every keyframe does) before it writes the init segment.
		tw.hls = &gohlslib.Track{Codec: &codecs.AV1{}, ClockRate: 90000}
	default:
		return nil, fmt.Errorf("codec %s is not supported by HLS egress", t.Codec)
	}
	return tw, nil
}

// opusChannels returns the channel count of an Opus track: from the track, else from its
// OpusHead (RFC 7845 §5.1, byte 9), else stereo.
func opusChannels(t *bus.Track) int {
	if t.Channels > 0 {
		return t.Channels
	}
	if len(t.Config) >= 10 && string(t.Config[:8]) == "OpusHead" && t.Config[9] > 0 {
		return int(t.Config[9])
	}
	return 2
}

// isParamSet reports whether nalu is a parameter set of codec c.
func isParamSet(c bus.Codec, nalu []byte) bool {
	if c == bus.CodecH264 {
		typ := nalu[0] & 0x1f
		return typ == 7 || typ == 8 // SPS, PPS
	}
	typ := (nalu[0] >> 1) & 0x3f
	return typ >= 32 && typ <= 34 // VPS, SPS, PPS
}

// AV1 OBU types (AV1 spec §6.2.2) the writer looks at.
const (
	obuTemporalDelimiter = 2
)

// appendOBUs appends the OBUs of a temporal unit in low-overhead bitstream format (AV1 spec
// §5.2: every OBU carries obu_size) to au, without copying: each element is one whole OBU,
// header and size field included, as the AV1 ISOBMFF binding wants them in samples and in
// the av1C record. Temporal delimiters are dropped (ISOBMFF samples must not carry them).
// An OBU without a size field runs to the end of b.
func appendOBUs(au [][]byte, b []byte) ([][]byte, error) {
	for len(b) > 0 {
		h := b[0]
		if h&0x80 != 0 { // obu_forbidden_bit
			return au, bus.ErrMalformed
		}
		hdr := 1
		if h&0x04 != 0 { // obu_extension_flag
			hdr = 2
		}
		if len(b) < hdr {
			return au, bus.ErrMalformed
		}
		n := len(b)
		if h&0x02 != 0 { // obu_has_size_field
			size, l, ok := leb128(b[hdr:])
			if !ok || size > uint64(len(b)-hdr-l) {
				return au, bus.ErrMalformed
			}
			n = hdr + l + int(size)
		}
		if (h>>3)&0x0f != obuTemporalDelimiter {
			au = append(au, b[:n])
		}
		b = b[n:]
	}
	return au, nil
}

// leb128 reads an unsigned LEB128 number (AV1 spec §4.10.5) of at most 8 bytes. l is the
// number of bytes read.
func leb128(b []byte) (v uint64, l int, ok bool) {
	for i := 0; i < 8 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false
}

// toClock converts a bus timestamp to ticks of a clock rate, rounding to the nearest tick
// (timestamps made from tick counts and truncated to nanoseconds map back to the same tick,
// so AAC frames keep their exact 1024-sample durations), without overflowing for long
// streams (d*rate would overflow int64 after about a day at 90 kHz).
func toClock(d time.Duration, rate int) int64 {
	secs := int64(d / time.Second)
	q := int64(d%time.Second) * int64(rate)
	const half = int64(time.Second / 2)
	if q >= 0 {
		q += half
	} else {
		q -= half
	}
	return secs*int64(rate) + q/int64(time.Second)
}
