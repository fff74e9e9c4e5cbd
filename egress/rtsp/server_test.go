package rtsp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
)

var (
	testSPS = []byte{0x67, 0x64, 0x00, 0x0d, 0xac, 0xd9, 0x41, 0x41, 0xfb, 0x01, 0x10, 0x00, 0x00, 0x03,
		0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x42, 0x99, 0x60}
	testPPS = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	testIDR = []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff}
)

func testTracks(t testing.TB) []*bus.Track {
	cfg, err := bus.AVCConfig(testSPS, testPPS)
	if err != nil {
		t.Fatal(err)
	}
	asc := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 48000, ChannelConfig: 2}
	ascb, err := asc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return []*bus.Track{
		{Index: 0, Codec: bus.CodecH264, ClockRate: 90000, Config: cfg},
		{Index: 1, Codec: bus.CodecAAC, ClockRate: 48000, Config: ascb},
		{Index: 2, Codec: bus.CodecVP8, ClockRate: 90000},
		{Index: 3, Codec: bus.CodecOpus, ClockRate: 48000, Channels: 2},
	}
}

func TestDescribe(t *testing.T) {
	desc, outs, skipped := describe(testTracks(t))
	if len(desc.Medias) != 3 || len(skipped) != 1 || outs[2] != nil {
		t.Fatalf("medias %d skipped %v", len(desc.Medias), skipped)
	}
	h := outs[0].media.Formats[0].(*format.H264)
	if !bytes.Equal(h.SPS, testSPS) || !bytes.Equal(h.PPS, testPPS) || h.PacketizationMode != 1 {
		t.Fatalf("h264 format %+v", h)
	}
	if outs[1].clockRate != 48000 || outs[3].clockRate != 48000 {
		t.Fatal("audio clock rates")
	}
	sdp, err := desc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"H264/90000", "sprop-parameter-sets=", "mpeg4-generic/48000/2", "opus/48000/2"} {
		if !strings.Contains(string(sdp), want) {
			t.Errorf("SDP lacks %q:\n%s", want, sdp)
		}
	}
}

// A keyframe without in-band parameter sets goes out with SPS and PPS in front, so a
// reader that joins a running stream can decode from it.
func TestKeyframeGetsParameterSets(t *testing.T) {
	_, outs, _ := describe(testTracks(t))
	o := outs[0]
	u := &bus.Unit{Track: o.track, Key: true, PTS: time.Second, Payload: bus.JoinNALUs([][]byte{testIDR})}
	pkts, err := o.packets(u, 1000)
	if err != nil || len(pkts) == 0 {
		t.Fatalf("packets: %v", err)
	}
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	var au [][]byte
	for _, p := range pkts {
		if p.Timestamp != 1000+90000 {
			t.Fatalf("timestamp %d", p.Timestamp)
		}
		if au, err = dec.Decode(p); err != nil && !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			t.Fatal(err)
		}
	}
	if len(au) != 3 || !bytes.Equal(au[0], testSPS) || !bytes.Equal(au[1], testPPS) || !bytes.Equal(au[2], testIDR) {
		t.Fatalf("access unit %x", au)
	}
	// A non-key unit goes as is.
	u = &bus.Unit{Track: o.track, PTS: time.Second, Payload: bus.JoinNALUs([][]byte{{0x41, 1, 2}})}
	if pkts, _ = o.packets(u, 0); len(pkts) != 1 || pkts[0].Payload[0] != 0x41 {
		t.Fatalf("P-frame packets %v", pkts)
	}
	if _, err := o.packets(&bus.Unit{Track: o.track, Payload: []byte{0, 0, 0, 9, 1}}, 0); err == nil {
		t.Fatal("malformed payload accepted")
	}
}

type fakeResolver struct{}

func (fakeResolver) Resolve(_ context.Context, req egress.Request) (string, error) {
	switch req.ID {
	case "pub_a":
		return "a", nil
	case "pub_secret":
		return "", egress.ErrForbidden
	}
	return "", egress.ErrNotFound
}

func statusOf(err error) base.StatusCode {
	var sc interface{ StatusCode() base.StatusCode }
	if errors.As(err, &sc) {
		return sc.StatusCode()
	}
	return 0
}

