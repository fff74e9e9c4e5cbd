package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	flv "github.com/yutopp/go-flv"
	flvtag "github.com/yutopp/go-flv/tag"

	"github.com/relaycast/relaycast/bus"
)

// clipOptions describes the clip relaybench generates when none is given.
type clipOptions struct {
	width, height, fps int
	gop                int // frames from one keyframe to the next
	videoKbps          int
	duration           time.Duration
}

// name is the clip's file name in the cache directory: one per set of options.
func (o clipOptions) name() string {
	return fmt.Sprintf("clip-%dx%d-%dfps-%dk-g%d-%s.flv", o.width, o.height, o.fps, o.videoKbps, o.gop,
		strings.ReplaceAll(o.duration.String(), ".", "_"))
}

// generateClip makes the clip with ffmpeg into dir, unless it is there already, and
// returns its path: ffmpeg's testsrc2 pattern in H.264 High without B-frames (WebRTC
// carries none), constant bitrate, a keyframe every gop frames, and a 440 Hz AAC tone.
func generateClip(ctx context.Context, dir string, o clipOptions) (string, error) {
	path := filepath.Join(dir, o.name())
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid()) // another relaybench may be making it too
	kbps := strconv.Itoa(o.videoKbps) + "k"
	bufsize := strconv.Itoa(2*o.videoKbps) + "k"
	if err := runFFmpeg(ctx, "-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", o.width, o.height, o.fps),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.FormatFloat(o.duration.Seconds(), 'f', 3, 64),
		"-c:v", "libx264", "-preset", "veryfast", "-b:v", kbps, "-minrate", kbps, "-maxrate", kbps,
		"-bufsize", bufsize, "-g", strconv.Itoa(o.gop), "-keyint_min", strconv.Itoa(o.gop), "-sc_threshold", "0",
		"-bf", "0", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-ac", "2", "-f", "flv", tmp); err != nil {
		return "", fmt.Errorf("generate clip: %w", err)
	}
	return path, os.Rename(tmp, path)
}

// remuxToFLV copies a clip file given in another container into dir as FLV (ffmpeg -c
// copy), so that one FLV reader serves every input.
func remuxToFLV(ctx context.Context, dir, src string) (string, error) {
	if strings.EqualFold(filepath.Ext(src), ".flv") {
		return src, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "given-"+strings.TrimSuffix(filepath.Base(src), filepath.Ext(src))+".flv")
	if err := runFFmpeg(ctx, "-i", src, "-c", "copy", "-f", "flv", dst); err != nil {
		return "", fmt.Errorf("remux %s to FLV: %w", src, err)
	}
	return dst, nil
}

