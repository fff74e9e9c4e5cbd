package vod

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/at-wat/ebml-go/webm"
)

// chunkFile writes one chunk: "chunk_NNN.mkv.rec" while open, renamed to "chunk_NNN.mkv"
// by close. Clusters are buffered in memory (≤ 1 s of media) and written whole, one write
// each, so that a crash cuts the file at a cluster boundary or inside the last cluster.
type chunkFile struct {
	f       *os.File
	path    string // the final name
	lay     layout
	size    int64 // bytes written so far (the offset of the next cluster)
	main    uint64
	mainVid bool
	cl      cluster
	// clusters counts the clusters written.
	clusters int
	cues     []webm.CuePoint
	span     span
	buf      bytes.Buffer
	// account reports bytes added to the spool.
	account func(int64)
}

// createChunk creates path+".rec" and writes the header. main is the track whose
// keyframes start clusters and are indexed (the first video track; for audio-only chunks
// the first track, indexed at every cluster).
func createChunk(path string, entries []mkvTrackEntry, main uint64, mainVideo bool,
	title string, date time.Time, account func(int64)) (*chunkFile, error) {
	hdr, lay, err := header(entries, title, date)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path+recSuffix, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	c := &chunkFile{f: f, path: path, lay: lay, main: main, mainVid: mainVideo, account: account}
	if err := c.writeAll(hdr); err != nil {
		_ = f.Close()
		_ = os.Remove(path + recSuffix)
		return nil, err
	}
	return c, nil
}

func (c *chunkFile) writeAll(b []byte) error {
	n, err := c.f.Write(b)
	c.size += int64(n)
	if c.account != nil {
		c.account(int64(n))
	}
	return err
}

// write adds one block at ts (ms on the session's timeline). It writes the pending
// cluster first when the block starts a new one: a keyframe of the main video track, or
// a cluster that would span a second or more.
func (c *chunkFile) write(num uint64, key bool, ts int64, data []byte) error {
	mainKey := num == c.main && key
	if !c.cl.empty() && ((mainKey && c.mainVid) || !c.cl.fits(ts, len(data))) {
		if err := c.flush(); err != nil {
			return err
		}
	}
	c.cl.add(num, key, ts, data, mainKey)
	c.span.add(num, ts)
	return nil
}

// pending reports whether a cluster is buffered.
func (c *chunkFile) pending() bool { return !c.cl.empty() }

// flush writes the pending cluster to the file (to the OS, not to the disk).
func (c *chunkFile) flush() error {
	if c.cl.empty() {
		return nil
	}
	pos := c.size
	cue, first := c.cl.cue, c.cl.first
	c.buf.Reset()
	if err := c.cl.marshal(&c.buf); err != nil {
		return err
	}
	if err := c.writeAll(c.buf.Bytes()); err != nil {
		return err
	}
	c.clusters++
	if c.buf.Cap() > 4<<20 {
		c.buf = bytes.Buffer{} // do not keep an exceptional cluster's memory
	}
	if cue {
		c.cues = append(c.cues, webm.CuePoint{CueTime: uint64(first),
			CueTrackPositions: []webm.CueTrackPosition{{CueTrack: c.main, CueClusterPosition: uint64(pos - c.lay.segData)}}})
	}
	return nil
}

// close writes the pending cluster, finalizes the file, syncs it, renames it to its final
// name and syncs the directory. end is where the next chunk starts (ms), which makes the
// declared duration join the two exactly; -1 means the media's own end (the last
// timestamp of each track plus one frame). On error the ".rec" file stays for repair.
func (c *chunkFile) close(end int64) (size int64, dur time.Duration, err error) {
	defer func() {
		if err != nil {
			_ = c.f.Close()
		}
	}()
	if err := c.flush(); err != nil {
		return 0, 0, err
	}
	d := c.span.duration()
	if end >= 0 && c.span.hasMin && end > c.span.minTS {
		d = end - c.span.minTS
	}
	size, err = finalize(c.f, c.lay, c.cues, d, c.size)
	if err != nil {
		return 0, 0, err
	}
	if c.account != nil {
		c.account(size - c.size)
	}
	c.size = size
	if err := c.f.Sync(); err != nil {
		return 0, 0, err
	}
	if err := c.f.Close(); err != nil {
		return 0, 0, err
	}
	if err := commit(c.path); err != nil {
		return 0, 0, err
	}
	return size, time.Duration(d) * time.Millisecond, nil
}

// abandon closes the file as it is (its ".rec" name stays).
func (c *chunkFile) abandon() { _ = c.f.Close() }

// commit renames path+".rec" to path and syncs the directory, so the finished name
// survives a power loss.
func commit(path string) error {
	if err := os.Rename(path+recSuffix, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
