package whip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtcp"

	"github.com/relaycast/relaycast/bus"
)

// Track slots of a session: WHIP carries at most one video and one audio track.
const (
	slotVideo = 0
	slotAudio = 1
)

// slot is one track of a session: its codec, its bus track and its RTP clock.
type slot struct {
	present bool
	codec   bus.Codec
	rate    int64
	track   *bus.Track
	sps     []byte
	pps     []byte

	// RTP clock: the 32-bit timestamps unwrapped to 64 bits (ext), the first one (base) and
	// the offset of base on the session's timeline.
	started bool
	lastRaw uint32
	ext     int64
	base    int64
	offset  time.Duration

	// Last RTCP sender report: the NTP time (as a duration since the NTP epoch) of the
	// unwrapped RTP timestamp srExt.
	srSet bool
	srExt int64
	srNTP time.Duration

	lastDTS time.Duration
	dtsSet  bool
}

// at returns the timeline position of the unwrapped RTP timestamp ext.
func (s *slot) at(ext int64) time.Duration {
	return s.offset + ticks(ext-s.base, s.rate)
}

// ntpAt returns the sender's NTP time of the unwrapped RTP timestamp ext.
func (s *slot) ntpAt(ext int64) time.Duration {
	return s.srNTP + ticks(ext-s.srExt, s.rate)
}

// unwrap extends a 32-bit RTP timestamp to 64 bits around the last one seen.
func (s *slot) unwrap(ts uint32) int64 {
	return s.ext + int64(int32(ts-s.lastRaw))
}

// ticks converts n ticks of a clock rate to a duration without overflowing for long
// streams.
func ticks(n, rate int64) time.Duration {
	return time.Duration(n/rate)*time.Second + time.Duration(n%rate)*time.Second/time.Duration(rate)
}

// ntpDuration converts a 64-bit NTP timestamp to a duration since the NTP epoch.
func ntpDuration(ntp uint64) time.Duration {
	return time.Duration(ntp>>32)*time.Second + time.Duration((ntp&0xffffffff)*uint64(time.Second)>>32)
}

// assembler turns the frames of a session's tracks into bus units on one timeline and
// publishes them. Its methods are called by the session's track goroutines.
//
// Timeline: the first packet of any track arrives at t0 = 0. Each track's first packet is
// placed at its arrival time after t0, then advances with its RTP clock. When both tracks
// have had an RTCP sender report, the audio track is moved so that the two tracks line up
// as the sender's clock says (arrival times differ by network and pacing jitter).
//
// Publishing waits for what a reader needs first: with video, the first keyframe with its
// parameter sets (audio before it is dropped; the bus would skip it anyway); audio only,
// the first frame. Video that does not start within trackWait is given up and the stream
// goes live with its audio.
type assembler struct {
	hub       *bus.Hub
	streamID  string
	log       *slog.Logger
	trackWait time.Duration

	mu       sync.Mutex
	start    time.Time
	t0       time.Time
	t0Set    bool
	slots    [2]slot
	pub      *bus.Publisher
	err      error
	closed   bool
	lastKey  time.Time
	gaveUpV  bool
	alignLog bool
}

func newAssembler(hub *bus.Hub, streamID string, log *slog.Logger, sum *offerSummary,
	trackWait time.Duration, now time.Time) *assembler {
	a := &assembler{hub: hub, streamID: streamID, log: log, trackWait: trackWait, start: now}
	for _, ch := range sum.choices {
		i, rate := slotAudio, int64(48000)
		if ch.codec.IsVideo() {
			i, rate = slotVideo, 90000
		}
		a.slots[i] = slot{present: true, codec: ch.codec, rate: rate}
		switch {
		case ch.codec == bus.CodecOpus:
			a.slots[i].track = opusTrack()
		case ch.codec != bus.CodecH264:
			// VP8, VP9, AV1: no configuration record is needed to start.
			a.slots[i].track = &bus.Track{Codec: ch.codec, ClockRate: 90000}
		}
	}
	return a
}

// opusTrack is the bus track of WebRTC Opus: 48 kHz, stereo-capable (RFC 7587 §7).
func opusTrack() *bus.Track {
	return &bus.Track{Codec: bus.CodecOpus, ClockRate: 48000, SampleRate: 48000, Channels: 2,
		Config: opusHead(2)}
}

// opusHead builds an RFC 7845 §5.1 identification header (little-endian fields; the form
// Matroska's CodecPrivate takes). mediacommon's IDHeader writes the fields big-endian, as
// in MP4's dOps box, so it is not used here. WebRTC Opus has no pre-skip of its own.
func opusHead(channels int) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1 // version
	h[9] = byte(channels)
	binary.LittleEndian.PutUint16(h[10:], 0)     // pre-skip
	binary.LittleEndian.PutUint32(h[12:], 48000) // input sample rate
	// output gain 0, channel mapping family 0
	return h
}