// runFFmpeg runs ffmpeg quietly and returns its error output with its failure.
func runFFmpeg(ctx context.Context, args ...string) error {
	args = append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)
	out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("ffmpeg is needed to make the clip: %w", err)
		}
		return fmt.Errorf("ffmpeg: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// clipFrame is one frame of the clip: a video access unit (AVCC, 4-byte lengths) or an
// AAC access unit.
type clipFrame struct {
	video    bool
	key      bool
	dts, pts time.Duration
	payload  []byte
}

// clip is an FLV file loaded into memory, ready to be sent in a loop.
type clip struct {
	path         string
	video, audio *bus.Track // audio nil: no audio
	sps, pps     []byte
	frames       []clipFrame // by DTS
	// frameDur is the video's frame duration; loop is the clip's length: frames of the
	// next loop are frames[i].dts + n*loop.
	frameDur, loop time.Duration
	videoFrames    int
	bytes          int64 // payload bytes of one loop
	bFrames        bool
}

// bitrate returns the clip's average bitrate in bits per second.
func (c *clip) bitrate() float64 {
	return float64(c.bytes) * 8 / c.loop.Seconds()
}

// loadClip reads an FLV file with H.264 video and, optionally, AAC audio.
func loadClip(path string) (*clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec, err := flv.NewDecoder(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an FLV file: %w", path, err)
	}
	c := &clip{path: path}
	lengthSize := 4
	var firstVideoTS, lastVideo time.Duration
	for {
		var t flvtag.FlvTag
		if err := dec.Decode(&t); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ts := time.Duration(t.Timestamp) * time.Millisecond
		switch d := t.Data.(type) {
		case *flvtag.VideoData:
			body, err := io.ReadAll(d.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if d.CodecID != flvtag.CodecIDAVC {
				return nil, fmt.Errorf("%s: video codec %d: relaybench publishes H.264 only", path, d.CodecID)
			}
			switch d.AVCPacketType {
			case flvtag.AVCPacketTypeSequenceHeader:
				if c.video != nil {
					continue
				}
				if c.video, lengthSize, err = avcTrack(body); err != nil {
					return nil, fmt.Errorf("%s: %w", path, err)
				}
				sps, pps, _ := bus.ParseAVCConfig(body)
				c.sps, c.pps = sps[0], pps[0]
			case flvtag.AVCPacketTypeNALU:
				if c.video == nil {
					continue // frames before the sequence header cannot be decoded
				}
				payload, err := toAVCC4(body, lengthSize)
				if err != nil {
					return nil, fmt.Errorf("%s: frame at %v: %w", path, ts, err)
				}
				if len(payload) == 0 {
					continue
				}
				pts := ts + time.Duration(d.CompositionTime)*time.Millisecond
				if pts != ts {
					c.bFrames = true
				}
				c.frames = append(c.frames, clipFrame{video: true, key: d.FrameType == flvtag.FrameTypeKeyFrame,
					dts: ts, pts: pts, payload: payload})
				if c.videoFrames == 0 {
					firstVideoTS = ts
				}
				c.videoFrames++
				lastVideo = ts
			}
		case *flvtag.AudioData:
			body, err := io.ReadAll(d.Data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if d.SoundFormat != flvtag.SoundFormatAAC {
				continue // relaybench sends AAC only; other audio is left out
			}
			if d.AACPacketType == flvtag.AACPacketTypeSequenceHeader {
				if c.audio == nil {
					if c.audio, err = aacTrack(body); err != nil {
						return nil, fmt.Errorf("%s: %w", path, err)
					}
				}
				continue
			}
			if c.audio != nil && len(body) > 0 {
				c.frames = append(c.frames, clipFrame{dts: ts, pts: ts, key: true, payload: body})
			}
		default:
			t.Close()
		}
	}
	if c.video == nil || c.videoFrames < 2 {
		return nil, fmt.Errorf("%s: no H.264 video (relaybench needs an FLV with H.264 and optionally AAC)", path)
	}
	if !c.frames[firstVideo(c.frames)].key {
		return nil, fmt.Errorf("%s: the first video frame is not a keyframe", path)
	}
	first := c.frames[0].dts
	for i := range c.frames {
		c.frames[i].dts -= first
		c.frames[i].pts -= first
	}
	// Video frames tick at one rate; the loop lasts one frame past the last one, so that
	// the next loop's first frame follows it by a frame (audio may start a little before
	// the video: AAC priming).
	c.frameDur = (lastVideo - firstVideoTS) / time.Duration(c.videoFrames-1)
	c.loop = lastVideo - firstVideoTS + c.frameDur
	// Audio past the loop's end would overlap the next loop's start: leave it out.
	kept := c.frames[:0]
	for _, f := range c.frames {
		if f.video || f.dts < c.loop {
			kept = append(kept, f)
			c.bytes += int64(len(f.payload))
		}
	}
	c.frames = kept
	return c, nil
}

func firstVideo(fs []clipFrame) int {
	for i, f := range fs {
		if f.video {
			return i
		}
	}
	return 0
}

// avcTrack makes the bus track of an AVCDecoderConfigurationRecord and returns the NAL
// unit length size the file's frames use.
func avcTrack(rec []byte) (*bus.Track, int, error) {
	sps, pps, err := bus.ParseAVCConfig(rec)
	if err != nil || len(sps) == 0 || len(pps) == 0 {
		return nil, 0, fmt.Errorf("bad AVC sequence header")
	}
	var s h264.SPS
	if err := s.Unmarshal(sps[0]); err != nil {
		return nil, 0, fmt.Errorf("bad SPS: %w", err)
	}
	cfg := append([]byte(nil), rec...)
	lengthSize := int(cfg[4]&3) + 1
	cfg[4] |= 3 // frames are rewritten with 4-byte lengths
	return &bus.Track{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg, Width: s.Width(), Height: s.Height()},
		lengthSize, nil
}

// aacTrack makes the bus track of an AudioSpecificConfig.
func aacTrack(asc []byte) (*bus.Track, error) {
	var c mpeg4audio.AudioSpecificConfig
	if err := c.Unmarshal(asc); err != nil || c.SampleRate <= 0 {
		return nil, fmt.Errorf("bad AAC config %x", asc)
	}
	return &bus.Track{Codec: bus.CodecAAC, ClockRate: c.SampleRate, Config: append([]byte(nil), asc...),
		SampleRate: c.SampleRate, Channels: bus.AACChannels(c.ChannelConfig)}, nil
}

// toAVCC4 rewrites length-prefixed NAL units (lengthSize bytes each) with 4-byte lengths,
// leaving out empty ones and access unit delimiters.
func toAVCC4(b []byte, lengthSize int) ([]byte, error) {
	if lengthSize < 1 || lengthSize > 4 {
		return nil, fmt.Errorf("NAL unit length size %d", lengthSize)
	}
	out := make([]byte, 0, len(b)+16)
	for len(b) > 0 {
		if len(b) < lengthSize {
			return nil, fmt.Errorf("truncated NAL unit length")
		}
		n := 0
		for i := range lengthSize {
			n = n<<8 | int(b[i])
		}
		b = b[lengthSize:]
		if n > len(b) {
			return nil, fmt.Errorf("NAL unit length %d beyond the frame", n)
		}
		if n > 0 && h264.NALUType(b[0]&0x1f) != h264.NALUTypeAccessUnitDelimiter {
			out = binary.BigEndian.AppendUint32(out, uint32(n))
			out = append(out, b[:n]...)
		}
		b = b[n:]
	}
	return out, nil
}
