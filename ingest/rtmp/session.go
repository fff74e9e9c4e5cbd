package rtmp

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/relaycast/relaycast/bus"
)

// Limits on what a session holds back before it publishes to the bus.
const (
	// startPackets is how many media packets a session waits for the sequence headers the
	// metadata announced before it publishes with the tracks it has.
	startPackets = 50
	// startBytes caps the units buffered before publishing.
	startBytes = 16 << 20
)

// session turns one publisher's FLV tags into bus units. It holds the tracks, buffers the
// first units until the tracks are known, then feeds a bus.Publisher. It is driven by one
// goroutine (the connection's) and does no logging on the per-packet path.
type session struct {
	hub      *bus.Hub
	streamID string
	log      *slog.Logger
	// trackWait is how long to wait for an announced track's sequence header; noTracks how
	// long media without any sequence header is tolerated.
	trackWait, noTracks time.Duration
	start               time.Time

	meta     metadata
	metaSeen bool

	video, audio  *bus.Track
	lengthSize    int  // NAL unit length size of the publisher's video frames
	videoFrame    bool // a video frame was seen (it decides B-frames before publishing)
	pending       []*bus.Unit
	pendingBytes  int
	packets       int
	pub           *bus.Publisher
	lateTrackSeen bool

	// Timestamps: RTMP's 32-bit millisecond clock extended to 64 bits (tsExt), plus offset,
	// which absorbs a publisher's clock jumping back (an encoder restart on the same
	// connection) so that DTS stays increasing per track.
	tsInit  bool
	tsPrev  uint32
	tsExt   int64
	offset  int64
	lastDTS [2]time.Duration
	seenDTS [2]bool
}

const (
	slotVideo = 0
	slotAudio = 1
)

func newSession(hub *bus.Hub, streamID string, log *slog.Logger, trackWait time.Duration, now time.Time) *session {
	return &session{hub: hub, streamID: streamID, log: log, trackWait: trackWait,
		noTracks: 5 * trackWait, start: now}
}

// publishing reports whether the session feeds the bus.
func (s *session) publishing() bool { return s.pub != nil }

// onMetadata records the hints of @setDataFrame. Malformed metadata is ignored: it only
// tells which tracks to wait for.
func (s *session) onMetadata(payload []byte) {
	m, err := parseMetadata(payload)
	if err != nil {
		s.log.Debug("ignoring metadata", "err", err)
		return
	}
	s.meta, s.metaSeen = m, true
}

// onVideo handles one RTMP video message body with RTMP timestamp ts.
func (s *session) onVideo(ts uint32, b []byte, now time.Time) error {
	if err := s.ended(); err != nil {
		return err
	}
	t, err := parseVideoTag(b)
	if err != nil {
		return err
	}
	switch t.kind {
	case kindSeqHeader:
		tr, lengthSize, err := videoTrack(t.codec, t.data)
		if err != nil {
			return err
		}
		if s.video != nil && s.video.Codec == tr.Codec && bytes.Equal(s.video.Config, tr.Config) {
			s.lengthSize = lengthSize
			return nil // repeated header (OBS and ffmpeg resend it)
		}
		if !s.install(slotVideo, tr) {
			return nil
		}
		s.lengthSize = lengthSize
		return s.maybePublish(now)
	case kindFrame:
		dts := s.dts(slotVideo, ts)
		if s.video == nil || s.video.Codec != t.codec {
			// Frames before their sequence header cannot be decoded: drop them.
			return s.countDropped(now)
		}
		payload, idr, err := convertFrame(t.codec, t.data, s.lengthSize)
		if err != nil {
			return err
		}
		if payload == nil {
			return nil
		}
		if t.cts != 0 && !s.video.BFrames {
			s.setBFrames()
		}
		s.videoFrame = true
		u := &bus.Unit{Track: s.video, DTS: dts, PTS: dts + time.Duration(t.cts)*time.Millisecond,
			Key: t.key || idr, Payload: payload, Arrival: now}
		return s.emit(u, now)
	}
	return nil
}

// onAudio handles one RTMP audio message body with RTMP timestamp ts.
func (s *session) onAudio(ts uint32, b []byte, now time.Time) error {
	if err := s.ended(); err != nil {
		return err
	}
	t, err := parseAudioTag(b)
	if err != nil {
		return err
	}
	switch t.kind {
	case kindSeqHeader:
		tr, err := aacTrack(t.data)
		if err != nil {
			return err
		}
		if s.audio != nil && bytes.Equal(s.audio.Config, tr.Config) {
			return nil
		}
		if !s.install(slotAudio, tr) {
			return nil
		}
		return s.maybePublish(now)
	case kindFrame:
		dts := s.dts(slotAudio, ts)
		if s.audio == nil {
			return s.countDropped(now)
		}
		if len(t.data) == 0 {
			return nil
		}
		u := &bus.Unit{Track: s.audio, DTS: dts, PTS: dts, Key: true,
			Payload: append(make([]byte, 0, len(t.data)), t.data...), Arrival: now}
		return s.emit(u, now)
	}
	return nil
}

