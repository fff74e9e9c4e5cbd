package vod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// Bounds on the elements the chunk reader loads into memory: a chunk the recorder wrote
// stays far below them, and a damaged or hostile file cannot make it allocate more.
const (
	maxHeaderElem = 64 << 10
	maxTracksElem = 1 << 20
	maxClusterLen = maxClusterBytes + 1<<20
)

// chunkRW is what repair needs of a chunk file (*os.File; an in-memory file in tests).
type chunkRW interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
}

// elem is an EBML element header.
type elem struct {
	id      uint32
	pos     int64 // offset of the id
	data    int64 // offset of the data
	size    int64 // data size; -1 when unknown
	sizeLen int
}

func (e elem) end() int64 { return e.data + e.size }

// readElem reads the element header at pos. It fails with io.ErrUnexpectedEOF when the
// header does not fit before limit, and with ErrBadChunk for an invalid id or size.
func readElem(r io.ReaderAt, pos, limit int64) (elem, error) {
	var b [12]byte
	n := min(int64(len(b)), limit-pos)
	if n <= 0 {
		return elem{}, io.ErrUnexpectedEOF
	}
	if m, err := r.ReadAt(b[:n], pos); int64(m) < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return elem{}, err
	}
	idLen := vintLen(b[0])
	if idLen == 0 || idLen > 4 {
		return elem{}, fmt.Errorf("%w: element id at %d", ErrBadChunk, pos)
	}
	if int64(idLen) >= n {
		return elem{}, io.ErrUnexpectedEOF
	}
	var id uint32
	for _, c := range b[:idLen] {
		id = id<<8 | uint32(c)
	}
	sizeLen := vintLen(b[idLen])
	if sizeLen == 0 {
		return elem{}, fmt.Errorf("%w: element size at %d", ErrBadChunk, pos)
	}
	if int64(idLen+sizeLen) > n {
		return elem{}, io.ErrUnexpectedEOF
	}
	sb := b[idLen : idLen+sizeLen]
	size := uint64(sb[0] & (0xff >> sizeLen))
	allOnes := size == uint64(0xff>>sizeLen)
	for _, c := range sb[1:] {
		size = size<<8 | uint64(c)
		allOnes = allOnes && c == 0xff
	}
	e := elem{id: id, pos: pos, data: pos + int64(idLen+sizeLen), sizeLen: sizeLen}
	switch {
	case allOnes:
		e.size = -1
	case size > math.MaxInt64/2:
		return elem{}, fmt.Errorf("%w: element size at %d", ErrBadChunk, pos)
	default:
		e.size = int64(size)
	}
	return e, nil
}

// vintLen returns the length of the EBML variable-size integer starting with b (0: none).
func vintLen(b byte) int {
	for i := 0; i < 8; i++ {
		if b&(0x80>>i) != 0 {
			return i + 1
		}
	}
	return 0
}

func idOf(b []byte) uint32 {
	var id uint32
	for _, c := range b {
		id = id<<8 | uint32(c)
	}
	return id
}

var (
	eidEBML     = idOf(idEBML)
	eidSegment  = idOf(idSegment)
	eidSeekHead = idOf(idSeekHead)
	eidInfo     = idOf(idInfo)
	eidTracks   = idOf(idTracks)
	eidCluster  = idOf(idCluster)
	eidDuration = idOf(idDuration)
	eidVoid     = idOf(idVoid)
	eidScale    = uint32(0x2AD7B1)
)

// readBytes reads the data of e (at most max bytes).
func readBytes(r io.ReaderAt, e elem, max int64) ([]byte, error) {
	if e.size < 0 || e.size > max {
		return nil, fmt.Errorf("%w: element 0x%x of %d bytes", ErrBadChunk, e.id, e.size)
	}
	b := make([]byte, e.size)
	if _, err := r.ReadAt(b, e.data); err != nil {
		return nil, err
	}
	return b, nil
}

// chunkScan is what the reader learned about a chunk file.
type chunkScan struct {
	lay layout
	// duration is Info's Duration (ms), if the file has one.
	duration    float64
	hasDuration bool
	// main is the track indexed in Cues; mainVideo tells whether it is video.
	main      uint64
	mainVideo bool
	// clusters counts the complete clusters; good is the offset after the last one.
	clusters int
	good     int64
	cues     []webm.CuePoint
	span     span
}

type scanTrack struct {
	TrackNumber uint64 `ebml:"TrackNumber"`
	TrackType   uint64 `ebml:"TrackType"`
}

type scanTracks struct {
	Tracks struct {
		TrackEntry []scanTrack `ebml:"TrackEntry"`
	} `ebml:"Tracks"`
}

