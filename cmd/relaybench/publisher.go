package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	rtmpegress "github.com/relaycast/relaycast/egress/rtmp"
	"github.com/relaycast/relaycast/ingest/whip/whipclient"
)

// Publish modes (-publish).
const (
	publishRTMP   = "rtmp"   // relaybench's RTMP client, frames stamped
	publishWHIP   = "whip"   // pion WHIP client, frames stamped, audio as Opus
	publishFFmpeg = "ffmpeg" // ffmpeg -re -stream_loop -1 -c copy: no stamps
)

// publisherStats is what one publisher did.
type publisherStats struct {
	stream int
	frames atomic.Int64 // video frames sent
	bytes  atomic.Int64 // media payload bytes sent

	mu  sync.Mutex
	err error
}

func (p *publisherStats) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *publisherStats) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// publishOptions is what every publisher shares.
type publishOptions struct {
	mode string
	clip *clip
	// whipFrames are the frames of the WHIP publisher: the clip's video in Annex-B and its audio
	// transcoded to Opus (WebRTC has no AAC).
	whipFrames []clipFrame
	api        *webrtc.API  // WHIP and WHEP peer connections
	http       *http.Client // WHIP and WHEP exchanges
}

// publish sends the clip to target in a loop at its real pace until ctx ends. ready is
// called once the server accepted the publisher (nil) or with the error that stopped it
// before.
func publish(ctx context.Context, o *publishOptions, t streamTarget, st *publisherStats, ready func(error)) {
	var err error
	switch o.mode {
	case publishRTMP:
		err = publishToRTMP(ctx, o.clip, t, st, ready)
	case publishWHIP:
		err = publishToWHIP(ctx, o, t, st, ready)
	case publishFFmpeg:
		err = publishWithFFmpeg(ctx, o.clip, t, ready)
	default:
		err = fmt.Errorf("unknown publish mode %q", o.mode)
		ready(err)
	}
	if err != nil && ctx.Err() == nil {
		st.fail(err)
	}
}

func publishToRTMP(ctx context.Context, c *clip, t streamTarget, st *publisherStats, ready func(error)) error {
	p, err := rtmpegress.Dial(ctx, t.rtmpPublish, nil)
	ready(err)
	if err != nil {
		return err
	}
	defer p.Close()
	tracks := []*bus.Track{c.video}
	if c.audio != nil {
		tracks = append(tracks, c.audio)
	}
	p.SetTracks(tracks)
	var (
		buf  []byte
		sei  []byte
		seq  uint64
		unit bus.Unit
	)
	stop := context.AfterFunc(ctx, func() { _ = p.Close() }) // unblocks a stuck write
	defer stop()
	return pace(ctx, c.frames, c.loop, func(f *clipFrame, off time.Duration) error {
		unit = bus.Unit{PTS: f.pts + off, DTS: f.dts + off, Key: f.key, Payload: f.payload}
		if f.video {
			unit.Track = c.video
			sei = appendStampNALU(sei[:0], stamp{Stream: uint32(t.index), Seq: seq, Sent: time.Now().UnixNano()})
			seq++
			buf = insertSEIAVCC(buf[:0], f.payload, sei)
			unit.Payload = buf
			st.frames.Add(1)
		} else {
			unit.Track = c.audio
		}
		st.bytes.Add(int64(len(unit.Payload)))
		return p.WriteUnit(&unit)
	})
}

// insertSEIAVCC appends an AVCC access unit to dst with the NAL unit sei added before
// its first slice.
func insertSEIAVCC(dst, au, sei []byte) []byte {
	done := false
	for b := au; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		if n <= 0 || n > len(b)-4 {
			break
		}
		if typ := b[4] & 0x1f; !done && typ >= 1 && typ <= 5 {
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(sei)))
			dst = append(dst, sei...)
			done = true
		}
		dst = append(dst, b[:4+n]...)
		b = b[4+n:]
	}
	return dst
}

var startCode = []byte{0, 0, 0, 1}

