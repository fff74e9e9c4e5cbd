package ogg

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// headerSize is the fixed part of a page header (RFC 3533 §6).
const headerSize = 27

// MaxPacket caps a reassembled packet: Opus packets are at most 1275 bytes per frame
// and 120 ms; headers are small. Larger means a broken stream, and the packet is dropped.
const MaxPacket = 64 << 10

var errCorrupt = errors.New("ogg: corrupt page")

// Reader reads the packets of an Ogg stream page by page. It checks every page's CRC
// and, on a corrupt page, resynchronizes at the next "OggS" capture pattern. Packets that
// span pages are joined. It serves one logical stream (the first one seen): pages of
// other serial numbers are skipped. It never fails on bad input: what cannot be read is
// skipped.
type Reader struct {
	r       *bufio.Reader
	serial  uint32
	started bool
	partial []byte
	// skip is set when a packet was dropped (corrupt page or too large) until its end.
	skip bool
	hdr  [headerSize]byte
	lace [255]byte
	body []byte
}

// NewReader returns a Reader of r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 16<<10)}
}

// Page is one page's completed packets and its granule position.
type Page struct {
	// Packets are the packets that end on the page, in order. They are the caller's.
	Packets [][]byte
	// Granule is the page's granule position, -1 when no packet ends on the page. For
	// Opus (RFC 7845 §4) it counts 48 kHz samples up to the end of the last packet.
	Granule int64
	// BOS marks the first page of the logical stream.
	BOS bool
}

// Next reads the next page of the stream. It returns io.EOF at the end of the input
// (a truncated last page included) and the underlying reader's other errors.
func (o *Reader) Next() (Page, error) {
	for {
		err := o.readPage()
		if errors.Is(err, errCorrupt) {
			o.partial, o.skip = o.partial[:0], true
			if err := o.resync(); err != nil {
				return Page{}, err
			}
			continue
		}
		if err != nil {
			return Page{}, err
		}
		serial := binary.LittleEndian.Uint32(o.hdr[14:])
		if !o.started {
			o.started, o.serial = true, serial
		} else if serial != o.serial {
			continue
		}
		return o.packets(), nil
	}
}

// readPage reads one page into hdr, lace and body and checks it.
func (o *Reader) readPage() error {
	h, err := o.r.Peek(headerSize)
	if err != nil {
		if len(h) == 0 && !errors.Is(err, io.EOF) {
			return err
		}
		return io.EOF
	}
	if string(h[:4]) != "OggS" || h[4] != 0 {
		_, _ = o.r.Discard(1) // resync looks for the pattern from the next byte
		return errCorrupt
	}
	copy(o.hdr[:], h)
	_, _ = o.r.Discard(headerSize)
	n := int(o.hdr[26])
	if _, err := io.ReadFull(o.r, o.lace[:n]); err != nil {
		return io.EOF
	}
	size := 0
	for _, l := range o.lace[:n] {
		size += int(l)
	}
	if cap(o.body) < size {
		o.body = make([]byte, size)
	}
	o.body = o.body[:size]
	if _, err := io.ReadFull(o.r, o.body); err != nil {
		return io.EOF
	}
	want := binary.LittleEndian.Uint32(o.hdr[22:])
	c := crc(0, o.hdr[:22])
	c = crc(c, []byte{0, 0, 0, 0})
	c = crc(c, o.hdr[26:27])
	c = crc(c, o.lace[:n])
	c = crc(c, o.body)
	if c != want {
		return errCorrupt
	}
	return nil
}

// resync skips input up to the next capture pattern, leaving it unread.
func (o *Reader) resync() error {
	for {
		b, err := o.r.Peek(4)
		if err != nil {
			return io.EOF
		}
		if string(b) == "OggS" {
			return nil
		}
		_, _ = o.r.Discard(1)
	}
}

// packets splits the current page's body by its lacing values.
func (o *Reader) packets() Page {
	pg := Page{Granule: int64(binary.LittleEndian.Uint64(o.hdr[6:])), BOS: o.hdr[5]&0x02 != 0}
	continued := o.hdr[5]&0x01 != 0
	if !continued {
		// A new packet starts here (a continuation the previous page promised did not
		// come, or the previous packet was being skipped).
		o.partial, o.skip = o.partial[:0], false
	}
	if continued && len(o.partial) == 0 {
		o.skip = true // the start of this packet was lost
	}
	pos := 0
	ended := false
	for _, l := range o.lace[:o.hdr[26]] {
		seg := o.body[pos : pos+int(l)]
		pos += int(l)
		if !o.skip {
			if len(o.partial)+len(seg) > MaxPacket {
				o.partial, o.skip = o.partial[:0], true
			} else {
				o.partial = append(o.partial, seg...)
			}
		}
		if l < 255 {
			if !o.skip && len(o.partial) > 0 {
				pg.Packets = append(pg.Packets, append([]byte(nil), o.partial...))
			}
			o.partial, o.skip = o.partial[:0], false
			ended = true
		}
	}
	if !ended {
		pg.Granule = -1
	}
	return pg
}

// crcTable is the CRC-32 of Ogg: polynomial 0x04c11db7, not reflected, initial 0.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04c11db7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

// crc continues the page checksum c over b (RFC 3533 §6: computed with the checksum
// field set to zero).
func crc(c uint32, b []byte) uint32 {
	for _, v := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^v]
	}
	return c
}