type scanCluster struct {
	Cluster struct {
		Timecode    uint64       `ebml:"Timecode"`
		SimpleBlock []ebml.Block `ebml:"SimpleBlock"`
	} `ebml:"Cluster"`
}

// scanChunk reads a chunk's structure: the header elements and, when clusters is set,
// every complete cluster up to the first damaged, cut or foreign element. It fails with
// ErrBadChunk when the file does not have the layout the recorder writes.
func scanChunk(r io.ReaderAt, fileSize int64, clusters bool) (*chunkScan, error) {
	e, err := readElem(r, 0, fileSize)
	if errors.Is(err, io.ErrUnexpectedEOF) || err == nil && e.id == eidEBML && e.end() > fileSize {
		return nil, fmt.Errorf("%w: the header was cut", ErrNoMedia)
	}
	if err != nil || e.id != eidEBML || e.size < 0 {
		return nil, fmt.Errorf("%w: no EBML header", ErrBadChunk)
	}
	hb, err := readBytes(r, e, maxHeaderElem)
	if err != nil {
		return nil, fmt.Errorf("%w: EBML header: %v", ErrBadChunk, err)
	}
	var h struct {
		Header webm.EBMLHeader `ebml:"EBML"`
	}
	if err := ebml.Unmarshal(bytes.NewReader(wrapElem(idEBML, hb)), &h,
		ebml.WithIgnoreUnknown(true), ebml.WithMaxLeafElementSize(maxHeaderElem)); err != nil ||
		(h.Header.DocType != "matroska" && h.Header.DocType != "webm") {
		return nil, fmt.Errorf("%w: not Matroska", ErrBadChunk)
	}
	seg, err := readElem(r, e.end(), fileSize)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("%w: the header was cut", ErrNoMedia)
	}
	if err != nil || seg.id != eidSegment || seg.sizeLen != 8 {
		return nil, fmt.Errorf("%w: no Segment", ErrBadChunk)
	}
	s := &chunkScan{}
	s.lay.segSizePos, s.lay.segData = seg.data-8, seg.data
	s.lay.reservePos, s.lay.infoPos, s.lay.tracksPos, s.lay.durationPos = -1, -1, -1, -1
	limit := fileSize
	if seg.size >= 0 {
		limit = min(limit, seg.end())
	}
	s.good = -1
	cut := false
	pos := seg.data
	for pos < limit {
		c, err := readElem(r, pos, limit)
		if err != nil || c.size < 0 || c.end() > limit {
			cut = true // cut (or damaged) here
			break
		}
		pos = c.end()
		switch c.id {
		case eidVoid, eidSeekHead:
			if s.lay.infoPos < 0 && s.lay.reservePos < 0 {
				s.lay.reservePos = c.pos
			}
			continue
		case eidInfo:
			if s.lay.infoPos >= 0 || s.clusters > 0 {
				return nil, fmt.Errorf("%w: misplaced Info", ErrBadChunk)
			}
			if err := s.readInfo(r, c); err != nil {
				return nil, err
			}
			continue
		case eidTracks:
			if s.lay.tracksPos >= 0 || s.clusters > 0 {
				return nil, fmt.Errorf("%w: misplaced Tracks", ErrBadChunk)
			}
			if err := s.readTracks(r, c); err != nil {
				return nil, err
			}
			continue
		case eidCluster:
			if err := s.check(); err != nil {
				return nil, err
			}
			if !clusters || !s.readCluster(r, c) {
				return s, nil
			}
			continue
		}
		if s.clusters > 0 {
			break // Cues of an earlier close, or anything else: the media ended before
		}
	}
	if err := s.check(); err != nil {
		if cut || pos >= fileSize {
			// A crash right after the chunk was created: its header is incomplete.
			return nil, fmt.Errorf("%w: the header was cut", ErrNoMedia)
		}
		return nil, err
	}
	return s, nil
}

// check verifies that the header elements close and repair patch were found.
func (s *chunkScan) check() error {
	l := &s.lay
	if l.infoPos < 0 || l.tracksPos < 0 || l.durationPos < 0 || l.reservePos < 0 {
		return fmt.Errorf("%w: header elements missing", ErrBadChunk)
	}
	l.reserveLen = l.infoPos - l.reservePos
	if l.reservePos != l.segData || l.reserveLen < 64 || l.reserveLen > 1024 {
		return fmt.Errorf("%w: no room for a SeekHead", ErrBadChunk)
	}
	return nil
}

