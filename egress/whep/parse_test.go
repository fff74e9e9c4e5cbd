package whep

import (
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// FuzzPacketize checks that any AVCC unit packetizes into RTP that decodes back to the
// same NAL units.
func FuzzPacketize(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 0x65, 1, 2}, true)
	f.Add(bus.JoinNALUs([][]byte{{0x09, 0xf0}, bytes.Repeat([]byte{0x41}, 3000), {0x06, 1}}), false)
	sps := []byte{0x67, 0x64, 0x00, 0x1f, 0xac}
	pps := []byte{0x68, 0xee}
	cfg, _ := bus.AVCConfig(sps, pps)
	track := &bus.Track{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg}
	f.Fuzz(func(t *testing.T, payload []byte, key bool) {
		nalus, err := bus.SplitNALUs(payload)
		if err != nil || len(nalus) == 0 {
			return
		}
		st := &stream{}
		pkts := st.packetize(&bus.Unit{Track: track, Key: key, Payload: payload})
		var want [][]byte
		if key {
			hasSPS := false
			for _, n := range nalus {
				hasSPS = hasSPS || n[0]&0x1f == 7
			}
			if !hasSPS {
				want = append(want, sps, pps)
			}
		}
		for _, n := range nalus {
			if sendable(n) {
				want = append(want, n)
			}
		}
		if len(want) == 0 {
			if len(pkts) != 0 {
				t.Fatal("packets for an empty unit")
			}
			return
		}
		dec := &rtph264.Decoder{PacketizationMode: 1}
		_ = dec.Init()
		var got [][]byte
		for i, p := range pkts {
			if len(p.b) > rtpPayloadMax {
				t.Fatalf("payload of %d bytes", len(p.b))
			}
			if p.marker != (i == len(pkts)-1) {
				t.Fatalf("marker on packet %d of %d", i, len(pkts))
			}
			au, err := dec.Decode(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(i), Timestamp: 1,
				Marker: p.marker}, Payload: p.b})
			if err == nil {
				got = au
			}
		}
		if len(got) != len(want) {
			// NAL units that contain start codes are split by the decoder (Annex-B
			// tolerance); only compare the bytes then.
			if !bytes.Equal(bytes.Join(got, nil), bytes.Join(want, nil)) && !containsStartCode(want) {
				t.Fatalf("decoded %d NAL units, want %d", len(got), len(want))
			}
			return
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) && !containsStartCode(want) {
				t.Fatalf("NAL unit %d differs", i)
			}
		}
	})
}

func containsStartCode(nalus [][]byte) bool {
	for _, n := range nalus {
		if bytes.Contains(n, []byte{0, 0, 1}) {
			return true
		}
	}
	return false
}

const viewerOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=ice-ufrag:uf\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 102 103 104\r\na=mid:0\r\na=recvonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=0;profile-level-id=42e01f\r\n" +
	"a=rtpmap:103 H264/90000\r\na=fmtp:103 packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rtpmap:104 H264/90000\r\na=fmtp:104 packetization-mode=1;profile-level-id=640032\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=recvonly\r\na=rtpmap:111 opus/48000/2\r\n"

func TestParseOfferAndChooseH264(t *testing.T) {
	sum, err := parseOffer([]byte(viewerOffer))
	if err != nil {
		t.Fatal(err)
	}
	if !sum.opus || len(sum.h264) != 2 || sum.ufrag != "uf" {
		t.Fatalf("summary %+v", sum)
	}
	cases := []struct {
		profile [3]byte
		pt      uint8
	}{
		{[3]byte{0x64, 0x00, 0x1f}, 104}, // high -> high
		{[3]byte{0x42, 0xe0, 0x1f}, 103}, // constrained baseline -> same
		{[3]byte{0x4d, 0x40, 0x1f}, 103}, // main: not offered -> constrained baseline
	}
	for _, c := range cases {
		got, ok := chooseH264(sum.h264, c.profile)
		if !ok || got.PT != c.pt {
			t.Errorf("profile %x: chose %d, want %d", c.profile, got.PT, c.pt)
		}
	}
	if _, err := parseOffer([]byte("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 RTP/AVP 96\r\na=mid:0\r\na=rtpmap:96 VP8/90000\r\n")); err == nil {
		t.Fatal("accepted an offer without H.264 or Opus")
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add([]byte(viewerOffer))
	f.Fuzz(func(t *testing.T, b []byte) {
		sum, err := parseOffer(b)
		if err != nil {
			return
		}
		if sum.h264 == nil && !sum.opus {
			t.Fatal("accepted an offer without media")
		}
		_, _ = chooseH264(sum.h264, [3]byte{0x64, 0, 0x1f})
	})
}

// TestTranscoderTimeline checks that the transcoder's Opus is dated on the bus timeline:
// it starts where the AAC started and follows a jump in the input.
func TestTranscoderTimeline(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is required (the README's test command installs it): %v", err)
	}
	c := makeClip(t)
	hub := bus.New(bus.Config{Logger: slog.New(slog.DiscardHandler)})
	defer hub.Close()
	pub, err := hub.Publish("s", []*bus.Track{c.audio})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var counters transcoderCounters
	tc, err := startTranscoder(hub, "s", "ffmpeg", 96000, slog.New(slog.DiscardHandler), &counters)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.close()
	sink := &audioSink{ch: make(chan opusPacket, 1000)}
	tc.setSinks([]*audioSink{sink})

	aDur := 1024 * time.Second / time.Duration(c.aSampleRate)
	start := 10 * time.Second
	jumpAt, jump := 100, 5*time.Second
	var firstOut, jumped time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ai := 0
	next := time.Now()
	got := 0
	for jumped == 0 {
		if time.Now().After(next) && ai < len(c.aUnits) {
			pts := start + time.Duration(ai)*aDur
			if ai >= jumpAt {
				pts += jump
			}
			pub.Write(&bus.Unit{Track: c.audio, PTS: pts, DTS: pts, Key: true, Payload: c.aUnits[ai], Arrival: time.Now()})
			ai++
			next = next.Add(aDur / 4) // 4x real time
			continue
		}
		select {
		case p := <-sink.ch:
			if got == 0 {
				firstOut = p.pts
			}
			got++
			if p.pts > start+jump {
				jumped = p.pts
			}
		case <-time.After(time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("no output after the jump (%d packets)", got)
		}
	}
	if d := firstOut - start; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Fatalf("first Opus packet at %v, want about %v", firstOut, start)
	}
	want := start + jump + time.Duration(jumpAt)*aDur
	if d := jumped - want; d < -30*time.Millisecond || d > 30*time.Millisecond {
		t.Fatalf("first Opus packet after the jump at %v, want about %v", jumped, want)
	}
	if counters.started.Load() != 1 {
		t.Fatalf("%d processes", counters.started.Load())
	}
}
