package rtmp

import (
	"time"

	"github.com/yutopp/go-amf0"

	"github.com/relaycast/relaycast/bus"
)

// FLV tag bodies (Adobe FLV 10.1 §E.4.2/§E.4.3; Enhanced RTMP v1 for H.265). The bus's
// payloads are already in FLV's form — AVCC NAL units with 4-byte lengths, raw AAC access
// units — so a media message is a few header bytes followed by the unit's payload as is.

// FLV video constants.
const (
	flvFrameKey     = 1
	flvFrameInter   = 2
	flvCodecAVC     = 7
	flvAVCSeqHeader = 0
	flvAVCNALU      = 1
	// Enhanced RTMP: IsExHeader bit and packet types.
	flvExHeader          = 0x80
	flvExSequenceStart   = 0
	flvExCodedFrames     = 1
	flvExCodedFramesX    = 3
	flvAACHeader         = 0xaf // SoundFormat 10 (AAC), 44 kHz, 16-bit, stereo: fixed for AAC
	flvAACSeqHeader      = 0
	flvAACRaw            = 1
	flvAudioCodecAAC     = 10
	flvMaxVideoTagHeader = 8
)

var fourCCHEVC = [4]byte{'h', 'v', 'c', '1'}

// carried reports whether RTMP playback carries units of codec c.
func carried(c bus.Codec) bool {
	return c == bus.CodecH264 || c == bus.CodecH265 || c == bus.CodecAAC
}

// tagHeader writes the FLV tag header of a coded frame of u into h and returns its length,
// and the RTMP message type and chunk stream.
func tagHeader(h *[flvMaxVideoTagHeader]byte, u *bus.Unit) (n int, typ, csid byte) {
	switch u.Track.Codec {
	case bus.CodecAAC:
		h[0], h[1] = flvAACHeader, flvAACRaw
		return 2, typeAudio, csidAudio
	case bus.CodecH264:
		h[0] = flvFrameInter<<4 | flvCodecAVC
		if u.Key {
			h[0] = flvFrameKey<<4 | flvCodecAVC
		}
		h[1] = flvAVCNALU
		putCTS(h[2:5], u)
		return 5, typeVideo, csidVideo
	case bus.CodecH265:
		ft := byte(flvFrameInter)
		if u.Key {
			ft = flvFrameKey
		}
		copy(h[1:5], fourCCHEVC[:])
		if u.PTS == u.DTS {
			h[0] = flvExHeader | ft<<4 | flvExCodedFramesX
			return 5, typeVideo, csidVideo
		}
		h[0] = flvExHeader | ft<<4 | flvExCodedFrames
		putCTS(h[5:8], u)
		return 8, typeVideo, csidVideo
	}
	return 0, 0, 0
}

// putCTS writes the composition time offset (PTS-DTS in ms, signed 24-bit).
func putCTS(b []byte, u *bus.Unit) {
	cts := int32((u.PTS - u.DTS) / time.Millisecond)
	cts = max(min(cts, 1<<23-1), -(1 << 23))
	b[0], b[1], b[2] = byte(cts>>16), byte(cts>>8), byte(cts)
}

// seqHeader returns the FLV body of track t's sequence header, or nil when RTMP cannot
// carry it. The configuration record is rewritten to announce 4-byte NAL unit lengths,
// the form of bus payloads.
func seqHeader(t *bus.Track) []byte {
	switch t.Codec {
	case bus.CodecH264:
		if len(t.Config) < 7 {
			return nil
		}
		b := append([]byte{flvFrameKey<<4 | flvCodecAVC, flvAVCSeqHeader, 0, 0, 0}, t.Config...)
		b[5+4] |= 0x03
		return b
	case bus.CodecH265:
		if len(t.Config) < 23 {
			return nil
		}
		b := append([]byte{flvExHeader | flvFrameKey<<4 | flvExSequenceStart}, fourCCHEVC[:]...)
		b = append(b, t.Config...)
		b[5+21] |= 0x03
		return b
	case bus.CodecAAC:
		if len(t.Config) < 2 {
			return nil
		}
		return append([]byte{flvAACHeader, flvAACSeqHeader}, t.Config...)
	}
	return nil
}

