package rtsp

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// outTrack turns the units of one bus track into RTP packets. It is made once per feed, so
// that its RTP stream (sequence numbers, timestamps) continues from one writer run to the
// next. Its packetizer belongs to the writer goroutine of the current run.
type outTrack struct {
	track     *bus.Track // the parameters the packetizer uses now
	codec     bus.Codec
	media     *description.Media
	clockRate int
	// params are the parameter sets (H.264: SPS, PPS; H.265: VPS, SPS, PPS) put in front of
	// every keyframe that lacks them, so that a reader joining a running stream can decode
	// from the next keyframe on (RTMP publishers send them only once).
	params [][]byte

	h264 *rtph264.Encoder
	h265 *rtph265.Encoder
	aac  *rtpmpeg4audio.Encoder
	opus *rtpsimpleaudio.Encoder
	au   [][]byte // reused
	one  [1][]byte

	// nextSeq is the sequence number of the next packet (a uint16), for priming a new
	// ServerStream while a writer may be running.
	nextSeq atomic.Uint32
}

// describe maps bus tracks to an RTSP session description. Tracks RTSP egress cannot carry
// are left out: their slot in outs is nil, and skipped reports them.
func describe(tracks []*bus.Track) (desc *description.Session, outs []*outTrack, skipped []error) {
	desc = &description.Session{Title: "relaycast"}
	outs = make([]*outTrack, len(tracks))
	for i, t := range tracks {
		if t == nil {
			continue
		}
		o, err := newOutTrack(t, uint8(96+len(desc.Medias)))
		if err == nil {
			err = o.initEncoder()
		}
		if err != nil {
			skipped = append(skipped, fmt.Errorf("track %d: %w", i, err))
			continue
		}
		outs[i] = o
		desc.Medias = append(desc.Medias, o.media)
	}
	return desc, outs, skipped
}

// newOutTrack makes the RTP format and media of a bus track.
func newOutTrack(t *bus.Track, pt uint8) (*outTrack, error) {
	o := &outTrack{track: t, codec: t.Codec}
	var f format.Format
	typ := description.MediaTypeVideo
	switch t.Codec {
	case bus.CodecH264:
		h := &format.H264{PayloadTyp: pt, PacketizationMode: 1}
		// A missing record is tolerated: parameter sets then come in-band only.
		if sps, pps, err := bus.ParseAVCConfig(t.Config); err == nil {
			h.SPS, h.PPS = sps[0], pps[0]
			o.params = [][]byte{sps[0], pps[0]}
		}
		f = h
	case bus.CodecH265:
		h := &format.H265{PayloadTyp: pt}
		if vps, sps, pps, err := bus.ParseHEVCConfig(t.Config); err == nil && len(vps) > 0 {
			h.VPS, h.SPS, h.PPS = vps[0], sps[0], pps[0]
			o.params = [][]byte{vps[0], sps[0], pps[0]}
		}
		f = h
	case bus.CodecAAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config); err != nil {
			return nil, fmt.Errorf("aac config: %w", err)
		}
		f = &format.MPEG4Audio{
			PayloadTyp: pt, ProfileLevelID: 1, Config: &asc,
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3,
		}
		typ = description.MediaTypeAudio
	case bus.CodecOpus:
		f = &format.Opus{PayloadTyp: pt, ChannelCount: opusChannels(t)}
		typ = description.MediaTypeAudio
	default:
		return nil, fmt.Errorf("codec %s is not served over RTSP", t.Codec)
	}
	o.clockRate = f.ClockRate()
	if o.clockRate <= 0 {
		return nil, fmt.Errorf("%s: clock rate %d", t.Codec, o.clockRate)
	}
	o.media = &description.Media{Type: typ, Formats: []format.Format{f}}
	return o, nil
}

// update takes new parameters of the same codec (in-band SPS/PPS change): they go in front
// of later keyframes. The description given to readers keeps the old ones; decoders follow
// the in-band sets.
func (o *outTrack) update(t *bus.Track) {
	o.track = t
	switch t.Codec {
	case bus.CodecH264:
		if sps, pps, err := bus.ParseAVCConfig(t.Config); err == nil {
			o.params = [][]byte{sps[0], pps[0]}
		}
	case bus.CodecH265:
		if vps, sps, pps, err := bus.ParseHEVCConfig(t.Config); err == nil && len(vps) > 0 {
			o.params = [][]byte{vps[0], sps[0], pps[0]}
		}
	}
}

