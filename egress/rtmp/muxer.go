package rtmp

import (
	"time"

	"github.com/relaycast/relaycast/bus"
)

// Muxer turns the units of one bus stream into the RTMP messages of one connection: FLV
// tags chunked for ChunkSize, each with a type-0 chunk header. It emits the onMetaData
// data message and the sequence headers before the first unit, and new sequence headers
// whenever a unit's Track pointer changes (new codec parameters). It carries the first
// H.264/H.265 track (H.265 as Enhanced RTMP) and the first AAC track; units of other tracks
// are skipped. A Muxer is for one goroutine.
type Muxer struct {
	msid     uint32
	rebase   bool
	base     time.Duration
	baseSet  bool
	tracks   *tracks
	started  bool
	dataName string
}

// NewMuxer returns a Muxer for message stream msid. With rebase, timestamps start at 0 with
// the first unit (a publish to another server, whatever the bus's timeline); without,
// they are the bus's own (playback). publish selects the publisher's form of metadata
// (@setDataFrame) over the server's (onMetaData).
func NewMuxer(msid uint32, rebase, publish bool) *Muxer {
	m := &Muxer{msid: msid, rebase: rebase, tracks: &tracks{}}
	if publish {
		m.dataName = "@setDataFrame"
	}
	return m
}

// SetTracks announces the stream's tracks (bus.Stream.Tracks), so that the first metadata
// names all of them even if the first unit is video only. Call it before the first unit.
func (m *Muxer) SetTracks(ts []*bus.Track) {
	if !m.started {
		m.tracks = newTracks(pick(ts))
	}
}

// AppendUnit appends the messages for u to dst and returns it; dst is returned as is for
// a unit RTMP does not carry.
func (m *Muxer) AppendUnit(dst []byte, u *bus.Unit) []byte {
	if !carried(u.Track.Codec) {
		return dst
	}
	if !m.baseSet {
		m.baseSet = true
		if m.rebase {
			m.base = u.DTS
		}
	}
	ts := millis(u.DTS - m.base)
	if !m.tracks.has(u) {
		next := m.tracks.with(u.Track)
		if next == nil || !next.has(u) {
			return dst
		}
		m.tracks = next
		dst = m.tracks.appendHeaders(dst, m.msid, ts, !m.started, m.dataName)
		m.started = true
	} else if !m.started {
		dst = m.tracks.appendHeaders(dst, m.msid, ts, true, m.dataName)
		m.started = true
	}
	return appendUnit(dst, u, m.msid, ts)
}
