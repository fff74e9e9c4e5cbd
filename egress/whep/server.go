package whep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// Config configures a Server.
type Config struct {
	// Hub holds the streams played. Required.
	Hub *bus.Hub
	// Resolver maps playback ids to streams and checks access (Protocol "whep"). Required.
	Resolver egress.Resolver
	// API builds the peer connections. cmd/relaycast builds it with the shared ICE UDP/TCP
	// mux, codecs and interceptors. Required.
	API *webrtc.API
	// ICEServers are given to the peer connections and advertised in Link headers.
	ICEServers []webrtc.ICEServer
	// OpusBitrate is the bitrate of the AAC to Opus transcoder, in bit/s. Default 128000.
	OpusBitrate int
	// FFmpegPath is the ffmpeg binary the transcoder runs. Default "ffmpeg".
	FFmpegPath string
	// Logger receives the server's log lines. Default: slog.Default().
	Logger *slog.Logger

	// ConnectTimeout ends a session whose ICE does not connect in time. Default 30 s.
	ConnectTimeout time.Duration
	// DisconnectTimeout ends a session whose ICE stayed disconnected this long. Default 10 s.
	DisconnectTimeout time.Duration
	// NegotiateTimeout bounds the POST handler's candidate gathering. Default 10 s.
	NegotiateTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.OpusBitrate <= 0 {
		c.OpusBitrate = 128000
	}
	if c.FFmpegPath == "" {
		c.FFmpegPath = "ffmpeg"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server plays streams to WHEP viewers. It is an http.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	sig      *signal.Server
	counters transcoderCounters

	mu      sync.Mutex
	streams map[string]*stream // by bus stream id, while they have viewers
}

var _ http.Handler = (*Server)(nil)

// New returns a Server. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Resolver == nil || cfg.API == nil {
		return nil, errors.New("whep: Config.Hub, Resolver and API are required")
	}
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, streams: map[string]*stream{}}
	sig, err := signal.New(signal.Config{Name: "whep", Suffix: "/webrtc/whep", Client: "viewer",
		Offer: s.handleOffer, ICEServers: cfg.ICEServers, Logger: cfg.Logger,
		ConnectTimeout: cfg.ConnectTimeout, DisconnectTimeout: cfg.DisconnectTimeout,
		NegotiateTimeout: cfg.NegotiateTimeout})
	if err != nil {
		return nil, fmt.Errorf("whep: %w", err)
	}
	s.sig = sig
	return s, nil
}

// ServeHTTP handles POST /api/stream/{playback_id}/webrtc/whep (SDP offer in, 201 with the
// answer and a Location), and DELETE, PATCH (trickle ICE) and OPTIONS on the session
// resource /api/stream/{playback_id}/webrtc/whep/{session_id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.sig.ServeHTTP(w, r)
}

// bearer returns the viewer's token: ?token= or a Bearer Authorization header.
func bearer(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	return ""
}

