package rtmp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os/exec"
	"testing"
	"time"

	"github.com/relaycast/relaycast/bus"
	ingestrtmp "github.com/relaycast/relaycast/ingest/rtmp"
)

// hevcClip encodes a 2 s H.265 clip with ffmpeg (libx265, access unit delimiters) and
// returns its track and access units (AVCC form).
func hevcClip(t *testing.T) (*bus.Track, []*bus.Unit) {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=320x240:rate=30", "-t", "2", "-c:v", "libx265", "-preset", "ultrafast",
		"-x265-params", "aud=1:keyint=30:bframes=0:log-level=error", "-f", "hevc", "-").Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("ffmpeg with libx265 is required (Debian's ffmpeg has it): %v", err)
	}
	var nalus [][]byte
	for _, n := range bytes.Split(out, []byte{0, 0, 1}) {
		n = bytes.TrimRight(n, "\x00")
		if len(n) >= 2 {
			nalus = append(nalus, n)
		}
	}
	params := map[byte][]byte{}
	var units []*bus.Unit
	var au [][]byte
	key := false
	flush := func() {
		if len(au) > 0 {
			d := time.Duration(len(units)) * time.Second / 30
			units = append(units, &bus.Unit{DTS: d, PTS: d, Key: key, Payload: bus.JoinNALUs(au)})
		}
		au, key = nil, false
	}
	for _, n := range nalus {
		typ := n[0] >> 1 & 0x3f
		switch {
		case typ == 35: // access unit delimiter
			flush()
		case typ >= 32 && typ <= 34: // VPS, SPS, PPS
			params[typ] = n
		default:
			key = key || (typ >= 16 && typ <= 21)
			au = append(au, n)
		}
	}
	flush()
	// HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 §8.3.3.1): the 22 header bytes a
	// parser of the arrays needs, 4-byte lengths, then VPS, SPS and PPS arrays.
	rec := make([]byte, 23)
	rec[0], rec[21], rec[22] = 1, 0x0f, 3
	for _, typ := range []byte{32, 33, 34} {
		n := params[typ]
		if n == nil {
			t.Fatalf("no parameter set %d", typ)
		}
		rec = append(rec, 0x80|typ, 0, 1)
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(n)))
		rec = append(rec, n...)
	}
	tr := &bus.Track{Codec: bus.CodecH265, ClockRate: 90000, Config: rec, Width: 320, Height: 240}
	for _, u := range units {
		u.Track = tr
	}
	return tr, units
}

// TestPublisherHEVC: H.265 goes out as Enhanced RTMP and relaycast's ingest takes it back
// with the same configuration and every unit.
func TestPublisherHEVC(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	tr, units := hevcClip(t)
	hub := bus.New(bus.Config{ReconnectGrace: -1})
	t.Cleanup(hub.Close)
	in, err := ingestrtmp.New(ingestrtmp.Config{Addr: "127.0.0.1:0", Hub: hub, Auth: fakeAuth{},
		PlainEnabled: true, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = in.Close() })
	r, err := hub.Subscribe(t.Context(), "s3", bus.ReaderOptions{Wait: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := Dial(t.Context(), fmt.Sprintf("rtmp://%s/live/live_key3", in.Addr()), nil)
	if err != nil {
		t.Fatal(err)
	}
	p.SetTracks([]*bus.Track{tr})
	for _, u := range units {
		if err := p.WriteUnit(u); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	n := 0
	for {
		u, err := r.Next(ctx)
		if err != nil {
			break
		}
		if u.Track.Codec != bus.CodecH265 || !bytes.Equal(u.Track.Config, tr.Config) ||
			u.Track.Width != 320 || !bytes.Equal(u.Payload, units[n].Payload) || u.Key != units[n].Key {
			t.Fatalf("unit %d: %+v", n, u)
		}
		n++
	}
	if n != len(units) {
		t.Fatalf("%d of %d units arrived", n, len(units))
	}
	t.Logf("%d H.265 units relayed as Enhanced RTMP", n)
}
