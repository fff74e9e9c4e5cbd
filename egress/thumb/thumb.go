// Package thumb makes JPEG thumbnails of live streams: the newest keyframe of a stream's
// video, from the bus's GOP cache, decoded and scaled by one short ffmpeg run. Thumbnails
// are cached per stream (15 s by default) and concurrent requests for a stream share one
// run, so a community page polled by many viewers costs one decode per stream per TTL.
package thumb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// Errors.
var (
	// ErrOffline: the stream is not live, or has no keyframe yet.
	ErrOffline = errors.New("thumb: stream offline")
	// ErrUnsupported: the stream's video codec cannot be thumbnailed (only H.264 and H.265).
	ErrUnsupported = errors.New("thumb: unsupported video codec")
)

// Config configures a Maker. Hub is required.
type Config struct {
	Hub *bus.Hub
	// FFmpeg is the ffmpeg binary (default "ffmpeg" from PATH).
	FFmpeg string
	// TTL is how long a thumbnail is served from the cache (default 15 s).
	TTL time.Duration
	// Width bounds the thumbnail's width (default 640; never upscaled).
	Width int
	// Timeout bounds waiting for a keyframe and running ffmpeg (default 5 s).
	Timeout time.Duration
	// Logger default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Maker makes and caches thumbnails. It is safe for concurrent use.
type Maker struct {
	cfg Config
	mu  sync.Mutex
	m   map[string]*entry
}

// entry is one stream's cached thumbnail, or the run making it.
type entry struct {
	done chan struct{} // closed when jpeg/err are set
	jpeg []byte
	err  error
	at   time.Time
}

// New returns a Maker.
func New(cfg Config) (*Maker, error) {
	if cfg.Hub == nil {
		return nil, errors.New("thumb: Config.Hub is required")
	}
	if cfg.FFmpeg == "" {
		cfg.FFmpeg = "ffmpeg"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 15 * time.Second
	}
	if cfg.Width <= 0 {
		cfg.Width = 640
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Maker{cfg: cfg, m: make(map[string]*entry)}, nil
}

// JPEG returns a thumbnail of the bus stream with this id and when it was made.
func (m *Maker) JPEG(ctx context.Context, stream string) ([]byte, time.Time, error) {
	now := m.cfg.Now()
	m.mu.Lock()
	e := m.m[stream]
	if e != nil {
		select {
		case <-e.done:
			if now.Sub(e.at) >= m.cfg.TTL {
				e = nil // stale
			}
		default: // being made: wait for it
		}
	}
	if e == nil {
		e = &entry{done: make(chan struct{})}
		m.m[stream] = e
		m.prune(now)
		m.mu.Unlock()
		e.jpeg, e.err = m.make(stream)
		e.at = m.cfg.Now()
		close(e.done)
	} else {
		m.mu.Unlock()
	}
	select {
	case <-e.done:
		return e.jpeg, e.at, e.err
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// prune drops stale entries (m.mu held).
func (m *Maker) prune(now time.Time) {
	if len(m.m) < 256 {
		return
	}
	for k, e := range m.m {
		select {
		case <-e.done:
			if now.Sub(e.at) >= m.cfg.TTL {
				delete(m.m, k)
			}
		default:
		}
	}
}

// make takes the stream's newest keyframe and has ffmpeg turn it into a JPEG.
func (m *Maker) make(stream string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
	defer cancel()
	r, err := m.cfg.Hub.Subscribe(ctx, stream, bus.ReaderOptions{Media: bus.MediaVideo, Protocol: "thumbnail"})
	if errors.Is(err, bus.ErrNotFound) {
		return nil, ErrOffline
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	u, err := r.Next(ctx)
	if err != nil {
		if errors.Is(err, bus.ErrEnded) || errors.Is(err, context.DeadlineExceeded) {
			return nil, ErrOffline
		}
		return nil, err
	}
	es, format, err := annexB(u)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, m.cfg.FFmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
		"-f", format, "-i", "pipe:0", "-frames:v", "1",
		"-vf", "scale='min("+strconv.Itoa(m.cfg.Width)+",iw)':-2", "-q:v", "5", "-f", "mjpeg", "pipe:1")
	cmd.Stdin = bytes.NewReader(es)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || out.Len() == 0 {
		return nil, fmt.Errorf("thumb: ffmpeg: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out.Bytes(), nil
}

var startCode = []byte{0, 0, 0, 1}

// annexB returns a keyframe as an Annex-B elementary stream with its parameter sets in
// front, and ffmpeg's name for its format.
func annexB(u *bus.Unit) ([]byte, string, error) {
	var params [][]byte
	var format string
	switch u.Track.Codec {
	case bus.CodecH264:
		sps, pps, err := bus.ParseAVCConfig(u.Track.Config)
		if err != nil {
			return nil, "", err
		}
		params, format = append(sps, pps...), "h264"
	case bus.CodecH265:
		vps, sps, pps, err := bus.ParseHEVCConfig(u.Track.Config)
		if err != nil {
			return nil, "", err
		}
		params, format = append(append(vps, sps...), pps...), "hevc"
	default:
		return nil, "", fmt.Errorf("%w: %s", ErrUnsupported, u.Track.Codec)
	}
	var b bytes.Buffer
	for _, p := range params {
		b.Write(startCode)
		b.Write(p)
	}
	for rest := u.Payload; len(rest) > 0; {
		nalu, next, ok := bus.NextNALU(rest)
		if !ok {
			return nil, "", bus.ErrMalformed
		}
		b.Write(startCode)
		b.Write(nalu)
		rest = next
	}
	return b.Bytes(), format, nil
}
