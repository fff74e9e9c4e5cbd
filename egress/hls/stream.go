package hls

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gohlslib/v2"

	"github.com/relaycast/relaycast/bus"
)

// errLogInterval is the least time between two log lines about one stream's muxer errors.
const errLogInterval = 10 * time.Second

// stream is the HLS side of one live bus stream: a reader driven by its own goroutine (run)
// and the gohlslib muxer it feeds. The Server owns it.
type stream struct {
	srv    *Server
	bs     *bus.Stream
	reader *bus.Reader
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger

	// served is the muxer HTTP requests use; nil while the stream has none.
	served atomic.Pointer[muxer]
	// tracksChanged is set by the hub watcher on EventTracksChanged.
	tracksChanged atomic.Bool

	sessions sessions

	lastErrLog atomic.Int64
	errsSince  atomic.Uint64

	// Fields below belong to run's goroutine.
	cur *muxer
	au  [][]byte // reused access-unit slice, so that writing a unit does not allocate it
}

// muxer is one gohlslib muxer and the bus tracks it was built for. m is nil when none of the
// tracks could be muxed: units are then dropped until the tracks change.
type muxer struct {
	m      *gohlslib.Muxer
	tracks []*bus.Track   // bus tracks by index, as they were when the muxer started
	w      []*trackWriter // by bus track index; nil for tracks the muxer does not carry
	// hasVideo tells whether m carries a video track (it then leads part and segment cuts).
	hasVideo bool
	// playlists caches the playlists m rendered (plcache.go).
	playlists playlistCache
}

func (st *stream) run() {
	defer st.srv.wg.Done()
	defer st.srv.forget(st)
	defer st.reader.Close()
	defer st.stopMuxer()

	// Always on: the muxer exists before the first unit, so the playlist is ready as soon
	// as the first segment is complete, whether or not anyone asked for it yet.
	st.restart(nil)
	for {
		u, err := st.reader.Next(st.ctx)
		if err != nil {
			// ErrEnded, ErrClosed or our context: the stream is over for us.
			return
		}
		if st.tracksChanged.Load() && st.tracksChanged.Swap(false) {
			if len(st.bs.Tracks()) != len(st.cur.tracks) {
				st.restart(nil)
			}
		}
		mx := st.cur
		i := u.Track.Index
		if i < 0 || i >= len(mx.tracks) || mx.tracks[i] != u.Track {
			if i >= 0 && i < len(mx.tracks) && mx.tracks[i].SameParams(u.Track) {
				// A new *Track with the same coding: carry on, players need not reload.
				mx.tracks[i] = u.Track
			} else {
				// New codec parameters: start over (players reload the playlist).
				mx = st.restart(u.Track)
			}
		}
		if mx.m == nil || i < 0 || i >= len(mx.w) || mx.w[i] == nil {
			continue
		}
		if err := st.write(mx, mx.w[i], u); err != nil {
			st.encodeError(err)
		}
		// The playlists may have changed (a part or segment was cut).
		mx.playlists.gen.Add(1)
	}
}

// write hands one unit to the muxer. It is the per-unit hot path: no logging, no maps, and
// the access-unit slice is reused.
func (st *stream) write(mx *muxer, tw *trackWriter, u *bus.Unit) error {
	pts := toClock(u.PTS, tw.hls.ClockRate)
	au := st.au[:0]
	defer func() {
		// Drop the references to the payload so that the ring can free it.
		clear(au)
		st.au = au[:0]
	}()
	switch tw.codec {
	case bus.CodecH264, bus.CodecH265:
		if u.Key && len(tw.params) > 0 && !hasParamSets(tw.codec, u.Payload) {
			au = append(au, tw.params...)
		}
		for b := u.Payload; len(b) > 0; {
			nalu, rest, ok := bus.NextNALU(b)
			if !ok {
				return bus.ErrMalformed
			}
			au = append(au, nalu)
			b = rest
		}
		if len(au) == 0 {
			return nil
		}
		if tw.codec == bus.CodecH264 {
			return mx.m.WriteH264(tw.hls, u.Arrival, pts, au)
		}
		return mx.m.WriteH265(tw.hls, u.Arrival, pts, au)
	case bus.CodecVP9:
		return mx.m.WriteVP9(tw.hls, u.Arrival, pts, u.Payload)
	case bus.CodecAV1:
		var err error
		if au, err = appendOBUs(au, u.Payload); err != nil {
			return err
		}
		if len(au) == 0 {
			return nil
		}
		return mx.m.WriteAV1(tw.hls, u.Arrival, pts, au)
	case bus.CodecAAC:
		au = append(au, u.Payload)
		return mx.m.WriteMPEG4Audio(tw.hls, u.Arrival, pts, au)
	case bus.CodecOpus:
		au = append(au, u.Payload)
		return mx.m.WriteOpus(tw.hls, u.Arrival, pts, au)
	}
	return nil
}