// write places one frame of track i on the timeline and hands it to the bus. It returns
// an error when the session must end (the bus refused the publisher).
func (a *assembler) write(i int, f frame, arrival time.Time) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.err != nil || a.closed {
		return a.err
	}
	s := &a.slots[i]
	if !a.t0Set {
		a.t0, a.t0Set = arrival, true
	}
	var ext int64
	if !s.started {
		s.started = true
		s.lastRaw, s.ext, s.base = f.ts, int64(f.ts), int64(f.ts)
		s.offset = arrival.Sub(a.t0)
		ext = s.ext
	} else {
		ext = s.unwrap(f.ts)
		s.lastRaw, s.ext = f.ts, ext
	}
	pts := s.at(ext)

	if s.codec == bus.CodecH264 && (f.sps != nil || f.pps != nil) {
		a.updateH264(s, f.sps, f.pps)
	}
	if i == slotVideo && f.key {
		a.lastKey = arrival
	}
	if a.pub != nil {
		select {
		case <-a.pub.Done():
			return errEndedByServer
		default:
		}
	}
	if a.pub == nil {
		if !a.ready(i, f, arrival) {
			return nil
		}
		if err := a.publish(arrival); err != nil {
			a.err = err
			return err
		}
	}
	if s.track == nil || (i == slotVideo && a.gaveUpV) {
		return nil
	}
	dts := pts
	if s.dtsSet && dts <= s.lastDTS {
		dts = s.lastDTS + time.Microsecond
		pts = dts
	}
	s.lastDTS, s.dtsSet = dts, true
	a.pub.Write(&bus.Unit{Track: s.track, PTS: pts, DTS: dts, Key: f.key, Payload: f.payload,
		Arrival: arrival})
	return nil
}

// ready reports whether the session can go live with frame f of track i.
func (a *assembler) ready(i int, f frame, now time.Time) bool {
	v := &a.slots[slotVideo]
	if !v.present {
		return i == slotAudio
	}
	if i == slotVideo {
		return f.key && v.track != nil
	}
	if now.Sub(a.start) > a.trackWait {
		a.gaveUpV = true
		a.log.Warn("whip: no video keyframe in time, going live with audio only",
			"stream", a.streamID, "wait", a.trackWait)
		return true
	}
	return false
}

// updateH264 installs new H.264 parameter sets: a new bus track (SetTrack once live).
func (a *assembler) updateH264(s *slot, sps, pps []byte) {
	if sps == nil {
		sps = s.sps
	}
	if pps == nil {
		pps = s.pps
	}
	if bytes.Equal(sps, s.sps) && bytes.Equal(pps, s.pps) {
		return
	}
	s.sps, s.pps = sps, pps
	if sps == nil || pps == nil {
		return
	}
	cfg, err := bus.AVCConfig(sps, pps)
	if err != nil {
		return
	}
	t := &bus.Track{Codec: bus.CodecH264, ClockRate: 90000, Config: cfg}
	var p h264.SPS
	if err := p.Unmarshal(sps); err == nil {
		t.Width, t.Height = p.Width(), p.Height()
	}
	if s.track != nil {
		t.Index = s.track.Index
	}
	s.track = t
	if a.pub != nil && !a.gaveUpV {
		a.pub.SetTrack(t)
		a.log.Info("whip: codec parameters changed", "stream", a.streamID,
			"width", t.Width, "height", t.Height)
	}
}

// publish creates the bus publisher with the session's tracks.
func (a *assembler) publish(now time.Time) error {
	var tracks []*bus.Track
	for i := range a.slots {
		s := &a.slots[i]
		if !s.present || s.track == nil || (i == slotVideo && a.gaveUpV) {
			continue
		}
		s.track.Index = len(tracks)
		tracks = append(tracks, s.track)
	}
	pub, err := a.hub.Publish(a.streamID, tracks)
	if err != nil {
		return fmt.Errorf("publish to bus: %w", err)
	}
	a.pub = pub
	attrs := []any{"stream", a.streamID, "wait", now.Sub(a.start).Round(time.Millisecond)}
	for _, t := range tracks {
		attrs = append(attrs, t.Codec.String(), fmt.Sprintf("%dx%d", t.Width, t.Height))
	}
	a.log.Info("whip: stream live", attrs...)
	return nil
}

// senderReport records an RTCP sender report of track i and, once both tracks have one,
// lines the audio up with the video.
func (a *assembler) senderReport(i int, sr *rtcp.SenderReport) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &a.slots[i]
	if !s.started {
		return
	}
	s.srExt, s.srNTP, s.srSet = s.unwrap(sr.RTPTime), ntpDuration(sr.NTPTime), true
	v, au := &a.slots[slotVideo], &a.slots[slotAudio]
	if !v.srSet || !au.srSet || !v.started || !au.started {
		return
	}
	want := v.offset + au.ntpAt(au.base) - v.ntpAt(v.base)
	diff := want - au.offset
	if diff < 0 {
		diff = -diff
	}
	// Realign only for a real difference, and never by an absurd amount (a sender whose
	// clocks disagree by seconds is better served by arrival times).
	if diff < 5*time.Millisecond || diff > 5*time.Second {
		return
	}
	if !a.alignLog {
		a.alignLog = true
		a.log.Debug("whip: audio aligned to video by sender reports", "stream", a.streamID,
			"shift", (want - au.offset).Round(time.Millisecond))
	}
	au.offset = want
}

// needKeyframe reports whether no video keyframe arrived for longer than d (zero time:
// none yet).
func (a *assembler) needKeyframe(now time.Time, d time.Duration) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastKey.IsZero() {
		return true
	}
	return d > 0 && now.Sub(a.lastKey) > d
}

// close ends the publishing (the bus starts its reconnect grace).
func (a *assembler) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.pub != nil {
		a.pub.Close()
	}
}

// live reports whether the session publishes to the bus.
func (a *assembler) live() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pub != nil
}
