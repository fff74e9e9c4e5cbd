package ogg

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// pageBytes builds an Ogg page with a valid CRC holding the given whole segments.
func pageBytes(headerType byte, granule int64, serial, seq uint32, segs [][]byte) []byte {
	var lace, body []byte
	for _, s := range segs {
		n := len(s)
		for n >= 255 {
			lace = append(lace, 255)
			n -= 255
		}
		lace = append(lace, byte(n))
		body = append(body, s...)
	}
	return rawPage(headerType, granule, serial, seq, lace, body)
}

// rawPage builds an Ogg page with a valid CRC from its lacing values and body.
func rawPage(headerType byte, granule int64, serial, seq uint32, lace, body []byte) []byte {
	h := make([]byte, 27)
	copy(h, "OggS")
	h[5] = headerType
	binary.LittleEndian.PutUint64(h[6:], uint64(granule))
	binary.LittleEndian.PutUint32(h[14:], serial)
	binary.LittleEndian.PutUint32(h[18:], seq)
	h[26] = byte(len(lace))
	page := append(append(h, lace...), body...)
	binary.LittleEndian.PutUint32(page[22:], crc(0, page))
	return page
}

func TestReader(t *testing.T) {
	big := bytes.Repeat([]byte{7}, 600) // spans segments
	var in []byte
	in = append(in, pageBytes(2, 0, 1, 0, [][]byte{[]byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")})...)
	in = append(in, []byte("garbage")...) // resync
	in = append(in, pageBytes(0, 960, 1, 1, [][]byte{{0xfc, 1, 2}, big})...)
	corrupt := pageBytes(0, 1920, 1, 2, [][]byte{{0xfc, 9}})
	corrupt[len(corrupt)-1] ^= 0xff // bad CRC: dropped
	in = append(in, corrupt...)
	in = append(in, pageBytes(0, 2880, 2, 0, [][]byte{{0xfc, 5}})...) // other stream
	in = append(in, pageBytes(0, 3840, 1, 3, [][]byte{{0xfc, 3}})...)
	r := NewReader(bytes.NewReader(in))
	var pages []Page
	for {
		pg, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, pg)
	}
	if len(pages) != 3 {
		t.Fatalf("%d pages, want 3", len(pages))
	}
	if !pages[0].BOS || !bytes.HasPrefix(pages[0].Packets[0], []byte("OpusHead")) {
		t.Fatalf("first page %+v", pages[0])
	}
	if len(pages[1].Packets) != 2 || !bytes.Equal(pages[1].Packets[1], big) || pages[1].Granule != 960 {
		t.Fatalf("second page: %d packets, granule %d", len(pages[1].Packets), pages[1].Granule)
	}
	if pages[2].Granule != 3840 || !bytes.Equal(pages[2].Packets[0], []byte{0xfc, 3}) {
		t.Fatalf("third page %+v", pages[2])
	}
}

func TestReaderSpanningPacket(t *testing.T) {
	// A 600-byte packet laced over two pages: the first page ends in a 255 lacing value
	// (no packet ends there: granule -1), the second continues it (header type 1).
	pkt := bytes.Repeat([]byte{3}, 600)
	in := rawPage(0, -1, 1, 0, []byte{255, 255}, pkt[:510])
	in = append(in, pageBytes(1, 960, 1, 1, [][]byte{pkt[510:]})...)
	// A continuation whose start was lost is dropped; the next packet is whole.
	in = append(in, pageBytes(1, 1920, 1, 2, [][]byte{{9, 9}, {0xfc, 4}})...)
	r := NewReader(bytes.NewReader(in))
	pg, err := r.Next()
	if err != nil || len(pg.Packets) != 0 || pg.Granule != -1 {
		t.Fatalf("first page %+v, %v", pg, err)
	}
	pg, err = r.Next()
	if err != nil || len(pg.Packets) != 1 || !bytes.Equal(pg.Packets[0], pkt) || pg.Granule != 960 {
		t.Fatalf("second page: %d packets, granule %d, %v", len(pg.Packets), pg.Granule, err)
	}
	pg, err = r.Next()
	if err != nil || len(pg.Packets) != 1 || !bytes.Equal(pg.Packets[0], []byte{0xfc, 4}) {
		t.Fatalf("third page: %+v, %v", pg, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(pageBytes(2, 0, 1, 0, [][]byte{[]byte("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00")}))
	f.Add(append(pageBytes(0, -1, 1, 0, [][]byte{bytes.Repeat([]byte{1}, 255*3)})[:30], "OggS"...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b))
		for range 1000 {
			pg, err := r.Next()
			if err != nil {
				return
			}
			for _, p := range pg.Packets {
				if len(p) == 0 || len(p) > MaxPacket {
					t.Fatalf("packet of %d bytes", len(p))
				}
			}
		}
	})
}
