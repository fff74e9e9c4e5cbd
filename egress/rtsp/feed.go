package rtsp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
)

// errLogInterval is the least time between two log lines about one feed's write errors.
const errLogInterval = 10 * time.Second

// feed is the RTSP side of one bus stream: its description, packetizers, one
// gortsplib.ServerStream per listener, and the writer goroutine that runs while someone
// plays. Fields without a comment are guarded by the Server's mu.
type feed struct {
	srv    *Server
	bs     *bus.Stream
	tracks []*bus.Track // as they were when the feed was made
	desc   *description.Session
	outs   []*outTrack // by bus track index; nil for tracks not served
	// base offsets the RTP timestamps of every track (RFC 3550 §5.1: a random start). It is
	// the feed's, not a writer run's, like the packetizers: gortsplib answers a PLAY with
	// the RTP-Info of the ServerStream's last packets, which may come from an earlier run,
	// and a base changed in between would shift each track by a different time (the same
	// ticks on 90 kHz and 44.1 kHz clocks).
	base uint32

	streams map[*gortsplib.Server]*gortsplib.ServerStream
	// list is the ServerStreams for the writer: copy-on-write, read without a lock.
	list atomic.Pointer[[]*gortsplib.ServerStream]

	leases    int
	players   int
	idleSince time.Time
	closed    bool

	// the current writer run
	cancel context.CancelFunc
	done   chan struct{}

	lastErrLog atomic.Int64
	errsSince  atomic.Uint64
}

// newFeed makes the feed of bs. It returns nil when no track can be served.
func newFeed(s *Server, bs *bus.Stream, tracks []*bus.Track) (*feed, []error) {
	desc, outs, skipped := describe(tracks)
	if len(desc.Medias) == 0 {
		return nil, skipped
	}
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	f := &feed{
		srv: s, bs: bs, tracks: tracks, desc: desc, outs: outs,
		base:      binary.BigEndian.Uint32(seed[:]),
		streams:   make(map[*gortsplib.Server]*gortsplib.ServerStream),
		idleSince: time.Now(),
	}
	empty := []*gortsplib.ServerStream{}
	f.list.Store(&empty)
	return f, skipped
}

// streamFor returns the feed's ServerStream on gs, creating it. Called with mu held.
func (f *feed) streamFor(gs *gortsplib.Server) (*gortsplib.ServerStream, error) {
	if st := f.streams[gs]; st != nil {
		return st, nil
	}
	// The description is shared by the feed's streams: gortsplib only reads it.
	st := &gortsplib.ServerStream{Server: gs, Desc: f.desc}
	if err := st.Initialize(); err != nil {
		return nil, err
	}
	f.prime(st)
	f.streams[gs] = st
	f.srv.byStream[st] = f
	list := append(append([]*gortsplib.ServerStream(nil), *f.list.Load()...), st)
	f.list.Store(&list)
	return st, nil
}

// prime gives a new ServerStream, which no session reads yet, a last packet on every track,
// all stamped with one instant of the bus stream: the cached keyframe's time, and its
// arrival as NTP time. gortsplib computes the RTP-Info of a PLAY from the last packet of
// each track; without this the first PLAY, answered before the writer starts, has none.
// A reader without RTP-Info takes each track's first packet as that track's time zero, and
// from the GOP cache the first audio unit after the keyframe is often stamped earlier
// than it (publishers interleave audio late): at the first RTCP sender report ffmpeg
// re-aligns the audio to the video and its timestamps go backwards. Called with mu held.
func (f *feed) prime(st *gortsplib.ServerStream) {
	r, err := f.srv.cfg.Hub.Subscribe(f.srv.ctx, f.bs.ID(), bus.ReaderOptions{})
	if err != nil {
		return
	}
	u := r.TryNext()
	same := r.Stream() == f.bs
	r.Close()
	if u == nil || !same {
		return // nothing cached: see the start alignment in run
	}
	at := u.Arrival
	if now := time.Now(); at.IsZero() || at.After(now) {
		at = now // gortsplib extrapolates RTP-Info from the last NTP time to now
	}
	for _, o := range f.outs {
		if o == nil {
			continue
		}
		pkt := &rtp.Packet{Header: rtp.Header{
			Version:        2,
			PayloadType:    o.media.Formats[0].PayloadType(),
			SequenceNumber: uint16(o.nextSeq.Load()) - 1,
			Timestamp:      o.timestamp(u.PTS, f.base),
		}}
		// Nobody reads st yet: the packet only sets its position.
		_ = st.WritePacketRTPWithNTP(o.media, pkt, at)
	}
}

