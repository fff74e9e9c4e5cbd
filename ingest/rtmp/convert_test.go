package rtmp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/yutopp/go-amf0"

	"github.com/relaycast/relaycast/bus"
)

// Parameter sets of tiny clips made with ffmpeg 5.1 (libx264 / libx265, 64x48) and an AAC
// AudioSpecificConfig (LC, 48 kHz, mono, with the SBR sync extension ffmpeg writes).
var (
	testSPS     = mustHex("67f4000a9196847b0110000003001000000303c0f1226a")
	testPPS     = mustHex("68ce0f1920")
	testHEVCVPS = mustHex("40010c01ffff0408000003009e0800000300001e959409")
	testHEVCSPS = mustHex("4201010408000003009e0800000300001e90041062cb2b2a5261780b7020200040000003004000000782")
	testHEVCPPS = mustHex("4401c07318300890")
	testASC     = mustHex("118856e500")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func testAVCC(t testing.TB) []byte {
	rec, err := bus.AVCConfig(testSPS, testPPS)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// testHVCC builds an HEVCDecoderConfigurationRecord around the test parameter sets.
func testHVCC() []byte {
	rec := make([]byte, 23)
	rec[0] = 1
	copy(rec[1:13], testHEVCSPS[3:15]) // profile/tier/level, roughly: not checked here
	rec[13], rec[14] = 0xf0, 0x00
	rec[15], rec[16], rec[17], rec[18] = 0xfc, 0xfd, 0xf8, 0xf8
	rec[21] = 0x0f
	rec[22] = 3
	for _, ps := range []struct {
		typ byte
		b   []byte
	}{{hevcNALUVPS, testHEVCVPS}, {hevcNALUSPS, testHEVCSPS}, {hevcNALUPPS, testHEVCPPS}} {
		rec = append(rec, 0x80|ps.typ, 0, 1)
		rec = binary.BigEndian.AppendUint16(rec, uint16(len(ps.b)))
		rec = append(rec, ps.b...)
	}
	return rec
}

func avcTag(key bool, packetType byte, cts int32, data []byte) []byte {
	b := byte(0x27)
	if key {
		b = 0x17
	}
	return append([]byte{b, packetType, byte(cts >> 16), byte(cts >> 8), byte(cts)}, data...)
}

func aacTag(packetType byte, data []byte) []byte {
	return append([]byte{0xaf, packetType}, data...)
}

func nalus(n ...[]byte) []byte { return bus.JoinNALUs(n) }

var (
	idrNALU   = []byte{0x65, 0x88, 0x84, 0x00, 0x10}
	sliceNALU = []byte{0x41, 0x9a, 0x02, 0x03}
)

func TestParseVideoTag(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		kind    packetKind
		codec   bus.Codec
		key     bool
		cts     int32
		data    []byte
		wantErr error
	}{
		{"avc seq header", avcTag(true, 0, 0, []byte{1, 2}), kindSeqHeader, bus.CodecH264, true, 0, []byte{1, 2}, nil},
		{"avc nalu", avcTag(false, 1, 66, []byte{9}), kindFrame, bus.CodecH264, false, 66, []byte{9}, nil},
		{"negative cts", avcTag(false, 1, -33, nil), kindFrame, bus.CodecH264, false, -33, []byte{}, nil},
		{"avc eos", avcTag(false, 2, 0, nil), kindOther, bus.CodecH264, false, 0, []byte{}, nil},
		{"legacy hevc", []byte{0x1c, 1, 0, 0, 0, 7}, kindFrame, bus.CodecH265, true, 0, []byte{7}, nil},
		{"enhanced hvc1 start", append([]byte{0x90, 'h', 'v', 'c', '1'}, 5), kindSeqHeader, bus.CodecH265, true, 0, []byte{5}, nil},
		{"enhanced hvc1 frames", []byte{0xa1, 'h', 'v', 'c', '1', 0, 0, 40, 6}, kindFrame, bus.CodecH265, false, 40, []byte{6}, nil},
		{"enhanced hvc1 framesX", []byte{0x93, 'h', 'v', 'c', '1', 6}, kindFrame, bus.CodecH265, true, 0, []byte{6}, nil},
		{"command frame", []byte{0x57, 0}, kindOther, bus.CodecUnknown, false, 0, nil, nil},
		{"empty", nil, 0, 0, false, 0, nil, ErrMalformed},
		{"short avc", []byte{0x17, 1, 0}, 0, 0, false, 0, nil, ErrMalformed},
		{"vp6", []byte{0x14, 0}, 0, 0, false, 0, nil, ErrUnsupportedCodec},
		{"enhanced av01", []byte{0x90, 'a', 'v', '0', '1'}, 0, 0, false, 0, nil, ErrUnsupportedCodec},
		{"short enhanced", []byte{0x90, 'h'}, 0, 0, false, 0, nil, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseVideoTag(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.kind != tt.kind || got.codec != tt.codec || got.key != tt.key || got.cts != tt.cts ||
				!bytes.Equal(got.data, tt.data) {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestParseAudioTag(t *testing.T) {
	got, err := parseAudioTag(aacTag(0, testASC))
	if err != nil || got.kind != kindSeqHeader || got.codec != bus.CodecAAC || !bytes.Equal(got.data, testASC) {
		t.Fatalf("seq header: %+v %v", got, err)
	}
	got, err = parseAudioTag(aacTag(1, []byte{1, 2, 3}))
	if err != nil || got.kind != kindFrame || !bytes.Equal(got.data, []byte{1, 2, 3}) {
		t.Fatalf("raw: %+v %v", got, err)
	}
	for _, in := range [][]byte{{0x2f, 0}, {0x9f, 0, 0, 0, 0}, {0x7e}} {
		if _, err := parseAudioTag(in); !errors.Is(err, ErrUnsupportedCodec) {
			t.Fatalf("%x: err = %v", in, err)
		}
	}
	if _, err := parseAudioTag([]byte{0xaf}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short aac: %v", err)
	}
}

func TestTracks(t *testing.T) {
	tr, ls, err := videoTrack(bus.CodecH264, testAVCC(t))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Width != 64 || tr.Height != 48 || ls != 4 || tr.ClockRate != 90000 {
		t.Fatalf("avc track %+v, length size %d", tr, ls)
	}
	// A record with 2-byte NAL unit lengths is announced as 4 (units are converted).
	rec := testAVCC(t)
	rec[4] = 0xfd
	tr, ls, err = videoTrack(bus.CodecH264, rec)
	if err != nil || ls != 2 || tr.Config[4]&3 != 3 || rec[4] != 0xfd {
		t.Fatalf("2-byte lengths: %v %d %x", err, ls, tr.Config[4])
	}
	if _, _, err := videoTrack(bus.CodecH264, []byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad avc record: %v", err)
	}

	tr, ls, err = videoTrack(bus.CodecH265, testHVCC())
	if err != nil {
		t.Fatal(err)
	}
	if tr.Width != 64 || tr.Height != 48 || ls != 4 || tr.Codec != bus.CodecH265 {
		t.Fatalf("hevc track %+v", tr)
	}

	tr, err = aacTrack(testASC)
	if err != nil {
		t.Fatal(err)
	}
	if tr.SampleRate != 48000 || tr.Channels != 1 || tr.ClockRate != 48000 {
		t.Fatalf("aac track %+v", tr)
	}
	if _, err := aacTrack([]byte{0xff}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad asc: %v", err)
	}
}

func TestConvertFrame(t *testing.T) {
	in := nalus(idrNALU, sliceNALU)
	out, idr, err := convertFrame(bus.CodecH264, in, 4)
	if err != nil || !idr || !bytes.Equal(out, in) {
		t.Fatalf("4-byte: %x %v %v", out, idr, err)
	}
	if &out[0] == &in[0] {
		t.Fatal("payload not copied")
	}
	// 2-byte lengths and an empty NAL unit.
	in2 := []byte{0, byte(len(sliceNALU))}
	in2 = append(in2, sliceNALU...)
	in2 = append(in2, 0, 0)
	out, idr, err = convertFrame(bus.CodecH264, in2, 2)
	if err != nil || idr || !bytes.Equal(out, nalus(sliceNALU)) {
		t.Fatalf("2-byte: %x %v %v", out, idr, err)
	}
	for _, bad := range [][]byte{{0, 0, 0}, {0, 0, 0, 9, 1}, {0xff, 0xff, 0xff, 0xff}} {
		if _, _, err := convertFrame(bus.CodecH264, bad, 4); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%x: err = %v", bad, err)
		}
	}
	if out, _, err := convertFrame(bus.CodecH264, nil, 4); out != nil || err != nil {
		t.Fatal("empty frame")
	}
	// HEVC IDR_W_RADL (type 19).
	if _, idr, _ := convertFrame(bus.CodecH265, nalus([]byte{19 << 1, 1, 2}), 4); !idr {
		t.Fatal("hevc idr not detected")
	}
}

func TestStreamKey(t *testing.T) {
	tests := []struct{ app, name, key string }{
		{"live", "live_abc", "live_abc"},
		{"live/", "live_abc?foo=bar", "live_abc"},
		{"live?x=1", "live_abc", "live_abc"},
		{"live/live_abc", "", "live_abc"},
		{"live", "", ""},
		{"live", "a/b", ""},
	}
	for _, tt := range tests {
		key, ok := streamKey(tt.app, tt.name)
		if key != tt.key || ok != (tt.key != "") {
			t.Errorf("streamKey(%q, %q) = %q, %v", tt.app, tt.name, key, ok)
		}
	}
}

func testMetadata(t testing.TB, obj amf0.ECMAArray) []byte {
	var b bytes.Buffer
	enc := amf0.NewEncoder(&b)
	if err := enc.Encode("onMetaData"); err != nil {
		t.Fatal(err)
	}
	if err := enc.Encode(obj); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestParseMetadata(t *testing.T) {
	m, err := parseMetadata(testMetadata(t, amf0.ECMAArray{
		"videocodecid": float64(7), "audiocodecid": float64(10), "width": float64(640),
		"height": float64(360), "framerate": float64(30),
	}))
	if err != nil || !m.hasVideo || !m.hasAudio || m.width != 640 || m.height != 360 || m.frameRate != 30 {
		t.Fatalf("%+v %v", m, err)
	}
	m, err = parseMetadata(testMetadata(t, amf0.ECMAArray{"videocodecid": "hvc1"}))
	if err != nil || !m.hasVideo || m.hasAudio {
		t.Fatalf("%+v %v", m, err)
	}
	if _, err := parseMetadata([]byte{2, 0, 3, 'a'}); err == nil {
		t.Fatal("garbage accepted")
	}
	// An object rather than an ECMA array, after another name.
	var body bytes.Buffer
	enc := amf0.NewEncoder(&body)
	for _, v := range []any{"other", nil, "onMetaData", map[string]any{"width": 1280.0, "hasAudio": true}} {
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
	}
	if m, err = parseMetadata(body.Bytes()); err != nil || m.width != 1280 || !m.hasAudio {
		t.Fatalf("%+v %v", m, err)
	}
	// The fuzzer's find: a strict array of 0x6f000c76 elements (go-amf0 allocated 30 GB for
	// it, a fatal error; testdata/fuzz/FuzzMetadata keeps it as a seed).
	seed := []byte("\x02\x00\nonMetaData\b\x00\x00\x00\x02\x00\bhasVideo\no\x00\fvideocodecid\x02\x00\x04hvc1\x00\x00\t")
	if _, err := parseMetadata(seed); !errors.Is(err, ErrMalformed) {
		t.Fatalf("huge strict array: %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestSessionTimestamps checks the 32-bit wrap, clock restarts and per-track monotony.
func TestSessionTimestamps(t *testing.T) {
	s := newSession(nil, "x", discardLogger(), time.Second, time.Now())
	want := []struct {
		slot int
		ts   uint32
		dts  time.Duration
	}{
		{slotVideo, 0xffffffe0, 0xffffffe0 * time.Millisecond},
		{slotAudio, 0xfffffff0, 0xfffffff0 * time.Millisecond},
		{slotVideo, 0x10, 0x100000010 * time.Millisecond}, // wrapped
		{slotVideo, 0x10, 0x100000011 * time.Millisecond}, // repeated: pushed forward
		{slotAudio, 0x08, 0x100000008 * time.Millisecond}, // audio slightly behind video: fine
		{slotVideo, 0x30, 0x100000030 * time.Millisecond},
	}
	for i, w := range want {
		if got := s.dts(w.slot, w.ts); got != w.dts {
			t.Fatalf("%d: dts = %v, want %v", i, got, w.dts)
		}
	}
	// The publisher's clock restarts at 0: the timeline continues instead of going back.
	last := s.dts(slotVideo, 0x10000)
	d := s.dts(slotVideo, 0)
	if d <= last {
		t.Fatalf("restart: %v after %v", d, last)
	}
	if d != last+time.Millisecond {
		t.Fatalf("restart: %v after %v", d, last)
	}
	if d2 := s.dts(slotVideo, 33); d2 != d+33*time.Millisecond {
		t.Fatalf("after restart: %v, want %v", d2, d+33*time.Millisecond)
	}
}

// TestSessionPublish drives a session by hand: it publishes only once both announced tracks
// and a first video frame are there, keeps the first keyframe, detects B-frames and follows
// a changed sequence header with a new track.
func TestSessionPublish(t *testing.T) {
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: discardLogger()})
	defer hub.Close()
	now := time.Now()
	s := newSession(hub, "s1", discardLogger(), 2*time.Second, now)
	s.onMetadata(testMetadata(t, amf0.ECMAArray{"videocodecid": float64(7), "audiocodecid": float64(10)}))
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	step(s.onVideo(0, avcTag(true, 0, 0, testAVCC(t)), now))
	step(s.onAudio(0, aacTag(1, []byte{1}), now)) // before its header: dropped
	if s.publishing() {
		t.Fatal("published before the audio header")
	}
	step(s.onAudio(0, aacTag(0, testASC), now))
	if s.publishing() {
		t.Fatal("published before the first video frame")
	}
	step(s.onVideo(0, avcTag(true, 1, 66, nalus(idrNALU)), now))
	if !s.publishing() {
		t.Fatal("not published")
	}
	r, err := hub.Subscribe(t.Context(), "s1", bus.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u := r.TryNext()
	if u == nil || !u.Key || u.Track.Codec != bus.CodecH264 || !u.Track.BFrames || u.PTS-u.DTS != 66*time.Millisecond {
		t.Fatalf("first unit %+v", u)
	}
	step(s.onAudio(21, aacTag(1, []byte{1, 2}), now))
	if u := r.TryNext(); u == nil || u.Track.Codec != bus.CodecAAC || !u.Key || u.DTS != 21*time.Millisecond {
		t.Fatalf("audio unit %+v", u)
	}
	// A new SPS/PPS mid-stream: a new track pointer with the same index.
	old := s.video
	rec := testAVCC(t)
	rec[len(rec)-1] ^= 0x01
	step(s.onVideo(33, avcTag(true, 0, 0, rec), now))
	step(s.onVideo(33, avcTag(true, 1, 0, nalus(idrNALU)), now))
	u = r.TryNext()
	if u == nil || u.Track == old || u.Track.Index != old.Index || !bytes.Equal(u.Track.Config, rec) {
		t.Fatalf("after new header: %+v", u)
	}
	// The same header again changes nothing.
	cur := s.video
	step(s.onVideo(66, avcTag(true, 0, 0, rec), now))
	if s.video != cur {
		t.Fatal("identical header replaced the track")
	}
	s.close()
}

// TestSessionHEVC: Enhanced RTMP HEVC (hvc1) becomes an H.265 track.
func TestSessionHEVC(t *testing.T) {
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: discardLogger()})
	defer hub.Close()
	now := time.Now()
	s := newSession(hub, "hevc", discardLogger(), time.Second, now)
	defer s.close()
	s.onMetadata(testMetadata(t, amf0.ECMAArray{"videocodecid": "hvc1"}))
	if err := s.onVideo(0, append([]byte{0x90, 'h', 'v', 'c', '1'}, testHVCC()...), now); err != nil {
		t.Fatal(err)
	}
	idr := append([]byte{0x93, 'h', 'v', 'c', '1'}, nalus([]byte{19 << 1, 1, 0xaf})...)
	if err := s.onVideo(0, idr, now); err != nil {
		t.Fatal(err)
	}
	r, err := hub.Subscribe(t.Context(), "hevc", bus.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u := r.TryNext()
	if u == nil || u.Track.Codec != bus.CodecH265 || !u.Key || u.Track.Width != 64 {
		t.Fatalf("unit %+v", u)
	}
}

// TestSessionTimeout publishes with the tracks it has once the wait is over.
func TestSessionTimeout(t *testing.T) {
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: discardLogger()})
	defer hub.Close()
	start := time.Now()
	s := newSession(hub, "s2", discardLogger(), 2*time.Second, start)
	s.onMetadata(testMetadata(t, amf0.ECMAArray{"videocodecid": float64(7), "audiocodecid": float64(10)}))
	if err := s.onVideo(0, avcTag(true, 0, 0, testAVCC(t)), start); err != nil {
		t.Fatal(err)
	}
	if err := s.onVideo(0, avcTag(true, 1, 0, nalus(idrNALU)), start); err != nil {
		t.Fatal(err)
	}
	if s.publishing() {
		t.Fatal("published without waiting for audio")
	}
	if err := s.onVideo(33, avcTag(false, 1, 0, nalus(sliceNALU)), start.Add(2100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !s.publishing() {
		t.Fatal("not published after the wait")
	}
	if tr := hub.Stream("s2").Tracks(); len(tr) != 1 || tr[0].Codec != bus.CodecH264 {
		t.Fatalf("tracks %+v", tr)
	}
	// Audio that starts late is ignored, not an error.
	if err := s.onAudio(40, aacTag(0, testASC), start.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.onAudio(40, aacTag(1, []byte{1}), start.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Media without any sequence header ends in ErrNoTracks.
	s3 := newSession(hub, "s3", discardLogger(), time.Second, start)
	if err := s3.onVideo(0, avcTag(true, 1, 0, nalus(idrNALU)), start.Add(6*time.Second)); !errors.Is(err, ErrNoTracks) {
		t.Fatalf("no tracks: %v", err)
	}
	s.close()
}

// BenchmarkSessionVideo measures the per-packet path (parse, copy, unit, bus write).
func BenchmarkSessionVideo(b *testing.B) {
	hub := bus.New(bus.Config{Logger: discardLogger()})
	defer hub.Close()
	now := time.Now()
	s := newSession(hub, "bench", discardLogger(), time.Second, now)
	s.onMetadata(testMetadata(b, amf0.ECMAArray{"videocodecid": float64(7)}))
	if err := s.onVideo(0, avcTag(true, 0, 0, testAVCC(b)), now); err != nil {
		b.Fatal(err)
	}
	frame := avcTag(false, 1, 0, nalus(bytes.Repeat([]byte{0x41}, 20000)))
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for i := 0; b.Loop(); i++ {
		if err := s.onVideo(uint32(i*33), frame, now); err != nil {
			b.Fatal(err)
		}
	}
}
