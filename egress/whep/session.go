package whep

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
)

// testHookWrite, when set by a test, is called after a unit's RTP packets were written.
var testHookWrite func(u *bus.Unit, at time.Time)

// viewer is one WHEP session: a peer connection fed by one bus reader.
//
// Goroutines: run (owned by the Server) waits for ICE, starts the writers, watches the
// connection state and tears down. writeBus (one per viewer) drives the bus reader and
// writes video (and Opus passed through); writeAudio writes the transcoder's Opus when the
// stream's audio is AAC; one RTCP reader per sender drains the viewer's reports (pion's
// interceptors answer NACKs from them).
type viewer struct {
	srv       *Server
	st        *stream
	id        string
	playback  string
	log       *slog.Logger
	pc        *webrtc.PeerConnection
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP
	transcode bool
	sink      *audioSink
	rd        *bus.Reader
	ufrag     string
	ready     bool // guarded by srv.mu: the answer was sent

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	state    atomic.Int32
	stateCh  chan struct{}
	stop     chan struct{}
	stopOnce sync.Once
	reason   atomic.Value
	done     chan struct{}
}

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// errBadOffer marks negotiation errors caused by the offer (answered with 400).
var errBadOffer = errors.New("bad offer")

// negotiate creates the peer connection with the viewer's tracks and returns the answer,
// complete with the server's candidates.
func (v *viewer) negotiate(ctx context.Context, offer string) (string, error) {
	pc, err := v.srv.cfg.API.NewPeerConnection(webrtc.Configuration{ICEServers: v.srv.cfg.ICEServers})
	if err != nil {
		return "", fmt.Errorf("new peer connection: %w", err)
	}
	v.pc = pc
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		v.state.Store(int32(st))
		select {
		case v.stateCh <- struct{}{}:
		default:
		}
	})
	var senders []*webrtc.RTPSender
	for _, tr := range []*webrtc.TrackLocalStaticRTP{v.video, v.audio} {
		if tr == nil {
			continue
		}
		s, err := pc.AddTrack(tr)
		if err != nil {
			return "", fmt.Errorf("add track: %w", err)
		}
		senders = append(senders, s)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("%w: %v", errBadOffer, err)
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
	for _, s := range senders {
		v.wg.Add(1)
		go v.readRTCP(s)
	}
	return pc.LocalDescription().SDP, nil
}

func (v *viewer) readRTCP(s *webrtc.RTPSender) {
	defer v.wg.Done()
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}

// end asks the viewer to stop; run tears it down.
func (v *viewer) end(reason string) {
	v.stopOnce.Do(func() {
		v.reason.Store(reason)
		close(v.stop)
	})
}

// run waits for ICE, starts the writers and tears the session down at its end. It is
// owned by the Server.
func (v *viewer) run() {
	defer close(v.done)
	connect := time.NewTimer(v.srv.cfg.ConnectTimeout)
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
		case <-v.stop:
			break loop
		case <-connect.C:
			if !connected {
				v.end("ice connect timeout")
			}
		case <-discC:
			v.end("ice disconnected")
		case <-v.stateCh:
			switch webrtc.PeerConnectionState(v.state.Load()) {
			case webrtc.PeerConnectionStateConnected:
				if !connected {
					connected = true
					connect.Stop()
					v.wg.Add(1)
					go v.writeBus()
					if v.transcode {
						v.wg.Add(1)
						go v.writeAudio()
					}
				}
				if disc != nil {
					disc.Stop()
					disc, discC = nil, nil
				}
			case webrtc.PeerConnectionStateDisconnected:
				if disc == nil {
					disc = time.NewTimer(v.srv.cfg.DisconnectTimeout)
					discC = disc.C
				}
			case webrtc.PeerConnectionStateFailed:
				v.end("ice failed")
			case webrtc.PeerConnectionStateClosed:
				v.end("peer connection closed")
			}
		}
	}
	v.teardown()
}

func (v *viewer) teardown() {
	v.cancel()
	v.rd.Close()
	if v.pc != nil {
		_ = v.pc.Close()
	}
	v.wg.Wait()
	if v.sink != nil {
		v.st.removeSink(v.sink)
	}
	v.srv.forget(v)
	reason, _ := v.reason.Load().(string)
	v.log.Info("whep: session ended", "stream", v.st.id, "session", v.id, "reason", reason,
		"dropped", v.rd.Dropped())
}

// writeBus reads the bus and writes the viewer's video (and Opus audio passed through).
// It does no logging per unit.
func (v *viewer) writeBus() {
	defer v.wg.Done()
	var (
		pkt                rtp.Packet
		vSeq, aSeq         = uint16(randUint32()), uint16(randUint32())
		vBase, aBase       = randUint32(), randUint32()
		bframesNoted       bool
		videoOK, audioPass = v.video != nil, v.audio != nil && !v.transcode
	)
	pkt.Version = 2
	for {
		u, err := v.rd.Next(v.ctx)
		if err != nil {
			if errors.Is(err, bus.ErrEnded) || errors.Is(err, bus.ErrClosed) {
				v.end("stream ended")
			}
			return
		}
		switch u.Track.Codec {
		case bus.CodecH264:
			if !videoOK {
				continue
			}
			if u.Track.BFrames && !bframesNoted {
				bframesNoted = true
				v.st.noteBFrames()
			}
			pkt.Timestamp = vBase + uint32(toClock(u.PTS, 90000))
			for _, p := range v.st.videoPayloads(u) {
				pkt.SequenceNumber, pkt.Marker, pkt.Payload = vSeq, p.marker, p.b
				vSeq++
				if err := v.video.WriteRTP(&pkt); err != nil {
					v.end("write failed")
					return
				}
			}
		case bus.CodecOpus:
			if !audioPass {
				continue
			}
			pkt.Timestamp = aBase + uint32(toClock(u.PTS, 48000))
			pkt.SequenceNumber, pkt.Marker, pkt.Payload = aSeq, false, u.Payload
			aSeq++
			if err := v.audio.WriteRTP(&pkt); err != nil {
				v.end("write failed")
				return
			}
		default:
			continue
		}
		if h := testHookWrite; h != nil {
			h(u, time.Now())
		}
	}
}

// writeAudio writes the transcoder's Opus packets.
func (v *viewer) writeAudio() {
	defer v.wg.Done()
	var pkt rtp.Packet
	pkt.Version = 2
	seq, base := uint16(randUint32()), randUint32()
	for {
		select {
		case <-v.ctx.Done():
			return
		case p := <-v.sink.ch:
			pkt.Timestamp = base + uint32(toClock(p.pts, 48000))
			pkt.SequenceNumber, pkt.Payload = seq, p.payload
			seq++
			if err := v.audio.WriteRTP(&pkt); err != nil {
				v.end("write failed")
				return
			}
		}
	}
}

// toClock converts a bus timestamp to ticks of a clock rate, rounding to the nearest tick,
// without overflowing for long streams.
func toClock(d time.Duration, rate int64) int64 {
	secs := int64(d / time.Second)
	q := int64(d%time.Second) * rate
	const half = int64(time.Second / 2)
	if q >= 0 {
		q += half
	} else {
		q -= half
	}
	return secs*rate + q/int64(time.Second)
}
