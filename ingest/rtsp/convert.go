package rtsp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpfragmented"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// inTrack turns the RTP packets of one announced format into bus units. Its methods are
// called from one goroutine at a time (gortsplib delivers a session's packets in order).
type inTrack struct {
	index     int // bus track index
	media     *description.Media
	format    format.Format
	codec     bus.Codec
	clockRate int
	// track holds the current parameters; nil while they are unknown (H.264 announced
	// without sprop-parameter-sets, until SPS and PPS arrive in-band).
	track *bus.Track

	h264    *rtph264.Decoder
	dts     *h264.DTSExtractor
	sps     []byte
	pps     []byte
	scratch [][]byte // reused: the NAL units kept from an access unit
	withPS  [][]byte // reused: a keyframe with parameter sets, for the DTS extractor

	aac     *rtpmpeg4audio.Decoder
	latm    *rtpfragmented.Decoder
	latmCfg *mpeg4audio.StreamMuxConfig
	latmCP  bool
	opus    *rtpsimpleaudio.Decoder
}

// newInTrack maps an announced format to a bus track. It returns ErrUnsupportedCodec for
// a format the server does not ingest.
func newInTrack(index int, medi *description.Media, forma format.Format) (*inTrack, error) {
	t := &inTrack{index: index, media: medi, format: forma, clockRate: forma.ClockRate()}
	var err error
	switch f := forma.(type) {
	case *format.H264:
		t.codec = bus.CodecH264
		if t.h264, err = f.CreateDecoder(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		// The format is this session's own (parsed from its ANNOUNCE): its fields are read
		// directly, nothing else writes them.
		if len(f.SPS) > 0 && len(f.PPS) > 0 {
			// A broken sprop is not fatal: parameter sets may still come in-band.
			_ = t.setParams(bytes.Clone(f.SPS), bytes.Clone(f.PPS))
		}
	case *format.MPEG4Audio:
		if f.Config == nil {
			return nil, fmt.Errorf("%w: mpeg-4 audio without config", ErrMalformed)
		}
		if t.aac, err = f.CreateDecoder(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if t.track, err = aacTrack(index, f.Config); err != nil {
			return nil, err
		}
		t.codec = bus.CodecAAC
	case *format.MPEG4AudioLATM:
		if f.StreamMuxConfig == nil || len(f.StreamMuxConfig.Programs) == 0 ||
			len(f.StreamMuxConfig.Programs[0].Layers) == 0 ||
			f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig == nil {
			return nil, fmt.Errorf("%w: latm without StreamMuxConfig", ErrMalformed)
		}
		if t.latm, err = f.CreateDecoder(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		t.latmCfg, t.latmCP = f.StreamMuxConfig, f.CPresent
		if t.track, err = aacTrack(index, f.StreamMuxConfig.Programs[0].Layers[0].AudioSpecificConfig); err != nil {
			return nil, err
		}
		t.codec = bus.CodecAAC
	case *format.Opus:
		if t.opus, err = f.CreateDecoder(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		ch := f.ChannelCount
		if ch <= 0 {
			ch = 2
		}
		t.codec = bus.CodecOpus
		t.track = &bus.Track{Index: index, Codec: bus.CodecOpus, ClockRate: 48000, SampleRate: 48000, Channels: ch}
	default:
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedCodec, formatName(forma))
	}
	if t.clockRate <= 0 {
		return nil, fmt.Errorf("%w: clock rate %d", ErrMalformed, t.clockRate)
	}
	return t, nil
}

// aacTrack makes the bus track of an AAC stream from its AudioSpecificConfig.
func aacTrack(index int, asc *mpeg4audio.AudioSpecificConfig) (*bus.Track, error) {
	cfg, err := asc.Marshal()
	if err != nil {
		return nil, fmt.Errorf("%w: audio specific config: %v", ErrMalformed, err)
	}
	if asc.SampleRate <= 0 {
		return nil, fmt.Errorf("%w: sample rate %d", ErrMalformed, asc.SampleRate)
	}
	return &bus.Track{
		Index: index, Codec: bus.CodecAAC, ClockRate: asc.SampleRate, Config: cfg,
		SampleRate: asc.SampleRate, Channels: bus.AACChannels(asc.ChannelConfig),
	}, nil
}

// formatName names an announced format for errors and logs: its rtpmap (encoding name,
// clock rate, channels) or, for a static payload type without one, the payload type.
func formatName(forma format.Format) string {
	if m := forma.RTPMap(); m != "" {
		return m
	}
	return fmt.Sprintf("payload type %d", forma.PayloadType())
}

// setParams installs H.264 parameter sets: a new bus track (the old one's B-frame flag is
// kept). sps and pps must not be modified afterwards.
func (t *inTrack) setParams(sps, pps []byte) error {
	cfg, err := bus.AVCConfig(sps, pps)
	if err != nil {
		return err
	}
	nt := &bus.Track{Index: t.index, Codec: bus.CodecH264, ClockRate: 90000, Config: cfg}
	var s h264.SPS
	if err := s.Unmarshal(sps); err == nil {
		nt.Width, nt.Height = s.Width(), s.Height()
	}
	if t.track != nil {
		nt.BFrames = t.track.BFrames
	}
	t.sps, t.pps, t.track = sps, pps, nt
	return nil
}

// decode feeds one RTP packet whose timestamp, decoded on the session's common time base,
// is pts (in the format's clock). It appends the units the packet completes to out. Packet
// loss and fragments are not errors: they produce no unit. Units produced before the
// track's parameters are known are dropped.
func (t *inTrack) decode(pkt *rtp.Packet, pts int64, now time.Time, out []*bus.Unit) ([]*bus.Unit, error) {
	switch {
	case t.h264 != nil:
		au, err := t.h264.Decode(pkt)
		if err != nil {
			return out, ignorable(err)
		}
		return t.h264AU(au, pts, now, out)
	case t.aac != nil:
		aus, err := t.aac.Decode(pkt)
		if err != nil {
			return out, ignorable(err)
		}
		for i, au := range aus {
			out = t.audioUnit(au, pts+int64(i)*mpeg4audio.SamplesPerAccessUnit, now, out)
		}
		return out, nil
	case t.latm != nil:
		buf, err := t.latm.Decode(pkt)
		if err != nil {
			return out, ignorable(err)
		}
		au, err := latmPayload(buf, t.latmCP, t.latmCfg)
		if err != nil {
			return out, err
		}
		return t.audioUnit(au, pts, now, out), nil
	case t.opus != nil:
		frame, err := t.opus.Decode(pkt)
		if err != nil {
			return out, ignorable(err)
		}
		return t.audioUnit(frame, pts, now, out), nil
	}
	return out, nil
}

// ignorable drops the decoder errors that only mean "wait for more packets" or "a packet
// was lost": on UDP they are routine, and the next access unit starts afresh.
func ignorable(err error) error {
	if errors.Is(err, rtph264.ErrMorePacketsNeeded) ||
		errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) ||
		errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) ||
		errors.Is(err, rtpfragmented.ErrMorePacketsNeeded) {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// latmPayload returns the first access unit of an LATM AudioMuxElement.
func latmPayload(buf []byte, cPresent bool, cfg *mpeg4audio.StreamMuxConfig) ([]byte, error) {
	e := mpeg4audio.AudioMuxElement{MuxConfigPresent: cPresent, StreamMuxConfig: cfg}
	if err := e.Unmarshal(buf); err != nil {
		return nil, fmt.Errorf("%w: latm: %v", ErrMalformed, err)
	}
	if len(e.Payloads) == 0 || len(e.Payloads[0]) == 0 || len(e.Payloads[0][0]) == 0 {
		return nil, fmt.Errorf("%w: latm without payload", ErrMalformed)
	}
	return e.Payloads[0][0][0], nil
}

func (t *inTrack) audioUnit(au []byte, pts int64, now time.Time, out []*bus.Unit) []*bus.Unit {
	if len(au) == 0 || t.track == nil {
		return out
	}
	ts := ticks(pts, t.clockRate)
	return append(out, &bus.Unit{
		Track: t.track, PTS: ts, DTS: ts, Key: true, Payload: bytes.Clone(au), Arrival: now,
	})
}

// h264AU turns one decoded H.264 access unit into a bus unit: parameter sets go to the
// track (a change makes a new track), access unit delimiters are dropped, the rest becomes
// an AVCC payload. DTS comes from mediacommon's extractor (it follows the picture order
// count), which starts at a keyframe.
func (t *inTrack) h264AU(au [][]byte, pts int64, now time.Time, out []*bus.Unit) ([]*bus.Unit, error) {
	keep := t.scratch[:0]
	defer func() {
		clear(keep)
		t.scratch = keep[:0]
	}()
	var sps, pps []byte
	key := false
	size := 0
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
			continue
		case h264.NALUTypePPS:
			pps = n
			continue
		case h264.NALUTypeAccessUnitDelimiter:
			continue
		case h264.NALUTypeIDR:
			key = true
		}
		keep = append(keep, n)
		size += 4 + len(n)
	}
	if (sps != nil && !bytes.Equal(sps, t.sps)) || (pps != nil && !bytes.Equal(pps, t.pps)) {
		ns, np := t.sps, t.pps
		if sps != nil {
			ns = bytes.Clone(sps)
		}
		if pps != nil {
			np = bytes.Clone(pps)
		}
		if ns != nil && np != nil {
			if err := t.setParams(ns, np); err != nil {
				return out, fmt.Errorf("%w: parameter sets: %v", ErrMalformed, err)
			}
			t.dts = nil // new parameters: the extractor restarts at this keyframe
		} else {
			t.sps, t.pps = ns, np
		}
	}
	if len(keep) == 0 || t.track == nil {
		return out, nil
	}
	if t.dts == nil {
		if !key {
			return out, nil // wait for a keyframe
		}
		t.dts = &h264.DTSExtractor{}
		t.dts.Initialize()
	}
	ex := au
	withPS := key && sps == nil
	if withPS {
		// The extractor needs the SPS next to the keyframe; announced ones are in the SDP.
		ex = append(t.withPS[:0], t.sps, t.pps)
		ex = append(ex, au...)
	}
	dts, err := t.dts.Extract(ex, pts)
	if withPS {
		clear(ex)
		t.withPS = ex[:0]
	}
	if err != nil {
		// Lost or reordered packets: start again at the next keyframe.
		t.dts = nil
		return out, nil
	}
	if dts != pts && !t.track.BFrames {
		nt := *t.track
		nt.BFrames = true
		t.track = &nt
	}
	payload := make([]byte, 0, size)
	for _, n := range keep {
		payload = binary.BigEndian.AppendUint32(payload, uint32(len(n)))
		payload = append(payload, n...)
	}
	return append(out, &bus.Unit{
		Track: t.track, PTS: ticks(pts, 90000), DTS: ticks(dts, 90000), Key: key,
		Payload: payload, Arrival: now,
	}), nil
}

// ticks converts a count of clock-rate ticks to a duration without overflowing for long
// streams.
func ticks(v int64, rate int) time.Duration {
	r := int64(rate)
	secs := v / r
	rem := v % r
	return time.Duration(secs)*time.Second + time.Duration(rem*int64(time.Second)/r)
}
