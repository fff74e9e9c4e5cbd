package rtsp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"
	"github.com/bluenviron/gortsplib/v5/pkg/ntp"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/pion/rtcp"

	"github.com/relaycast/relaycast/bus"
)

// playHandler is a minimal gortsplib handler that hands readers to a Server the way
// ingest/rtsp does: Open on DESCRIBE and SETUP, Play once the PLAY response is made (the
// RTP-Info is then already computed, and the writer starts after it).
type playHandler struct {
	s  *Server
	gs *gortsplib.Server

	mu       sync.Mutex
	sessions map[*gortsplib.ServerSession]*playSession
	playing  map[*gortsplib.ServerConn]*playSession
}

type playSession struct {
	st            *gortsplib.ServerStream
	release, stop func()
}

func (h *playHandler) open(path, query string) (*gortsplib.ServerStream, func(), *base.Response, error) {
	st, release, err := h.s.Open(context.Background(), h.gs, strings.TrimPrefix(strings.TrimPrefix(path, "/"), "live/"), query, "")
	if err != nil {
		return nil, nil, &base.Response{StatusCode: statusOf(err)}, err
	}
	return st, release, &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *playHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	st, release, res, err := h.open(ctx.Path, ctx.Query)
	if err == nil {
		release()
	}
	return res, st, err
}

func (h *playHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	h.mu.Lock()
	ps := h.sessions[ctx.Session]
	h.mu.Unlock()
	if ps != nil {
		return &base.Response{StatusCode: base.StatusOK}, ps.st, nil
	}
	st, release, res, err := h.open(ctx.Path, ctx.Query)
	if err != nil {
		return res, nil, err
	}
	h.mu.Lock()
	h.sessions[ctx.Session] = &playSession{st: st, release: release}
	h.mu.Unlock()
	return res, st, nil
}

func (h *playHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ps := h.sessions[ctx.Session]; ps != nil {
		h.playing[ctx.Conn] = ps
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func (h *playHandler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ps := h.playing[sc]
	delete(h.playing, sc)
	if ps != nil && res.StatusCode == base.StatusOK && ps.stop == nil && ps.release != nil {
		ps.stop = h.s.Play(ps.st)
	}
}

func (h *playHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	h.mu.Lock()
	ps := h.sessions[ctx.Session]
	delete(h.sessions, ctx.Session)
	h.mu.Unlock()
	if ps == nil {
		return
	}
	if ps.stop != nil {
		ps.stop()
	}
	ps.release()
}

// pacedPublisher writes 30 fps H.264 (a keyframe every second) and 44.1 kHz AAC at real
// time, the audio in bursts that lag the video by 60 to 160 ms, as ffmpeg publishes over
// RTSP: in the ring, the audio after a keyframe is stamped before it. It signals cached
// when the cached GOP is half a second old (a first reader then gets a burst of it).
func pacedPublisher(ctx context.Context, p *bus.Publisher, cached chan<- struct{}) {
	const frame = time.Second / 30
	audioFrame := time.Duration(mpeg4audio.SamplesPerAccessUnit) * time.Second / 44100
	pts := 10 * time.Second // not zero: a publisher's own timeline
	nextAudio := pts
	t := time.NewTicker(frame)
	defer t.Stop()
	for n := 0; ; n++ {
		key := n%30 == 0
		nalu := []byte{0x41, 0x9a, 0x02, byte(n)}
		if key {
			nalu = testIDR
		}
		now := time.Now()
		p.Write(&bus.Unit{Track: p.Track(0), PTS: pts, DTS: pts, Key: key,
			Payload: bus.JoinNALUs([][]byte{nalu}), Arrival: now})
		if n%30 == 15 {
			select {
			case cached <- struct{}{}:
			default:
			}
		}
		if n%3 == 2 {
			for ; nextAudio <= pts-60*time.Millisecond; nextAudio += audioFrame {
				p.Write(&bus.Unit{Track: p.Track(1), PTS: nextAudio, DTS: nextAudio, Key: true,
					Payload: []byte{0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c}, Arrival: now})
			}
		}
		pts += frame
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probePackets reads 80 packets of url over TCP with ffprobe and returns the packet times
// (seconds) of each stream, in the order ffprobe's demuxer gave them.
func probePackets(url string) (map[int][]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-read_intervals", "%+#80", "-show_entries", "packet=stream_index,dts_time", "-of", "csv",
		url).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("ffprobe: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("ffprobe: %v", err)
	}
	times := make(map[int][]float64)
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimSpace(l), ",")
		if len(f) < 3 || f[0] != "packet" {
			continue
		}
		i, err1 := strconv.Atoi(f[1])
		v, err2 := strconv.ParseFloat(f[2], 64)
		if err1 != nil || err2 != nil {
			continue // N/A: the first H.264 packet before the parser knows its time
		}
		times[i] = append(times[i], v)
	}
	return times, nil
}

// checkTimeline fails when a stream's times go backwards (ffmpeg: "non monotonically
// increasing dts") or when the tracks do not start on one timeline.
func checkTimeline(times map[int][]float64) error {
	if len(times[0]) < 5 || len(times[1]) < 5 {
		return fmt.Errorf("too few packets: %d video, %d audio", len(times[0]), len(times[1]))
	}
	for i, ts := range times {
		for j := 1; j < len(ts); j++ {
			if ts[j] <= ts[j-1] {
				return fmt.Errorf("stream %d: time %.4f after %.4f (packet %d)", i, ts[j], ts[j-1], j)
			}
		}
	}
	// Both tracks start at the cached keyframe (or, joining a feed, at the same moment).
	if d := math.Abs(times[0][0] - times[1][0]); d > 0.5 {
		return fmt.Errorf("video starts at %.3f s, audio at %.3f s", times[0][0], times[1][0])
	}
	return nil
}

// checkRTPInfo plays url with gortsplib's client and checks that the PLAY response has an
// RTP-Info timestamp for every track and that they stand for one instant, by the tracks'
// first RTCP sender reports (the NTP time of an RTP timestamp).
func checkRTPInfo(url string) error {
	u, err := base.ParseURL(url)
	if err != nil {
		return err
	}
	tcp := gortsplib.ProtocolTCP
	c := gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Protocol: &tcp}
	if err := c.Start(); err != nil {
		return err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return err
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return err
	}
	type report struct {
		media int
		sr    *rtcp.SenderReport
	}
	reports := make(chan report, 64)
	c.OnPacketRTCPAny(func(m *description.Media, p rtcp.Packet) {
		if sr, ok := p.(*rtcp.SenderReport); ok {
			for i, dm := range desc.Medias {
				if dm == m {
					select {
					case reports <- report{i, sr}:
					default:
					}
				}
			}
		}
	})
	res, err := c.Play(nil)
	if err != nil {
		return err
	}
	var info headers.RTPInfo
	if err := info.Unmarshal(res.Header["RTP-Info"]); err != nil {
		return fmt.Errorf("RTP-Info %q: %v", res.Header["RTP-Info"], err)
	}
	if len(info) != len(desc.Medias) {
		return fmt.Errorf("RTP-Info has %d entries for %d medias", len(info), len(desc.Medias))
	}
	at := make([]time.Time, len(desc.Medias))
	timeout := time.After(5 * time.Second)
	for n := 0; n < len(at); {
		select {
		case r := <-reports:
			if !at[r.media].IsZero() {
				continue
			}
			ts := info[r.media].Timestamp
			if ts == nil {
				return fmt.Errorf("RTP-Info of media %d has no rtptime: %q", r.media, res.Header["RTP-Info"])
			}
			rate := desc.Medias[r.media].Formats[0].ClockRate()
			d := time.Duration(float64(int32(*ts-r.sr.RTPTime)) / float64(rate) * float64(time.Second))
			at[r.media] = ntp.Decode(r.sr.NTPTime).Add(d)
			n++
		case <-timeout:
			return errors.New("no sender report on every track")
		}
	}
	if d := at[1].Sub(at[0]); d > 5*time.Millisecond || d < -5*time.Millisecond {
		return fmt.Errorf("RTP-Info: the audio timestamp is %v from the video's", d)
	}
	return nil
}

