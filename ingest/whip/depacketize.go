package whip

import (
	"errors"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpav1"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpvp8"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpvp9"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// Reorder windows: how many later packets a missing one is waited for. Video waits longer
// (a NACK retransmission takes a round trip; a video frame is many packets); audio gives
// up fast (a lost 20 ms Opus packet is concealed by the decoder).
const (
	videoReorderWait = 48
	audioReorderWait = 4
)

// frame is one access unit rebuilt from RTP, in the bus's payload form.
type frame struct {
	ts      uint32 // RTP timestamp
	payload []byte
	key     bool
	// sps and pps are the H.264 parameter sets the access unit carried (nil when none).
	sps, pps []byte
}

// depacketizer turns the RTP packets of one track into frames. It is driven by one
// goroutine. After a lost packet it drops video frames until the next keyframe (a frame
// that references a broken one decodes to garbage) and reports that one is needed.
type depacketizer struct {
	codec   bus.Codec
	reorder *reorder
	ordered []*rtp.Packet

	h264 *rtph264.Decoder
	vp8  *rtpvp8.Decoder
	vp9  *rtpvp9.Decoder
	av1  *rtpav1.Decoder

	// Last packet fed to the H.264 decoder, to date an access unit whose marker bit was
	// missing (the decoder then returns it when the timestamp changes).
	lastTS     uint32
	lastMarker bool
	fed        bool

	// waitKey: drop video frames until a keyframe.
	waitKey bool
}

func newDepacketizer(codec bus.Codec) *depacketizer {
	d := &depacketizer{codec: codec, waitKey: codec.IsVideo()}
	if codec.IsVideo() {
		d.reorder = newReorder(videoReorderWait)
	} else {
		d.reorder = newReorder(audioReorderWait)
	}
	d.resetDecoder()
	return d
}

func (d *depacketizer) resetDecoder() {
	d.fed = false
	switch d.codec {
	case bus.CodecH264:
		d.h264 = &rtph264.Decoder{PacketizationMode: 1}
		_ = d.h264.Init()
	case bus.CodecVP8:
		d.vp8 = &rtpvp8.Decoder{}
		_ = d.vp8.Init()
	case bus.CodecVP9:
		d.vp9 = &rtpvp9.Decoder{}
		_ = d.vp9.Init()
	case bus.CodecAV1:
		d.av1 = &rtpav1.Decoder{}
		_ = d.av1.Init()
	}
}

// push feeds one packet and appends the completed frames to out. needKey reports that the
// track lost data and waits for a keyframe (the caller asks the sender for one).
func (d *depacketizer) push(p *rtp.Packet, out []frame) (_ []frame, needKey bool) {
	ordered, lost := d.reorder.push(p, d.ordered[:0])
	if lost && d.codec.IsVideo() {
		d.resetDecoder()
		d.waitKey = true
	}
	for i, q := range ordered {
		out = d.decode(q, out)
		ordered[i] = nil
	}
	d.ordered = ordered[:0]
	return out, d.waitKey
}

// decode feeds one in-order packet to the codec's decoder.
func (d *depacketizer) decode(p *rtp.Packet, out []frame) []frame {
	if d.codec == bus.CodecOpus {
		if len(p.Payload) == 0 {
			return out
		}
		return append(out, frame{ts: p.Timestamp, key: true,
			payload: append([]byte(nil), p.Payload...)})
	}
	var (
		f   frame
		err error
	)
	f.ts = p.Timestamp
	switch d.codec {
	case bus.CodecH264:
		missedMarker := d.fed && !d.lastMarker && p.Timestamp != d.lastTS
		prevTS := d.lastTS
		d.lastTS, d.lastMarker, d.fed = p.Timestamp, p.Marker, true
		var au [][]byte
		au, err = d.h264.Decode(p)
		if err == nil {
			if missedMarker {
				f.ts = prevTS
			}
			f = h264Frame(f.ts, au)
		}
	case bus.CodecVP8:
		var b []byte
		b, err = d.vp8.Decode(p)
		if err == nil && len(b) > 0 {
			// VP8 payload header, RFC 6386 §9.1: bit 0 of the first byte is 0 on keyframes.
			f.payload, f.key = b, b[0]&1 == 0
		}
	case bus.CodecVP9:
		var b []byte
		b, err = d.vp9.Decode(p)
		if err == nil && len(b) > 0 {
			f.payload, f.key = b, vp9.IsRandomAccess(b)
		}
	case bus.CodecAV1:
		var tu [][]byte
		tu, err = d.av1.Decode(p)
		if err == nil && len(tu) > 0 {
			f.key = av1.IsRandomAccess2(tu)
			f.payload, err = av1.Bitstream(tu).Marshal()
		}
	default:
		return out
	}
	if err != nil {
		if !isMorePackets(err) {
			// A packet the decoder cannot use: treat it like a loss.
			d.resetDecoder()
			d.waitKey = true
		}
		return out
	}
	if len(f.payload) == 0 {
		return out
	}
	if d.waitKey {
		if !f.key {
			return out
		}
		d.waitKey = false
	}
	return append(out, f)
}

func isMorePackets(err error) bool {
	return errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtpvp8.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpvp9.ErrMorePacketsNeeded) || errors.Is(err, rtpav1.ErrMorePacketsNeeded)
}

// h264Frame builds the AVCC payload of an access unit, leaving out access unit delimiters
// and filler data, and notes its parameter sets and whether it holds an IDR slice.
func h264Frame(ts uint32, au [][]byte) frame {
	f := frame{ts: ts}
	kept := au[:0:0]
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
			continue
		case h264.NALUTypeSPS:
			f.sps = append([]byte(nil), n...)
		case h264.NALUTypePPS:
			f.pps = append([]byte(nil), n...)
		case h264.NALUTypeIDR:
			f.key = true
		}
		kept = append(kept, n)
	}
	if len(kept) == 0 {
		return f
	}
	f.payload = bus.JoinNALUs(kept)
	return f
}
