package whep

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest/whip/ogg"
)

// opusPacket is one Opus packet made by a transcoder, dated on the bus timeline.
type opusPacket struct {
	payload []byte
	pts     time.Duration
}

// audioSink is one viewer's inbox of transcoded audio. The transcoder never waits for it:
// when it is full the oldest packet is dropped, so a slow viewer gets the latest audio.
type audioSink struct {
	ch chan opusPacket
}

func newAudioSink() *audioSink { return &audioSink{ch: make(chan opusPacket, 25)} }

func (a *audioSink) offer(p opusPacket) {
	for range 4 {
		select {
		case a.ch <- p:
			return
		default:
		}
		select {
		case <-a.ch:
		default:
		}
	}
}

// transcoder turns the AAC of one bus stream into Opus for all its WHEP viewers: one
// ffmpeg process (ADTS AAC on stdin, Ogg Opus on stdout) per stream, started with the
// first viewer that needs it and stopped with the last.
//
// Its input goroutine reads the stream's audio from the bus (not as a viewer) and writes
// it to ffmpeg; when the AAC parameters change it restarts ffmpeg. One output goroutine
// per ffmpeg process parses the Ogg pages, dates every Opus packet on the bus timeline and
// offers it to every sink.
//
// Timing: ADTS carries no timestamps, so ffmpeg's output is sample-counted from the
// start. The input side records anchors (sample position at 48 kHz -> bus PTS) at the
// start and at every discontinuity of the input (a gap or jump of more than 40 ms); an
// output packet's PCM start (Ogg granule position minus the packet's duration minus the
// pre-skip) is mapped back to the bus PTS through the newest anchor before it. Audio and
// video thus share the bus timeline, whatever ffmpeg's delay.
type transcoder struct {
	log      *slog.Logger
	ffmpeg   string
	bitrate  int
	streamID string
	counters *transcoderCounters

	sinks atomic.Pointer[[]*audioSink]

	ctx    context.Context
	cancel context.CancelFunc
	rd     *bus.Reader
	done   chan struct{}
}

// transcoderCounters count ffmpeg processes (for metrics and tests).
type transcoderCounters struct {
	started atomic.Int64
	running atomic.Int64
}

func startTranscoder(hub *bus.Hub, streamID, ffmpeg string, bitrate int, log *slog.Logger,
	counters *transcoderCounters) (*transcoder, error) {
	ctx, cancel := context.WithCancel(context.Background())
	rd, err := hub.Subscribe(ctx, streamID, bus.ReaderOptions{Media: bus.MediaAudio, Start: bus.StartLive})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	t := &transcoder{log: log, ffmpeg: ffmpeg, bitrate: bitrate, streamID: streamID,
		counters: counters, ctx: ctx, cancel: cancel, rd: rd, done: make(chan struct{})}
	empty := []*audioSink{}
	t.sinks.Store(&empty)
	go t.run()
	return t, nil
}

// setSinks installs the sinks the output goes to (copy-on-write: the output goroutine
// reads the slice without a lock).
func (t *transcoder) setSinks(s []*audioSink) { t.sinks.Store(&s) }

// close stops ffmpeg and waits for the goroutines.
func (t *transcoder) close() {
	t.cancel()
	t.rd.Close()
	<-t.done
}

func (t *transcoder) run() {
	defer close(t.done)
	var (
		proc      *ffmpegProc
		failedFor *bus.Track
		logged    bool
	)
	defer func() {
		if proc != nil {
			proc.stop()
		}
	}()
	for {
		u, err := t.rd.Next(t.ctx)
		if err != nil {
			return
		}
		if u.Track.Codec != bus.CodecAAC {
			continue
		}
		if proc != nil && proc.exited() {
			if !logged {
				logged = true
				t.log.Warn("whep: transcoder exited; restarting", "stream", t.streamID, "stderr", proc.stderrTail())
			}
			proc.stop()
			proc = nil
		}
		if proc == nil || !proc.track.SameParams(u.Track) {
			if proc != nil {
				proc.stop()
				proc = nil
			}
			if failedFor == u.Track {
				continue
			}
			proc, err = t.startProc(u.Track)
			if err != nil {
				failedFor = u.Track
				t.log.Warn("whep: cannot start the AAC to Opus transcoder", "stream", t.streamID, "error", err)
				continue
			}
		}
		proc.write(u) // a write error shows as exited() on the next unit
	}
}