// TestReadersGetOneTimeline reads a stream whose audio lags its video in the ring, as the
// first reader of a feed (the writer starts after the PLAY response, from the GOP cache)
// and as a reader that restarts a lingering feed: every time, ffmpeg's demuxer must see
// each track's times increase and both tracks on one timeline.
//
// The first reader used to get no RTP-Info, so ffmpeg aligned each track on its first
// packet (the keyframe; audio stamped ~100 ms before it) and moved the audio back at the
// first RTCP sender report. A reader restarting the feed got the previous run's RTP-Info
// while the run drew a new random timestamp base: tracks hours apart.
func TestReadersGetOneTimeline(t *testing.T) {
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Fatalf("ffprobe is required (the README's test command installs it): %v", err)
	}
	t.Parallel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub := bus.New(bus.Config{ReconnectGrace: -1, Logger: log})
	defer hub.Close()
	s, err := New(Config{Hub: hub, Resolver: fakeResolver{}, Logger: log, Linger: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	h := &playHandler{s: s, sessions: make(map[*gortsplib.ServerSession]*playSession),
		playing: make(map[*gortsplib.ServerConn]*playSession)}
	h.gs = &gortsplib.Server{Handler: h, RTSPAddress: "127.0.0.1:0", WriteQueueSize: 4096}
	if err := h.gs.Start(); err != nil {
		t.Fatal(err)
	}
	defer h.gs.Close()

	tracks := testTracks(t)
	asc := mpeg4audio.AudioSpecificConfig{Type: 2, SampleRate: 44100, ChannelConfig: 2}
	ascb, err := asc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p, err := hub.Publish("a", []*bus.Track{
		tracks[0], {Index: 1, Codec: bus.CodecAAC, ClockRate: 44100, Config: ascb},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cached := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pacedPublisher(ctx, p, cached)
	}()
	defer func() {
		cancel()
		<-done
	}()
	url := "rtsp://" + h.gs.NetListener().Addr().String() + "/live/pub_a"

	// Each round: a first reader of a fresh feed, then one that restarts it while it lingers,
	// once with ffprobe and once with gortsplib's client in each position.
	for round := 0; round < 4; round++ {
		// A cached GOP; the audio written after its keyframe is stamped before it.
		<-cached
		for _, who := range []string{"first reader", "reader restarting the feed"} {
			var err error
			if (round%2 == 0) == (who == "first reader") {
				err = checkRTPInfo(url)
			} else {
				var times map[int][]float64
				if times, err = probePackets(url); err == nil {
					err = checkTimeline(times)
				}
			}
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, who, err)
			}
		}
		waitFor(t, "feed closed", func() bool { return s.Stats().Feeds == 0 })
	}
}
