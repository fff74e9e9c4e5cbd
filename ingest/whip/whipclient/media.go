package whipclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"

	"github.com/relaycast/relaycast/ingest/whip/ogg"
)

// startCode prefixes every NAL unit of the access units ReadH264 returns.
var startCode = []byte{0, 0, 0, 1}

// ReadH264 reads an H.264 Annex-B byte stream (a raw .h264 file, as ffmpeg's -f h264
// writes it) and returns its access units, each in Annex-B with 4-byte start codes: the
// frames WriteVideo takes. An access unit begins (H.264 §7.4.1.2.3) at an access unit
// delimiter, SEI, SPS or PPS that follows a picture, or at a picture's first slice
// (first_mb_in_slice 0); NAL units before the first picture stay in front of it. Units
// with no picture are dropped.
func ReadH264(r io.Reader) ([][]byte, error) {
	nr, err := h264reader.NewReaderWithOptions(r, h264reader.WithIncludeSEI(true))
	if err != nil {
		return nil, fmt.Errorf("h264: %w", err)
	}
	var (
		aus        [][]byte
		cur        []byte
		hasPicture bool
	)
	for {
		nal, err := nr.NextNAL()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("h264: %w", err)
		}
		if len(nal.Data) == 0 {
			continue
		}
		if hasPicture && startsAccessUnit(nal.Data) {
			aus = append(aus, cur)
			cur, hasPicture = nil, false
		}
		cur = append(append(cur, startCode...), nal.Data...)
		hasPicture = hasPicture || isSlice(nal.Data[0]&0x1f)
	}
	if hasPicture {
		aus = append(aus, cur)
	}
	return aus, nil
}

// isSlice reports whether a NAL unit type is a coded slice of a picture (1-5).
func isSlice(typ byte) bool { return typ >= 1 && typ <= 5 }

// startsAccessUnit reports whether NAL unit nal, following a picture, begins the next
// access unit.
func startsAccessUnit(nal []byte) bool {
	switch typ := nal[0] & 0x1f; {
	case typ == 6 || typ == 7 || typ == 8 || typ == 9 || (typ >= 14 && typ <= 18):
		return true
	case isSlice(typ):
		// first_mb_in_slice is the slice header's first field, ue(v): 0 is the single
		// bit 1.
		return len(nal) > 1 && nal[1]&0x80 != 0
	}
	return false
}

// ReadOpus reads an Ogg Opus stream (RFC 7845) and returns its audio packets: the frames
// WriteAudio takes. The OpusHead and OpusTags headers and packets that are not valid
// Opus are left out.
func ReadOpus(r io.Reader) ([][]byte, error) {
	or := ogg.NewReader(r)
	var out [][]byte
	for {
		pg, err := or.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ogg: %w", err)
		}
		for _, p := range pg.Packets {
			if bytes.HasPrefix(p, []byte("OpusHead")) || bytes.HasPrefix(p, []byte("OpusTags")) ||
				opus.PacketDuration2(p) <= 0 {
				continue
			}
			out = append(out, p)
		}
	}
}

// Media is a clip to publish.
type Media struct {
	// Video are H.264 access units in Annex-B, the first one a keyframe.
	Video [][]byte
	// FrameDuration is the duration of one video frame. Default 1/30 s.
	FrameDuration time.Duration
	// Audio are Opus packets; each one's duration is read from its TOC byte.
	Audio [][]byte
}