// ffmpegProc is one ffmpeg process of a transcoder.
type ffmpegProc struct {
	t      *transcoder
	track  *bus.Track
	asc    mpeg4audio.AudioSpecificConfig
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *tailBuffer
	outEnd chan struct{}

	mu       sync.Mutex
	anchors  []anchor
	inFrames int64
	nextPTS  time.Duration
	started  bool
	adts     mpeg4audio.ADTSPackets
}

// anchor maps a PCM sample position (48 kHz, from the start of the process's input) to
// a bus PTS.
type anchor struct {
	pos int64
	pts time.Duration
}

func (t *transcoder) startProc(tr *bus.Track) (*ffmpegProc, error) {
	p := &ffmpegProc{t: t, track: tr, stderr: &tailBuffer{max: 2048}, outEnd: make(chan struct{})}
	if err := p.asc.Unmarshal(tr.Config); err != nil {
		return nil, fmt.Errorf("aac config: %w", err)
	}
	// A layout defined by a program config element (0 channels) is refused, so the ADTS
	// headers written below always carry the configuration as is.
	if p.asc.SampleRate <= 0 || bus.AACChannels(p.asc.ChannelConfig) <= 0 {
		return nil, fmt.Errorf("aac config: %d Hz, %d channels", p.asc.SampleRate, bus.AACChannels(p.asc.ChannelConfig))
	}
	channels := min(bus.AACChannels(p.asc.ChannelConfig), 2)
	args := []string{"-hide_banner", "-loglevel", "error",
		// Start at once: no probing beyond the first ADTS header, no input buffering.
		"-fflags", "+nobuffer", "-probesize", "32", "-analyzeduration", "0",
		"-f", "aac", "-i", "pipe:0",
		"-vn", "-c:a", "libopus", "-b:a", strconv.Itoa(t.bitrate), "-ar", "48000",
		"-ac", strconv.Itoa(channels), "-frame_duration", "20", "-application", "audio",
		// One 20 ms packet per Ogg page, flushed at once.
		"-f", "ogg", "-page_duration", "20000", "-flush_packets", "1", "pipe:1"}
	cmd := exec.CommandContext(t.ctx, t.ffmpeg, args...)
	cmd.WaitDelay = 2 * time.Second
	cmd.Stderr = p.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd, p.stdin = cmd, stdin
	t.counters.started.Add(1)
	t.counters.running.Add(1)
	go p.readOutput(stdout)
	return p, nil
}

// write sends one AAC unit to ffmpeg as ADTS.
func (p *ffmpegProc) write(u *bus.Unit) {
	if len(u.Payload) == 0 || len(u.Payload) > mpeg4audio.MaxAccessUnitSize {
		return
	}
	// An AAC frame is 1024 samples of the core sample rate (HE-AAC's SBR doubles both the
	// rate and the samples, not the duration).
	frameDur := time.Duration(1024) * time.Second / time.Duration(p.asc.SampleRate)
	p.mu.Lock()
	pos := p.inFrames * 1024 * 48000 / int64(p.asc.SampleRate)
	if !p.started || absDur(u.PTS-p.nextPTS) > 40*time.Millisecond {
		p.anchors = append(p.anchors, anchor{pos: pos, pts: u.PTS})
		if len(p.anchors) > 64 {
			p.anchors = append(p.anchors[:0], p.anchors[len(p.anchors)-32:]...)
		}
	}
	p.started = true
	p.nextPTS = u.PTS + frameDur
	p.inFrames++
	p.mu.Unlock()

	typ := p.asc.Type
	if typ != mpeg4audio.ObjectTypeAACLC {
		// ADTS signals the core coder; SBR/PS are detected implicitly by the decoder.
		typ = mpeg4audio.ObjectTypeAACLC
	}
	if p.adts == nil {
		p.adts = mpeg4audio.ADTSPackets{{}}
	}
	*p.adts[0] = mpeg4audio.ADTSPacket{Type: typ, SampleRate: p.asc.SampleRate,
		ChannelConfig: p.asc.ChannelConfig, AU: u.Payload}
	b, err := p.adts.Marshal()
	if err != nil {
		return
	}
	_, _ = p.stdin.Write(b)
}