// install makes tr the track of slot. Before publishing it replaces the pending track (and
// drops the units buffered for the old one); once publishing it goes to the bus with
// SetTrack. A track the bus was not published with cannot be added: it is ignored (false).
func (s *session) install(slot int, tr *bus.Track) bool {
	cur := &s.video
	if slot == slotAudio {
		cur = &s.audio
	}
	old := *cur
	if s.pub == nil {
		if old != nil {
			tr.BFrames = old.BFrames
			kept := s.pending[:0]
			s.pendingBytes = 0
			for _, u := range s.pending {
				if u.Track != old {
					kept = append(kept, u)
					s.pendingBytes += len(u.Payload)
				}
			}
			clear(s.pending[len(kept):])
			s.pending = kept
		}
		*cur = tr
		return true
	}
	if old == nil {
		if !s.lateTrackSeen {
			s.lateTrackSeen = true
			s.log.Warn("ignoring a track that started after publishing began",
				"codec", tr.Codec.String())
		}
		return false
	}
	tr.Index = old.Index
	if tr.Codec == old.Codec {
		tr.BFrames = old.BFrames
	}
	*cur = tr
	s.pub.SetTrack(tr)
	s.log.Info("codec parameters changed", "codec", tr.Codec.String(),
		"width", tr.Width, "height", tr.Height, "sample_rate", tr.SampleRate)
	return true
}

// setBFrames marks the video track as having B-frames (once: a track, once on the bus, is
// immutable, so it is replaced).
func (s *session) setBFrames() {
	if s.pub == nil {
		s.video.BFrames = true // not shared yet
		return
	}
	t := *s.video
	t.BFrames = true
	s.video = &t
	s.pub.SetTrack(&t)
	s.log.Info("video has B-frames")
}

// dts converts an RTMP timestamp to a DTS that increases per track.
func (s *session) dts(slot int, ts uint32) time.Duration {
	if !s.tsInit {
		s.tsInit, s.tsPrev, s.tsExt = true, ts, int64(ts)
	} else {
		// A signed delta handles both the 32-bit wrap (after 49.7 days) and audio and video
		// interleaved slightly out of order.
		s.tsExt += int64(int32(ts - s.tsPrev))
		s.tsPrev = ts
	}
	d := time.Duration(s.tsExt+s.offset) * time.Millisecond
	if s.seenDTS[slot] && d <= s.lastDTS[slot] {
		back := s.lastDTS[slot] - d
		if back > time.Second {
			// The publisher's clock restarted: continue the timeline from here.
			s.offset += int64(back/time.Millisecond) + 1
		}
		d = s.lastDTS[slot] + time.Millisecond
	}
	s.lastDTS[slot], s.seenDTS[slot] = d, true
	return d
}

func (s *session) emit(u *bus.Unit, now time.Time) error {
	if s.pub != nil {
		s.pub.Write(u)
		return nil
	}
	s.pending = append(s.pending, u)
	s.pendingBytes += len(u.Payload)
	s.packets++
	return s.maybePublish(now)
}

func (s *session) countDropped(now time.Time) error {
	if s.pub != nil {
		return nil
	}
	s.packets++
	return s.maybePublish(now)
}

// maybePublish publishes to the bus once the tracks are known: every track the metadata
// announced (both when there was no metadata) has its sequence header and, for video, a
// first frame — or the wait is over (trackWait, startPackets, startBytes).
func (s *session) maybePublish(now time.Time) error {
	if s.pub != nil {
		return nil
	}
	waited := now.Sub(s.start)
	if s.video == nil && s.audio == nil {
		if waited > s.noTracks {
			return ErrNoTracks
		}
		return nil
	}
	wantVideo, wantAudio := true, true
	if s.metaSeen {
		wantVideo, wantAudio = s.meta.hasVideo, s.meta.hasAudio
	}
	// A video track waits for its first frame too: its composition time tells whether the
	// video has B-frames, so the bus gets the track right from the start.
	ready := (!wantVideo || s.video != nil) && (!wantAudio || s.audio != nil) &&
		(s.video == nil || s.videoFrame)
	if !ready && waited < s.trackWait && s.packets < startPackets && s.pendingBytes < startBytes {
		return nil
	}
	var tracks []*bus.Track
	for _, t := range []*bus.Track{s.video, s.audio} {
		if t != nil {
			t.Index = len(tracks)
			tracks = append(tracks, t)
		}
	}
	pub, err := s.hub.Publish(s.streamID, tracks)
	if err != nil {
		return fmt.Errorf("publish to bus: %w", err)
	}
	s.pub = pub
	for i, u := range s.pending {
		pub.Write(u)
		s.pending[i] = nil
	}
	s.pending, s.pendingBytes = nil, 0
	attrs := []any{"wait", waited.Round(time.Millisecond)}
	if v := s.video; v != nil {
		attrs = append(attrs, "video", v.Codec.String(), "width", v.Width, "height", v.Height,
			"b_frames", v.BFrames)
	}
	if a := s.audio; a != nil {
		attrs = append(attrs, "audio", a.Codec.String(), "sample_rate", a.SampleRate,
			"channels", a.Channels)
	}
	s.log.Info("stream live", attrs...)
	return nil
}

// ended returns ErrEndedByServer once the bus closed the publisher (Hub.Kick, Hub.End).
func (s *session) ended() error {
	if s.pub == nil {
		return nil
	}
	select {
	case <-s.pub.Done():
		return ErrEndedByServer
	default:
		return nil
	}
}

// close stops publishing (the bus starts the stream's reconnect grace).
func (s *session) close() {
	if s.pub != nil {
		s.pub.Close()
	}
	s.pending = nil
}
