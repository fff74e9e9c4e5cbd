package whipclient

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// Options configures a Publisher.
type Options struct {
	// API creates the peer connection. Default: signal.NewAPI(false) — pion's default
	// codecs and interceptors, loopback candidates allowed. It must have the chosen
	// codecs registered.
	API *webrtc.API
	// HTTPClient sends the POST and the DELETE. Default: http.DefaultClient.
	HTTPClient *http.Client
	// Token, if set, is sent as a Bearer token. relaycast accepts and ignores it (the
	// stream key is in the URL); other WHIP servers may need it.
	Token string
	// Video is the video codec. Default (CodecDefault) H.264; CodecNone: no video.
	Video Codec
	// Audio is the audio codec. Default (CodecDefault) Opus; CodecNone: no audio.
	Audio Codec
}

// Publisher is one WHIP session: a peer connection sending one video and one audio
// track. Its methods are safe for concurrent use; WriteVideo and WriteAudio each expect
// one writer at a time.
type Publisher struct {
	c     *signal.Client
	video *webrtc.TrackLocalStaticSample // nil: no video
	audio *webrtc.TrackLocalStaticSample // nil: no audio
	rtcp  sync.WaitGroup                 // the RTCP readers, one per sender
}

// Dial publishes to the WHIP endpoint url (.../api/stream/{stream_key}/webrtc/whip): New,
// then Connect. It returns once the peer connection is connected; a refusal is a
// *StatusError.
func Dial(ctx context.Context, url string, opts Options) (*Publisher, error) {
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

// New creates the peer connection and its tracks and makes the offer (waiting, bounded
// by ctx, for candidate gathering); Connect sends it. Splitting the two lets a caller
// inspect or reuse the offer (Offer).
func New(ctx context.Context, opts Options) (*Publisher, error) {
	if opts.Video == CodecDefault {
		opts.Video = CodecH264
	}
	if opts.Audio == CodecDefault {
		opts.Audio = CodecOpus
	}
	var caps []webrtc.RTPCodecCapability
	for _, k := range []struct {
		c    Codec
		kind webrtc.RTPCodecType
	}{{opts.Video, webrtc.RTPCodecTypeVideo}, {opts.Audio, webrtc.RTPCodecTypeAudio}} {
		if k.c == CodecNone {
			caps = append(caps, webrtc.RTPCodecCapability{})
			continue
		}
		c, ok := k.c.capability(k.kind)
		if !ok {
			return nil, fmt.Errorf("%s codec %v: %w", k.kind, k.c, ErrCodec)
		}
		caps = append(caps, c)
	}
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
	p := &Publisher{}
	fail := func(err error) (*Publisher, error) {
		_ = pc.Close()
		p.rtcp.Wait()
		return nil, err
	}
	for i, c := range caps {
		if c.MimeType == "" {
			continue
		}
		id := [...]string{"video", "audio"}[i]
		track, err := webrtc.NewTrackLocalStaticSample(c, id, "relaycast")
		if err != nil {
			return fail(fmt.Errorf("%s track: %w", id, err))
		}
		tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{
			Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return fail(fmt.Errorf("%s transceiver: %w", id, err))
		}
		if i == 0 {
			p.video = track
		} else {
			p.audio = track
		}
		// Reading RTCP runs the interceptors (NACK responder, reports) and consumes the
		// server's PLIs. It ends when the peer connection closes.
		sender := tr.Sender()
		p.rtcp.Add(1)
		go func() {
			defer p.rtcp.Done()
			for {
				if _, _, err := sender.ReadRTCP(); err != nil {
					return
				}
			}
		}()
	}
	c, err := signal.NewClient(ctx, pc, signal.ClientConfig{HTTPClient: opts.HTTPClient, Token: opts.Token})
	if err != nil {
		return fail(err)
	}
	p.c = c
	return p, nil
}

// Connect POSTs the offer to the WHIP endpoint url and waits, bounded by ctx, until the
// peer connection is connected. A refusal is a *StatusError. After an error, Close.
func (p *Publisher) Connect(ctx context.Context, url string) error {
	return p.c.Connect(ctx, url)
}

// Offer returns the SDP offer, with the publisher's candidates.
func (p *Publisher) Offer() string { return p.c.Offer() }

// Resource returns the absolute URL of the session resource ("" before Connect's answer).
func (p *Publisher) Resource() string { return p.c.Resource() }

// Done is closed when the peer connection fails or closes.
func (p *Publisher) Done() <-chan struct{} { return p.c.Done() }

// WriteVideo sends one video frame (H.264: an Annex-B access unit, SPS and PPS in front
// of keyframes) lasting dur: the next frame's RTP timestamp is dur later. Before the
// connection or after Close the frame is dropped or an error returned.
func (p *Publisher) WriteVideo(frame []byte, dur time.Duration) error {
	if p.video == nil {
		return ErrNoTrack
	}
	return p.video.WriteSample(media.Sample{Data: frame, Duration: dur})
}

// WriteAudio sends one Opus packet lasting dur.
func (p *Publisher) WriteAudio(packet []byte, dur time.Duration) error {
	if p.audio == nil {
		return ErrNoTrack
	}
	return p.audio.WriteSample(media.Sample{Data: packet, Duration: dur})
}

// Close ends the session: DELETE on its resource (if the server answered), then the peer
// connection's close, and waits for the goroutines the Publisher started. It returns the
// DELETE's error (a *StatusError unless the answer is 200). It is safe to call twice.
func (p *Publisher) Close() error {
	err := p.c.Close()
	p.rtcp.Wait()
	return err
}