// ptsAt maps a PCM sample position (48 kHz) to a bus PTS.
func (p *ffmpegProc) ptsAt(pos int64) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.anchors) == 0 {
		return 0, false
	}
	i := 0
	for j := 1; j < len(p.anchors) && p.anchors[j].pos <= pos; j++ {
		i = j
	}
	a := p.anchors[i]
	if i > 0 {
		// Older anchors are no longer needed: output only moves forward.
		p.anchors = append(p.anchors[:0], p.anchors[i:]...)
	}
	d := pos - a.pos
	return a.pts + time.Duration(d)*time.Second/48000, true
}

// readOutput parses ffmpeg's Ogg Opus output and offers the packets to the sinks.
func (p *ffmpegProc) readOutput(stdout io.Reader) {
	defer close(p.outEnd)
	r := ogg.NewReader(stdout)
	var (
		preSkip int64
		lastEnd int64
	)
	for {
		pg, err := r.Next()
		if err != nil {
			return
		}
		// Packet end positions: the page's granule is the end of its last packet.
		end := pg.Granule
		if end < 0 {
			continue
		}
		// Walk back to find the start of the first packet of the page.
		total := int64(0)
		audio := pg.Packets[:0]
		for _, pkt := range pg.Packets {
			switch {
			case bytes.HasPrefix(pkt, []byte("OpusHead")):
				// RFC 7845 §5.1: pre-skip is little-endian at offset 10 (mediacommon's
				// IDHeader reads it big-endian, so it is not used here).
				if len(pkt) >= 19 {
					preSkip = int64(binary.LittleEndian.Uint16(pkt[10:]))
				}
			case bytes.HasPrefix(pkt, []byte("OpusTags")):
			default:
				if d := opus.PacketDuration2(pkt); d > 0 {
					total += d
					audio = append(audio, pkt)
				}
			}
		}
		if len(audio) == 0 {
			continue
		}
		start := end - total
		if start < lastEnd {
			start = lastEnd // granules never go back; guard against a broken page
		}
		sinks := *p.t.sinks.Load()
		for _, pkt := range audio {
			pts, ok := p.ptsAt(start - preSkip)
			start += opus.PacketDuration2(pkt)
			if !ok {
				continue
			}
			for _, s := range sinks {
				s.offer(opusPacket{payload: pkt, pts: pts})
			}
		}
		lastEnd = start
	}
}

// exited reports whether ffmpeg's output ended.
func (p *ffmpegProc) exited() bool {
	select {
	case <-p.outEnd:
		return true
	default:
		return false
	}
}

// stop ends the process (closing stdin lets ffmpeg flush and exit; the context or
// WaitDelay kill it otherwise) and waits for its output goroutine.
func (p *ffmpegProc) stop() {
	_ = p.stdin.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.cmd.Wait()
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	<-p.outEnd
	p.t.counters.running.Add(-1)
}

func (p *ffmpegProc) stderrTail() string { return p.stderr.String() }

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// tailBuffer keeps the last max bytes written to it (ffmpeg's stderr, for logs).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
