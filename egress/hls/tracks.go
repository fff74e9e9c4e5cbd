package hls

import (
	"encoding/binary"
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
		if vps, sps, pps, err := parseHEVCConfig(t.Config); err == nil {
			c.VPS, c.SPS, c.PPS = vps, sps, pps
			tw.params = [][]byte{vps, sps, pps}
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

// parseHEVCConfig returns the first VPS, SPS and PPS of an HEVCDecoderConfigurationRecord
// (ISO/IEC 14496-15 §8.3.3.1).
func parseHEVCConfig(b []byte) (vps, sps, pps []byte, err error) {
	// 22 bytes of fixed fields, then numOfArrays.
	if len(b) < 23 || b[0] != 1 {
		return nil, nil, nil, bus.ErrMalformed
	}
	narrays := int(b[22])
	p := 23
	for i := 0; i < narrays; i++ {
		if p+3 > len(b) {
			return nil, nil, nil, bus.ErrMalformed
		}
		typ := b[p] & 0x3f
		n := int(binary.BigEndian.Uint16(b[p+1:]))
		p += 3
		for j := 0; j < n; j++ {
			if p+2 > len(b) {
				return nil, nil, nil, bus.ErrMalformed
			}
			l := int(binary.BigEndian.Uint16(b[p:]))
			p += 2
			if l == 0 || p+l > len(b) {
				return nil, nil, nil, bus.ErrMalformed
			}
			nalu := b[p : p+l]
			p += l
			switch {
			case typ == 32 && vps == nil:
				vps = nalu
			case typ == 33 && sps == nil:
				sps = nalu
			case typ == 34 && pps == nil:
				pps = nalu
			}
		}
	}
	if vps == nil || sps == nil || pps == nil {
		return nil, nil, nil, bus.ErrMalformed
	}
	return vps, sps, pps, nil
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