// whipFrames prepares the WHIP publisher's frames: the clip's video in Annex-B (SPS and
// PPS in front of keyframes), and its audio transcoded by ffmpeg to Opus in 20 ms packets,
// timed one after the other.
func whipFrames(ctx context.Context, c *clip, dir string) ([]clipFrame, error) {
	var out []clipFrame
	for _, f := range c.frames {
		if !f.video {
			continue
		}
		var b []byte
		if f.key {
			b = append(append(append(b, startCode...), c.sps...), startCode...)
			b = append(b, c.pps...)
		}
		for p := f.payload; len(p) >= 4; {
			n := int(binary.BigEndian.Uint32(p))
			b = append(append(b, startCode...), p[4:4+n]...)
			p = p[4+n:]
		}
		out = append(out, clipFrame{video: true, key: f.key, dts: f.dts, pts: f.pts, payload: b})
	}
	if c.audio != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(dir, "whip-audio")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		ogg := filepath.Join(tmp, "audio.ogg")
		if err := runFFmpeg(ctx, "-i", c.path, "-vn", "-c:a", "libopus", "-ac", "2", "-ar", "48000",
			"-b:a", "64k", "-frame_duration", "20", "-page_duration", "20000", ogg); err != nil {
			return nil, fmt.Errorf("transcode the clip's audio to Opus for WHIP: %w", err)
		}
		f, err := os.Open(ogg)
		if err != nil {
			return nil, err
		}
		pkts, err := whipclient.ReadOpus(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		var at time.Duration
		for _, p := range pkts {
			d := time.Duration(opus.PacketDuration2(p)) * time.Second / 48000
			if at+d > c.loop {
				break
			}
			out = append(out, clipFrame{key: true, dts: at, pts: d, payload: p}) // pts holds the duration
			at += d
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].dts < out[j].dts })
	return out, nil
}

func publishToWHIP(ctx context.Context, o *publishOptions, t streamTarget, st *publisherStats, ready func(error)) error {
	p, err := whipclient.Dial(ctx, t.whip, whipclient.Options{API: o.api, HTTPClient: o.http})
	ready(err)
	if err != nil {
		return fmt.Errorf("whip publish: %w", err)
	}
	defer p.Close()
	var (
		buf []byte
		seq uint64
	)
	err = pace(ctx, o.whipFrames, o.clip.loop, func(f *clipFrame, _ time.Duration) error {
		select {
		case <-p.Done():
			return whipclient.ErrClosed
		default:
		}
		if !f.video {
			st.bytes.Add(int64(len(f.payload)))
			return p.WriteAudio(f.payload, f.pts)
		}
		buf = append(buf[:0], startCode...)
		buf = appendStampNALU(buf, stamp{Stream: uint32(t.index), Seq: seq, Sent: time.Now().UnixNano()})
		seq++
		buf = append(buf, f.payload...)
		st.frames.Add(1)
		st.bytes.Add(int64(len(buf)))
		return p.WriteVideo(buf, o.clip.frameDur)
	})
	if errors.Is(err, whipclient.ErrClosed) {
		return fmt.Errorf("whip publish: the peer connection ended")
	}
	return err
}

// publishWithFFmpeg runs ffmpeg -re -stream_loop -1 -i clip -c copy -f flv: the most
// common publisher, but its frames carry no stamp (latency is not measured).
func publishWithFFmpeg(ctx context.Context, c *clip, t streamTarget, ready func(error)) error {
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
		"-re", "-stream_loop", "-1", "-i", c.path, "-c", "copy", "-f", "flv", t.rtmpPublish)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	var out limitedBuffer
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		ready(err)
		return err
	}
	ready(nil) // ffmpeg says nothing when it is accepted; readers wait for the stream
	err := cmd.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("ffmpeg publisher ended: %v: %s", err, out.String())
}

// pace calls send for every frame in a loop, each at its time (frames[i].dts plus the
// loop's offset) from the start, until ctx ends or send fails. A late sender catches up
// without waiting.
func pace(ctx context.Context, frames []clipFrame, loop time.Duration, send func(f *clipFrame, off time.Duration) error) error {
	start := time.Now()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for n := 0; ; n++ {
		off := time.Duration(n) * loop
		for i := range frames {
			f := &frames[i]
			if wait := time.Until(start.Add(off + f.dts)); wait > 0 {
				t.Reset(wait)
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-t.C:
				}
			} else if err := ctx.Err(); err != nil {
				return err
			}
			if err := send(f, off); err != nil {
				return err
			}
		}
	}
}

// limitedBuffer keeps the first 4 KiB written to it (a subprocess's error output).
type limitedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := 4096 - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
