package whep

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// offeredCodec is one payload type of an offer's media section.
type offeredCodec struct {
	pt   uint8
	name string
	rate uint32
	fmtp string
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

// mediaCodecs lists the codecs of one media section (a=rtpmap and a=fmtp) in offer order.
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
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" && a.Key != "fmtp" {
			continue
		}
		ptStr, rest, _ := strings.Cut(a.Value, " ")
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		i, ok := index[uint8(pt)]
		if !ok {
			continue
		}
		c := &out[i]
		rest = strings.TrimSpace(rest)
		if a.Key == "fmtp" {
			c.fmtp = rest
			continue
		}
		parts := strings.Split(rest, "/")
		if len(parts) < 2 {
			continue
		}
		rate, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			continue
		}
		c.name, c.rate = parts[0], uint32(rate)
	}
	kept := out[:0]
	for _, c := range out {
		if c.name != "" {
			kept = append(kept, c)
		}
	}
	return kept
}

// offerSummary is what a viewer's offer can receive.
type offerSummary struct {
	// h264 lists the offered H.264 variants with packetization-mode 1 (nil: no video).
	h264 []offeredCodec
	// opus reports an audio section that takes Opus.
	opus  bool
	ufrag string
}

// parseOffer validates a viewer's SDP offer.
func parseOffer(body []byte) (*offerSummary, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return nil, fmt.Errorf("invalid sdp: %w", err)
	}
	if len(sd.MediaDescriptions) == 0 {
		return nil, fmt.Errorf("offer has no media")
	}
	sum := &offerSummary{}
	sum.ufrag, _ = sd.Attribute("ice-ufrag")
	for _, md := range sd.MediaDescriptions {
		if u, ok := md.Attribute("ice-ufrag"); ok && sum.ufrag == "" {
			sum.ufrag = u
		}
		if _, ok := md.Attribute("sendonly"); ok {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		if mid, ok := md.Attribute("mid"); !ok || mid == "" {
			return nil, fmt.Errorf("media section without a=mid")
		}
		codecs := mediaCodecs(md)
		switch md.MediaName.Media {
		case "video":
			if sum.h264 != nil {
				continue
			}
			for _, c := range codecs {
				if strings.EqualFold(c.name, "H264") && c.rate == 90000 {
					if pm, _ := c.param("packetization-mode"); pm == "1" {
						sum.h264 = append(sum.h264, c)
					}
				}
			}
		case "audio":
			for _, c := range codecs {
				if strings.EqualFold(c.name, "opus") && c.rate == 48000 {
					sum.opus = true
				}
			}
		}
	}
	if sum.h264 == nil && !sum.opus {
		return nil, fmt.Errorf("offer receives neither H.264 (packetization-mode 1) nor Opus")
	}
	return sum, nil
}

// chooseH264 picks the offered H.264 variant to send a stream whose SPS starts with
// profile (profile_idc, constraint flags, level_idc): the same profile and constraints,
// else the same profile, else constrained baseline, else the first. The track is then
// declared with that variant's exact fmtp line, so pion binds it to that payload type.
func chooseH264(offered []offeredCodec, profile [3]byte) (offeredCodec, bool) {
	if len(offered) == 0 {
		return offeredCodec{}, false
	}
	best, bestScore := offered[0], -1
	for _, c := range offered {
		score := 0
		if v, ok := c.param("profile-level-id"); ok {
			if b, err := hex.DecodeString(v); err == nil && len(b) == 3 {
				switch {
				case b[0] == profile[0] && b[1] == profile[1]:
					score = 3
				case b[0] == profile[0]:
					score = 2
				case b[0] == 0x42 && b[1]&0x40 != 0:
					score = 1
				}
			}
		}
		if score > bestScore {
			best, bestScore = c, score
		}
	}
	return best, true
}
