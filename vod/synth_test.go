package vod

import (
	"encoding/binary"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// synthTracks are an H.264 and an AAC track with well-formed configuration records. The
// synthetic payloads are not decodable: the recorder does not look into them.
func synthTracks() []*bus.Track {
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10}
	pps := []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	cfg, _ := bus.AVCConfig(sps, pps)
	return []*bus.Track{
		{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg, Width: 1280, Height: 720},
		{Codec: bus.CodecAAC, ClockRate: 48000, Config: []byte{0x11, 0x90}, SampleRate: 48000, Channels: 2},
	}
}

// synthStream generates the units of a 30 fps video + 46.875 fps AAC stream of about
// bitrate bits per second with a keyframe every gop video frames, in DTS order.
type synthStream struct {
	tracks       []*bus.Track
	key, inter   []byte
	aac          []byte
	gop          int
	video, audio int
}

func newSynthStream(tracks []*bus.Track, bitrate, gop int) *synthStream {
	frame := bitrate / 8 / 30
	s := &synthStream{tracks: tracks, gop: gop, aac: make([]byte, 256)}
	// Keyframes 4× the size of the other frames, the average frame as given.
	inter := frame * gop / (gop + 3)
	s.key, s.inter = make([]byte, 4*inter), make([]byte, inter)
	for _, b := range [][]byte{s.key, s.inter} {
		for i := range b {
			b[i] = byte(i)
		}
		binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	}
	s.key[4], s.inter[4] = 0x65, 0x41
	return s
}

// next returns the next unit and its media time.
func (s *synthStream) next() *bus.Unit {
	vt := time.Duration(s.video) * time.Second / 30
	at := time.Duration(s.audio) * 1024 * time.Second / 48000
	if vt <= at {
		key := s.video%s.gop == 0
		p := s.inter
		if key {
			p = s.key
		}
		s.video++
		return &bus.Unit{Track: s.tracks[0], PTS: vt, DTS: vt, Key: key, Payload: p}
	}
	s.audio++
	return &bus.Unit{Track: s.tracks[1], PTS: at, DTS: at, Key: true, Payload: s.aac}
}
