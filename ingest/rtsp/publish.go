package rtsp

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/pion/rtp"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// maxPending bounds the units a publisher may send before the bus stream starts (H.264
// announced without sprop-parameter-sets waits for in-band SPS/PPS).
const maxPending = 512

// errLogInterval is the least time between two log lines about one session's decode errors.
const errLogInterval = 10 * time.Second

// pubSession is one publishing RTSP session: its tracks, and the bus publisher once the
// tracks' parameters are known.
type pubSession struct {
	h        *handler
	ss       *gortsplib.ServerSession
	log      *slog.Logger
	grant    ingest.Grant
	redacted string
	tracks   []*inTrack
	opened   time.Time

	mu     sync.Mutex // guards the fields below; packets of one session come in order
	pub    *bus.Publisher
	given  []*bus.Track // our track pointers the bus has, by index
	busTr  []*bus.Track // the bus's tracks, by index (a resumed stream keeps its own)
	pend   []*bus.Unit
	out    []*bus.Unit // reused
	closed bool
	failed error

	lastErrLog atomic.Int64
	errsSince  atomic.Uint64
}

// newPubSession maps the announced medias to bus tracks. Medias in formats the server
// does not ingest are left out (logged); none left is an error.
func newPubSession(h *handler, ss *gortsplib.ServerSession, desc *description.Session,
	grant ingest.Grant, redacted string, log *slog.Logger,
) (*pubSession, error) {
	p := &pubSession{h: h, ss: ss, log: log, grant: grant, redacted: redacted, opened: time.Now()}
	var err error
	if p.tracks, err = mapTracks(desc, func(medi *description.Media, forma format.Format, err error) {
		log.Warn("rtsp: announced format left out", "media", string(medi.Type), "codec", formatName(forma), "err", err)
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// mapTracks makes one inTrack per media (its first format the server ingests); skip is
// told about the formats left out.
func mapTracks(desc *description.Session, skip func(*description.Media, format.Format, error)) ([]*inTrack, error) {
	if desc == nil {
		return nil, fmt.Errorf("%w: no session description", ErrMalformed)
	}
	var tracks []*inTrack
	for _, medi := range desc.Medias {
		if medi == nil {
			continue
		}
		for _, forma := range medi.Formats {
			t, err := newInTrack(len(tracks), medi, forma)
			if err != nil {
				if skip != nil {
					skip(medi, forma, err)
				}
				continue
			}
			tracks = append(tracks, t)
			break
		}
	}
	if len(tracks) == 0 {
		return nil, fmt.Errorf("%w: no H.264, AAC or Opus media announced", ErrUnsupportedCodec)
	}
	return tracks, nil
}

// record registers the packet callbacks and, when every track's parameters are known
// from the SDP, starts the bus stream (bus.ErrBusy if someone else publishes it).
func (p *pubSession) record() error {
	for _, t := range p.tracks {
		t := t
		p.ss.OnPacketRTP(t.media, t.format, func(pkt *rtp.Packet) { p.onPacket(t, pkt) })
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ready() {
		if err := p.publish(); err != nil {
			return err
		}
	}
	p.log.Info("publishing", "name", p.grant.Name, "key", p.redacted, "tracks", p.describe(),
		"setup", time.Since(p.opened).Round(time.Millisecond))
	return nil
}

func (p *pubSession) describe() string {
	s := ""
	for i, t := range p.tracks {
		if i > 0 {
			s += ","
		}
		s += t.codec.String()
	}
	return s
}

// ready reports whether every track's parameters are known.
func (p *pubSession) ready() bool {
	for _, t := range p.tracks {
		if t.track == nil {
			return false
		}
	}
	return true
}

// onPacket is the per-packet hot path.
func (p *pubSession) onPacket(t *inTrack, pkt *rtp.Packet) {
	pts, ok := p.ss.PacketPTS(t.media, pkt)
	if !ok {
		return // before the track's first decodable packet
	}
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.failed != nil {
		return
	}
	out, err := p.convert(t, pkt, pts, now)
	if err != nil {
		p.decodeError(err)
	}
	for _, u := range out {
		p.write(u)
	}
	clear(out)
	p.out = out[:0]
}

// convert runs the track's decoder; a panic in it (a bug on hostile input) closes the
// session instead of the process.
func (p *pubSession) convert(t *inTrack, pkt *rtp.Packet, pts int64, now time.Time) (out []*bus.Unit, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: panic: %v", ErrMalformed, r)
			p.fail(err)
		}
	}()
	return t.decode(pkt, pts, now, p.out[:0])
}

// write hands a unit to the bus, or keeps it until the stream can start.
func (p *pubSession) write(u *bus.Unit) {
	if p.pub == nil {
		if u.Track.Codec.IsVideo() && !u.Key && !p.hasPendingKey() {
			return // undecodable before the first keyframe
		}
		p.pend = append(p.pend, u)
		if p.ready() {
			if err := p.publish(); err != nil {
				p.fail(err)
			}
		} else if len(p.pend) > maxPending {
			p.fail(ErrNoParams)
		}
		return
	}
	select {
	case <-p.pub.Done():
		p.fail(ErrEndedByServer)
		return
	default:
	}
	i := u.Track.Index
	if u.Track != p.given[i] {
		// New parameters (in-band SPS/PPS changed, B-frames seen): a new bus track.
		p.given[i] = u.Track
		p.busTr[i] = u.Track
		p.pub.SetTrack(u.Track)
	}
	u.Track = p.busTr[i]
	p.pub.Write(u)
}

func (p *pubSession) hasPendingKey() bool {
	for _, u := range p.pend {
		if u.Key && u.Track.Codec.IsVideo() {
			return true
		}
	}
	return false
}

// publish starts the bus stream with the tracks' current parameters and writes the units
// kept meanwhile. Called with mu held.
func (p *pubSession) publish() error {
	tracks := make([]*bus.Track, len(p.tracks))
	for i, t := range p.tracks {
		tracks[i] = t.track
	}
	pub, err := p.h.s.cfg.Hub.Publish(p.grant.StreamID, tracks)
	if err != nil {
		return fmt.Errorf("publish %s: %w", p.grant.StreamID, err)
	}
	p.pub = pub
	p.given = tracks
	p.busTr = pub.Tracks()
	p.h.s.publishers.Add(1)
	pend := p.pend
	p.pend = nil
	for _, u := range pend {
		p.write(u)
	}
	return nil
}

// fail ends the session with err (logged once). Called with mu held.
func (p *pubSession) fail(err error) {
	if p.failed != nil {
		return
	}
	p.failed = err
	p.log.Warn("closing rtsp publisher", "key", p.redacted, "err", err)
	p.ss.Close()
}

// decodeError counts an RTP or access unit that could not be converted and logs at most
// one line per errLogInterval.
func (p *pubSession) decodeError(err error) {
	p.h.s.decodeErrors.Add(1)
	n := p.errsSince.Add(1)
	now := time.Now().UnixNano()
	last := p.lastErrLog.Load()
	if now-last < int64(errLogInterval) || !p.lastErrLog.CompareAndSwap(last, now) {
		return
	}
	p.errsSince.Add(-n)
	p.log.Warn("rtsp: cannot convert packet", "err", err, "errors_since_last_log", n)
}

// close ends the publishing (the bus stream enters its reconnect grace) and releases the
// grant. gortsplib calls no packet callback after it.
func (p *pubSession) close(reason error) {
	p.mu.Lock()
	p.closed = true
	pub := p.pub
	p.pub = nil
	p.pend = nil
	p.mu.Unlock()
	if pub != nil {
		pub.Close()
		p.h.s.publishers.Add(-1)
	}
	p.h.s.cfg.Auth.Release(p.grant)
	attrs := []any{"duration", time.Since(p.opened).Round(time.Millisecond)}
	if reason != nil {
		attrs = append(attrs, "reason", reason.Error())
	}
	p.log.Info("publisher stopped", attrs...)
}