// tracks is the pair of tracks an RTMP connection carries, with their FLV bodies. It is
// immutable: a codec change makes a new one.
type tracks struct {
	video, audio       *bus.Track
	videoSeq, audioSeq []byte
}

func newTracks(video, audio *bus.Track) *tracks {
	t := &tracks{video: video, audio: audio}
	if video != nil {
		t.videoSeq = seqHeader(video)
		if t.videoSeq == nil {
			t.video = nil
		}
	}
	if audio != nil {
		t.audioSeq = seqHeader(audio)
		if t.audioSeq == nil {
			t.audio = nil
		}
	}
	return t
}

// pick returns the tracks RTMP carries among ts: the first H.264/H.265 and the first AAC.
func pick(ts []*bus.Track) (video, audio *bus.Track) {
	for _, t := range ts {
		switch {
		case video == nil && (t.Codec == bus.CodecH264 || t.Codec == bus.CodecH265):
			video = t
		case audio == nil && t.Codec == bus.CodecAAC:
			audio = t
		}
	}
	return video, audio
}

// with returns the tracks after unit track t replaced the one of its kind, or nil when t
// is not carried (another track of the kind is, or its codec is not supported).
func (ts *tracks) with(t *bus.Track) *tracks {
	if t.Codec.IsVideo() {
		if ts.video != nil && ts.video.Index != t.Index {
			return nil
		}
		return newTracks(t, ts.audio)
	}
	if ts.audio != nil && ts.audio.Index != t.Index {
		return nil
	}
	return newTracks(ts.video, t)
}

// has reports whether u's track is the carried one of its kind.
func (ts *tracks) has(u *bus.Unit) bool {
	return u.Track == ts.video || u.Track == ts.audio
}

// metadata returns the AMF0 body of an onMetaData data message (without its name).
func (ts *tracks) metadata() amf0.ECMAArray {
	m := amf0.ECMAArray{"duration": 0.0, "encoder": "relaycast"}
	if v := ts.video; v != nil {
		m["width"], m["height"] = float64(v.Width), float64(v.Height)
		if v.Codec == bus.CodecH265 {
			// Enhanced RTMP: the FourCC as a number.
			m["videocodecid"] = float64(uint32(fourCCHEVC[0])<<24 | uint32(fourCCHEVC[1])<<16 |
				uint32(fourCCHEVC[2])<<8 | uint32(fourCCHEVC[3]))
		} else {
			m["videocodecid"] = float64(flvCodecAVC)
		}
	}
	if a := ts.audio; a != nil {
		m["audiocodecid"] = float64(flvAudioCodecAAC)
		m["audiosamplerate"] = float64(a.SampleRate)
		m["audiosamplesize"] = 16.0
		m["stereo"] = a.Channels != 1
	}
	return m
}

// appendHeaders appends the messages that start a track set at timestamp ts: onMetaData
// (when meta) and the sequence headers.
func (ts *tracks) appendHeaders(dst []byte, msid, tsMS uint32, meta bool, dataName string) []byte {
	if meta {
		var body []byte
		if dataName == "@setDataFrame" {
			body = amf0Values(dataName, "onMetaData", ts.metadata())
		} else {
			body = amf0Values("onMetaData", ts.metadata())
		}
		dst = appendMessage(dst, csidData, typeDataAMF0, msid, tsMS, body, nil)
	}
	if ts.video != nil {
		dst = appendMessage(dst, csidVideo, typeVideo, msid, tsMS, ts.videoSeq, nil)
	}
	if ts.audio != nil {
		dst = appendMessage(dst, csidAudio, typeAudio, msid, tsMS, ts.audioSeq, nil)
	}
	return dst
}

// appendUnit appends the RTMP message of unit u with timestamp tsMS.
func appendUnit(dst []byte, u *bus.Unit, msid, tsMS uint32) []byte {
	var h [flvMaxVideoTagHeader]byte
	n, typ, csid := tagHeader(&h, u)
	if n == 0 {
		return dst
	}
	return appendMessage(dst, csid, typ, msid, tsMS, h[:n], u.Payload)
}

// millis converts a bus timestamp to an RTMP timestamp (ms, wrapping at 32 bits; negative
// times, which RTMP cannot carry, become 0).
func millis(d time.Duration) uint32 {
	if d < 0 {
		return 0
	}
	return uint32(int64(d / time.Millisecond))
}
