package vod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// Layout of a chunk file. The recorder writes the elements with ebml-go's marshaller but
// places them itself (rather than through webm.NewSimpleBlockWriter, whose clusters count
// from each file's first block, so chunks could not continue the session's timeline, and
// whose writer goroutine stops reading after a write error, blocking later writes):
//
//	EBML header (DocType matroska)
//	Segment, size unknown while recording (8-byte size field, set on close)
//	  Void (96 bytes: room for the SeekHead written on close)
//	  Info (TimecodeScale 1 ms, DateUTC, an 11-byte Void that becomes Duration on close)
//	  Tracks
//	  Cluster…  (known size, ≤ 1 s each, written whole: a crash cuts at most the last one)
//	  Cues      (written on close, one point per cluster that starts with a keyframe)
//
// A file cut by a crash is the prefix up to some cluster: repair (repair.go) finds the last
// complete cluster, truncates there and does what close does.
const (
	// timecodeScale is the Matroska tick in ns: timestamps are in ms.
	timecodeScale = 1_000_000
	// seekReserve is the room kept after the Segment header for the SeekHead.
	seekReserve = 96
	// durationLen is the size of the Duration element (2-byte id, 1-byte size, float64),
	// and of the Void that holds its place while recording.
	durationLen = 11
	// maxClusterSpan is the longest cluster in ms: also the most media a crash can cut.
	maxClusterSpan = 1000
	// maxClusterBytes bounds one cluster's buffered bytes.
	maxClusterBytes = 32 << 20
	// maxRelTimecode keeps blocks' int16 timestamps relative to their cluster in range.
	maxRelTimecode = 30000
)

// Matroska element ids the recorder refers to by value.
var (
	idEBML     = []byte{0x1A, 0x45, 0xDF, 0xA3}
	idSegment  = []byte{0x18, 0x53, 0x80, 0x67}
	idSeekHead = []byte{0x11, 0x4D, 0x9B, 0x74}
	idInfo     = []byte{0x15, 0x49, 0xA9, 0x66}
	idTracks   = []byte{0x16, 0x54, 0xAE, 0x6B}
	idCluster  = []byte{0x1F, 0x43, 0xB6, 0x75}
	idCues     = []byte{0x1C, 0x53, 0xBB, 0x6B}
	idDuration = []byte{0x44, 0x89}
	idVoid     = []byte{0xEC}
)

// layout holds the offsets close (and repair) patch.
type layout struct {
	// segSizePos is the offset of the Segment's 8-byte size field; segData that of its
	// first child (positions in SeekHead and Cues count from there).
	segSizePos, segData int64
	// reservePos and reserveLen delimit the room for the SeekHead.
	reservePos, reserveLen int64
	// infoPos and tracksPos are the offsets of Info and Tracks; durationPos that of the
	// 11-byte Void (or Duration) inside Info.
	infoPos, tracksPos, durationPos int64
}

type mkvHeader struct {
	Header  webm.EBMLHeader `ebml:"EBML"`
	Segment struct{}        `ebml:"Segment,size=unknown"`
}

type mkvVoid struct {
	Void []byte `ebml:"Void"`
}

type mkvInfo struct {
	Info struct {
		TimecodeScale uint64    `ebml:"TimecodeScale"`
		MuxingApp     string    `ebml:"MuxingApp"`
		WritingApp    string    `ebml:"WritingApp"`
		DateUTC       time.Time `ebml:"DateUTC"`
		Title         string    `ebml:"Title,omitempty"`
		Void          []byte    `ebml:"Void"`
	} `ebml:"Info"`
}

type mkvTracks struct {
	Tracks struct {
		TrackEntry []mkvTrackEntry `ebml:"TrackEntry"`
	} `ebml:"Tracks"`
}

type mkvCluster struct {
	Cluster struct {
		Timecode    uint64       `ebml:"Timecode"`
		SimpleBlock []ebml.Block `ebml:"SimpleBlock"`
	} `ebml:"Cluster"`
}

