package hls

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/relaycast/relaycast/bus"
)

// clipGOP is the keyframe interval of the test clip (-g 30 at 30 fps).
const clipGOP = time.Second

// clip is a real encoded H.264 + AAC clip turned into bus units, the way an RTMP ingest
// would produce them: AVCC payloads without in-band SPS/PPS (those are in the track's
// AVCDecoderConfigurationRecord only), raw AAC access units.
type clip struct {
	// videoCodec is H.264 when zero; a VP9 or AV1 clip (makeVideoClip) has no audio and,
	// like a WHIP track, no configuration record or size.
	videoCodec               bus.Codec
	videoConfig, audioConfig []byte
	sampleRate               int
	units                    []clipUnit // sorted by timestamp
	dur                      time.Duration
}

type clipUnit struct {
	video   bool
	pts     time.Duration
	key     bool
	payload []byte
}

func (c *clip) tracks() []*bus.Track {
	if c.videoCodec != bus.CodecUnknown && c.videoCodec != bus.CodecH264 {
		return []*bus.Track{{Codec: c.videoCodec, ClockRate: 90000}}
	}
	return []*bus.Track{
		{Codec: bus.CodecH264, ClockRate: 90000, Config: c.videoConfig, Width: 320, Height: 240},
		{Codec: bus.CodecAAC, ClockRate: c.sampleRate, Config: c.audioConfig, SampleRate: c.sampleRate, Channels: 1},
	}
}

var (
	clipOnce sync.Once
	clipVal  *clip
	clipErr  error
	clipDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if clipDir != "" {
		os.RemoveAll(clipDir)
	}
	os.Exit(code)
}

// testClip encodes a 4 s clip with ffmpeg (once per test binary) and parses it.
func testClip(t testing.TB) *clip {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (the README's test command installs it): %v", tool, err)
		}
	}
	clipOnce.Do(func() { clipVal, clipErr = makeClip() })
	if clipErr != nil {
		t.Fatal(clipErr)
	}
	return clipVal
}

func makeClip() (*clip, error) {
	dir, err := os.MkdirTemp("", "relaycast-hls-test")
	if err != nil {
		return nil, err
	}
	clipDir = dir
	vpath, apath := filepath.Join(dir, "clip.h264"), filepath.Join(dir, "clip.aac")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-bf", "0",
		"-pix_fmt", "yuv420p", "-aud", "1", "-f", "h264", vpath,
		"-map", "1:a", "-t", "4", "-c:a", "aac", "-b:a", "64k", "-f", "adts", apath)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %v: %s", err, out)
	}
	c := &clip{dur: 4 * time.Second}
	if err := c.parseH264(vpath); err != nil {
		return nil, err
	}
	if err := c.parseAAC(apath); err != nil {
		return nil, err
	}
	sort.SliceStable(c.units, func(i, j int) bool { return c.units[i].pts < c.units[j].pts })
	return c, nil
}

