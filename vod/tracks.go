package vod

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/relaycast/relaycast/bus"
)

// Matroska TrackType values.
const (
	trackTypeVideo = 1
	trackTypeAudio = 2
)

// errUnsupportedCodec: the recorder has no Matroska mapping for the track's codec.
var errUnsupportedCodec = errors.New("codec not recorded")

// errTrackNotReady: the track lacks the codec configuration its Matroska CodecPrivate
// needs (a WHIP video track before its first SPS/PPS).
var errTrackNotReady = errors.New("codec configuration missing")

// mkvTrackEntry is a Matroska TrackEntry (the fields the recorder writes).
type mkvTrackEntry struct {
	TrackNumber  uint64    `ebml:"TrackNumber"`
	TrackUID     uint64    `ebml:"TrackUID"`
	TrackType    uint64    `ebml:"TrackType"`
	FlagLacing   uint64    `ebml:"FlagLacing"`
	Language     string    `ebml:"Language"`
	CodecID      string    `ebml:"CodecID"`
	CodecPrivate []byte    `ebml:"CodecPrivate,omitempty"`
	CodecDelay   uint64    `ebml:"CodecDelay,omitempty"`
	SeekPreRoll  uint64    `ebml:"SeekPreRoll,omitempty"`
	Video        *mkvVideo `ebml:"Video,omitempty"`
	Audio        *mkvAudio `ebml:"Audio,omitempty"`
}

type mkvVideo struct {
	PixelWidth  uint64 `ebml:"PixelWidth"`
	PixelHeight uint64 `ebml:"PixelHeight"`
}

type mkvAudio struct {
	SamplingFrequency float64 `ebml:"SamplingFrequency"`
	Channels          uint64  `ebml:"Channels"`
}

// recordable reports whether the recorder has a Matroska mapping for the codec.
func recordable(c bus.Codec) bool {
	switch c {
	case bus.CodecH264, bus.CodecH265, bus.CodecAAC, bus.CodecOpus:
		return true
	}
	return false
}

// mkvTrack maps a bus track to a Matroska TrackEntry with the given track number. Units are
// written as they are on the bus: AVCC access units (4-byte NAL lengths, which the bus's
// configuration records declare), raw AAC frames, Opus packets.
func mkvTrack(t *bus.Track, num uint64) (mkvTrackEntry, error) {
	e := mkvTrackEntry{TrackNumber: num, TrackUID: num, Language: "und"}
	switch t.Codec {
	case bus.CodecH264:
		sps, _, err := bus.ParseAVCConfig(t.Config)
		if err != nil {
			return e, fmt.Errorf("%w: h264 %v", errTrackNotReady, err)
		}
		w, h := t.Width, t.Height
		if w <= 0 || h <= 0 {
			var s h264.SPS
			if err := s.Unmarshal(sps[0]); err != nil {
				return e, fmt.Errorf("%w: h264 sps: %v", errTrackNotReady, err)
			}
			w, h = s.Width(), s.Height()
		}
		e.TrackType, e.CodecID, e.CodecPrivate = trackTypeVideo, "V_MPEG4/ISO/AVC", t.Config
		e.Video = &mkvVideo{PixelWidth: uint64(max(w, 1)), PixelHeight: uint64(max(h, 1))}
	case bus.CodecH265:
		_, sps, _, err := bus.ParseHEVCConfig(t.Config)
		if err != nil {
			return e, fmt.Errorf("%w: h265 %v", errTrackNotReady, err)
		}
		w, h := t.Width, t.Height
		if w <= 0 || h <= 0 {
			var s h265.SPS
			if err := s.Unmarshal(sps[0]); err != nil {
				return e, fmt.Errorf("%w: h265 sps: %v", errTrackNotReady, err)
			}
			w, h = s.Width(), s.Height()
		}
		e.TrackType, e.CodecID, e.CodecPrivate = trackTypeVideo, "V_MPEGH/ISO/HEVC", t.Config
		e.Video = &mkvVideo{PixelWidth: uint64(max(w, 1)), PixelHeight: uint64(max(h, 1))}
	case bus.CodecAAC:
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(t.Config); err != nil {
			return e, fmt.Errorf("%w: aac AudioSpecificConfig: %v", errTrackNotReady, err)
		}
		rate, ch := t.SampleRate, t.Channels
		if rate <= 0 {
			rate = asc.SampleRate
		}
		if ch <= 0 {
			ch = max(bus.AACChannels(asc.ChannelConfig), 1)
		}
		e.TrackType, e.CodecID, e.CodecPrivate = trackTypeAudio, "A_AAC", t.Config
		e.Audio = &mkvAudio{SamplingFrequency: float64(rate), Channels: uint64(ch)}
	case bus.CodecOpus:
		head := t.Config
		if len(head) < 19 || string(head[:8]) != "OpusHead" {
			head = opusHead(t.Channels)
		}
		ch := int(head[9])
		// Matroska's CodecDelay is OpusHead's pre-skip (48 kHz samples) in ns; SeekPreRoll
		// is the 80 ms the Matroska Opus mapping recommends.
		preSkip := binary.LittleEndian.Uint16(head[10:])
		e.TrackType, e.CodecID, e.CodecPrivate = trackTypeAudio, "A_OPUS", head
		e.CodecDelay = uint64(preSkip) * 1_000_000_000 / 48000
		e.SeekPreRoll = 80_000_000
		e.Audio = &mkvAudio{SamplingFrequency: 48000, Channels: uint64(max(ch, 1))}
	default:
		return e, fmt.Errorf("%w: %s", errUnsupportedCodec, t.Codec)
	}
	return e, nil
}

// opusHead builds the OpusHead (RFC 7845 §5.1) of a track that came without one: version
// 1, no pre-skip (a live capture has no encoder priming to hide), 48 kHz, mapping family 0.
func opusHead(channels int) []byte {
	if channels <= 0 || channels > 2 {
		channels = 2
	}
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1
	h[9] = byte(channels)
	binary.LittleEndian.PutUint32(h[12:], 48000)
	return h
}
