package rtmp

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/yutopp/go-amf0"
	"github.com/yutopp/go-flv/tag"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest/rtmpguard"
)

// The FLV tag bodies of RTMP audio and video messages are parsed here rather than with
// go-flv's tag.DecodeVideoData / DecodeAudioData: those allocate three small buffers per
// tag and know nothing of Enhanced RTMP (the extended video header that carries HEVC).
// These functions work on the message bytes in place and allocate nothing.

// packetKind says what an FLV media tag carries.
type packetKind uint8

const (
	kindOther     packetKind = iota // end of sequence, command frame, metadata: ignored
	kindSeqHeader                   // codec configuration record
	kindFrame                       // coded frame(s)
)

// videoTag is a parsed FLV video tag body (legacy or Enhanced RTMP).
type videoTag struct {
	kind  packetKind
	codec bus.Codec
	// key is the FLV frame type's keyframe flag.
	key bool
	// cts is the composition time offset in milliseconds (PTS = DTS + cts).
	cts int32
	// data is the configuration record (kindSeqHeader) or the length-prefixed NAL units
	// (kindFrame); it aliases the input.
	data []byte
}

// Enhanced RTMP (veovera enhanced-rtmp v1) video packet types.
const (
	exPacketSequenceStart = 0
	exPacketCodedFrames   = 1
	exPacketSequenceEnd   = 2
	exPacketCodedFramesX  = 3
)

// codecIDHEVC is the non-standard legacy FLV codec id some encoders (and CDNs) use for
// HEVC, with the AVC packet layout.
const codecIDHEVC = 12

// parseVideoTag parses the body of an RTMP video message.
func parseVideoTag(b []byte) (videoTag, error) {
	var t videoTag
	if len(b) < 1 {
		return t, fmt.Errorf("%w: empty video tag", ErrMalformed)
	}
	if b[0]&0x80 != 0 {
		return parseExVideoTag(b)
	}
	frameType := tag.FrameType(b[0] >> 4)
	codecID := tag.CodecID(b[0] & 0x0f)
	if frameType == tag.FrameTypeVideoInfoCommandFrame {
		return t, nil // a client-side seek marker; carries no picture
	}
	switch codecID {
	case tag.CodecIDAVC:
		t.codec = bus.CodecH264
	case codecIDHEVC:
		t.codec = bus.CodecH265
	default:
		return t, fmt.Errorf("%w: video codec id %d", ErrUnsupportedCodec, codecID)
	}
	if len(b) < 5 {
		return t, fmt.Errorf("%w: short %s video tag", ErrMalformed, t.codec)
	}
	t.key = frameType == tag.FrameTypeKeyFrame
	// Composition time is a signed 24-bit big-endian integer.
	t.cts = int32(uint32(b[2])<<24|uint32(b[3])<<16|uint32(b[4])<<8) >> 8
	t.data = b[5:]
	switch tag.AVCPacketType(b[1]) {
	case tag.AVCPacketTypeSequenceHeader:
		t.kind = kindSeqHeader
	case tag.AVCPacketTypeNALU:
		t.kind = kindFrame
	default:
		t.kind = kindOther
	}
	return t, nil
}

// parseExVideoTag parses an Enhanced RTMP video tag: [1 bit IsExHeader, 3 bits FrameType,
// 4 bits PacketType] then a FourCC.
func parseExVideoTag(b []byte) (videoTag, error) {
	var t videoTag
	if len(b) < 5 {
		return t, fmt.Errorf("%w: short extended video tag", ErrMalformed)
	}
	frameType := tag.FrameType((b[0] >> 4) & 0x07)
	packetType := b[0] & 0x0f
	fourCC := b[1:5]
	switch {
	case bytes.Equal(fourCC, []byte("hvc1")):
		t.codec = bus.CodecH265
	case bytes.Equal(fourCC, []byte("avc1")):
		t.codec = bus.CodecH264
	default:
		return t, fmt.Errorf("%w: video fourcc %q", ErrUnsupportedCodec, fourCC)
	}
	if frameType == tag.FrameTypeVideoInfoCommandFrame {
		return t, nil
	}
	t.key = frameType == tag.FrameTypeKeyFrame
	switch packetType {
	case exPacketSequenceStart:
		t.kind = kindSeqHeader
		t.data = b[5:]
	case exPacketCodedFrames:
		if len(b) < 8 {
			return t, fmt.Errorf("%w: short extended coded frame", ErrMalformed)
		}
		t.kind = kindFrame
		t.cts = int32(uint32(b[5])<<24|uint32(b[6])<<16|uint32(b[7])<<8) >> 8
		t.data = b[8:]
	case exPacketCodedFramesX:
		t.kind = kindFrame
		t.data = b[5:]
	default:
		// SequenceEnd, Metadata (HDR info), MPEG-2 TS sequence start: nothing to carry.
	}
	return t, nil
}