// initEncoder makes the track's packetizer (random sequence start). The feed keeps it for
// its whole life: a new writer run continues the RTP stream where the previous one stopped,
// which the RTP-Info of a later PLAY, computed from the last packet, relies on.
func (o *outTrack) initEncoder() error {
	var err error
	var seq *uint16
	switch f := o.media.Formats[0].(type) {
	case *format.H264:
		if o.h264, err = f.CreateEncoder(); err == nil {
			seq = o.h264.InitialSequenceNumber
		}
	case *format.H265:
		if o.h265, err = f.CreateEncoder(); err == nil {
			seq = o.h265.InitialSequenceNumber
		}
	case *format.MPEG4Audio:
		if o.aac, err = f.CreateEncoder(); err == nil {
			seq = o.aac.InitialSequenceNumber
		}
	case *format.Opus:
		if o.opus, err = f.CreateEncoder(); err == nil {
			seq = o.opus.InitialSequenceNumber
		}
	}
	if err != nil {
		return err
	}
	if seq != nil {
		o.nextSeq.Store(uint32(*seq))
	}
	return nil
}

// packets packetizes one unit; the packets carry the unit's PTS on the track's clock
// (offset by base). It is the per-unit hot path: the access-unit slice is reused.
func (o *outTrack) packets(u *bus.Unit, base uint32) ([]*rtp.Packet, error) {
	var pkts []*rtp.Packet
	var err error
	switch o.codec {
	case bus.CodecH264, bus.CodecH265:
		au := o.au[:0]
		if u.Key && len(o.params) > 0 && !hasParamSets(o.codec, u.Payload) {
			au = append(au, o.params...)
		}
		for b := u.Payload; len(b) > 0; {
			nalu, rest, ok := bus.NextNALU(b)
			if !ok {
				clear(au)
				o.au = au[:0]
				return nil, bus.ErrMalformed
			}
			au = append(au, nalu)
			b = rest
		}
		if len(au) > 0 {
			if o.codec == bus.CodecH264 {
				pkts, err = o.h264.Encode(au)
			} else {
				pkts, err = o.h265.Encode(au)
			}
		}
		clear(au)
		o.au = au[:0]
	case bus.CodecAAC:
		if len(u.Payload) == 0 {
			return nil, nil
		}
		o.one[0] = u.Payload
		pkts, err = o.aac.Encode(o.one[:])
		o.one[0] = nil
	case bus.CodecOpus:
		if len(u.Payload) == 0 {
			return nil, nil
		}
		var p *rtp.Packet
		if p, err = o.opus.Encode(u.Payload); err == nil {
			pkts = []*rtp.Packet{p}
		}
	}
	if err != nil {
		return nil, err
	}
	ts := o.timestamp(u.PTS, base)
	for _, p := range pkts {
		p.Timestamp = ts
	}
	if len(pkts) > 0 {
		o.nextSeq.Store(uint32(pkts[len(pkts)-1].SequenceNumber + 1))
	}
	return pkts, nil
}

// timestamp is the RTP timestamp of a bus time on the track's clock, offset by the feed's
// base.
func (o *outTrack) timestamp(pts time.Duration, base uint32) uint32 {
	return base + uint32(toClock(pts, o.clockRate))
}

// hasParamSets reports whether an AVCC access unit carries its own SPS (H.264) or VPS/SPS
// (H.265).
func hasParamSets(c bus.Codec, b []byte) bool {
	for len(b) > 0 {
		nalu, rest, ok := bus.NextNALU(b)
		if !ok {
			return false
		}
		if c == bus.CodecH264 {
			if nalu[0]&0x1f == 7 {
				return true
			}
		} else if typ := (nalu[0] >> 1) & 0x3f; typ == 32 || typ == 33 {
			return true
		}
		b = rest
	}
	return false
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

// toClock converts a bus timestamp to ticks of a clock rate, rounding to the nearest tick,
// without overflowing for long streams.
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
