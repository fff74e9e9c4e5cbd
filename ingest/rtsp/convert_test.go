package rtsp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/sdpunmarshaler"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// A real 320x240 SPS/PPS pair (x264, High profile).
var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
		0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	testIDR = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff}
	testP   = []byte{0x41, 0x9a, 0x24, 0x6c, 0x41}
)

func h264Media(sps, pps []byte) (*description.Media, *format.H264) {
	f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: sps, PPS: pps}
	return &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{f}}, f
}

func TestH264WithSprop(t *testing.T) {
	m, f := h264Media(testSPS, testPPS)
	tr, err := newInTrack(0, m, f)
	if err != nil {
		t.Fatal(err)
	}
	if tr.track == nil || tr.track.Width != 320 || tr.track.Height != 240 {
		t.Fatalf("track from sprop: %+v", tr.track)
	}
	now := time.Now()
	// A P-frame first: dropped (no keyframe yet).
	out, err := tr.h264AU([][]byte{testP}, 0, now, nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("P before IDR: %v %v", out, err)
	}
	out, err = tr.h264AU([][]byte{{0x09, 0xf0}, testIDR}, 9000, now, nil)
	if err != nil || len(out) != 1 {
		t.Fatalf("IDR: %v %v", out, err)
	}
	u := out[0]
	if !u.Key || u.PTS != 100*time.Millisecond || u.DTS != u.PTS {
		t.Fatalf("unit key=%v pts=%v dts=%v", u.Key, u.PTS, u.DTS)
	}
	nalus, err := bus.SplitNALUs(u.Payload)
	if err != nil || len(nalus) != 1 || !bytes.Equal(nalus[0], testIDR) {
		t.Fatalf("payload %x: AUD must be dropped, IDR kept", u.Payload)
	}
	out, _ = tr.h264AU([][]byte{testP}, 12000, now, nil)
	if len(out) != 1 || out[0].Key {
		t.Fatalf("P after IDR: %+v", out)
	}
}

func TestH264InBandParams(t *testing.T) {
	m, f := h264Media(nil, nil)
	tr, err := newInTrack(0, m, f)
	if err != nil {
		t.Fatal(err)
	}
	if tr.track != nil {
		t.Fatal("track known without parameter sets")
	}
	out, _ := tr.h264AU([][]byte{testSPS, testPPS, testIDR}, 0, time.Now(), nil)
	if len(out) != 1 || tr.track == nil || tr.track.Width != 320 {
		t.Fatalf("in-band SPS/PPS: %+v %+v", out, tr.track)
	}
	first := tr.track
	sps, pps, err := bus.ParseAVCConfig(first.Config)
	if err != nil || !bytes.Equal(sps[0], testSPS) || !bytes.Equal(pps[0], testPPS) {
		t.Fatalf("config %x", first.Config)
	}
	if n, _ := bus.SplitNALUs(out[0].Payload); len(n) != 1 {
		t.Fatalf("parameter sets left in the payload: %d NALUs", len(n))
	}
	// The same sets again: same track. A new PPS: a new track.
	tr.h264AU([][]byte{testSPS, testPPS, testIDR}, 3000, time.Now(), nil)
	if tr.track != first {
		t.Fatal("unchanged parameter sets made a new track")
	}
	tr.h264AU([][]byte{testSPS, {0x68, 0xee, 0x3c, 0x80}, testIDR}, 6000, time.Now(), nil)
	if tr.track == first {
		t.Fatal("changed PPS kept the old track")
	}
}

func TestAACAndOpusTracks(t *testing.T) {
	asc := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	aac := &format.MPEG4Audio{PayloadTyp: 97, Config: asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}
	tr, err := newInTrack(1, &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{aac}}, aac)
	if err != nil {
		t.Fatal(err)
	}
	if tr.track.Codec != bus.CodecAAC || tr.track.ClockRate != 48000 || tr.track.Channels != 2 || tr.track.Index != 1 {
		t.Fatalf("aac track %+v", tr.track)
	}
	enc, _ := aac.CreateEncoder()
	pkts, _ := enc.Encode([][]byte{{1, 2, 3}, {4, 5}})
	out, err := tr.decode(pkts[0], 4800, time.Now(), nil)
	if err != nil || len(out) != 2 {
		t.Fatalf("aac decode: %v %v", out, err)
	}
	if out[0].PTS != 100*time.Millisecond || out[1].PTS-out[0].PTS != 1024*time.Second/48000 {
		t.Fatalf("aac pts %v %v", out[0].PTS, out[1].PTS)
	}

	opus := &format.Opus{PayloadTyp: 111, ChannelCount: 2}
	tr, err = newInTrack(0, &description.Media{Type: description.MediaTypeAudio, Formats: []format.Format{opus}}, opus)
	if err != nil || tr.track.Codec != bus.CodecOpus || tr.track.ClockRate != 48000 {
		t.Fatalf("opus: %+v %v", tr, err)
	}
	out, err = tr.decode(&rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: []byte{0xfc, 1, 2}}, 960, time.Now(), nil)
	if err != nil || len(out) != 1 || out[0].PTS != 20*time.Millisecond || !out[0].Key {
		t.Fatalf("opus decode: %+v %v", out, err)
	}
}

