package whipclient

import (
	"fmt"

	"github.com/pion/webrtc/v4"
)

// Codec is a codec a Publisher can send.
type Codec int

// Codecs. relaycast's WHIP ingest takes H.264, AV1, VP9 and VP8 video and Opus audio.
const (
	// CodecDefault, the zero value, selects the kind's default: H.264 for video, Opus for
	// audio.
	CodecDefault Codec = iota
	// CodecNone leaves the kind out: the offer has no media section for it.
	CodecNone
	// CodecH264 is H.264, packetization-mode 1, declared constrained baseline 3.1. Frames
	// are Annex-B access units.
	CodecH264
	// CodecVP8 is VP8. Frames are VP8 frames.
	CodecVP8
	// CodecVP9 is VP9 profile 0. Frames are VP9 frames.
	CodecVP9
	// CodecAV1 is AV1. Frames are temporal units of OBUs.
	CodecAV1
	// CodecOpus is Opus, 48 kHz stereo. Frames are Opus packets.
	CodecOpus
)

var codecNames = [...]string{"default", "none", "H264", "VP8", "VP9", "AV1", "opus"}

func (c Codec) String() string {
	if c < 0 || int(c) >= len(codecNames) {
		return fmt.Sprintf("Codec(%d)", int(c))
	}
	return codecNames[c]
}

// capability returns the track capability of c for kind, or ok=false when c is not a
// codec of that kind. CodecDefault and CodecNone have none.
func (c Codec) capability(kind webrtc.RTPCodecType) (webrtc.RTPCodecCapability, bool) {
	video := kind == webrtc.RTPCodecTypeVideo
	switch {
	case c == CodecH264 && video:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, true
	case c == CodecVP8 && video:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, true
	case c == CodecVP9 && video:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000,
			SDPFmtpLine: "profile-id=0"}, true
	case c == CodecAV1 && video:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000}, true
	case c == CodecOpus && !video:
		return webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1"}, true
	}
	return webrtc.RTPCodecCapability{}, false
}
