package whep

import (
	"sync"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/relaycast/relaycast/bus"
)

// rtpPayloadMax is the largest RTP payload sent: 1200 bytes of UDP payload minus RTP and
// SRTP overhead and header extensions, safe on every path WebRTC runs over.
const rtpPayloadMax = 1100

// packetCacheSize is how many recent video units keep their RTP payloads. Viewers read
// the same ring at nearly the same place, so a unit is packetized once and its payloads
// are shared; a viewer far behind (replaying the GOP cache) may find its units evicted and
// packetize them again.
const packetCacheSize = 128

// rtpPayload is one RTP packet's payload and marker bit, shared by every viewer.
type rtpPayload struct {
	b      []byte
	marker bool
}

type cachedUnit struct {
	u    *bus.Unit
	pkts []rtpPayload
}

// stream is the state shared by the WHEP viewers of one bus stream: the RTP payloads of
// its recent video units and the AAC-to-Opus transcoder.
type stream struct {
	srv *Server
	id  string

	// viewers is guarded by srv.mu.
	viewers int

	mu        sync.Mutex
	enc       *rtph264.Encoder
	cache     [packetCacheSize]cachedUnit
	next      int
	params    [][]byte   // SPS and PPS of paramsFor
	paramsFor *bus.Track // the track params were taken from
	warnedB   bool

	tc    *transcoder
	sinks []*audioSink
}

// videoPayloads returns the RTP payloads of an H.264 unit, packetizing it on first use.
// The slices are shared: callers must not modify them.
func (s *stream) videoPayloads(u *bus.Unit) []rtpPayload {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range packetCacheSize {
		c := &s.cache[(s.next-1-i+packetCacheSize)%packetCacheSize]
		if c.u == u {
			return c.pkts
		}
		if c.u == nil {
			break
		}
	}
	pkts := s.packetize(u)
	c := &s.cache[s.next]
	c.u, c.pkts = u, pkts
	s.next = (s.next + 1) % packetCacheSize
	return pkts
}

// packetize makes the RTP payloads of an AVCC unit (RFC 6184 single NAL units, STAP-A
// and FU-A). Keyframes get the track's SPS and PPS in front when they lack them (RTMP
// sends parameter sets only in its sequence header). NAL units that are not sendable are
// dropped.
func (s *stream) packetize(u *bus.Unit) []rtpPayload {
	if s.enc == nil {
		s.enc = &rtph264.Encoder{PayloadType: 96, PacketizationMode: 1, PayloadMaxSize: rtpPayloadMax}
		if err := s.enc.Init(); err != nil {
			return nil
		}
	}
	nalus, err := bus.SplitNALUs(u.Payload)
	if err != nil {
		return nil
	}
	au := make([][]byte, 0, len(nalus)+2)
	hasSPS := false
	for _, n := range nalus {
		if !sendable(n) {
			continue
		}
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			hasSPS = true
		}
		au = append(au, n)
	}
	if u.Key && !hasSPS {
		if s.paramsFor != u.Track {
			s.paramsFor, s.params = u.Track, nil
			if sps, pps, err := bus.ParseAVCConfig(u.Track.Config); err == nil {
				s.params = [][]byte{sps[0], pps[0]}
			}
		}
		au = append(append(make([][]byte, 0, len(au)+2), s.params...), au...)
	}
	if len(au) == 0 {
		return nil
	}
	pkts, err := s.enc.Encode(au)
	if err != nil {
		return nil
	}
	out := make([]rtpPayload, len(pkts))
	for i, p := range pkts {
		out[i] = rtpPayload{b: p.Payload, marker: p.Marker}
	}
	return out
}

// sendable reports whether a NAL unit goes to viewers: not an access unit delimiter, and
// not of type 0 or 24-31, which H.264 leaves unspecified and RFC 6184 uses for its own
// packet types (a receiver would misread them).
func sendable(n []byte) bool {
	t := n[0] & 0x1f
	return t != 0 && t < 24 && h264.NALUType(t) != h264.NALUTypeAccessUnitDelimiter
}

// noteBFrames logs once per stream that its video has B-frames.
func (s *stream) noteBFrames() {
	s.mu.Lock()
	warn := !s.warnedB
	s.warnedB = true
	s.mu.Unlock()
	if warn {
		s.srv.log.Warn("whep: the stream's H.264 has B-frames; WebRTC players may stutter "+
			"(set B-frames to 0 in the encoder)", "stream", s.id)
	}
}

// addSink attaches a viewer's audio sink, starting the transcoder with the first one.
func (s *stream) addSink(a *audioSink) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tc == nil {
		tc, err := startTranscoder(s.srv.cfg.Hub, s.id, s.srv.cfg.FFmpegPath, s.srv.cfg.OpusBitrate,
			s.srv.log, &s.srv.counters)
		if err != nil {
			return err
		}
		s.tc = tc
		s.srv.log.Info("whep: AAC to Opus transcoder started", "stream", s.id,
			"bitrate", s.srv.cfg.OpusBitrate)
	}
	s.sinks = append(s.sinks, a)
	s.tc.setSinks(append([]*audioSink(nil), s.sinks...))
	return nil
}

// removeSink detaches a viewer's audio sink, stopping the transcoder after the last one.
func (s *stream) removeSink(a *audioSink) {
	s.mu.Lock()
	for i, x := range s.sinks {
		if x == a {
			s.sinks = append(s.sinks[:i], s.sinks[i+1:]...)
			break
		}
	}
	var stop *transcoder
	if s.tc != nil {
		if len(s.sinks) == 0 {
			stop, s.tc = s.tc, nil
		} else {
			s.tc.setSinks(append([]*audioSink(nil), s.sinks...))
		}
	}
	s.mu.Unlock()
	if stop != nil {
		stop.close()
		s.srv.log.Info("whep: AAC to Opus transcoder stopped", "stream", s.id)
	}
}
