package whip

import (
	"testing"

	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

const browserOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
	"a=ice-ufrag:uf\r\na=ice-pwd:pwpwpwpwpwpwpwpwpwpwpwpw\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 106 45 98\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n" +
	"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n" +
	"a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r\n" +
	"a=rtpmap:104 H264/90000\r\na=rtcp-fb:104 nack pli\r\na=rtcp-fb:* goog-remb\r\na=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rtpmap:106 rtx/90000\r\na=fmtp:106 apt=104\r\n" +
	"a=rtpmap:45 AV1/90000\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n"

func TestParseOfferChoosesCodecs(t *testing.T) {
	sum, err := parseOffer([]byte(browserOffer))
	if err != nil {
		t.Fatal(err)
	}
	if sum.ufrag != "uf" || !sum.audio || !sum.video {
		t.Fatalf("summary %+v", sum)
	}
	a, v := sum.choices["0"], sum.choices["1"]
	if a.codec != bus.CodecOpus || a.best.PT != 111 {
		t.Fatalf("audio choice %+v", a)
	}
	// Constrained baseline with packetization-mode 1 wins over high, VP8, AV1 and the
	// packetization-mode 0 variant; its RTX comes along, and its feedback (own + wildcard).
	if v.codec != bus.CodecH264 || v.best.PT != 104 || v.rtx == nil || v.rtx.PT != 106 {
		t.Fatalf("video choice %+v", v)
	}
	if len(v.best.Feedback) != 2 || v.best.Feedback[0].Type != "nack" || v.best.Feedback[0].Parameter != "pli" {
		t.Fatalf("feedback %+v", v.best.Feedback)
	}
	p := v.params("video")
	if len(p) != 2 || p[0].MimeType != "video/H264" || p[0].ClockRate != 90000 {
		t.Fatalf("params %+v", p)
	}
}

func TestRankTable(t *testing.T) {
	cases := []struct {
		kind, name string
		rate       uint32
		fmtp       string
		wantCodec  bus.Codec
		wantScore  int
	}{
		{"video", "H264", 90000, "packetization-mode=1;profile-level-id=42e01f", bus.CodecH264, 100},
		{"video", "h264", 90000, "packetization-mode=1;profile-level-id=640c1f", bus.CodecH264, 90},
		{"video", "H264", 90000, "packetization-mode=1;profile-level-id=4d001f", bus.CodecH264, 80},
		{"video", "H264", 90000, "packetization-mode=1;profile-level-id=42001f", bus.CodecH264, 70},
		{"video", "H264", 90000, "packetization-mode=1", bus.CodecH264, 70},
		{"video", "H264", 90000, "packetization-mode=0;profile-level-id=42e01f", bus.CodecUnknown, 0},
		{"video", "H264", 90000, "packetization-mode=1;profile-level-id=zz", bus.CodecH264, 60},
		{"video", "AV1", 90000, "", bus.CodecAV1, 50},
		{"video", "VP9", 90000, "profile-id=2", bus.CodecUnknown, 0},
		{"video", "VP9", 90000, "profile-id=0", bus.CodecVP9, 40},
		{"video", "VP8", 90000, "", bus.CodecVP8, 30},
		{"video", "H265", 90000, "", bus.CodecUnknown, 0},
		{"audio", "opus", 48000, "", bus.CodecOpus, 100},
		{"audio", "PCMU", 8000, "", bus.CodecUnknown, 0},
		{"audio", "H264", 90000, "packetization-mode=1", bus.CodecUnknown, 0},
	}
	for _, c := range cases {
		oc := signal.OfferedCodec{Name: c.name, Rate: c.rate, Fmtp: c.fmtp}
		score, codec := rank(c.kind, &oc)
		if score != c.wantScore || codec != c.wantCodec {
			t.Errorf("%s %s %q: score %d codec %v, want %d %v", c.kind, c.name, c.fmtp, score, codec, c.wantScore, c.wantCodec)
		}
	}
}

func TestReorder(t *testing.T) {
	r := newReorder(4)
	seqs := []uint16{65534, 0, 65535, 1, 3, 4, 5, 6, 7, 2}
	var got []uint16
	var lost bool
	for _, s := range seqs {
		var out []*rtp.Packet
		var l bool
		out, l = r.push(&rtp.Packet{Header: rtp.Header{SequenceNumber: s}}, nil)
		lost = lost || l
		for _, p := range out {
			got = append(got, p.SequenceNumber)
		}
	}
	// 65534, 65535, 0, 1 in order (wrap); 2 is waited for until 4 later packets are
	// buffered, then given up; when it arrives it is too late.
	want := []uint16{65534, 65535, 0, 1, 3, 4, 5, 6, 7}
	if !lost || len(got) != len(want) {
		t.Fatalf("got %v lost=%v, want %v lost", got, lost, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

// packets builds RTP packets from fuzz input: each record is a 4-byte header (sequence
// delta, marker, timestamp step) followed by a length-prefixed payload.
func packets(b []byte) []*rtp.Packet {
	var out []*rtp.Packet
	seq, ts := uint16(100), uint32(1000)
	for len(b) >= 5 {
		seq += uint16(int8(b[0]))
		marker := b[1]&1 == 1
		ts += uint32(b[2]) * 100
		n := int(b[3])
		b = b[4:]
		if n > len(b) {
			n = len(b)
		}
		out = append(out, &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts,
			Marker: marker}, Payload: append([]byte(nil), b[:n]...)})
		b = b[n:]
	}
	return out
}

func FuzzDepacketize(f *testing.F) {
	sps := []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x01, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc8, 0xf1, 0x62, 0xe4, 0x80}
	stap := append([]byte{0x18, 0, byte(len(sps))}, sps...)
	stap = append(stap, 0, 2, 0x68, 0xce)
	seed := append([]byte{1, 0, 0, byte(len(stap))}, stap...)
	seed = append(seed, 1, 0, 0, 4, 0x7c, 0x85, 0x88, 0x80) // FU-A start of an IDR
	seed = append(seed, 1, 1, 0, 3, 0x7c, 0x45, 0x11)       // FU-A end
	seed = append(seed, 1, 1, 3, 3, 0x41, 0x9a, 0x22)       // single NALU P slice
	f.Add(byte(0), seed)
	f.Add(byte(1), []byte{1, 1, 0, 3, 0x10, 0x02, 0x03, 1, 1, 1, 2, 0x11, 0x00})
	f.Add(byte(4), []byte{1, 1, 1, 3, 0x78, 0x01, 0x02})
	codecs := []bus.Codec{bus.CodecH264, bus.CodecVP8, bus.CodecVP9, bus.CodecAV1, bus.CodecOpus}
	f.Fuzz(func(t *testing.T, which byte, b []byte) {
		codec := codecs[int(which)%len(codecs)]
		d := newDepacketizer(codec)
		var frames []frame
		for _, p := range packets(b) {
			frames, _ = d.push(p, frames[:0])
			for _, fr := range frames {
				if len(fr.payload) == 0 {
					t.Fatal("empty frame")
				}
				if codec == bus.CodecH264 {
					if _, err := bus.SplitNALUs(fr.payload); err != nil {
						t.Fatalf("frame is not AVCC: %v", err)
					}
				}
			}
		}
	})
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(browserOffer))
	f.Add([]byte("v=0\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\na=mid:0\r\na=rtpmap:96 H264/90000/x\r\na=fmtp:96 packetization-mode=1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, err := parseOffer(b)
		if err != nil {
			return
		}
		if !sum.audio && !sum.video {
			t.Fatal("accepted an offer without media")
		}
		for _, ch := range sum.choices {
			if ch.codec == bus.CodecUnknown {
				t.Fatal("chose an unknown codec")
			}
			_ = ch.params("video")
		}
	})
}

// TestTicks checks the timestamp conversion used for every unit.
func TestTicks(t *testing.T) {
	if d := ticks(90000*3+45000, 90000); d.Milliseconds() != 3500 {
		t.Fatal(d)
	}
	if d := ticks(-960, 48000); d.Milliseconds() != -20 {
		t.Fatal(d)
	}
	var s slot
	s.lastRaw, s.ext = 0xffffff00, 0xffffff00
	if e := s.unwrap(0x100); e != 0x100000100 {
		t.Fatalf("unwrap: %x", e)
	}
	ntp := uint64(10)<<32 | 1<<31
	if d := ntpDuration(ntp); d.Milliseconds() != 10500 {
		t.Fatal(d)
	}
}