func TestUnsupportedFormatsLeftOut(t *testing.T) {
	m, f := h264Media(testSPS, testPPS)
	vp8 := &format.VP8{PayloadTyp: 98}
	desc := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{vp8}},
		m,
	}}
	_ = f
	var skipped int
	tracks, err := mapTracks(desc, func(*description.Media, format.Format, error) { skipped++ })
	if err != nil || len(tracks) != 1 || skipped != 1 || tracks[0].index != 0 {
		t.Fatalf("tracks %v skipped %d err %v", tracks, skipped, err)
	}
	_, err = mapTracks(&description.Session{Medias: []*description.Media{desc.Medias[0]}}, nil)
	if !errors.Is(err, ErrUnsupportedCodec) {
		t.Fatalf("only vp8: %v", err)
	}
}

func TestLivePath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"/live/key", "key", true},
		{"live/key/", "key", true},
		{"/live/key?x=1", "key", true},
		{"/live/", "", false},
		{"/other/key", "", false},
		{"", "", false},
	} {
		got, ok := livePath(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("livePath(%q) = %q %v", tc.in, got, ok)
		}
	}
}

func TestTicks(t *testing.T) {
	if d := ticks(90000*3600*30, 90000); d != 30*time.Hour {
		t.Fatalf("30 h at 90 kHz: %v", d)
	}
	if d := ticks(1024, 48000); d != 21333333*time.Nanosecond {
		t.Fatalf("1024 at 48 kHz: %v", d)
	}
}

// FuzzH264AU feeds arbitrary NAL units to the H.264 access-unit conversion.
func FuzzH264AU(f *testing.F) {
	f.Add(bus.JoinNALUs([][]byte{testSPS, testPPS, testIDR}), int64(0))
	f.Add(bus.JoinNALUs([][]byte{testP}), int64(3000))
	f.Add([]byte{0, 0, 0, 1, 0x67}, int64(-5))
	f.Fuzz(func(t *testing.T, b []byte, pts int64) {
		nalus, err := bus.SplitNALUs(b)
		if err != nil {
			nalus = [][]byte{b}
		}
		for _, withSprop := range []bool{false, true} {
			m, fm := h264Media(nil, nil)
			if withSprop {
				m, fm = h264Media(testSPS, testPPS)
			}
			tr, err := newInTrack(0, m, fm)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				out, _ := tr.h264AU(nalus, pts+int64(i)*3000, time.Now(), nil)
				for _, u := range out {
					if _, err := bus.SplitNALUs(u.Payload); err != nil || u.Track == nil {
						t.Fatalf("bad unit %+v", u)
					}
				}
			}
		}
	})
}

// FuzzDecodeRTP feeds arbitrary RTP packets to every codec's conversion.
func FuzzDecodeRTP(f *testing.F) {
	f.Add([]byte{0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x65, 0x88})
	f.Add([]byte{0x80, 0x61, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x10, 0, 0x18, 1, 2, 3})
	f.Add([]byte{0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x7c, 0x85, 1})
	asc := &mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		var pkt rtp.Packet
		if err := pkt.Unmarshal(b); err != nil {
			return
		}
		smc := &mpeg4audio.StreamMuxConfig{Programs: []*mpeg4audio.StreamMuxConfigProgram{{
			Layers: []*mpeg4audio.StreamMuxConfigLayer{{AudioSpecificConfig: asc}},
		}}}
		for _, fm := range []format.Format{
			&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: testSPS, PPS: testPPS},
			&format.MPEG4Audio{PayloadTyp: 97, Config: asc, SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3},
			&format.MPEG4AudioLATM{PayloadTyp: 98, CPresent: false, StreamMuxConfig: smc},
			&format.Opus{PayloadTyp: 99, ChannelCount: 2},
		} {
			tr, err := newInTrack(0, &description.Media{Formats: []format.Format{fm}}, fm)
			if err != nil {
				t.Fatalf("%s: %v", formatName(fm), err)
			}
			pkt.PayloadType = fm.PayloadType()
			p := pkt
			p.Payload = bytes.Clone(pkt.Payload)
			_, _ = tr.decode(&p, 0, time.Now(), nil)
			p.Payload = bytes.Clone(pkt.Payload)
			_, _ = tr.decode(&p, 1000, time.Now(), nil)
		}
	})
}

// FuzzSessionDescription maps arbitrary announced SDPs to tracks.
func FuzzSessionDescription(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADazZQUH7ARAAAAMAEAAAAwPA8UKZYA==,aOvjyyLA\r\na=control:streamid=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/48000/2\r\n" +
		"a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1190\r\na=control:streamid=1\r\n"))
	f.Add([]byte("v=0\r\ns=x\r\nm=audio 0 RTP/AVP 96\r\na=rtpmap:96 MP4A-LATM/44100/1\r\na=fmtp:96 cpresent=0;config=400024203fc0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := sdpunmarshaler.Unmarshal(b)
		if err != nil {
			return
		}
		var desc description.Session
		if err := desc.Unmarshal2(sd); err != nil {
			return
		}
		tracks, err := mapTracks(&desc, nil)
		if err != nil {
			return
		}
		for i, tr := range tracks {
			if tr.index != i || (tr.track != nil && tr.track.Index != i) {
				t.Fatalf("track %d has index %d", i, tr.index)
			}
		}
	})
}