// header marshals the start of a chunk file up to the first cluster and returns its layout.
func header(entries []mkvTrackEntry, title string, date time.Time) ([]byte, layout, error) {
	var b bytes.Buffer
	var lay layout
	h := mkvHeader{Header: *webm.DefaultEBMLHeader}
	h.Header.DocType = "matroska"
	if err := ebml.Marshal(&h, &b); err != nil {
		return nil, lay, err
	}
	lay.segData = int64(b.Len())
	lay.segSizePos = lay.segData - 8
	lay.reservePos, lay.reserveLen = lay.segData, seekReserve
	if err := ebml.Marshal(&mkvVoid{Void: make([]byte, seekReserve-2)}, &b); err != nil {
		return nil, lay, err
	}
	lay.infoPos = int64(b.Len())
	var info mkvInfo
	info.Info.TimecodeScale = timecodeScale
	info.Info.MuxingApp, info.Info.WritingApp = "relaycast", "relaycast"
	info.Info.DateUTC, info.Info.Title = date.UTC(), title
	info.Info.Void = make([]byte, durationLen-2)
	if err := ebml.Marshal(&info, &b); err != nil {
		return nil, lay, err
	}
	lay.durationPos = int64(b.Len()) - durationLen
	lay.tracksPos = int64(b.Len())
	var tr mkvTracks
	tr.Tracks.TrackEntry = entries
	if err := ebml.Marshal(&tr, &b); err != nil {
		return nil, lay, err
	}
	out := b.Bytes()
	if out[lay.segSizePos] != 0x01 || int64(len(out)) < lay.tracksPos ||
		!bytes.Equal(out[lay.durationPos:lay.durationPos+2], []byte{0xEC, 0x89}) ||
		out[lay.reservePos+1] != 0x80|(seekReserve-2) {
		return nil, lay, errors.New("vod: unexpected header encoding")
	}
	return out, lay, nil
}

// span tracks the media extent of a chunk: the smallest timestamp and, per track, the
// largest timestamp and the shortest positive step between consecutive blocks (a frame
// duration, which B-frame reordering does not shorten).
type span struct {
	minTS  int64
	hasMin bool
	tracks []trackSpan
}

type trackSpan struct {
	num          uint64
	last, max    int64
	step         int64
	seen, stepOK bool
}

func (s *span) add(num uint64, ts int64) {
	if !s.hasMin || ts < s.minTS {
		s.minTS, s.hasMin = ts, true
	}
	var t *trackSpan
	for i := range s.tracks {
		if s.tracks[i].num == num {
			t = &s.tracks[i]
			break
		}
	}
	if t == nil {
		s.tracks = append(s.tracks, trackSpan{num: num})
		t = &s.tracks[len(s.tracks)-1]
	}
	if t.seen {
		if d := ts - t.last; d > 0 && d <= maxClusterSpan && (!t.stepOK || d < t.step) {
			t.step, t.stepOK = d, true
		}
		t.max = max(t.max, ts)
	} else {
		t.max = ts
	}
	t.last, t.seen = ts, true
}

// end returns the end of the media: the largest timestamp plus one frame, over the tracks.
func (s *span) end() int64 {
	e := s.minTS
	for _, t := range s.tracks {
		e = max(e, t.max+t.step)
	}
	return e
}

// duration returns the media duration in ms.
func (s *span) duration() int64 {
	if !s.hasMin {
		return 0
	}
	return s.end() - s.minTS
}

// cluster buffers the blocks of the cluster being built.
type cluster struct {
	blocks []ebml.Block
	ts     []int64
	first  int64
	min    int64
	max    int64
	bytes  int
	cue    bool
}

func (c *cluster) empty() bool { return len(c.blocks) == 0 }

// fits reports whether a block at ts with n bytes may join the cluster.
func (c *cluster) fits(ts int64, n int) bool {
	return ts-c.first < maxClusterSpan && ts-c.min <= maxRelTimecode && c.max-ts <= maxRelTimecode &&
		c.bytes+n <= maxClusterBytes
}

func (c *cluster) add(num uint64, key bool, ts int64, data []byte, cue bool) {
	if c.empty() {
		c.first, c.min, c.max, c.cue = ts, ts, ts, cue
	}
	c.min, c.max = min(c.min, ts), max(c.max, ts)
	c.blocks = append(c.blocks, ebml.Block{TrackNumber: num, Keyframe: key, Data: [][]byte{data}})
	c.ts = append(c.ts, ts)
	c.bytes += len(data)
}

