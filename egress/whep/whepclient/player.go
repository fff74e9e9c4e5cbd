package whepclient

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/opus"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// StatusError is the endpoint's refusal of the POST (or of the DELETE): 400 bad offer,
// 403 private stream without a valid token, 404 unknown playback id or offline stream,
// ... Its Message is the "error" of relaycast's {"error","status"} body.
type StatusError = signal.StatusError

// Options configures a Player.
type Options struct {
	// API creates the peer connection. Default: signal.NewAPI(false) — pion's default
	// codecs and interceptors, loopback candidates allowed.
	API *webrtc.API
	// HTTPClient sends the POST and the DELETE. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Token, if set, is sent as a Bearer token: the owner's credential for a private
	// stream. (A ptk_ playback token goes in the URL instead of the playback id.)
	Token string
	// KeepOpusTimestamps is how many Opus RTP timestamps the Player records, from the
	// first (OpusTimestamps). Default 0: none, so that memory stays flat under load.
	KeepOpusTimestamps int
	// OnVideo, if set, is called with every H.264 access unit received (NAL units without
	// start codes, valid only during the call), its RTP timestamp and the arrival of its
	// last packet. It runs on the video track's goroutine and must not block.
	OnVideo func(au [][]byte, rtpTimestamp uint32, at time.Time)
}

// Stats is what a Player observed so far.
type Stats struct {
	// VideoCodec and AudioCodec are the MIME types of the received tracks ("" before).
	VideoCodec, AudioCodec string
	// VideoPackets and VideoBytes count video RTP packets and their payload bytes.
	VideoPackets, VideoBytes int64
	// AudioPackets and AudioBytes count audio RTP packets and their payload bytes.
	AudioPackets, AudioBytes int64
	// BadOpus counts packets of an Opus track whose TOC byte is not valid Opus.
	BadOpus int64
	// FirstVideo and FirstAudio are the arrivals of the first packet of each kind (zero
	// before).
	FirstVideo, FirstAudio time.Time
	// FirstKeyframe is the arrival of the last packet of the first complete H.264 IDR
	// access unit (zero before): the time a decoder could show the first frame.
	FirstKeyframe time.Time
	// SPS is the first H.264 sequence parameter set received (nil before).
	SPS []byte
}

// Player is one WHEP session: a peer connection receiving a stream's video and audio.
// Its methods are safe for concurrent use.
type Player struct {
	c    *signal.Client
	opts Options

	mu       sync.Mutex
	stats    Stats
	opusTS   []uint32
	closed   bool
	readers  sync.WaitGroup // one per received track
	closeErr error
	once     sync.Once
}

// Dial plays the WHEP endpoint url (.../api/stream/{playback_id or ptk_...}/webrtc/whep):
// New, then Connect. It returns once the peer connection is connected; a refusal is a
// *StatusError.
func Dial(ctx context.Context, url string, opts Options) (*Player, error) {
	p, err := New(ctx, opts)
	if err != nil {
		return nil, err
	}
	if err := p.Connect(ctx, url); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// New creates the peer connection with a receive-only video and audio transceiver and
// makes the offer (waiting, bounded by ctx, for candidate gathering); Connect sends it.
func New(ctx context.Context, opts Options) (*Player, error) {
	api := opts.API
	if api == nil {
		var err error
		if api, err = signal.NewAPI(false); err != nil {
			return nil, err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, fmt.Errorf("new peer connection: %w", err)
	}
	for _, k := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if _, err := pc.AddTransceiverFromKind(k, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("%s transceiver: %w", k, err)
		}
	}
	p := &Player{opts: opts}
	pc.OnTrack(p.onTrack)
	c, err := signal.NewClient(ctx, pc, signal.ClientConfig{HTTPClient: opts.HTTPClient, Token: opts.Token})
	if err != nil {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.readers.Wait()
		return nil, err
	}
	p.c = c
	return p, nil
}

// Connect POSTs the offer to the WHEP endpoint url and waits, bounded by ctx, until the
// peer connection is connected. A refusal is a *StatusError. After an error, Close.
func (p *Player) Connect(ctx context.Context, url string) error {
	return p.c.Connect(ctx, url)
}

// Offer returns the SDP offer, with the player's candidates.
func (p *Player) Offer() string { return p.c.Offer() }

// Resource returns the absolute URL of the session resource ("" before Connect's answer).
func (p *Player) Resource() string { return p.c.Resource() }

// Done is closed when the peer connection fails or closes.
func (p *Player) Done() <-chan struct{} { return p.c.Done() }

// Stats returns what the Player observed so far.
func (p *Player) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// OpusTimestamps returns the RTP timestamps of the first Options.KeepOpusTimestamps audio
// packets received.
func (p *Player) OpusTimestamps() []uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]uint32(nil), p.opusTS...)
}

