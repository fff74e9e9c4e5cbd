package whip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// pliRetry is the least time between two keyframe requests while a keyframe is missing.
const pliRetry = 500 * time.Millisecond

// session is one WHIP publisher: a peer connection whose tracks feed an assembler.
//
// Goroutines: pion runs OnTrack handlers on goroutines of its own; each handler registers
// with the session's WaitGroup (unless the session is closing) and reads its track until
// the peer connection closes, and starts one RTCP reader. The session's run goroutine,
// owned by the Server, waits for the end (stop, ICE failure, timeouts) and tears down:
// it closes the peer connection, waits for the track goroutines, closes the publisher and
// releases the grant.
type session struct {
	srv   *Server
	id    string
	key   string
	grant ingest.Grant
	log   *slog.Logger
	pc    *webrtc.PeerConnection
	asm   *assembler
	// ufrag is the publisher's ICE username fragment (a PATCH with another is a restart).
	ufrag string
	// ready is set (under the Server's mutex) once the answer is sent.
	ready bool

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup

	state    atomic.Int32 // webrtc.PeerConnectionState
	stateCh  chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	reason   atomic.Value // string: why the session ended
	done     chan struct{}
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errBadOffer marks negotiation errors caused by the offer (answered with 400).
var errBadOffer = errors.New("bad offer")

// negotiate creates the peer connection for offer and returns the answer, complete with
// the server's candidates (the server does not trickle).
func (s *session) negotiate(ctx context.Context, offer string, sum *offerSummary) (string, error) {
	pc, err := s.srv.cfg.API.NewPeerConnection(webrtc.Configuration{ICEServers: s.srv.cfg.ICEServers})
	if err != nil {
		return "", fmt.Errorf("new peer connection: %w", err)
	}
	s.pc = pc
	pc.OnTrack(s.onTrack)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.state.Store(int32(st))
		select {
		case s.stateCh <- struct{}{}:
		default:
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", errBadOffer, err)
	}
	accepted := 0
	for _, tr := range pc.GetTransceivers() {
		ch, ok := sum.choices[tr.Mid()]
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
		return "", fmt.Errorf("%w: no media section with a supported codec", errBadOffer)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadOffer, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering candidates: %w", ctx.Err())
	}
	return pc.LocalDescription().SDP, nil
}

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

// end asks the session to stop; the run goroutine tears it down.
func (s *session) end(reason string) {
	s.stopOnce.Do(func() {
		s.reason.Store(reason)
		close(s.stop)
	})
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
			if err := s.asm.write(i, f, now); err != nil {
				s.log.Warn("whip: stream refused by the bus", "stream", s.grant.StreamID, "error", err)
				s.end("bus refused the stream")
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
			_ = s.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}})
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

// run waits for the session's end and tears it down. It is owned by the Server.
func (s *session) run() {
	defer close(s.done)
	connect := time.NewTimer(s.srv.cfg.ConnectTimeout)
	defer connect.Stop()
	var (
		disc      *time.Timer
		discC     <-chan time.Time
		connected bool
	)
	defer func() {
		if disc != nil {
			disc.Stop()
		}
	}()
loop:
	for {
		select {
		case <-s.stop:
			break loop
		case <-connect.C:
			if !connected {
				s.end("ice connect timeout")
			}
		case <-discC:
			s.end("ice disconnected")
		case <-s.stateCh:
			switch webrtc.PeerConnectionState(s.state.Load()) {
			case webrtc.PeerConnectionStateConnected:
				connected = true
				connect.Stop()
				if disc != nil {
					disc.Stop()
					disc, discC = nil, nil
				}
			case webrtc.PeerConnectionStateDisconnected:
				if disc == nil {
					disc = time.NewTimer(s.srv.cfg.DisconnectTimeout)
					discC = disc.C
				}
			case webrtc.PeerConnectionStateFailed:
				s.end("ice failed")
			case webrtc.PeerConnectionStateClosed:
				s.end("peer connection closed")
			}
		}
	}
	s.teardown()
}

// teardown closes the peer connection, waits for the track goroutines, stops publishing
// and releases the grant.
func (s *session) teardown() {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	if s.pc != nil {
		_ = s.pc.Close()
	}
	s.wg.Wait()
	live := s.asm.live()
	s.asm.close()
	s.srv.cfg.Auth.Release(s.grant)
	s.srv.forget(s)
	reason, _ := s.reason.Load().(string)
	s.log.Info("whip: session ended", "stream", s.grant.StreamID, "session", s.id,
		"reason", reason, "was_live", live)
}