// marshal encodes the cluster (timestamp: its smallest block's, so that every relative
// timestamp is ≥ 0) into b and empties it.
func (c *cluster) marshal(b *bytes.Buffer) error {
	var m mkvCluster
	m.Cluster.Timecode = uint64(c.min)
	for i := range c.blocks {
		c.blocks[i].Timecode = int16(c.ts[i] - c.min)
	}
	m.Cluster.SimpleBlock = c.blocks
	err := ebml.Marshal(&m, b)
	clear(c.blocks) // drop the payload references
	c.blocks, c.ts, c.bytes = c.blocks[:0], c.ts[:0], 0
	return err
}

// finalize turns a chunk whose clusters end at end into a complete file: Cues at end, the
// Duration in Info, the SeekHead in its reserved room and the Segment size. It returns the
// new file size. Everything but the Cues overwrites bytes in place, so finalizing twice
// gives the same file.
func finalize(w io.WriterAt, lay layout, cues []webm.CuePoint, durationMS int64, end int64) (int64, error) {
	var b bytes.Buffer
	size := end
	if len(cues) > 0 {
		c := struct {
			Cues webm.Cues `ebml:"Cues"`
		}{webm.Cues{CuePoint: cues}}
		if err := ebml.Marshal(&c, &b); err != nil {
			return 0, err
		}
		if _, err := w.WriteAt(b.Bytes(), end); err != nil {
			return 0, err
		}
		size += int64(b.Len())
	}

	b.Reset()
	d := struct {
		Duration float64 `ebml:"Duration"`
	}{float64(max(durationMS, 0))}
	if err := ebml.Marshal(&d, &b, ebml.WithDataSizeLen(1)); err != nil {
		return 0, err
	}
	if b.Len() != durationLen {
		return 0, fmt.Errorf("vod: Duration encodes to %d bytes", b.Len())
	}
	if _, err := w.WriteAt(b.Bytes(), lay.durationPos); err != nil {
		return 0, err
	}

	seeks := []webm.Seek{
		{SeekID: idInfo, SeekPosition: uint64(lay.infoPos - lay.segData)},
		{SeekID: idTracks, SeekPosition: uint64(lay.tracksPos - lay.segData)},
	}
	if len(cues) > 0 {
		seeks = append(seeks, webm.Seek{SeekID: idCues, SeekPosition: uint64(end - lay.segData)})
	}
	sh, err := seekHead(seeks, lay.reserveLen)
	if err != nil {
		return 0, err
	}
	if _, err := w.WriteAt(sh, lay.reservePos); err != nil {
		return 0, err
	}

	var sz [8]byte
	binary.BigEndian.PutUint64(sz[:], uint64(size-lay.segData))
	sz[0] = 0x01 // 8-byte EBML size
	if _, err := w.WriteAt(sz[:], lay.segSizePos); err != nil {
		return 0, err
	}
	return size, nil
}

// seekHead encodes a SeekHead followed by a Void so that both fill exactly n bytes.
func seekHead(seeks []webm.Seek, n int64) ([]byte, error) {
	for _, sizeLen := range []int{0, 2, 3} {
		var b bytes.Buffer
		s := struct {
			SeekHead webm.SeekHead `ebml:"SeekHead"`
		}{webm.SeekHead{Seek: seeks}}
		var opts []ebml.MarshalOption
		if sizeLen > 0 {
			opts = append(opts, ebml.WithDataSizeLen(sizeLen))
		}
		if err := ebml.Marshal(&s, &b, opts...); err != nil {
			return nil, err
		}
		rest := n - int64(b.Len())
		// A Void takes at least 2 bytes (id and a 1-byte size); 1 byte left over cannot be
		// filled, so encode the SeekHead again with wider sizes.
		if rest < 0 || rest == 1 || rest > 127 {
			continue
		}
		if rest >= 2 {
			if err := ebml.Marshal(&mkvVoid{Void: make([]byte, rest-2)}, &b); err != nil {
				return nil, err
			}
		}
		if int64(b.Len()) == n {
			return b.Bytes(), nil
		}
	}
	return nil, errors.New("vod: SeekHead does not fit its room")
}

// durationFromFloat converts a Matroska Duration (ms ticks) to a time.Duration.
func durationFromFloat(f float64) time.Duration {
	if math.IsNaN(f) || f < 0 || f > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0
	}
	return time.Duration(f * float64(time.Millisecond))
}
