package whip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// pliRetry is the least time between two keyframe requests while a keyframe is missing.
const pliRetry = 500 * time.Millisecond

// session is one WHIP publisher: a peer connection whose tracks feed an assembler.
//
// Goroutines: pion runs OnTrack handlers on goroutines of its own; each handler registers
// with the session's WaitGroup (unless the session is closing) and reads its track until
// the peer connection closes, and starts one RTCP reader. The signal.Server's goroutine
// for the session waits for the end (stop, ICE failure, timeouts) and calls Teardown: it
// closes the peer connection, waits for the track goroutines, closes the publisher and
// releases the grant.
type session struct {
	*signal.Session
	srv   *Server
	grant ingest.Grant
	sum   *offerSummary
	log   *slog.Logger
	asm   *assembler

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

var _ signal.Peer = (*session)(nil)

// Negotiate creates the peer connection for offer and returns the answer, complete with
// the server's candidates (the server does not trickle). Each media section is answered
// with the codec parseOffer chose for it.
func (s *session) Negotiate(ctx context.Context, offer string) (string, error) {
	pc, err := s.NewPeerConnection(s.srv.cfg.API, s.srv.cfg.ICEServers)
	if err != nil {
		return "", err
	}
	pc.OnTrack(s.onTrack)
	return s.Answer(ctx, offer, func() error {
		accepted := 0
		for _, tr := range pc.GetTransceivers() {
			ch, ok := s.sum.choices[tr.Mid()]
			if !ok {
				continue
			}
			if err := tr.SetCodecPreferences(ch.params(tr.Kind().String())); err != nil {
				s.log.Debug("whip: codec preference refused", "mid", tr.Mid(), "error", err)
				continue
			}
			accepted++
		}
		if accepted == 0 {
			return fmt.Errorf("%w: no media section with a supported codec", signal.ErrBadOffer)
		}
		return nil
	})
}

// Connected does nothing: the tracks start with pion's OnTrack.
func (s *session) Connected() {}

// enter registers a goroutine with the session; false when the session is closing.
func (s *session) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	return true
}

// onTrack reads one remote track until the peer connection closes.
func (s *session) onTrack(t *webrtc.TrackRemote, r *webrtc.RTPReceiver) {
	if !s.enter() {
		return
	}
	defer s.wg.Done()
	i := slotAudio
	if t.Kind() == webrtc.RTPCodecTypeVideo {
		i = slotVideo
	}
	sl := &s.asm.slots[i] // present and codec are fixed before negotiation
	if !sl.present || !mimeIs(t.Codec().MimeType, sl.codec) {
		s.log.Debug("whip: ignoring track", "kind", t.Kind().String(), "codec", t.Codec().MimeType)
		return
	}
	if s.enter() {
		go s.readRTCP(i, r)
	}
	s.readRTP(i, t)
}

// mimeIs reports whether a WebRTC MIME type names bus codec c.
func mimeIs(mime string, c bus.Codec) bool {
	_, name, _ := strings.Cut(mime, "/")
	return strings.EqualFold(name, c.String())
}

// readRTP depacketizes one track. It asks for a keyframe (PLI) at the start, after a loss,
// and when the publisher sent none for KeyframeInterval (browsers send keyframes only on
// request).
func (s *session) readRTP(i int, t *webrtc.TrackRemote) {
	d := newDepacketizer(s.asm.slots[i].codec)
	var (
		frames  []frame
		lastPLI time.Time
	)
	ssrc := uint32(t.SSRC())
	interval := s.srv.cfg.KeyframeInterval
	for {
		pkt, _, err := t.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		var waitKey bool
		frames, waitKey = d.push(pkt, frames[:0])
		for _, f := range frames {
			if err := s.asm.write(i, f, now); errors.Is(err, errEndedByServer) {
				s.End(err.Error())
				return
			} else if err != nil {
				s.log.Warn("whip: stream refused by the bus", "stream", s.grant.StreamID, "error", err)
				s.End("bus refused the stream")
				return
			}
		}
		clear(frames)
		if i != slotVideo {
			continue
		}
		gap := pliRetry
		need := waitKey
		if !need && s.asm.needKeyframe(now, interval) {
			need = true
			if interval > gap {
				gap = interval
			}
		}
		if need && now.Sub(lastPLI) >= gap {
			lastPLI = now
			_ = s.PeerConnection().WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
		}
	}
}

// readRTCP reads the receiver's RTCP (which also drives pion's interceptors) and hands
// sender reports to the assembler.
func (s *session) readRTCP(i int, r *webrtc.RTPReceiver) {
	defer s.wg.Done()
	for {
		pkts, _, err := r.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok {
				s.asm.senderReport(i, sr)
			}
		}
	}
}

// Teardown closes the peer connection, waits for the track goroutines, stops publishing
// and releases the grant.
func (s *session) Teardown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if pc := s.PeerConnection(); pc != nil {
		_ = pc.Close()
	}
	s.wg.Wait()
	live := s.asm.live()
	s.asm.close()
	s.srv.cfg.Auth.Release(s.grant)
	s.srv.forget(s)
	s.log.Info("whip: session ended", "stream", s.grant.StreamID, "session", s.ID(),
		"reason", s.Reason(), "was_live", live)
}
