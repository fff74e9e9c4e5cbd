package rtmp

import (
	"encoding/binary"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/relaycast/relaycast/bus"
)

// videoTrack builds a bus track from a video sequence header (AVCDecoderConfigurationRecord
// or HEVCDecoderConfigurationRecord). lengthSize is the size of the NAL unit length
// prefixes the publisher's frames use; the track's Config always says 4, the form units
// are converted to.
func videoTrack(codec bus.Codec, rec []byte) (t *bus.Track, lengthSize int, err error) {
	switch codec {
	case bus.CodecH264:
		return avcTrack(rec)
	case bus.CodecH265:
		return hevcTrack(rec)
	}
	return nil, 0, fmt.Errorf("%w: video %s", ErrUnsupportedCodec, codec)
}

// avcTrack parses an AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1).
func avcTrack(rec []byte) (*bus.Track, int, error) {
	sps, _, err := bus.ParseAVCConfig(rec)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: avc sequence header", ErrMalformed)
	}
	var s h264.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return nil, 0, fmt.Errorf("%w: avc sps: %v", ErrMalformed, err)
	}
	w, h := s.Width(), s.Height()
	if w <= 0 || h <= 0 {
		return nil, 0, fmt.Errorf("%w: avc sps: size %dx%d", ErrMalformed, w, h)
	}
	cfg := append([]byte(nil), rec...)
	lengthSize := int(cfg[4]&0x03) + 1
	cfg[4] |= 0x03
	return &bus.Track{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg, Width: w, Height: h},
		lengthSize, nil
}

// HEVC NAL unit types (ITU-T H.265 Table 7-1) used here.
const (
	hevcNALUVPS = 32
	hevcNALUSPS = 33
	hevcNALUPPS = 34
)

// parseHEVCConfig returns the VPS, SPS and PPS NAL units of an
// HEVCDecoderConfigurationRecord and its NAL unit length size.
func parseHEVCConfig(rec []byte) (vps, sps, pps [][]byte, lengthSize int, err error) {
	vps, sps, pps, err = bus.ParseHEVCConfig(rec)
	if err != nil {
		return nil, nil, nil, 0, fmt.Errorf("%w: hevc sequence header", ErrMalformed)
	}
	return vps, sps, pps, int(rec[21]&0x03) + 1, nil
}

func hevcTrack(rec []byte) (*bus.Track, int, error) {
	_, sps, _, lengthSize, err := parseHEVCConfig(rec)
	if err != nil {
		return nil, 0, err
	}
	var s h265.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return nil, 0, fmt.Errorf("%w: hevc sps: %v", ErrMalformed, err)
	}
	w, h := s.Width(), s.Height()
	if w <= 0 || h <= 0 {
		return nil, 0, fmt.Errorf("%w: hevc sps: size %dx%d", ErrMalformed, w, h)
	}
	cfg := append([]byte(nil), rec...)
	cfg[21] |= 0x03
	return &bus.Track{Codec: bus.CodecH265, ClockRate: 90000, Config: cfg, Width: w, Height: h},
		lengthSize, nil
}

// aacTrack parses an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
func aacTrack(asc []byte) (*bus.Track, error) {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(asc); err != nil {
		return nil, fmt.Errorf("%w: aac config: %v", ErrMalformed, err)
	}
	if c.SampleRate <= 0 {
		return nil, fmt.Errorf("%w: aac config: sample rate %d", ErrMalformed, c.SampleRate)
	}
	ch := bus.AACChannels(c.ChannelConfig)
	return &bus.Track{
		Codec: bus.CodecAAC, ClockRate: c.SampleRate, Config: append([]byte(nil), asc...),
		SampleRate: c.SampleRate, Channels: ch,
	}, nil
}

// convertFrame copies the length-prefixed NAL units of one RTMP video frame into a new
// payload with 4-byte lengths (the bus's AVCC form), dropping empty NAL units, and reports
// whether it holds a random access picture (H.264 IDR, H.265 IRAP). The copy is the one
// allocation per frame: go-rtmp reuses the message buffer once the callback returns.
func convertFrame(codec bus.Codec, data []byte, lengthSize int) (payload []byte, idr bool, err error) {
	if lengthSize < 1 || lengthSize > 4 {
		return nil, false, fmt.Errorf("%w: nal unit length size %d", ErrMalformed, lengthSize)
	}
	// First pass: validate the framing and size the output.
	size, same := 0, lengthSize == 4
	for p := 0; p < len(data); {
		if len(data)-p < lengthSize {
			return nil, false, fmt.Errorf("%w: truncated nal unit length", ErrMalformed)
		}
		n := 0
		for i := range lengthSize {
			n = n<<8 | int(data[p+i])
		}
		p += lengthSize
		if n > len(data)-p {
			return nil, false, fmt.Errorf("%w: nal unit length %d beyond frame", ErrMalformed, n)
		}
		if n == 0 {
			same = false
			continue
		}
		if isRandomAccess(codec, data[p]) {
			idr = true
		}
		size += 4 + n
		p += n
	}
	if size == 0 {
		return nil, false, nil
	}
	if same {
		return append(make([]byte, 0, len(data)), data...), idr, nil
	}
	out := make([]byte, 0, size)
	for p := 0; p < len(data); {
		n := 0
		for i := range lengthSize {
			n = n<<8 | int(data[p+i])
		}
		p += lengthSize
		if n == 0 {
			continue
		}
		out = binary.BigEndian.AppendUint32(out, uint32(n))
		out = append(out, data[p:p+n]...)
		p += n
	}
	return out, idr, nil
}

// isRandomAccess reports whether a NAL unit whose first header byte is b starts a random
// access picture.
func isRandomAccess(codec bus.Codec, b byte) bool {
	if codec == bus.CodecH265 {
		typ := (b >> 1) & 0x3f
		return typ >= 16 && typ <= 21 // BLA, IDR, CRA
	}
	return h264.NALUType(b&0x1f) == h264.NALUTypeIDR
}
