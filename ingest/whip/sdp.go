package whip

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// codecChoice is what a session answers for one media section.
type codecChoice struct {
	codec bus.Codec
	best  signal.OfferedCodec
	rtx   *signal.OfferedCodec
}

// params returns the codec preferences to give the transceiver: the chosen codec and its
// retransmission codec. Answering with one codec means the publisher cannot switch to
// another mid-stream.
func (c codecChoice) params(kind string) []webrtc.RTPCodecParameters {
	out := []webrtc.RTPCodecParameters{toParams(kind, c.best)}
	if c.rtx != nil {
		out = append(out, toParams(kind, *c.rtx))
	}
	return out
}

func toParams(kind string, c signal.OfferedCodec) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		PayloadType: webrtc.PayloadType(c.PT),
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType:     kind + "/" + c.Name,
			ClockRate:    c.Rate,
			Channels:     c.Channels,
			SDPFmtpLine:  c.Fmtp,
			RTCPFeedback: c.Feedback,
		},
	}
}

// chooseCodec picks the codec to receive in a media section of the given kind ("audio"
// or "video"): H.264 with packetization-mode 1 first (constrained baseline, then high,
// main, other profiles), then AV1, VP9 profile 0, VP8; Opus for audio. ok is false when
// none of the offered codecs can go to the bus.
func chooseCodec(kind string, offered []signal.OfferedCodec) (codecChoice, bool) {
	var (
		best      codecChoice
		bestScore int
	)
	for _, c := range offered {
		score, codec := rank(kind, &c)
		if score > bestScore {
			best, bestScore = codecChoice{codec: codec, best: c}, score
		}
	}
	if bestScore == 0 {
		return codecChoice{}, false
	}
	apt := "apt=" + strconv.Itoa(int(best.best.PT))
	for _, c := range offered {
		if strings.EqualFold(c.Name, "rtx") {
			if v, ok := c.Param("apt"); ok && "apt="+v == apt {
				r := c
				best.rtx = &r
				break
			}
		}
	}
	return best, true
}

// rank scores an offered codec (0: not taken).
func rank(kind string, c *signal.OfferedCodec) (int, bus.Codec) {
	switch kind {
	case "audio":
		if strings.EqualFold(c.Name, "opus") && c.Rate == 48000 {
			return 100, bus.CodecOpus
		}
	case "video":
		if c.Rate != 90000 {
			return 0, bus.CodecUnknown
		}
		switch strings.ToUpper(c.Name) {
		case "H264":
			if pm, _ := c.Param("packetization-mode"); pm != "1" {
				return 0, bus.CodecUnknown
			}
			return 60 + h264ProfileScore(c), bus.CodecH264
		case "AV1":
			return 50, bus.CodecAV1
		case "VP9":
			if p, ok := c.Param("profile-id"); ok && p != "0" {
				return 0, bus.CodecUnknown
			}
			return 40, bus.CodecVP9
		case "VP8":
			return 30, bus.CodecVP8
		}
	}
	return 0, bus.CodecUnknown
}

// h264ProfileScore prefers constrained baseline (what browsers' software encoders make and
// every decoder plays), then high (OBS's usual profile), then main.
func h264ProfileScore(c *signal.OfferedCodec) int {
	plid, ok := c.Param("profile-level-id")
	if !ok {
		return 10 // RFC 6184 default: baseline
	}
	b, err := hex.DecodeString(plid)
	if err != nil || len(b) != 3 {
		return 0
	}
	switch {
	case b[0] == 0x42 && b[1]&0x40 != 0:
		return 40
	case b[0] == 0x64:
		return 30
	case b[0] == 0x4d:
		return 20
	case b[0] == 0x42:
		return 10
	}
	return 1
}

// offerSummary is what the server checks in an offer before it creates a peer connection.
type offerSummary struct {
	// choices maps each media section's mid to its chosen codec (missing: rejected).
	choices map[string]codecChoice
	video   bool
	audio   bool
	// ufrag is the offer's ICE username fragment.
	ufrag string
}

// parseOffer validates an SDP offer and chooses a codec for each media section.
func parseOffer(body []byte) (*offerSummary, error) {
	offer, err := signal.ParseOffer(body)
	if err != nil {
		return nil, err
	}
	sum := &offerSummary{choices: map[string]codecChoice{}, ufrag: offer.Ufrag}
	for i := range offer.Media {
		md := &offer.Media[i]
		kind := md.Kind
		if kind != "audio" && kind != "video" {
			continue
		}
		if sum.ufrag == "" {
			sum.ufrag = md.Ufrag
		}
		if md.Mid == "" {
			return nil, fmt.Errorf("media section without a=mid")
		}
		if md.RecvOnly {
			return nil, fmt.Errorf("offer's %s section does not send (WHIP is for publishing)", kind)
		}
		if md.Inactive {
			continue
		}
		ch, ok := chooseCodec(kind, md.Codecs())
		if !ok {
			continue
		}
		if kind == "video" {
			if sum.video {
				continue // one video track per publisher (no simulcast)
			}
			sum.video = true
		} else {
			if sum.audio {
				continue
			}
			sum.audio = true
		}
		sum.choices[md.Mid] = ch
	}
	if !sum.video && !sum.audio {
		return nil, fmt.Errorf("offer has no supported codec (video: H.264 packetization-mode 1, AV1, VP9, VP8; audio: Opus)")
	}
	return sum, nil
}
