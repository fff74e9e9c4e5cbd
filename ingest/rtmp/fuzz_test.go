package rtmp

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/yutopp/go-amf0"

	"github.com/relaycast/relaycast/bus"
)

// Fuzz targets for every function that reads publisher bytes. Run one with
// `go test -fuzz=FuzzVideoTag ./ingest/rtmp/`; without -fuzz they run their seeds.

func FuzzVideoTag(f *testing.F) {
	f.Add(avcTag(true, 0, 0, testAVCC(f)))
	f.Add(avcTag(true, 1, 66, nalus(idrNALU, sliceNALU)))
	f.Add(avcTag(false, 1, -1, []byte{0, 0, 0, 9, 1}))
	f.Add(append([]byte{0x90, 'h', 'v', 'c', '1'}, testHVCC()...))
	f.Add([]byte{0xa1, 'h', 'v', 'c', '1', 0, 0, 40, 0, 0, 0, 3, 19 << 1, 1, 2})
	f.Add([]byte{0x1c, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := parseVideoTag(b)
		if err != nil {
			return
		}
		switch tag.kind {
		case kindSeqHeader:
			tr, ls, err := videoTrack(tag.codec, tag.data)
			if err == nil && (tr.Width <= 0 || ls < 1 || ls > 4) {
				t.Fatalf("accepted track %+v, length size %d", tr, ls)
			}
		case kindFrame:
			for ls := 1; ls <= 4; ls++ {
				out, _, err := convertFrame(tag.codec, tag.data, ls)
				if err != nil || out == nil {
					continue
				}
				if _, err := bus.SplitNALUs(out); err != nil {
					t.Fatalf("converted payload %x is not AVCC: %v", out, err)
				}
			}
		}
	})
}

func FuzzAudioTag(f *testing.F) {
	f.Add(aacTag(0, testASC))
	f.Add(aacTag(0, []byte{0x12, 0x10}))
	f.Add(aacTag(1, []byte{0x21, 0x10, 0x04}))
	f.Add([]byte{0x2f, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, err := parseAudioTag(b)
		if err != nil || tag.kind != kindSeqHeader {
			return
		}
		if tr, err := aacTrack(tag.data); err == nil && tr.ClockRate <= 0 {
			t.Fatalf("accepted track %+v", tr)
		}
	})
}

func FuzzMetadata(f *testing.F) {
	f.Add(testMetadata(f, amf0.ECMAArray{"videocodecid": float64(7), "audiocodecid": float64(10),
		"width": float64(640), "height": float64(360), "framerate": float64(30)}))
	f.Add(testMetadata(f, amf0.ECMAArray{"hasVideo": true, "videocodecid": "hvc1"}))
	f.Add([]byte{2, 0, 10, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a', 3, 0, 0, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseMetadata(b)
	})
}

func FuzzHEVCConfig(f *testing.F) {
	f.Add(testHVCC())
	f.Add(make([]byte, 23))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, sps, pps, _, err := parseHEVCConfig(b)
		if err == nil && (len(sps) == 0 || len(pps) == 0) {
			t.Fatal("accepted a record without sps/pps")
		}
		_, _, _ = hevcTrack(b)
	})
}

// FuzzSession feeds a session a sequence of messages: each is [kind byte, 4-byte timestamp,
// 2-byte length, body]; kind&3 is 0 video, 1 audio, 2 metadata.
func FuzzSession(f *testing.F) {
	msg := func(kind byte, ts uint32, body []byte) []byte {
		b := []byte{kind}
		b = binary.BigEndian.AppendUint32(b, ts)
		b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
		return append(b, body...)
	}
	var seed []byte
	seed = append(seed, msg(2, 0, testMetadata(f, amf0.ECMAArray{"videocodecid": float64(7), "audiocodecid": float64(10)}))...)
	seed = append(seed, msg(0, 0, avcTag(true, 0, 0, testAVCC(f)))...)
	seed = append(seed, msg(1, 0, aacTag(0, testASC))...)
	seed = append(seed, msg(0, 0, avcTag(true, 1, 66, nalus(idrNALU)))...)
	seed = append(seed, msg(1, 21, aacTag(1, []byte{1, 2, 3}))...)
	seed = append(seed, msg(0, 33, avcTag(false, 1, 0, nalus(sliceNALU)))...)
	seed = append(seed, msg(0, 0xfffffff0, avcTag(false, 1, 0, nalus(sliceNALU)))...)
	f.Add(seed)
	f.Add(msg(0, 0, append([]byte{0x90, 'h', 'v', 'c', '1'}, testHVCC()...)))

	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: discardLogger()})
	f.Cleanup(hub.Close)
	f.Fuzz(func(t *testing.T, b []byte) {
		start := time.Unix(0, 0)
		s := newSession(hub, "fuzz", discardLogger(), time.Second, start)
		defer s.close()
		for i := 0; len(b) >= 7; i++ {
			kind, ts, n := b[0]&3, binary.BigEndian.Uint32(b[1:]), int(binary.BigEndian.Uint16(b[5:]))
			b = b[7:]
			n = min(n, len(b))
			body := b[:n]
			b = b[n:]
			now := start.Add(time.Duration(i) * 100 * time.Millisecond)
			var err error
			switch kind {
			case 0:
				err = s.onVideo(ts, body, now)
			case 1:
				err = s.onAudio(ts, body, now)
			default:
				s.onMetadata(body)
			}
			if err != nil {
				return
			}
		}
	})
}