// LoadMedia reads a clip from an H.264 Annex-B file and an Ogg Opus file. Either path may
// be "" for a clip without that kind.
func LoadMedia(h264Path, oggPath string) (*Media, error) {
	m := &Media{FrameDuration: time.Second / 30}
	read := func(path string, parse func(io.Reader) ([][]byte, error)) ([][]byte, error) {
		if path == "" {
			return nil, nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parse(f)
	}
	var err error
	if m.Video, err = read(h264Path, ReadH264); err != nil {
		return nil, err
	}
	if m.Audio, err = read(oggPath, ReadOpus); err != nil {
		return nil, err
	}
	return m, nil
}

// GenerateOptions describes the clip Generate makes. Zero fields take the defaults.
type GenerateOptions struct {
	// FFmpeg is the ffmpeg binary. Default: "ffmpeg" from $PATH.
	FFmpeg string
	// Width and Height of the video. Default 320x240.
	Width, Height int
	// FrameRate in frames per second. Default 30.
	FrameRate int
	// GOP is the number of frames from one keyframe to the next. Default FrameRate (1 s).
	GOP int
	// Duration of the clip. Default 3 s.
	Duration time.Duration
}

// Generate makes a clip with ffmpeg in dir and loads it: dir/clip.h264, ffmpeg's test
// pattern in H.264 constrained baseline without B-frames (WebRTC carries none), and
// dir/clip.ogg, a 440 Hz tone in Opus 48 kHz stereo, 20 ms packets.
func Generate(ctx context.Context, dir string, opts GenerateOptions) (*Media, error) {
	if opts.FFmpeg == "" {
		opts.FFmpeg = "ffmpeg"
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 320, 240
	}
	if opts.FrameRate <= 0 {
		opts.FrameRate = 30
	}
	if opts.GOP <= 0 {
		opts.GOP = opts.FrameRate
	}
	if opts.Duration <= 0 {
		opts.Duration = 3 * time.Second
	}
	secs := strconv.FormatFloat(opts.Duration.Seconds(), 'f', 3, 64)
	h264Path, oggPath := filepath.Join(dir, "clip.h264"), filepath.Join(dir, "clip.ogg")
	run := func(args ...string) error {
		args = append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...)
		out, err := exec.CommandContext(ctx, opts.FFmpeg, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ffmpeg: %w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	if err := run("-f", "lavfi", "-i", fmt.Sprintf("testsrc=size=%dx%d:rate=%d", opts.Width, opts.Height, opts.FrameRate),
		"-t", secs, "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", strconv.Itoa(opts.GOP),
		"-pix_fmt", "yuv420p", "-f", "h264", h264Path); err != nil {
		return nil, err
	}
	if err := run("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", secs, "-ac", "2",
		"-c:a", "libopus", "-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", oggPath); err != nil {
		return nil, err
	}
	m, err := LoadMedia(h264Path, oggPath)
	if err != nil {
		return nil, err
	}
	m.FrameDuration = time.Second / time.Duration(opts.FrameRate)
	return m, nil
}

// StreamOptions controls Publisher.Stream.
type StreamOptions struct {
	// Speed multiplies the pace. Default 1: real time.
	Speed float64
	// Loop restarts the clip at its end, with timestamps running on, until ctx ends.
	Loop bool
}

// Stream sends m at its real pace (times opts.Speed), video and audio interleaved by
// time, until ctx ends, the peer connection ends or, without opts.Loop, the clip ends. It
// returns nil at the clip's end, ctx's error when ctx ends, ErrClosed when the connection
// failed or was closed, and the first write error otherwise.
func (p *Publisher) Stream(ctx context.Context, m *Media, opts StreamOptions) error {
	if opts.Speed <= 0 {
		opts.Speed = 1
	}
	frame := m.FrameDuration
	if frame <= 0 {
		frame = time.Second / 30
	}
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	start := time.Now()
	var (
		vi, ai         int           // units sent (over all loops)
		vNext, aNext   time.Duration // media time of the next unit of each kind
		vDone, aDone   = len(m.Video) == 0, len(m.Audio) == 0
		loopV, loopA   = opts.Loop && !vDone, opts.Loop && !aDone
		aDur           time.Duration
		mediaNow       time.Duration
		writeV, writeA = p.video != nil, p.audio != nil
	)
	for !vDone || !aDone {
		mediaNow = time.Duration(float64(time.Since(start)) * opts.Speed)
		for !vDone && vNext <= mediaNow {
			if writeV {
				if err := p.WriteVideo(m.Video[vi%len(m.Video)], frame); err != nil {
					return err
				}
			}
			vi++
			vNext += frame
			vDone = vi >= len(m.Video) && !loopV
		}
		for !aDone && aNext <= mediaNow {
			pkt := m.Audio[ai%len(m.Audio)]
			aDur = time.Duration(opus.PacketDuration2(pkt)) * time.Second / 48000
			if aDur <= 0 {
				aDur = 20 * time.Millisecond // not Opus: keep the clock moving
			}
			if writeA {
				if err := p.WriteAudio(pkt, aDur); err != nil {
					return err
				}
			}
			ai++
			aNext += aDur
			aDone = ai >= len(m.Audio) && !loopA
		}
		if vDone && aDone {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.Done():
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}
