package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

func TestStampRoundTrip(t *testing.T) {
	for _, s := range []stamp{
		{},
		{Stream: 3, Seq: 12345, Sent: 1_750_000_000_123_456_789},
		// Zero runs that need emulation prevention bytes: 00 00 00, 00 00 01, 00 00 03.
		{Stream: 0, Seq: 1, Sent: 3},
		{Stream: 1 << 8, Seq: 0x0000_0001_0000_0003, Sent: 0x0000_0000_0300_0001},
		{Stream: math.MaxUint32, Seq: math.MaxUint64, Sent: math.MinInt64},
		{Stream: 7, Seq: 0x8000_0000_0000_0000, Sent: -1},
	} {
		nalu := appendStampNALU(nil, s)
		if nalu[0]&0x1f != naluTypeSEI {
			t.Fatalf("%+v: NAL unit type %d", s, nalu[0]&0x1f)
		}
		// No start code emulation may remain in the NAL unit.
		for i := 2; i < len(nalu); i++ {
			if nalu[i-2] == 0 && nalu[i-1] == 0 && nalu[i] <= 2 {
				t.Fatalf("%+v: start code emulation at %d in %x", s, i, nalu)
			}
		}
		got, ok := parseStamp(nalu)
		if !ok || got != s {
			t.Fatalf("round trip of %+v: got %+v, %v (NAL %x)", s, got, ok, nalu)
		}
		// mediacommon removes the same escaping.
		if rbsp := h264.EmulationPreventionRemove(nalu[1:]); len(rbsp) != 2+stampPayloadLength+1 {
			t.Fatalf("%+v: RBSP of %d bytes", s, len(rbsp))
		}
	}
}

func TestStampInAccessUnits(t *testing.T) {
	s := stamp{Stream: 2, Seq: 99, Sent: 42}
	sei := appendStampNALU(nil, s)
	x264 := append([]byte{naluTypeSEI, 5, 20}, bytes.Repeat([]byte{0xaa}, 21)...) // other user data
	sps, pps := []byte{0x67, 0x64, 0, 0x1f}, []byte{0x68, 0xee}
	idr, slice := []byte{0x65, 0x88, 0x84}, []byte{0x41, 0x9a}

	au := avcc(sps, pps, idr)
	withStamp := insertSEIAVCC(nil, au, sei)
	if !bytes.Equal(withStamp, avcc(sps, pps, sei, idr)) {
		t.Fatalf("insertSEIAVCC: %x", withStamp)
	}
	if got, ok := stampInAVCC(withStamp); !ok || got != s {
		t.Fatalf("stampInAVCC: %+v %v", got, ok)
	}
	if !hasIDR(withStamp) || hasIDR(avcc(sei, slice)) {
		t.Fatal("hasIDR")
	}
	if got, ok := stampInAVCC(avcc(x264, sei, slice)); !ok || got != s {
		t.Fatalf("stamp after another SEI: %+v %v", got, ok)
	}
	if _, ok := stampInAVCC(avcc(slice, sei)); ok {
		t.Fatal("a stamp after the slice must not be looked for")
	}
	if _, ok := stampInAVCC(avcc(x264, slice)); ok {
		t.Fatal("found a stamp in x264's SEI")
	}
	if _, ok := stampInAVCC([]byte{0, 0, 0, 50, 6}); ok {
		t.Fatal("truncated AVCC")
	}
	if got, ok := stampInNALUs([][]byte{sps, pps, sei, idr}); !ok || got != s || !nalusHaveIDR([][]byte{sps, idr}) {
		t.Fatalf("stampInNALUs: %+v %v", got, ok)
	}
	if nalusHaveIDR([][]byte{{}, slice}) {
		t.Fatal("nalusHaveIDR")
	}
}

func avcc(nalus ...[]byte) []byte {
	var b []byte
	for _, n := range nalus {
		b = binary.BigEndian.AppendUint32(b, uint32(len(n)))
		b = append(b, n...)
	}
	return b
}

func TestParseStampRejects(t *testing.T) {
	good := appendStampNALU(nil, stamp{Stream: 1, Seq: 2, Sent: 3})
	bad := map[string][]byte{
		"empty":          nil,
		"not SEI":        append([]byte{0x65}, good[1:]...),
		"other UUID":     func() []byte { b := bytes.Clone(good); b[4] ^= 1; return b }(),
		"short payload":  {naluTypeSEI, seiUserDataUnreg, 20, 'r', 'e', 'l', 0x80},
		"size past end":  {naluTypeSEI, seiUserDataUnreg, 0xff, 0xff, 0x10, 0},
		"only 0xff type": {naluTypeSEI, 0xff, 0xff, 0xff},
	}
	for name, b := range bad {
		if s, ok := parseStamp(b); ok {
			t.Errorf("%s: parsed %+v", name, s)
		}
	}
}

// FuzzParseSEI checks that parsing never panics and that every stamp written parses back.
func FuzzParseSEI(f *testing.F) {
	f.Add(appendStampNALU(nil, stamp{Stream: 1, Seq: 2, Sent: 3}), uint32(0), uint64(0), int64(0))
	f.Add([]byte{naluTypeSEI, 5, 0xff, 0xff}, uint32(1), uint64(1<<40), int64(-1))
	f.Add([]byte{naluTypeSEI, 0, 0, 3, 0x80}, uint32(0), uint64(0x300), int64(0x30000))
	f.Fuzz(func(t *testing.T, b []byte, stream uint32, seq uint64, sent int64) {
		parseStamp(b)
		stampInAVCC(b)
		want := stamp{Stream: stream, Seq: seq, Sent: sent}
		if got, ok := parseStamp(appendStampNALU(nil, want)); !ok || got != want {
			t.Fatalf("round trip of %+v: %+v %v", want, got, ok)
		}
	})
}