// Close ends the session: DELETE on its resource (if the server answered), then the peer
// connection's close, and waits for the track readers. It returns the DELETE's error (a
// *StatusError unless the answer is 200). It is safe to call twice.
func (p *Player) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true // no reader starts from now on
		p.mu.Unlock()
		p.closeErr = p.c.Close()
		p.readers.Wait()
	})
	return p.closeErr
}

// onTrack reads one received track until the peer connection closes. pion calls it on a
// goroutine of its own.
func (p *Player) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.readers.Add(1)
	mime := tr.Codec().MimeType
	video := tr.Kind() == webrtc.RTPCodecTypeVideo
	if video {
		p.stats.VideoCodec = mime
	} else {
		p.stats.AudioCodec = mime
	}
	p.mu.Unlock()
	defer p.readers.Done()

	isOpus := strings.EqualFold(mime, webrtc.MimeTypeOpus)
	var dec *rtph264.Decoder
	if video && strings.EqualFold(mime, webrtc.MimeTypeH264) {
		dec = &rtph264.Decoder{PacketizationMode: 1}
		if err := dec.Init(); err != nil {
			dec = nil
		}
	}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		now := time.Now()
		if video {
			p.videoPacket(pkt, dec, now)
		} else {
			p.audioPacket(pkt, isOpus, now)
		}
	}
}

func (p *Player) videoPacket(pkt *rtp.Packet, dec *rtph264.Decoder, now time.Time) {
	p.mu.Lock()
	s := &p.stats
	s.VideoPackets++
	s.VideoBytes += int64(len(pkt.Payload))
	if s.FirstVideo.IsZero() {
		s.FirstVideo = now
	}
	// Depacketize until the first keyframe, or for OnVideo.
	decode := dec != nil && (s.FirstKeyframe.IsZero() || p.opts.OnVideo != nil)
	p.mu.Unlock()
	if !decode {
		return
	}
	au, err := dec.Decode(pkt)
	if err != nil {
		return // more packets needed, or a loss: the decoder resyncs by itself
	}
	var sps []byte
	idr := false
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypeIDR:
			idr = true
		}
	}
	p.mu.Lock()
	if s.SPS == nil && sps != nil {
		s.SPS = append([]byte(nil), sps...)
	}
	if s.FirstKeyframe.IsZero() && idr {
		s.FirstKeyframe = now
	}
	p.mu.Unlock()
	if p.opts.OnVideo != nil {
		p.opts.OnVideo(au, pkt.Timestamp, now)
	}
}

func (p *Player) audioPacket(pkt *rtp.Packet, isOpus bool, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.stats
	s.AudioPackets++
	s.AudioBytes += int64(len(pkt.Payload))
	if s.FirstAudio.IsZero() {
		s.FirstAudio = now
	}
	if isOpus && opus.PacketDuration2(pkt.Payload) <= 0 {
		s.BadOpus++
	}
	if len(p.opusTS) < p.opts.KeepOpusTimestamps {
		p.opusTS = append(p.opusTS, pkt.Timestamp)
	}
}
