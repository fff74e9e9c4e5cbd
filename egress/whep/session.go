package whep

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// testHookWrite, when set by a test, is called after a unit's RTP packets were written.
var testHookWrite func(u *bus.Unit, at time.Time)

// viewer is one WHEP session: a peer connection fed by one bus reader.
//
// Goroutines: the signal.Server's goroutine for the session waits for ICE, calls
// Connected, which starts the writers, watches the connection state and calls Teardown.
// writeBus (one per viewer) drives the bus reader and writes video (and Opus passed
// through); writeAudio writes the transcoder's Opus when the stream's audio is AAC; one
// RTCP reader per sender drains the viewer's reports (pion's interceptors answer NACKs
// from them).
type viewer struct {
	*signal.Session
	srv       *Server
	st        *stream
	log       *slog.Logger
	video     *webrtc.TrackLocalStaticRTP
	audio     *webrtc.TrackLocalStaticRTP
	transcode bool
	sink      *audioSink
	rd        *bus.Reader

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ signal.Peer = (*viewer)(nil)

func randUint32() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// Negotiate creates the peer connection with the viewer's tracks and returns the answer,
// complete with the server's candidates.
func (v *viewer) Negotiate(ctx context.Context, offer string) (string, error) {
	pc, err := v.NewPeerConnection(v.srv.cfg.API, v.srv.cfg.ICEServers)
	if err != nil {
		return "", err
	}
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
	answer, err := v.Answer(ctx, offer, nil)
	if err != nil {
		return "", err
	}
	for _, s := range senders {
		v.wg.Add(1)
		go v.readRTCP(s)
	}
	return answer, nil
}

func (v *viewer) readRTCP(s *webrtc.RTPSender) {
	defer v.wg.Done()
	for {
		if _, _, err := s.ReadRTCP(); err != nil {
			return
		}
	}
}

// Connected starts the writers when ICE first connects.
func (v *viewer) Connected() {
	v.wg.Add(1)
	go v.writeBus()
	if v.transcode {
		v.wg.Add(1)
		go v.writeAudio()
	}
}

// Teardown stops the writers and the bus reader, closes the peer connection and leaves
// the stream (its transcoder stops with its last viewer).
func (v *viewer) Teardown() {
	v.cancel()
	v.rd.Close()
	if pc := v.PeerConnection(); pc != nil {
		_ = pc.Close()
	}
	v.wg.Wait()
	if v.sink != nil {
		v.st.removeSink(v.sink)
	}
	v.srv.forget(v)
	v.log.Info("whep: session ended", "stream", v.st.id, "session", v.ID(), "reason", v.Reason(),
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
				v.End("stream ended")
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
					v.End("write failed")
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
				v.End("write failed")
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
				v.End("write failed")
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