// handleOffer admits a viewer: its playback id must resolve to a stream that is live or
// idle, and its offer must receive one of the stream's tracks.
func (s *Server) handleOffer(w http.ResponseWriter, r *http.Request, playback string, body []byte) {
	sum, err := parseOffer(body)
	if err != nil {
		signal.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	streamID, err := s.cfg.Resolver.Resolve(r.Context(), egress.Request{
		Protocol: "whep", ID: playback, Token: bearer(r), RemoteAddr: r.RemoteAddr,
	})
	switch {
	case err == nil:
	case errors.Is(err, egress.ErrForbidden):
		signal.WriteError(w, http.StatusForbidden, "forbidden")
		return
	case errors.Is(err, egress.ErrNotFound):
		signal.WriteError(w, http.StatusNotFound, "stream not found")
		return
	default:
		s.log.Warn("whep: resolve failed", "error", err)
		signal.WriteError(w, http.StatusInternalServerError, "internal error")
		return
	}
	bs := s.cfg.Hub.Stream(streamID)
	if bs == nil {
		signal.WriteError(w, http.StatusNotFound, "stream is offline")
		return
	}
	if st := bs.State(); st != bus.StateLive && st != bus.StateIdle {
		signal.WriteError(w, http.StatusNotFound, "stream is offline")
		return
	}
	v, err := s.plan(bs, sum)
	if err != nil {
		signal.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	v.Session, v.log = signal.NewSession(playback, streamID, sum.ufrag), s.log
	v.ctx, v.cancel = context.WithCancel(context.Background())

	media := bus.MediaAll
	switch {
	case v.video == nil:
		media = bus.MediaAudio
	case v.audio == nil || v.transcode:
		media = bus.MediaVideo
	}
	v.rd, err = s.cfg.Hub.Subscribe(v.ctx, streamID, bus.ReaderOptions{Viewer: true, Media: media})
	if err != nil {
		v.cancel()
		if errors.Is(err, bus.ErrNotFound) {
			signal.WriteError(w, http.StatusNotFound, "stream is offline")
			return
		}
		signal.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}

	err = s.sig.Add(v.Session, func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.streams[streamID]
		if st == nil {
			st = &stream{srv: s, id: streamID}
			s.streams[streamID] = st
		}
		st.viewers++
		v.st = st
		return nil
	})
	if err != nil {
		v.cancel()
		v.rd.Close()
		signal.WriteError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}

	if v.transcode {
		v.sink = newAudioSink()
		if err := v.st.addSink(v.sink); err != nil {
			s.log.Warn("whep: no transcoder, playing without audio", "stream", streamID, "error", err)
			v.sink = nil
			v.transcode = false
		}
	}
	if s.sig.Start(w, r, v.Session, v, body) {
		s.log.Info("whep: session started", "stream", streamID, "session", v.ID(),
			"video", v.video != nil, "audio", v.audio != nil, "transcode", v.transcode, "remote", r.RemoteAddr)
	}
}

// plan decides what a viewer gets from the stream's tracks and the offer: H.264 video
// passed through, Opus passed through or AAC transcoded to Opus.
func (s *Server) plan(bs *bus.Stream, sum *offerSummary) (*viewer, error) {
	v := &viewer{srv: s}
	var video, audio *bus.Track
	for _, t := range bs.Tracks() {
		switch {
		case t.Codec.IsVideo() && video == nil:
			video = t
		case t.Codec.IsAudio() && audio == nil:
			audio = t
		}
	}
	if video != nil && video.Codec == bus.CodecH264 && sum.h264 != nil {
		var profile [3]byte
		if sps, _, err := bus.ParseAVCConfig(video.Config); err == nil && len(sps[0]) >= 4 {
			copy(profile[:], sps[0][1:4])
		}
		c, _ := chooseH264(sum.h264, profile)
		v.video, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: c.Fmtp,
		}, "video", "relaycast")
	}
	if audio != nil && sum.opus && (audio.Codec == bus.CodecOpus || audio.Codec == bus.CodecAAC) {
		v.audio, _ = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		}, "audio", "relaycast")
		v.transcode = audio.Codec == bus.CodecAAC
	}
	if v.video == nil && v.audio == nil {
		var codecs []string
		for _, t := range []*bus.Track{video, audio} {
			if t != nil {
				codecs = append(codecs, t.Codec.String())
			}
		}
		return nil, fmt.Errorf("the offer cannot receive this stream (%s); WHEP sends H.264 and Opus",
			strings.Join(codecs, ", "))
	}
	return v, nil
}

// forget drops a torn-down viewer from its stream, and the stream's shared state after
// the last one.
func (s *Server) forget(v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v.st.viewers--
	if v.st.viewers == 0 && s.streams[v.st.id] == v.st {
		delete(s.streams, v.st.id)
	}
}

// Close ends every session and waits for their goroutines (transcoders stop with their
// last viewer). It is safe to call twice.
func (s *Server) Close() error {
	return s.sig.Close()
}