func (s *chunkScan) readInfo(r io.ReaderAt, c elem) error {
	b, err := readBytes(r, c, maxHeaderElem)
	if err != nil {
		return err
	}
	br := bytes.NewReader(b)
	for p := int64(0); p < int64(len(b)); {
		e, err := readElem(br, p, int64(len(b)))
		if err != nil || e.size < 0 || e.end() > int64(len(b)) {
			return fmt.Errorf("%w: damaged Info", ErrBadChunk)
		}
		p = e.end()
		data := b[e.data:e.end()]
		switch {
		case e.id == eidScale:
			var v uint64
			for _, x := range data {
				v = v<<8 | uint64(x)
			}
			if len(data) > 8 || v != timecodeScale {
				return fmt.Errorf("%w: TimecodeScale is not 1 ms", ErrBadChunk)
			}
		case e.id == eidVoid && e.end()-e.pos == durationLen && s.lay.durationPos < 0:
			s.lay.durationPos = c.data + e.pos
		case e.id == eidDuration && e.end()-e.pos == durationLen && e.size == 8:
			s.lay.durationPos = c.data + e.pos
			s.duration = math.Float64frombits(binary.BigEndian.Uint64(data))
			s.hasDuration = true
		}
	}
	s.lay.infoPos = c.pos
	return nil
}

func (s *chunkScan) readTracks(r io.ReaderAt, c elem) error {
	b, err := readBytes(r, c, maxTracksElem)
	if err != nil {
		return err
	}
	var t scanTracks
	if err := ebml.Unmarshal(bytes.NewReader(wrapElem(idTracks, b)), &t, ebml.WithIgnoreUnknown(true),
		ebml.WithMaxLeafElementSize(maxTracksElem)); err != nil {
		return fmt.Errorf("%w: damaged Tracks: %v", ErrBadChunk, err)
	}
	for _, e := range t.Tracks.TrackEntry {
		if e.TrackType == trackTypeVideo && !s.mainVideo {
			s.main, s.mainVideo = e.TrackNumber, true
		}
		if s.main == 0 {
			s.main = e.TrackNumber
		}
	}
	if s.main == 0 {
		return fmt.Errorf("%w: no track", ErrBadChunk)
	}
	s.lay.tracksPos = c.pos
	return nil
}

// readCluster adds a complete cluster's blocks; false means the cluster is damaged and the
// media ends before it.
func (s *chunkScan) readCluster(r io.ReaderAt, c elem) bool {
	if c.size > maxClusterLen {
		return false
	}
	b := make([]byte, c.end()-c.pos)
	if _, err := r.ReadAt(b, c.pos); err != nil {
		return false
	}
	var cl scanCluster
	if err := ebml.Unmarshal(bytes.NewReader(b), &cl, ebml.WithMaxLeafElementSize(maxClusterLen)); err != nil {
		return false
	}
	blocks := cl.Cluster.SimpleBlock
	if len(blocks) == 0 || cl.Cluster.Timecode > math.MaxInt32 {
		return false
	}
	base := int64(cl.Cluster.Timecode)
	for _, bl := range blocks {
		s.span.add(bl.TrackNumber, base+int64(bl.Timecode))
	}
	if blocks[0].TrackNumber == s.main && blocks[0].Keyframe {
		s.cues = append(s.cues, webm.CuePoint{CueTime: uint64(max(base+int64(blocks[0].Timecode), 0)),
			CueTrackPositions: []webm.CueTrackPosition{{CueTrack: s.main, CueClusterPosition: uint64(c.pos - s.lay.segData)}}})
	}
	s.clusters++
	s.good = c.end()
	return true
}

// wrapElem returns the element with the given id and data (with an 8-byte size field,
// which every reader accepts).
func wrapElem(id, data []byte) []byte {
	out := make([]byte, 0, len(id)+8+len(data))
	out = append(out, id...)
	out = binary.BigEndian.AppendUint64(out, uint64(len(data)))
	out[len(id)] = 0x01
	return append(out, data...)
}

// repair turns a chunk cut by a crash (or a failed close) into a complete file: it keeps
// the complete clusters, truncates after the last one and finalizes the file as close
// would. It returns the new size and the media duration. A chunk without a complete
// cluster gives ErrNoMedia; a file the recorder did not write gives ErrBadChunk.
func repair(f chunkRW, size int64) (int64, int64, error) {
	s, err := scanChunk(f, size, true)
	if err != nil {
		return 0, 0, err
	}
	if s.clusters == 0 {
		return 0, 0, ErrNoMedia
	}
	if err := f.Truncate(s.good); err != nil {
		return 0, 0, err
	}
	dur := s.span.duration()
	n, err := finalize(f, s.lay, s.cues, dur, s.good)
	if err != nil {
		return 0, 0, err
	}
	return n, dur, nil
}