// audioTag is a parsed FLV audio tag body.
type audioTag struct {
	kind  packetKind
	codec bus.Codec
	// data is the AudioSpecificConfig (kindSeqHeader) or one raw AAC frame (kindFrame); it
	// aliases the input.
	data []byte
}

var soundFormatNames = map[tag.SoundFormat]string{
	tag.SoundFormatLinearPCMPlatformEndian: "pcm", tag.SoundFormatADPCM: "adpcm",
	tag.SoundFormatMP3: "mp3", tag.SoundFormatLinearPCMLittleEndian: "pcm_le",
	tag.SoundFormatNellymoser16kHzMono: "nellymoser", tag.SoundFormatNellymoser8kHzMono: "nellymoser",
	tag.SoundFormatNellymoser: "nellymoser", tag.SoundFormatG711ALawLogarithmicPCM: "pcm_alaw",
	tag.SoundFormatG711muLawLogarithmicPCM: "pcm_mulaw", 9: "enhanced-rtmp audio",
	tag.SoundFormatSpeex: "speex", tag.SoundFormatMP3_8kHz: "mp3",
}

// parseAudioTag parses the body of an RTMP audio message. Only AAC is accepted.
func parseAudioTag(b []byte) (audioTag, error) {
	var t audioTag
	if len(b) < 1 {
		return t, fmt.Errorf("%w: empty audio tag", ErrMalformed)
	}
	format := tag.SoundFormat(b[0] >> 4)
	if format != tag.SoundFormatAAC {
		name := soundFormatNames[format] // not the hot path: the connection closes
		if name == "" {
			name = fmt.Sprintf("sound format %d", format)
		}
		return t, fmt.Errorf("%w: audio %s", ErrUnsupportedCodec, name)
	}
	if len(b) < 2 {
		return t, fmt.Errorf("%w: short aac tag", ErrMalformed)
	}
	t.codec = bus.CodecAAC
	t.data = b[2:]
	switch tag.AACPacketType(b[1]) {
	case tag.AACPacketTypeSequenceHeader:
		t.kind = kindSeqHeader
	case tag.AACPacketTypeRaw:
		t.kind = kindFrame
	default:
		t.kind = kindOther
	}
	return t, nil
}

// metadata holds the hints of an onMetaData script tag (@setDataFrame).
type metadata struct {
	hasVideo, hasAudio bool
	width, height      int
	frameRate          float64
}

// parseMetadata decodes the AMF0 body of @setDataFrame ("onMetaData" and an ECMA array).
// go-rtmp hands the body over undecoded. It is checked first (go-amf0 can allocate 32 GiB
// for a 20-byte body, a fatal error) and decoded value by value into `any`, which is what
// rtmpguard.CheckAMF0 vouches for: go-flv's tag.DecodeScriptData decodes the names into
// strings, where go-amf0 misreads an object.
func parseMetadata(payload []byte) (m metadata, err error) {
	defer func() {
		// go-amf0 decodes through reflection and panics on some accepted bodies.
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: metadata: %v", ErrMalformed, r)
		}
	}()
	if err := rtmpguard.CheckAMF0(payload); err != nil {
		return m, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
	}
	var obj map[string]any
	dec := amf0.NewDecoder(bytes.NewReader(payload))
	for obj == nil {
		var name, value any
		if err := dec.Decode(&name); errors.Is(err, io.EOF) {
			return m, fmt.Errorf("%w: no onMetaData in @setDataFrame", ErrMalformed)
		} else if err != nil {
			return m, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
		}
		if err := dec.Decode(&value); err != nil {
			return m, fmt.Errorf("%w: metadata: %v", ErrMalformed, err)
		}
		if name != "onMetaData" {
			continue
		}
		switch v := value.(type) {
		case amf0.ECMAArray:
			obj = v
		case map[string]any: // an object
			obj = v
		default:
			return m, fmt.Errorf("%w: onMetaData is a %T", ErrMalformed, value)
		}
	}
	present := func(k string) bool {
		switch v := obj[k].(type) {
		case float64:
			return v != 0
		case string:
			return v != ""
		}
		return false
	}
	m.hasVideo = present("videocodecid")
	m.hasAudio = present("audiocodecid")
	if v, ok := obj["hasVideo"].(bool); ok {
		m.hasVideo = v
	}
	if v, ok := obj["hasAudio"].(bool); ok {
		m.hasAudio = v
	}
	num := func(k string) float64 {
		v, _ := obj[k].(float64)
		if v != v || v < 0 || v > 1<<20 { // NaN or absurd
			return 0
		}
		return v
	}
	m.width, m.height, m.frameRate = int(num("width")), int(num("height")), num("framerate")
	return m, nil
}
