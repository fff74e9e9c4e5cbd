package whipclient

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

func TestCodecString(t *testing.T) {
	for c, want := range map[Codec]string{
		CodecDefault: "default", CodecNone: "none", CodecH264: "H264", CodecVP8: "VP8",
		CodecVP9: "VP9", CodecAV1: "AV1", CodecOpus: "opus", Codec(99): "Codec(99)", Codec(-1): "Codec(-1)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Codec(%d): %q, want %q", int(c), got, want)
		}
	}
}

// TestOffers checks the offer New makes for each codec choice.
func TestOffers(t *testing.T) {
	api, err := signal.NewAPI(true)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		video, audio Codec
		want         []string // in the offer
		not          []string // not in the offer
		err          error
	}{
		{CodecDefault, CodecDefault, []string{"m=video", "H264/90000", "packetization-mode=1", "m=audio", "opus/48000/2", "a=sendonly"}, nil, nil},
		{CodecVP8, CodecNone, []string{"m=video", "VP8/90000"}, []string{"m=audio"}, nil},
		{CodecVP9, CodecOpus, []string{"VP9/90000", "opus/48000/2"}, nil, nil},
		{CodecAV1, CodecOpus, []string{"AV1/90000"}, nil, nil},
		{CodecNone, CodecDefault, []string{"m=audio"}, []string{"m=video"}, nil},
		{CodecOpus, CodecDefault, nil, nil, ErrCodec},
		{CodecDefault, CodecH264, nil, nil, ErrCodec},
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		p, err := New(ctx, Options{API: api, Video: tc.video, Audio: tc.audio})
		cancel()
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%v/%v: error %v, want %v", tc.video, tc.audio, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v/%v: %v", tc.video, tc.audio, err)
		}
		offer := p.Offer()
		for _, w := range tc.want {
			if !strings.Contains(offer, w) {
				t.Errorf("%v/%v: offer lacks %q", tc.video, tc.audio, w)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(offer, w) {
				t.Errorf("%v/%v: offer has %q", tc.video, tc.audio, w)
			}
		}
		if tc.video == CodecNone && !errors.Is(p.WriteVideo([]byte{1}, time.Millisecond), ErrNoTrack) {
			t.Errorf("%v/%v: WriteVideo without a video track", tc.video, tc.audio)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close before Connect: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
}

// annexB joins NAL units with the given start codes.
func annexB(nalus ...[]byte) []byte {
	var b []byte
	for i, n := range nalus {
		if i%2 == 0 {
			b = append(b, 0, 0, 0, 1)
		} else {
			b = append(b, 0, 0, 1) // 3-byte start codes are valid too
		}
		b = append(b, n...)
	}
	return b
}

func TestReadH264(t *testing.T) {
	var (
		aud   = []byte{0x09, 0xf0}
		sei   = []byte{0x06, 0x05, 0x01, 0xaa, 0x80}
		sps   = []byte{0x67, 0x42, 0xc0, 0x1f}
		pps   = []byte{0x68, 0xce, 0x3c, 0x80}
		idr   = []byte{0x65, 0x88, 0x84}       // first_mb_in_slice 0
		idr2  = []byte{0x65, 0x40, 0x84}       // first_mb_in_slice 1: same picture
		p1    = []byte{0x41, 0x9a, 0x02}       // a P picture
		p2    = []byte{0x41, 0x9a, 0x04}       // the next one
		trail = []byte{0x0c, 0xff, 0xff, 0x80} // filler after the last picture
	)
	in := annexB(sps, pps, sei, idr, idr2, p1, aud, p2, sps, pps, idr, trail)
	aus, err := ReadH264(bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := [][][]byte{{sps, pps, sei, idr, idr2}, {p1}, {aud, p2}, {sps, pps, idr, trail}}
	if len(aus) != len(want) {
		t.Fatalf("%d access units, want %d", len(aus), len(want))
	}
	for i, au := range aus {
		var nalus h264.AnnexB
		if err := nalus.Unmarshal(au); err != nil {
			t.Fatalf("access unit %d: %v", i, err)
		}
		if !bytes.HasPrefix(au, startCode) || len(nalus) != len(want[i]) {
			t.Fatalf("access unit %d: %x", i, au)
		}
		for j := range nalus {
			if !bytes.Equal(nalus[j], want[i][j]) {
				t.Fatalf("access unit %d NAL %d: %x, want %x", i, j, nalus[j], want[i][j])
			}
		}
	}
	if _, err := ReadH264(strings.NewReader("not h264")); err == nil {
		t.Fatal("ReadH264 took a stream without a start code")
	}
}

func FuzzReadH264(f *testing.F) {
	f.Add(annexB([]byte{0x67, 0x42}, []byte{0x68, 0xce}, []byte{0x65, 0x88}, []byte{0x41, 0x9a}, []byte{0x41, 0x40}))
	f.Add(annexB([]byte{0x09}, []byte{0x01, 0x80}, []byte{0x09}, []byte{0x05, 0x00}))
	f.Add([]byte{0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		aus, err := ReadH264(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, au := range aus {
			if !bytes.HasPrefix(au, startCode) {
				t.Fatalf("access unit %x without a start code", au)
			}
			// An access unit read again is one access unit, itself.
			again, err := ReadH264(bytes.NewReader(au))
			if err != nil || len(again) != 1 || !bytes.Equal(again[0], au) {
				t.Fatalf("access unit %x reads back as %x (%v)", au, again, err)
			}
		}
	})
}

// FuzzReadOpus: whatever the input, ReadOpus returns only valid Opus packets. The seed
// corpus (testdata/fuzz/FuzzReadOpus) holds a short Ogg Opus file made by ffmpeg.
func FuzzReadOpus(f *testing.F) {
	f.Add([]byte("OggS\x00\x02"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkts, err := ReadOpus(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("ReadOpus of a byte slice failed: %v", err)
		}
		for _, p := range pkts {
			if len(p) == 0 || bytes.HasPrefix(p, []byte("Opus")) {
				t.Fatalf("packet %x", p)
			}
		}
	})
}

// TestGenerate makes a clip with ffmpeg and reads it back.
func TestGenerate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Generate(ctx, t.TempDir(), GenerateOptions{Width: 160, Height: 96, FrameRate: 25, GOP: 10, Duration: time.Second})
	if err != nil {
		t.Fatalf("%v (ffmpeg is required; the README's test command installs it)", err)
	}
	if len(m.Video) != 25 || len(m.Audio) < 45 || m.FrameDuration != 40*time.Millisecond {
		t.Fatalf("clip: %d frames of %v, %d Opus packets", len(m.Video), m.FrameDuration, len(m.Audio))
	}
	keys := 0
	for i, au := range m.Video {
		var nalus h264.AnnexB
		if err := nalus.Unmarshal(au); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !h264.IsRandomAccess(nalus) {
			continue
		}
		keys++
		for _, n := range nalus {
			if h264.NALUType(n[0]&0x1f) != h264.NALUTypeSPS {
				continue
			}
			var sps h264.SPS
			if err := sps.Unmarshal(n); err != nil || sps.Width() != 160 || sps.Height() != 96 {
				t.Fatalf("frame %d: SPS %v %dx%d", i, err, sps.Width(), sps.Height())
			}
		}
	}
	if keys != 3 || !h264.IsRandomAccess(mustAnnexB(t, m.Video[0])) {
		t.Fatalf("%d keyframes, want 3 from the first", keys)
	}
}

func mustAnnexB(t *testing.T, au []byte) h264.AnnexB {
	t.Helper()
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(au); err != nil {
		t.Fatal(err)
	}
	return nalus
}
