package signal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Offer is a parsed SDP offer: what WHIP and WHEP check before they create a peer
// connection. Which sections count, and what to take from them, is theirs to decide.
type Offer struct {
	// Ufrag is the session-level a=ice-ufrag ("" if none; see Media.Ufrag).
	Ufrag string
	// Media are the offer's media sections in order; there is at least one.
	Media []Media
}

// Media is one media section (m=) of an offer.
type Media struct {
	// Kind is the m= line's media: "audio", "video", "application", ...
	Kind string
	// Mid is the section's a=mid ("" if missing).
	Mid string
	// Ufrag is the section's a=ice-ufrag ("" if none).
	Ufrag string
	// SendOnly, RecvOnly and Inactive report the direction attributes present.
	SendOnly, RecvOnly, Inactive bool

	desc *sdp.MediaDescription
}

// ParseOffer parses an SDP offer and checks it has media.
func ParseOffer(body []byte) (*Offer, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("invalid sdp: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, errors.New("offer has no media")
	}
	o := &Offer{Media: make([]Media, len(sd.MediaDescriptions))}
	o.Ufrag, _ = sd.Attribute("ice-ufrag")
	for i, md := range sd.MediaDescriptions {
		m := &o.Media[i]
		m.desc = md
		m.Kind = md.MediaName.Media
		m.Mid, _ = md.Attribute("mid")
		m.Ufrag, _ = md.Attribute("ice-ufrag")
		_, m.SendOnly = md.Attribute("sendonly")
		_, m.RecvOnly = md.Attribute("recvonly")
		_, m.Inactive = md.Attribute("inactive")
	}
	return o, nil
}

// OfferedCodec is one payload type of an offer's media section.
type OfferedCodec struct {
	PT       uint8
	Name     string // encoding name as offered (H264, opus, rtx, ...)
	Rate     uint32
	Channels uint16
	Fmtp     string
	Feedback []webrtc.RTCPFeedback // its a=rtcp-fb lines (at most 16), then the wildcard ones (at most 16)
}

// Param returns the value of an fmtp parameter.
func (c *OfferedCodec) Param(key string) (string, bool) {
	for kv := range strings.SplitSeq(c.Fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return "", false
}

// maxFeedback caps the a=rtcp-fb lines kept per codec, and the wildcard ones.
const maxFeedback = 16

// Codecs lists the codecs of the media section in offer order, from its format list,
// a=rtpmap, a=fmtp and a=rtcp-fb lines. Payload types without an rtpmap are skipped
// (static payload types are not offered by WebRTC peers for the codecs relaycast takes).
func (m *Media) Codecs() []OfferedCodec {
	var out []OfferedCodec
	index := map[uint8]int{}
	for _, f := range m.desc.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			continue
		}
		if _, dup := index[uint8(pt)]; dup {
			continue
		}
		index[uint8(pt)] = len(out)
		out = append(out, OfferedCodec{PT: uint8(pt)})
	}
	var wildcardFB []webrtc.RTCPFeedback
	for _, a := range m.desc.Attributes {
		ptStr, rest, _ := strings.Cut(a.Value, " ")
		rest = strings.TrimSpace(rest)
		if a.Key == "rtcp-fb" && ptStr == "*" {
			// Capped like the per-codec lines: the wildcard is copied to every codec, so an
			// unauthenticated offer must not multiply it without bound.
			if len(wildcardFB) < maxFeedback {
				typ, param, _ := strings.Cut(rest, " ")
				wildcardFB = append(wildcardFB, webrtc.RTCPFeedback{Type: typ, Parameter: param})
			}
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
			c.Name, c.Rate = parts[0], uint32(rate)
			if len(parts) > 2 {
				if ch, err := strconv.ParseUint(parts[2], 10, 16); err == nil {
					c.Channels = uint16(ch)
				}
			}
		case "fmtp":
			c.Fmtp = rest
		case "rtcp-fb":
			typ, param, _ := strings.Cut(rest, " ")
			if len(c.Feedback) < maxFeedback {
				c.Feedback = append(c.Feedback, webrtc.RTCPFeedback{Type: typ, Parameter: param})
			}
		}
	}
	kept := out[:0]
	for _, c := range out {
		if c.Name != "" {
			c.Feedback = append(c.Feedback, wildcardFB...)
			kept = append(kept, c)
		}
	}
	return kept
}
