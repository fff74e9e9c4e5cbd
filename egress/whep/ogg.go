package whep

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
)

// Ogg framing (RFC 3533 §6).
const (
	oggHeaderSize = 27
	// maxOggPacket caps a reassembled packet: Opus packets are at most 1275 bytes per frame
	// and 120 ms; headers are small. Larger means a broken stream.
	maxOggPacket = 64 << 10
)

var errOggCorrupt = errors.New("ogg: corrupt page")

// oggReader reads the packets of an Ogg stream page by page. It checks every page's CRC
// and, on a corrupt page, resynchronizes at the next "OggS" capture pattern. Packets that
// span pages are joined. It serves one logical stream: pages of other serial numbers are
// skipped.
type oggReader struct {
	r       *bufio.Reader
	serial  uint32
	started bool
	partial []byte
	// skip is set when a packet was dropped (corrupt page or too large) until its end.
	skip bool
	hdr  [oggHeaderSize]byte
	lace [255]byte
	body []byte
}

func newOggReader(r io.Reader) *oggReader {
	return &oggReader{r: bufio.NewReaderSize(r, 16<<10)}
}

// oggPage is one page's completed packets and its granule position (-1: no packet ends
// on the page).
type oggPage struct {
	packets [][]byte
	granule int64
	// bos marks the first page of the logical stream.
	bos bool
}

// next reads the next page of the stream. It returns io.EOF at the end of the input.
func (o *oggReader) next() (oggPage, error) {
	for {
		err := o.readPage()
		if errors.Is(err, errOggCorrupt) {
			o.partial, o.skip = o.partial[:0], true
			if err := o.resync(); err != nil {
				return oggPage{}, err
			}
			continue
		}
		if err != nil {
			return oggPage{}, err
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
func (o *oggReader) readPage() error {
	h, err := o.r.Peek(oggHeaderSize)
	if err != nil {
		if len(h) == 0 && !errors.Is(err, io.EOF) {
			return err
		}
		return io.EOF
	}
	if string(h[:4]) != "OggS" || h[4] != 0 {
		_, _ = o.r.Discard(1) // resync looks for the pattern from the next byte
		return errOggCorrupt
	}
	copy(o.hdr[:], h)
	_, _ = o.r.Discard(oggHeaderSize)
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
	crc := oggCRC(0, o.hdr[:22])
	crc = oggCRC(crc, []byte{0, 0, 0, 0})
	crc = oggCRC(crc, o.hdr[26:27])
	crc = oggCRC(crc, o.lace[:n])
	crc = oggCRC(crc, o.body)
	if crc != want {
		return errOggCorrupt
	}
	return nil
}

// resync skips input up to the next capture pattern, leaving it unread.
func (o *oggReader) resync() error {
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
func (o *oggReader) packets() oggPage {
	pg := oggPage{granule: int64(binary.LittleEndian.Uint64(o.hdr[6:])), bos: o.hdr[5]&0x02 != 0}
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
			if len(o.partial)+len(seg) > maxOggPacket {
				o.partial, o.skip = o.partial[:0], true
			} else {
				o.partial = append(o.partial, seg...)
			}
		}
		if l < 255 {
			if !o.skip && len(o.partial) > 0 {
				pg.packets = append(pg.packets, append([]byte(nil), o.partial...))
			}
			o.partial, o.skip = o.partial[:0], false
			ended = true
		}
	}
	if !ended {
		pg.granule = -1
	}
	return pg
}

// oggCRCTable is the CRC-32 of Ogg: polynomial 0x04c11db7, not reflected, initial 0.
var oggCRCTable = func() (t [256]uint32) {
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

func oggCRC(crc uint32, b []byte) uint32 {
	for _, v := range b {
		crc = crc<<8 ^ oggCRCTable[byte(crc>>24)^v]
	}
	return crc
}