// hasParamSets reports whether an AVCC access unit carries its own parameter sets.
func hasParamSets(c bus.Codec, b []byte) bool {
	for len(b) > 0 {
		nalu, rest, ok := bus.NextNALU(b)
		if !ok {
			return false
		}
		if isParamSet(c, nalu) {
			return true
		}
		b = rest
	}
	return false
}

// restart closes the current muxer and starts one for the stream's current tracks, with
// trigger (the track of the unit that showed new parameters) in its slot. The new muxer has
// a new segment prefix, so caches never mix the two; players see the old playlist 404 and
// reload.
func (st *stream) restart(trigger *bus.Track) *muxer {
	tracks := st.bs.Tracks()
	if trigger != nil && trigger.Index >= 0 {
		for len(tracks) <= trigger.Index {
			tracks = append(tracks, nil)
		}
		tracks[trigger.Index] = trigger
	}
	mx := st.srv.newMuxer(tracks, st.log, st.encodeError)
	// gohlslib cuts parts and segments on the video track when it carries one, else on the
	// audio: the reader paces by video only in the first case (see bus.ReaderOptions).
	st.reader.SetPaceByVideo(mx.hasVideo)
	old := st.cur
	st.cur = mx
	if mx.m != nil {
		st.served.Store(mx)
		st.srv.muxers.Add(1)
	} else {
		st.served.Store(nil)
	}
	if old != nil && old.m != nil {
		old.m.Close()
		st.srv.muxers.Add(-1)
		st.srv.restarts.Add(1)
		st.log.Info("hls muxer restarted: codec parameters changed; players reload the playlist")
	}
	return mx
}

func (st *stream) stopMuxer() {
	st.served.Store(nil)
	if st.cur != nil && st.cur.m != nil {
		st.cur.m.Close()
		st.srv.muxers.Add(-1)
	}
	st.cur = nil
}

// encodeError counts a muxer error and logs at most one line per errLogInterval.
func (st *stream) encodeError(err error) {
	st.srv.encodeErrors.Add(1)
	n := st.errsSince.Add(1)
	now := time.Now().UnixNano()
	last := st.lastErrLog.Load()
	if now-last < int64(errLogInterval) || !st.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	st.errsSince.Add(-n)
	st.log.Warn("hls muxer error", "error", err, "errors_since_last_log", n)
}

// newMuxer starts a gohlslib muxer for the given bus tracks. Tracks the variant cannot carry
// are left out (logged); when none is left, the returned muxer has a nil m.
func (s *Server) newMuxer(tracks []*bus.Track, log *slog.Logger, onErr func(error)) *muxer {
	mx := &muxer{tracks: tracks, w: make([]*trackWriter, len(tracks))}
	var hts []*gohlslib.Track
	hasVideo, hasAudio := false, false
	for i, t := range tracks {
		if t == nil {
			continue
		}
		tw, err := newTrackWriter(t, s.variant)
		if err != nil {
			log.Warn("hls: track left out", "track", i, "codec", t.Codec.String(), "error", err)
			continue
		}
		// gohlslib muxes one video track; MPEG-TS also only one audio track.
		if t.Codec.IsVideo() {
			if hasVideo {
				log.Warn("hls: extra video track left out", "track", i)
				continue
			}
			hasVideo = true
		} else {
			if hasAudio && s.variant == gohlslib.MuxerVariantMPEGTS {
				log.Warn("hls: extra audio track left out (mpegts)", "track", i)
				continue
			}
			hasAudio = true
		}
		mx.w[i] = tw
		hts = append(hts, tw.hls)
	}
	if len(hts) == 0 {
		log.Warn("hls: no track can be muxed; stream not served over HLS")
		return mx
	}
	m := &gohlslib.Muxer{
		Tracks:             hts,
		Variant:            s.variant,
		SegmentCount:       s.cfg.SegmentCount,
		SegmentMinDuration: s.cfg.SegmentMinDuration,
		PartMinDuration:    s.cfg.PartMinDuration,
		OnEncodeError:      onErr,
	}
	if err := m.Start(); err != nil {
		log.Warn("hls: cannot start muxer", "error", err)
		clear(mx.w)
		return mx
	}
	mx.m = m
	mx.hasVideo = hasVideo
	return mx
}
