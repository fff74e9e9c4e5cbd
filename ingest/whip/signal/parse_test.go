package signal

import (
	"bytes"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	cases := []struct {
		path, key, sid string
		ok             bool
	}{
		{"/api/stream/live_x/webrtc/whip", "live_x", "", true},
		{"/api/stream/live_x/webrtc/whip/", "live_x", "", true},
		{"/api/stream/live_x/webrtc/whip/abc", "live_x", "abc", true},
		{"/api/stream/live_x/webrtc/whip/abc/d", "", "", false},
		{"/api/stream//webrtc/whip", "", "", false},
		{"/api/stream/a/b/webrtc/whip", "", "", false},
		{"/api/stream/live_x/webrtc/whipx", "", "", false},
		{"/other", "", "", false},
		// The suffix is the endpoint's: a WHEP path is not a WHIP endpoint.
		{"/api/stream/live_x/webrtc/whep", "", "", false},
	}
	for _, c := range cases {
		key, sid, ok := parsePath(c.path, "/webrtc/whip")
		if key != c.key || sid != c.sid || ok != c.ok {
			t.Errorf("%s: %q %q %v", c.path, key, sid, ok)
		}
	}
}

func TestResourceURL(t *testing.T) {
	if got := resourceURL("/webrtc/whep", "pb 1", "abc"); got != "/api/stream/pb%201/webrtc/whep/abc" {
		t.Fatalf("resourceURL: %q", got)
	}
	id, sid, ok := parsePath("/api/stream/pb_1/webrtc/whep/abc", "/webrtc/whep")
	if id != "pb_1" || sid != "abc" || !ok {
		t.Fatalf("parsePath: %q %q %v", id, sid, ok)
	}
}

const offerSeed = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=mid:0\r\na=ice-ufrag:uf\r\na=sendonly\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=mid:1\r\na=inactive\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:* goog-remb\r\n" +
	"a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"

func TestParseOffer(t *testing.T) {
	o, err := ParseOffer([]byte(offerSeed))
	if err != nil {
		t.Fatal(err)
	}
	if o.Ufrag != "" || len(o.Media) != 2 {
		t.Fatalf("offer %+v", o)
	}
	a, v := &o.Media[0], &o.Media[1]
	if a.Kind != "audio" || a.Mid != "0" || a.Ufrag != "uf" || !a.SendOnly || a.RecvOnly || a.Inactive {
		t.Fatalf("audio section %+v", a)
	}
	// PCMU (static payload type 0) has an rtpmap here, so it is listed.
	if c := a.Codecs(); len(c) != 2 || c[0].PT != 111 || c[0].Name != "opus" || c[0].Rate != 48000 ||
		c[0].Channels != 2 || c[1].Name != "PCMU" {
		t.Fatalf("audio codecs %+v", c)
	}
	if p, ok := a.Codecs()[0].Param("useinbandfec"); !ok || p != "1" {
		t.Fatalf("fmtp param %q %v", p, ok)
	}
	c := v.Codecs()
	if v.Kind != "video" || !v.Inactive || len(c) != 2 || len(c[0].Feedback) != 2 ||
		c[0].Feedback[1].Type != "goog-remb" || c[1].Name != "rtx" {
		t.Fatalf("video section %+v, codecs %+v", v, c)
	}
	if _, err := ParseOffer([]byte("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")); err == nil {
		t.Fatal("accepted an offer without media")
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(offerSeed))
	f.Add([]byte("v=0\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\na=mid:0\r\na=rtpmap:96 H264/90000/x\r\na=fmtp:96 packetization-mode=1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOffer(b)
		if err != nil {
			return
		}
		if len(o.Media) == 0 {
			t.Fatal("accepted an offer without media")
		}
		for i := range o.Media {
			for _, c := range o.Media[i].Codecs() {
				if c.Name == "" || c.PT > 127 {
					t.Fatalf("codec %+v", c)
				}
			}
		}
	})
}

func FuzzParseTrickle(f *testing.F) {
	f.Add([]byte("a=ice-ufrag:uf\r\na=ice-pwd:pw\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"), "uf")
	f.Add([]byte("a=candidate:1 1 udp 1 ::1 9 typ host\n"), "")
	f.Add([]byte("a=ice-ufrag:uf\r\nm=audio 9 RTP/AVP 0\r\na=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n"), "uf")
	f.Fuzz(func(t *testing.T, b []byte, ufrag string) {
		cands, err := parseTrickle(b, ufrag)
		if err != nil {
			return
		}
		for _, c := range cands {
			if !bytes.HasPrefix([]byte(c.Candidate), []byte("candidate:")) {
				t.Fatalf("candidate %q", c.Candidate)
			}
		}
	})
}

func TestWildcardFeedbackIsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	b.WriteString("m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\n")
	b.WriteString("a=mid:0\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 H264/90000\r\n")
	for i := 0; i < 1000; i++ {
		b.WriteString("a=rtcp-fb:* nack\r\n")
	}
	offer, err := ParseOffer([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range offer.Media[0].Codecs() {
		if len(c.Feedback) > 2*maxFeedback {
			t.Fatalf("%s kept %d feedback lines", c.Name, len(c.Feedback))
		}
	}
}
