package hls

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"

	"github.com/relaycast/relaycast/bus"
)

var (
	videoClipMu sync.Mutex
	videoClips  = map[bus.Codec]*clip{}
)

// videoClipEncoders are the ffmpeg encoder arguments of the VP9 and AV1 test clips
// (real-time settings, a keyframe every 30 frames).
var videoClipEncoders = map[bus.Codec][]string{
	bus.CodecVP9: {"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-lag-in-frames", "0"},
	bus.CodecAV1: {"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-lag-in-frames", "0"},
}

// testVideoClip encodes (once per test binary and codec) a 4 s VP9 or AV1 clip into IVF and
// turns its frames into bus units the way WHIP ingest produces them: VP9 one frame per
// unit, AV1 one temporal unit per unit in low-overhead bitstream format.
func testVideoClip(t testing.TB, codec bus.Codec) *clip {
	t.Helper()
	testClip(t) // checks the tools, creates clipDir
	videoClipMu.Lock()
	defer videoClipMu.Unlock()
	if c, ok := videoClips[codec]; ok {
		return c
	}
	enc := videoClipEncoders[codec]
	out, _ := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	if !bytes.Contains(out, []byte(" "+enc[1]+" ")) {
		t.Fatalf("ffmpeg with the %s encoder is required (Debian's ffmpeg has it)", enc[1])
	}
	c, err := makeVideoClip(codec, enc)
	if err != nil {
		t.Fatal(err)
	}
	videoClips[codec] = c
	return c
}

func makeVideoClip(codec bus.Codec, enc []string) (*clip, error) {
	path := filepath.Join(clipDir, codec.String()+".ivf")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "4"}
	args = append(args, enc...)
	args = append(args, "-g", "30", "-pix_fmt", "yuv420p", "-f", "ivf", path)
	if out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// IVF: 32-byte file header (its length at byte 6), then per frame a 4-byte
	// little-endian size, an 8-byte timestamp and the frame.
	if len(b) < 32 || string(b[:4]) != "DKIF" {
		return nil, fmt.Errorf("not an IVF file")
	}
	b = b[binary.LittleEndian.Uint16(b[6:]):]
	c := &clip{videoCodec: codec, dur: 4 * time.Second}
	keys := 0
	for n := 0; len(b) > 0; n++ {
		if len(b) < 12 {
			return nil, fmt.Errorf("frame %d: truncated header", n)
		}
		size := int(binary.LittleEndian.Uint32(b))
		if size > len(b)-12 {
			return nil, fmt.Errorf("frame %d: truncated", n)
		}
		frame := b[12 : 12+size]
		b = b[12+size:]
		var key bool
		if codec == bus.CodecVP9 {
			key = vp9.IsRandomAccess(frame)
		} else {
			var tu av1.Bitstream
			if err := tu.Unmarshal(frame); err != nil {
				return nil, fmt.Errorf("frame %d: %w", n, err)
			}
			key = av1.IsRandomAccess2(tu)
		}
		if key {
			keys++
		}
		c.units = append(c.units, clipUnit{video: true, pts: time.Duration(n) * time.Second / 30,
			key: key, payload: frame})
	}
	if len(c.units) < 100 || keys < 3 || !c.units[0].key {
		return nil, fmt.Errorf("%d frames, %d keyframes", len(c.units), keys)
	}
	return c, nil
}

// TestVP9AndAV1ReachFMP4Variants feeds VP9 and AV1 units (as WHIP ingest makes them: no
// configuration record, no size on the track) and checks that ffprobe reads the playlist.
func TestVP9AndAV1ReachFMP4Variants(t *testing.T) {
	for _, codec := range []bus.Codec{bus.CodecVP9, bus.CodecAV1} {
		for _, variant := range []string{VariantLowLatency, VariantFMP4} {
			t.Run(codec.String()+"/"+variant, func(t *testing.T) {
				t.Parallel()
				c := testVideoClip(t, codec)
				e := newTestEnv(t, Config{Variant: variant}, bus.Config{})
				startFeed(t, e.hub, "a", c, 1)
				// The server picks the stream up asynchronously; before that it is a 404.
				waitFor(t, 5*time.Second, "muxer", func() bool { return e.srv.Stats().Muxers == 1 })
				_, pl := mediaPlaylist(t, e, "pub_a")
				if variant == VariantLowLatency && !strings.Contains(pl, "#EXT-X-PART:") {
					t.Errorf("low-latency playlist without parts:\n%s", pl)
				}
				got := ffprobeCodecs(t, e.url("pub_a", "index.m3u8"))
				if len(got) != 1 || got[0] != codec.String() {
					t.Fatalf("ffprobe found %q, want %s", got, codec)
				}
				mv := get(t, e.url("pub_a", "index.m3u8"), "")
				if !strings.Contains(mv.body, "RESOLUTION=320x240") {
					t.Errorf("multivariant playlist without the keyframe's size:\n%s", mv.body)
				}
				if st := e.srv.Stats(); st.EncodeErrors != 0 {
					t.Errorf("%d encode errors", st.EncodeErrors)
				}
			})
		}
	}
}

// lockedBuffer is a log sink safe for concurrent use.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestVP9AndAV1LeftOutOfMPEGTS checks that the MPEG-TS variant leaves them out with a log
// line and serves no playlist.
func TestVP9AndAV1LeftOutOfMPEGTS(t *testing.T) {
	for _, codec := range []bus.Codec{bus.CodecVP9, bus.CodecAV1} {
		var logs lockedBuffer
		e := newTestEnv(t, Config{Variant: VariantMPEGTS, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
			bus.Config{})
		p, err := e.hub.Publish("a", []*bus.Track{{Codec: codec, ClockRate: 90000}})
		if err != nil {
			t.Fatal(err)
		}
		want := codec.String() + " needs an fMP4 variant"
		waitFor(t, 5*time.Second, "log line "+want, func() bool { return strings.Contains(logs.String(), want) })
		if r := get(t, e.url("pub_a", "index.m3u8"), ""); r.status != http.StatusNotFound {
			t.Errorf("%s on mpegts: playlist status %d", codec, r.status)
		}
		p.Close()
	}
}

func TestAppendOBUs(t *testing.T) {
	td := []byte{0x12, 0x00}                    // temporal delimiter, size 0
	sh := []byte{0x0a, 0x03, 0x01, 0x02, 0x03}  // sequence header, size 3
	ext := []byte{0x36, 0x08, 0x02, 0xaa, 0xbb} // frame OBU with extension byte, size 2
	last := []byte{0x30, 0xcc}                  // frame OBU without size: to the end
	b := bytes.Join([][]byte{td, sh, ext, last}, nil)
	au, err := appendOBUs(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(au) != 3 || !bytes.Equal(au[0], sh) || !bytes.Equal(au[1], ext) || !bytes.Equal(au[2], last) {
		t.Fatalf("got %x", au)
	}
	for _, bad := range [][]byte{{0x0a, 0x05, 0x01}, {0x8a, 0x00}, {0x0a, 0x80}, {0x0e}} {
		if _, err := appendOBUs(nil, bad); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
}