// startWriter starts a writer run; it waits for the previous run to end so that two runs
// never write at once. Called with mu held.
func (f *feed) startWriter() {
	ctx, cancel := context.WithCancel(f.srv.ctx)
	prev := f.done
	done := make(chan struct{})
	f.cancel, f.done = cancel, done
	f.srv.wg.Add(1)
	go f.run(ctx, prev, done)
}

// stopWriter stops the current writer run, without waiting. Called with mu held.
func (f *feed) stopWriter() {
	if f.cancel != nil {
		f.cancel()
		f.cancel = nil
	}
}

// run reads the bus stream from its cached keyframe and writes every unit, as RTP, to the
// feed's ServerStreams (units of other tracks stamped before that keyframe are skipped).
func (f *feed) run(ctx context.Context, prev, done chan struct{}) {
	defer f.srv.wg.Done()
	defer close(done)
	if prev != nil {
		select {
		case <-prev:
		case <-ctx.Done():
			return
		}
	}
	r, err := f.srv.cfg.Hub.Subscribe(ctx, f.bs.ID(), bus.ReaderOptions{})
	if err != nil || r.Stream() != f.bs {
		if r != nil {
			r.Close()
		}
		if ctx.Err() == nil {
			f.end()
		}
		return
	}
	defer r.Close()
	f.srv.busReaders.Add(1)
	// The NTP time of the sender reports follows the units' PTS (one mapping for all
	// tracks), so that readers can sync the tracks.
	var ntpBase time.Time
	// The run starts every track at its first unit's time: the ring holds the cached
	// keyframe first, then audio that may be stamped before it; a reader that aligns the
	// tracks on their first packets (no RTP-Info) must not see that audio.
	var start time.Duration
	startTrack := -1
	for {
		u, err := r.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && (errors.Is(err, bus.ErrEnded) || errors.Is(err, bus.ErrClosed)) {
				f.end()
			}
			return
		}
		i := u.Track.Index
		if i < 0 || i >= len(f.outs) {
			f.end() // a track the description does not have: readers must reconnect
			return
		}
		o := f.outs[i]
		if o == nil {
			continue
		}
		if startTrack < 0 {
			startTrack, start = i, u.PTS
		} else if i != startTrack && u.PTS < start {
			continue
		}
		if u.Track != o.track {
			if u.Track.Codec != o.codec {
				f.end()
				return
			}
			o.update(u.Track)
		}
		pkts, err := o.packets(u, f.base)
		if err != nil {
			f.writeError(err)
			continue
		}
		if ntpBase.IsZero() {
			// Anchored at the first unit's arrival, so that the NTP times are never ahead
			// of the clock: gortsplib computes the RTP-Info of later readers from them.
			at := u.Arrival
			if at.IsZero() {
				at = time.Now()
			}
			ntpBase = at.Add(-u.PTS)
		}
		ntp := ntpBase.Add(u.PTS)
		for _, st := range *f.list.Load() {
			for _, p := range pkts {
				if err := st.WritePacketRTPWithNTP(o.media, p, ntp); err != nil {
					f.writeError(err)
				}
			}
		}
	}
}

// end retires the feed from the writer's goroutine.
func (f *feed) end() {
	f.srv.mu.Lock()
	f.srv.retireLocked(f)
	f.srv.mu.Unlock()
}

// writeError counts an error and logs at most one line per errLogInterval.
func (f *feed) writeError(err error) {
	f.srv.encodeErrors.Add(1)
	n := f.errsSince.Add(1)
	now := time.Now().UnixNano()
	last := f.lastErrLog.Load()
	if now-last < int64(errLogInterval) || !f.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	f.errsSince.Add(-n)
	f.srv.log.Warn("rtsp egress write error", "stream", f.bs.ID(), "err", err, "errors_since_last_log", n)
}
