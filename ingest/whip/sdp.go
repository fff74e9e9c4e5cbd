package whip

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
)

// offeredCodec is one payload type of an offer's media section.
type offeredCodec struct {
	pt       uint8
	name     string // encoding name as offered (H264, opus, rtx, ...)
	rate     uint32
	channels uint16
	fmtp     string
	feedback []webrtc.RTCPFeedback
}

// param returns the value of an fmtp parameter.
func (c *offeredCodec) param(key string) (string, bool) {
	for kv := range strings.SplitSeq(c.fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// mediaCodecs lists the codecs of one media section in offer order, from its format list,
// a=rtpmap, a=fmtp and a=rtcp-fb lines. Payload types without an rtpmap are skipped (static
// payload types are not offered by WebRTC peers for the codecs we take).
func mediaCodecs(md *sdp.MediaDescription) []offeredCodec {
	var out []offeredCodec
	index := map[uint8]int{}
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		if _, dup := index[uint8(pt)]; dup {
			continue
		}
		index[uint8(pt)] = len(out)
		out = append(out, offeredCodec{pt: uint8(pt)})
	}
	var wildcardFB []webrtc.RTCPFeedback
	for _, a := range md.Attributes {
		ptStr, rest, _ := strings.Cut(a.Value, " ")
		rest = strings.TrimSpace(rest)
		if a.Key == "rtcp-fb" && ptStr == "*" {
			typ, param, _ := strings.Cut(rest, " ")
			wildcardFB = append(wildcardFB, webrtc.RTCPFeedback{Type: typ, Parameter: param})
			continue
		}
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		i, ok := index[uint8(pt)]
		if !ok {
			continue
		}
		c := &out[i]
		switch a.Key {
		case "rtpmap":
			parts := strings.Split(rest, "/")
			if len(parts) < 2 {
				continue
			}
			rate, err := strconv.ParseUint(parts[1], 10, 32)
			if err != nil {
				continue
			}
			c.name, c.rate = parts[0], uint32(rate)
			if len(parts) > 2 {
				if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					c.channels = uint16(ch)
				}
			}
		case "fmtp":
			c.fmtp = rest
		case "rtcp-fb":
			typ, param, _ := strings.Cut(rest, " ")
			if len(c.feedback) < 16 {
				c.feedback = append(c.feedback, webrtc.RTCPFeedback{Type: typ, Parameter: param})
			}
		}
	}
	kept := out[:0]
	for _, c := range out {
		if c.name != "" {
			c.feedback = append(c.feedback, wildcardFB...)
			kept = append(kept, c)
		}
	}
	return kept
}

// codecChoice is what a session answers for one media section.
type codecChoice struct {
	codec bus.Codec
	best  offeredCodec
	rtx   *offeredCodec
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

func toParams(kind string, c offeredCodec) webrtc.RTPCodecParameters {
	return webrtc.RTPCodecParameters{
		PayloadType: webrtc.PayloadType(c.pt),
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType:     kind + "/" + c.name,
			ClockRate:    c.rate,
			Channels:     c.channels,
			SDPFmtpLine:  c.fmtp,
			RTCPFeedback: c.feedback,
		},
	}
}

// chooseCodec picks the codec to receive in a media section of the given kind ("audio"
// or "video"): H.264 with packetization-mode 1 first (constrained baseline, then high,
// main, other profiles), then AV1, VP9 profile 0, VP8; Opus for audio. ok is false when
// none of the offered codecs can go to the bus.
func chooseCodec(kind string, offered []offeredCodec) (codecChoice, bool) {
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
	apt := "apt=" + strconv.Itoa(int(best.best.pt))
	for _, c := range offered {
		if strings.EqualFold(c.name, "rtx") {
			if v, ok := c.param("apt"); ok && "apt="+v == apt {
				r := c
				best.rtx = &r
				break
			}
		}
	}
	return best, true
}

// rank scores an offered codec (0: not taken).
func rank(kind string, c *offeredCodec) (int, bus.Codec) {
	switch kind {
	case "audio":
		if strings.EqualFold(c.name, "opus") && c.rate == 48000 {
			return 100, bus.CodecOpus
		}
	case "video":
		if c.rate != 90000 {
			return 0, bus.CodecUnknown
		}
		switch strings.ToUpper(c.name) {
		case "H264":
			if pm, _ := c.param("packetization-mode"); pm != "1" {
				return 0, bus.CodecUnknown
			}
			return 60 + h264ProfileScore(c), bus.CodecH264
		case "AV1":
			return 50, bus.CodecAV1
		case "VP9":
			if p, ok := c.param("profile-id"); ok && p != "0" {
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
func h264ProfileScore(c *offeredCodec) int {
	plid, ok := c.param("profile-level-id")
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
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("invalid sdp: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("offer has no media")
	}
	sum := &offerSummary{choices: map[string]codecChoice{}}
	sum.ufrag, _ = sd.Attribute("ice-ufrag")
	for _, md := range sd.MediaDescriptions {
		kind := md.MediaName.Media
		if kind != "audio" && kind != "video" {
			continue
		}
		if u, ok := md.Attribute("ice-ufrag"); ok && sum.ufrag == "" {
			sum.ufrag = u
		}
		mid, ok := md.Attribute("mid")
		if !ok || mid == "" {
			return nil, fmt.Errorf("media section without a=mid")
		}
		if _, ok := md.Attribute("recvonly"); ok {
			return nil, fmt.Errorf("offer's %s section does not send (WHIP is for publishing)", kind)
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		ch, ok := chooseCodec(kind, mediaCodecs(md))
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
		sum.choices[mid] = ch
	}
	if !sum.video && !sum.audio {
		return nil, fmt.Errorf("offer has no supported codec (video: H.264 packetization-mode 1, AV1, VP9, VP8; audio: Opus)")
	}
	return sum, nil
}
