package hls

import (
	"testing"
	"time"

	"github.com/bluenviron/gohlslib/v2"
	"github.com/bluenviron/gohlslib/v2/pkg/codecs"

	"github.com/relaycast/relaycast/bus"
)

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path, id, file string
		ok             bool
	}{
		{"/api/stream/pub_x/hls/index.m3u8", "pub_x", "index.m3u8", true},
		{"/api/stream/pub_x/hls/abc_video1_part3.mp4", "pub_x", "abc_video1_part3.mp4", true},
		{"/api/stream/pub_x/hls/", "", "", false},
		{"/api/stream//hls/index.m3u8", "", "", false},
		{"/api/stream/pub_x/hls/a/index.m3u8", "", "", false},
		{"/api/stream/a/b/hls/index.m3u8", "", "", false},
		{"/api/streams/pub_x/hls/index.m3u8", "", "", false},
		{"/api/stream/pub_x/dash/index.mpd", "", "", false},
	} {
		id, file, ok := parsePath(tc.path)
		if id != tc.id || file != tc.file || ok != tc.ok {
			t.Errorf("parsePath(%q) = %q, %q, %v", tc.path, id, file, ok)
		}
	}
}

func TestToClock(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		rate int
		want int64
	}{
		{0, 90000, 0},
		{time.Second, 90000, 90000},
		{time.Second / 30, 90000, 3000},
		{1024 * time.Second / 48000, 48000, 1024}, // 21.333333 ms is 1023.99998 ticks
		{3 * 1024 * time.Second / 44100, 44100, 3072},
		{time.Second / 3, 90000, 30000},
		{-time.Second, 90000, -90000},
		{30 * 24 * time.Hour, 90000, 30 * 24 * 3600 * 90000}, // no overflow after a month
	} {
		if got := toClock(tc.d, tc.rate); got != tc.want {
			t.Errorf("toClock(%v, %d) = %d, want %d", tc.d, tc.rate, got, tc.want)
		}
	}
}

// hevcConfig builds an HEVCDecoderConfigurationRecord with one VPS, SPS and PPS.
func hevcConfig(vps, sps, pps []byte) []byte {
	b := make([]byte, 22)
	b[0] = 1
	b = append(b, 3)
	for i, n := range [][]byte{vps, sps, pps} {
		b = append(b, byte(32+i), 0, 1, byte(len(n)>>8), byte(len(n)))
		b = append(b, n...)
	}
	return b
}

func TestNewTrackWriter(t *testing.T) {
	avc, err := bus.AVCConfig([]byte{0x67, 0x42, 0xc0, 0x0d, 0xda}, []byte{0x68, 0xce})
	if err != nil {
		t.Fatal(err)
	}
	aac := []byte{0x11, 0x90} // AAC-LC, 48 kHz, stereo
	for _, tc := range []struct {
		name    string
		track   bus.Track
		variant gohlslib.MuxerVariant
		ok      bool
		rate    int
		params  int
	}{
		{"h264", bus.Track{Codec: bus.CodecH264, Config: avc}, gohlslib.MuxerVariantMPEGTS, true, 90000, 2},
		{"h264 without record", bus.Track{Codec: bus.CodecH264}, gohlslib.MuxerVariantLowLatency, true, 90000, 0},
		{"h265", bus.Track{Codec: bus.CodecH265, Config: hevcConfig([]byte{0x40}, []byte{0x42}, []byte{0x44})},
			gohlslib.MuxerVariantLowLatency, true, 90000, 3},
		{"h265 mpegts", bus.Track{Codec: bus.CodecH265}, gohlslib.MuxerVariantMPEGTS, false, 0, 0},
		{"aac", bus.Track{Codec: bus.CodecAAC, Config: aac}, gohlslib.MuxerVariantMPEGTS, true, 48000, 0},
		{"aac bad config", bus.Track{Codec: bus.CodecAAC}, gohlslib.MuxerVariantFMP4, false, 0, 0},
		{"opus", bus.Track{Codec: bus.CodecOpus}, gohlslib.MuxerVariantFMP4, true, 48000, 0},
		{"opus mpegts", bus.Track{Codec: bus.CodecOpus}, gohlslib.MuxerVariantMPEGTS, false, 0, 0},
		{"vp8", bus.Track{Codec: bus.CodecVP8}, gohlslib.MuxerVariantFMP4, false, 0, 0},
		{"vp9", bus.Track{Codec: bus.CodecVP9}, gohlslib.MuxerVariantLowLatency, true, 90000, 0},
		{"vp9 mpegts", bus.Track{Codec: bus.CodecVP9}, gohlslib.MuxerVariantMPEGTS, false, 0, 0},
		{"av1", bus.Track{Codec: bus.CodecAV1}, gohlslib.MuxerVariantFMP4, true, 90000, 0},
		{"av1 mpegts", bus.Track{Codec: bus.CodecAV1}, gohlslib.MuxerVariantMPEGTS, false, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw, err := newTrackWriter(&tc.track, tc.variant)
			if (err == nil) != tc.ok {
				t.Fatalf("err %v", err)
			}
			if !tc.ok {
				return
			}
			if tw.hls.ClockRate != tc.rate || len(tw.params) != tc.params {
				t.Errorf("clock rate %d, %d parameter sets", tw.hls.ClockRate, len(tw.params))
			}
		})
	}
}

func TestOpusChannels(t *testing.T) {
	head := append([]byte("OpusHead"), 1, 6)
	for _, tc := range []struct {
		track bus.Track
		want  int
	}{
		{bus.Track{Channels: 1}, 1},
		{bus.Track{Config: head}, 6},
		{bus.Track{}, 2},
	} {
		if got := opusChannels(&tc.track); got != tc.want {
			t.Errorf("%+v: %d channels, want %d", tc.track, got, tc.want)
		}
	}
	tw, _ := newTrackWriter(&bus.Track{Codec: bus.CodecOpus, Channels: 1}, gohlslib.MuxerVariantFMP4)
	if c := tw.hls.Codec.(*codecs.Opus); c.ChannelCount != 1 {
		t.Errorf("channel count %d", c.ChannelCount)
	}
}

func TestHasParamSets(t *testing.T) {
	idr := bus.JoinNALUs([][]byte{{0x65, 1}})
	withSPS := bus.JoinNALUs([][]byte{{0x67, 1}, {0x68, 2}, {0x65, 1}})
	if hasParamSets(bus.CodecH264, idr) || !hasParamSets(bus.CodecH264, withSPS) {
		t.Error("h264")
	}
	hevc := bus.JoinNALUs([][]byte{{0x40, 1}, {0x26, 1}}) // VPS, IDR_W_RADL
	if !hasParamSets(bus.CodecH265, hevc) || hasParamSets(bus.CodecH265, bus.JoinNALUs([][]byte{{0x26, 1}})) {
		t.Error("h265")
	}
}
