package vod

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/at-wat/ebml-go/webm"
)

// memFile is an in-memory chunkRW.
type memFile struct{ b []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Truncate(n int64) error {
	if n < 0 || n > int64(len(m.b)) {
		return errors.New("bad truncate")
	}
	m.b = m.b[:n]
	return nil
}

// synthChunk writes a chunk of secs seconds of a synthetic stream with chunkFile and
// returns the ".rec" bytes as they were before close (every cluster written) and the
// finished file.
func synthChunk(t testing.TB, secs, bitrate int) (rec, done []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "chunk_001.mkv")
	tracks := synthTracks()
	var entries []mkvTrackEntry
	for i, tr := range tracks {
		tr.Index = i
		e, err := mkvTrack(tr, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	c, err := createChunk(path, entries, 1, true, "synthetic", time.Unix(1700000000, 0), nil)
	if err != nil {
		t.Fatal(err)
	}
	gen := newSynthStream(tracks, bitrate, 30)
	for {
		u := gen.next()
		if u.DTS >= time.Duration(secs)*time.Second {
			break
		}
		if err := c.write(uint64(u.Track.Index+1), u.Key, u.PTS.Milliseconds(), u.Payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	rec, err = os.ReadFile(path + recSuffix)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.close(-1); err != nil {
		t.Fatal(err)
	}
	done, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return rec, done
}

// TestRepairPrefixes repairs every prefix of a chunk (cut every 37 bytes, as a crash may
// cut it): each gives ErrNoMedia before the first complete cluster, and otherwise a chunk
// that declares the media it holds, reads back, and repairs to itself again. Repairing
// the unfinished file gives the file close wrote.
func TestRepairPrefixes(t *testing.T) {
	t.Parallel()
	rec, done := synthChunk(t, 3, 200_000)
	m := &memFile{b: append([]byte(nil), rec...)}
	if _, _, err := repair(m, int64(len(m.b))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.b, done) {
		t.Fatalf("repairing the unfinished chunk: %d bytes, close wrote %d", len(m.b), len(done))
	}
	var lastDur int64
	repaired := 0
	var cuts []int
	for cut := 0; cut < len(rec); cut += 37 {
		cuts = append(cuts, cut)
	}
	for _, cut := range append(cuts, len(rec)) {
		m := &memFile{b: append([]byte(nil), rec[:cut]...)}
		n, dur, err := repair(m, int64(cut))
		if errors.Is(err, ErrNoMedia) {
			if repaired > 0 {
				t.Fatalf("cut at %d: no media after a repaired shorter prefix", cut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		repaired++
		if n != int64(len(m.b)) || dur <= 0 || dur < lastDur {
			t.Fatalf("cut at %d: size %d of %d, duration %d after %d", cut, n, len(m.b), dur, lastDur)
		}
		lastDur = dur
		s, err := scanChunk(m, n, true)
		if err != nil || !s.hasDuration || int64(s.duration) != dur || s.clusters == 0 || len(s.cues) == 0 {
			t.Fatalf("cut at %d: rescan %+v, %v", cut, s, err)
		}
		again := &memFile{b: append([]byte(nil), m.b...)}
		if _, _, err := repair(again, n); err != nil || !bytes.Equal(again.b, m.b) {
			t.Fatalf("cut at %d: repairing again changed the file (%v)", cut, err)
		}
	}
	if repaired == 0 || lastDur < 2900 {
		t.Fatalf("%d prefixes repaired, longest %d ms", repaired, lastDur)
	}
}

// TestRepairRejectsForeignFiles: files the recorder did not write are ErrBadChunk or
// ErrNoMedia, never repaired.
func TestRepairRejectsForeignFiles(t *testing.T) {
	t.Parallel()
	_, done := synthChunk(t, 1, 200_000)
	wrongScale := bytes.Replace(append([]byte(nil), done...), []byte{0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40},
		[]byte{0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x41}, 1)
	for name, b := range map[string][]byte{
		"empty":       {},
		"text":        []byte("hello, this is not a Matroska file at all"),
		"wrong scale": wrongScale,
		"no segment":  done[:40],
	} {
		_, _, err := repair(&memFile{b: b}, int64(len(b)))
		if !errors.Is(err, ErrBadChunk) && !errors.Is(err, ErrNoMedia) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if bytes.Equal(wrongScale, done) {
		t.Fatal("the TimecodeScale was not found to change")
	}
}

// TestSeekHeadFits: the SeekHead and its Void fill the reserved room exactly for every
// offset size.
func TestSeekHeadFits(t *testing.T) {
	t.Parallel()
	for info := uint64(0); info < 1<<20; info = info*5 + 1 {
		for cues := uint64(1); cues < 1<<50; cues = cues*3 + 7 {
			seeks := []webm.Seek{{SeekID: idInfo, SeekPosition: info}, {SeekID: idTracks, SeekPosition: info + 40},
				{SeekID: idCues, SeekPosition: cues}}
			b, err := seekHead(seeks, seekReserve)
			if err != nil || len(b) != seekReserve {
				t.Fatalf("info %d, cues %d: %d bytes, %v", info, cues, len(b), err)
			}
		}
	}
}
