package whep

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// offerSummary is what a viewer's offer can receive.
type offerSummary struct {
	// h264 lists the offered H.264 variants with packetization-mode 1 (nil: no video).
	h264 []signal.OfferedCodec
	// opus reports an audio section that takes Opus.
	opus  bool
	ufrag string
}

// parseOffer validates a viewer's SDP offer.
func parseOffer(body []byte) (*offerSummary, error) {
	offer, err := signal.ParseOffer(body)
	if err != nil {
		return nil, err
	}
	sum := &offerSummary{ufrag: offer.Ufrag}
	for i := range offer.Media {
		md := &offer.Media[i]
		if sum.ufrag == "" {
			sum.ufrag = md.Ufrag
		}
		if md.SendOnly || md.Inactive {
			continue
		}
		if md.Mid == "" {
			return nil, fmt.Errorf("media section without a=mid")
		}
		switch md.Kind {
		case "video":
			if sum.h264 != nil {
				continue
			}
			for _, c := range md.Codecs() {
				if strings.EqualFold(c.Name, "H264") && c.Rate == 90000 {
					if pm, _ := c.Param("packetization-mode"); pm == "1" {
						sum.h264 = append(sum.h264, c)
					}
				}
			}
		case "audio":
			for _, c := range md.Codecs() {
				if strings.EqualFold(c.Name, "opus") && c.Rate == 48000 {
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
func chooseH264(offered []signal.OfferedCodec, profile [3]byte) (signal.OfferedCodec, bool) {
	if len(offered) == 0 {
		return signal.OfferedCodec{}, false
	}
	best, bestScore := offered[0], -1
	for _, c := range offered {
		score := 0
		if v, ok := c.Param("profile-level-id"); ok {
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