// parseH264 splits an Annex-B file at its access unit delimiters (ffmpeg -aud 1), keeps
// SPS/PPS for the configuration record and makes AVCC payloads of the rest.
func (c *clip) parseH264(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	aud := []byte{0, 0, 1, 9}
	var starts []int
	for off := 0; ; {
		i := bytes.Index(b[off:], aud)
		if i < 0 {
			break
		}
		p := off + i
		if p > 0 && b[p-1] == 0 {
			p-- // 4-byte start code
		}
		starts = append(starts, p)
		off += i + len(aud)
	}
	starts = append(starts, len(b))
	var sps, pps []byte
	n := 0
	for k := 0; k+1 < len(starts); k++ {
		var au h264.AnnexB
		if err := au.Unmarshal(b[starts[k]:starts[k+1]]); err != nil {
			return fmt.Errorf("access unit %d: %w", k, err)
		}
		var keep h264.AVCC
		key := false
		for _, nalu := range au {
			switch h264.NALUType(nalu[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = nalu
			case h264.NALUTypePPS:
				pps = nalu
			case h264.NALUTypeAccessUnitDelimiter:
			case h264.NALUTypeIDR:
				key = true
				keep = append(keep, nalu)
			default:
				keep = append(keep, nalu)
			}
		}
		if len(keep) == 0 {
			continue
		}
		payload, err := keep.Marshal()
		if err != nil {
			return err
		}
		c.units = append(c.units, clipUnit{
			video: true, pts: time.Duration(n) * time.Second / 30, key: key, payload: payload,
		})
		n++
	}
	cfg, err := bus.AVCConfig(sps, pps)
	if err != nil {
		return err
	}
	c.videoConfig = cfg
	if n < 100 {
		return fmt.Errorf("only %d video frames", n)
	}
	return nil
}

// parseAAC turns an ADTS file into raw AAC access units.
func (c *clip) parseAAC(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var pkts mpeg4audio.ADTSPackets
	if err := pkts.Unmarshal(b); err != nil {
		return err
	}
	if len(pkts) == 0 {
		return fmt.Errorf("no ADTS packets")
	}
	p0 := pkts[0]
	asc := mpeg4audio.AudioSpecificConfig{Type: p0.Type, SampleRate: p0.SampleRate, ChannelConfig: p0.ChannelConfig}
	if c.audioConfig, err = asc.Marshal(); err != nil {
		return err
	}
	c.sampleRate = p0.SampleRate
	for i, p := range pkts {
		pts := time.Duration(i) * mpeg4audio.SamplesPerAccessUnit * time.Second / time.Duration(c.sampleRate)
		if pts >= c.dur {
			break // keep loops aligned with the video
		}
		c.units = append(c.units, clipUnit{pts: pts, key: true, payload: p.AU})
	}
	return nil
}

// feeder publishes a clip to the hub, looping, paced by its timestamps (speed 1 = real
// time), with the clip's own timestamps starting at 0 on every Publish — as a publisher
// that reconnects would send them.
type feeder struct {
	p     *bus.Publisher
	stop  chan struct{}
	done  chan struct{}
	first chan time.Time // when the first unit was written
}

func startFeed(t *testing.T, hub *bus.Hub, id string, c *clip, speed float64) *feeder {
	t.Helper()
	p, err := hub.Publish(id, c.tracks())
	if err != nil {
		t.Fatal(err)
	}
	return feed(t, p, c, speed)
}

// feed starts feeding c through p, with p's current tracks (the bus may keep a previous
// publisher's *Track on a resume, and SetTrack installs new ones).
func feed(t *testing.T, p *bus.Publisher, c *clip, speed float64) *feeder {
	t.Helper()
	f := &feeder{p: p, stop: make(chan struct{}), done: make(chan struct{}), first: make(chan time.Time, 1)}
	go f.run(c, p.Tracks(), speed)
	t.Cleanup(func() { f.halt() })
	return f
}

func (f *feeder) run(c *clip, tracks []*bus.Track, speed float64) {
	defer close(f.done)
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	sent := false
	for loop := 0; ; loop++ {
		for _, cu := range c.units {
			pts := time.Duration(loop)*c.dur + cu.pts
			if d := time.Until(t0.Add(time.Duration(float64(pts) / speed))); d > 0 {
				timer.Reset(d)
				select {
				case <-f.stop:
					return
				case <-timer.C:
				}
			} else {
				select {
				case <-f.stop:
					return
				default:
				}
			}
			tr := tracks[0]
			if !cu.video {
				tr = tracks[1]
			}
			now := time.Now()
			f.p.Write(&bus.Unit{Track: tr, PTS: pts, DTS: pts, Key: cu.key, Payload: cu.payload, Arrival: now})
			if !sent {
				sent = true
				f.first <- now
			}
		}
	}
}

// halt stops feeding (the publisher stays open). Safe to call twice.
func (f *feeder) halt() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	<-f.done
}