// TestFeedLifecycle drives Open/Play directly against a started gortsplib server: one
// ServerStream and one bus reader for every hold and player of a stream, refusals with the
// right status, and the feed closed after the linger.
func TestFeedLifecycle(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: log})
	defer hub.Close()
	s, err := New(Config{Hub: hub, Resolver: fakeResolver{}, Logger: log, Linger: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gs := &gortsplib.Server{RTSPAddress: "127.0.0.1:0"}
	if err := gs.Start(); err != nil {
		t.Fatal(err)
	}
	defer gs.Close()
	ctx := context.Background()

	for id, want := range map[string]base.StatusCode{
		"pub_x": base.StatusNotFound, "pub_secret": base.StatusForbidden, "pub_a": base.StatusNotFound,
	} {
		if _, _, err := s.Open(ctx, gs, id, "", "127.0.0.1:1"); statusOf(err) != want {
			t.Errorf("%s: %v, want %d", id, err, want)
		}
	}

	p, err := hub.Publish("a", testTracks(t))
	if err != nil {
		t.Fatal(err)
	}
	st1, rel1, err := s.Open(ctx, gs, "pub_a", "token=x", "127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	st2, rel2, err := s.Open(ctx, gs, "pub_a", "", "127.0.0.1:2")
	if err != nil || st2 != st1 {
		t.Fatalf("second hold got another stream (%v)", err)
	}
	stop1 := s.Play(st1)
	stop2 := s.Play(st2)
	p.Write(&bus.Unit{Track: p.Track(0), Key: true, Payload: bus.JoinNALUs([][]byte{testIDR})})
	// The feed's writer is running once it holds its bus reader. (No RTSP session reads the
	// ServerStream here, so gortsplib counts no outbound packets to wait for.)
	waitFor(t, "writer", func() bool { return s.Stats().BusReaders == 1 })
	if st := s.Stats(); st.Players != 2 || st.Feeds != 1 || st.BusReaders != 1 {
		t.Fatalf("stats %+v", st)
	}
	stop1()
	stop1()
	stop2()
	rel1()
	rel2()
	rel2()
	waitFor(t, "feed closed after linger", func() bool { return s.Stats().Feeds == 0 })
	if s.Stats().Players != 0 {
		t.Fatal("players left")
	}
	// Play on a closed stream is harmless.
	s.Play(st1)()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	if _, err := New(Config{Resolver: fakeResolver{}}); err == nil {
		t.Fatal("no hub accepted")
	}
}

// FuzzPackets packetizes arbitrary payloads for every served codec.
func FuzzPackets(f *testing.F) {
	f.Add(bus.JoinNALUs([][]byte{testIDR}), true, int64(0))
	f.Add([]byte{0, 0, 0, 2, 0x65}, false, int64(-1))
	f.Add(bytes.Repeat([]byte{0xff}, 3000), true, int64(1<<40))
	f.Fuzz(func(t *testing.T, payload []byte, key bool, pts int64) {
		_, outs, _ := describe(testTracks(t))
		for _, o := range outs {
			if o == nil {
				continue
			}
			u := &bus.Unit{Track: o.track, Key: key, PTS: time.Duration(pts), Payload: payload}
			pkts, err := o.packets(u, 0)
			if err == nil {
				for _, p := range pkts {
					if p.PayloadType != o.media.Formats[0].PayloadType() {
						t.Fatalf("payload type %d", p.PayloadType)
					}
				}
			}
		}
	})
}

// FuzzTrackConfig maps bus tracks with arbitrary configuration records.
func FuzzTrackConfig(f *testing.F) {
	cfg, _ := bus.AVCConfig(testSPS, testPPS)
	f.Add(cfg, uint8(bus.CodecH264))
	f.Add([]byte{0x11, 0x90}, uint8(bus.CodecAAC))
	f.Add(append([]byte{1}, make([]byte, 22)...), uint8(bus.CodecH265))
	f.Fuzz(func(t *testing.T, config []byte, codec uint8) {
		tr := &bus.Track{Codec: bus.Codec(codec % 8), ClockRate: 90000, Config: config}
		desc, outs, _ := describe([]*bus.Track{tr})
		if len(desc.Medias) == 1 {
			if _, err := desc.Marshal(); err != nil {
				return
			}
			o := outs[0]
			o.update(tr)
			_, _ = o.packets(&bus.Unit{Track: tr, Key: true, Payload: bus.JoinNALUs([][]byte{{0x65, 1}})}, 0)
		}
		_, _, _, _ = bus.ParseHEVCConfig(config)
	})
}
