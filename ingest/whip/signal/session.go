package signal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Session is what every WHIP or WHEP session has: its resource, its peer connection and
// the watch over that connection's state. WHIP's publisher session and WHEP's viewer
// embed it and implement [Peer].
type Session struct {
	// Resource is the id in the session's path: WHIP's stream key, WHEP's playback id.
	Resource string
	// Stream is the bus stream id, for log lines.
	Stream string
	// Ufrag is the client's ICE username fragment: a PATCH with another asks for an ICE
	// restart.
	Ufrag string

	id    string
	pc    *webrtc.PeerConnection // set by NewPeerConnection, before the answer is sent
	ready bool                   // guarded by Server.mu: the answer was sent

	state    atomic.Int32 // webrtc.PeerConnectionState
	stateCh  chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	reason   atomic.Value // string: why the session ended
	done     chan struct{}
}

// NewSession returns a session with a new random id for the endpoint id resource, the
// bus stream id stream and the offer's ICE username fragment.
func NewSession(resource, stream, ufrag string) *Session {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return &Session{Resource: resource, Stream: stream, Ufrag: ufrag,
		id: hex.EncodeToString(b[:]), stateCh: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
}

// ID returns the session id, the last element of its resource path.
func (s *Session) ID() string { return s.id }

// PeerConnection returns the session's peer connection (nil before NewPeerConnection).
func (s *Session) PeerConnection() *webrtc.PeerConnection { return s.pc }

// NewPeerConnection creates the session's peer connection and watches its state. Call it
// once, from Peer.Negotiate.
func (s *Session) NewPeerConnection(api *webrtc.API, iceServers []webrtc.ICEServer) (*webrtc.PeerConnection, error) {
	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: iceServers})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	s.pc = pc
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		s.state.Store(int32(st))
		select {
		case s.stateCh <- struct{}{}:
		default:
		}
	})
	return pc, nil
}

// Answer applies offer to the session's peer connection, calls configure (if not nil) to
// adjust the transceivers the offer created, and returns the answer complete with the
// server's candidates: the server does not trickle. Errors caused by the offer wrap
// ErrBadOffer.
func (s *Session) Answer(ctx context.Context, offer string, configure func() error) (string, error) {
	pc := s.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
	}
	if configure != nil {
		if err := configure(); err != nil {
			return "", err
		}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadOffer, err)
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

// End asks the session to stop; the Server's goroutine for it tears it down. The first
// reason is kept.
func (s *Session) End(reason string) {
	s.stopOnce.Do(func() {
		s.reason.Store(reason)
		close(s.stop)
	})
}

// Reason returns why the session ended ("" while it runs).
func (s *Session) Reason() string {
	r, _ := s.reason.Load().(string)
	return r
}

// Done is closed once the session is torn down and has left the Server's table.
func (s *Session) Done() <-chan struct{} { return s.done }

// watch returns when the session ends: End, no ICE connection within connectTimeout, ICE
// disconnected for disconnectTimeout, ICE failure or the peer connection's close. It
// calls connected when ICE first connects.
func (s *Session) watch(connectTimeout, disconnectTimeout time.Duration, connected func()) {
	connect := time.NewTimer(connectTimeout)
	defer connect.Stop()
	var (
		disc    *time.Timer
		discC   <-chan time.Time
		hasConn bool
	)
	defer func() {
		if disc != nil {
			disc.Stop()
		}
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-connect.C:
			if !hasConn {
				s.End("ice connect timeout")
			}
		case <-discC:
			s.End("ice disconnected")
		case <-s.stateCh:
			switch webrtc.PeerConnectionState(s.state.Load()) {
			case webrtc.PeerConnectionStateConnected:
				if !hasConn {
					hasConn = true
					connect.Stop()
					connected()
				}
				if disc != nil {
					disc.Stop()
					disc, discC = nil, nil
				}
			case webrtc.PeerConnectionStateDisconnected:
				if disc == nil {
					disc = time.NewTimer(disconnectTimeout)
					discC = disc.C
				}
			case webrtc.PeerConnectionStateFailed:
				s.End("ice failed")
			case webrtc.PeerConnectionStateClosed:
				s.End("peer connection closed")
			}
		}
	}
}
