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
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	if c.DisconnectTimeout <= 0 {
		c.DisconnectTimeout = 10 * time.Second
	}
	if c.NegotiateTimeout <= 0 {
		c.NegotiateTimeout = 10 * time.Second
	}
}

// Server plays streams to WHEP viewers. It is an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	viewers  map[string]*viewer // by session id
	streams  map[string]*stream // by bus stream id, while they have viewers
	closed   bool
	wg       sync.WaitGroup
	counters transcoderCounters
}

var _ http.Handler = (*Server)(nil)

// New returns a Server. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.Hub == nil || cfg.Resolver == nil || cfg.API == nil {
		return nil, errors.New("whep: Config.Hub, Resolver and API are required")
	}
	cfg.setDefaults()
	return &Server{cfg: cfg, log: cfg.Logger, viewers: map[string]*viewer{},
		streams: map[string]*stream{}}, nil
}

// ServeHTTP handles POST /api/stream/{playback_id}/webrtc/whep (SDP offer in, 201 with the
// answer and a Location), and DELETE, PATCH (trickle ICE) and OPTIONS on the session
// resource /api/stream/{playback_id}/webrtc/whep/{session_id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Expose-Headers", "Location, Link, Accept-Patch, ETag")
	id, sid, ok := parsePath(r.URL.Path)
	if !ok {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if sid == "" {
		switch r.Method {
		case http.MethodPost:
			s.handleOffer(w, r, id)
		case http.MethodOptions:
			options(w, "POST, OPTIONS")
		default:
			h.Set("Allow", "POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		}
		return
	}
	switch r.Method {
	case http.MethodDelete:
		s.handleDelete(w, r, id, sid)
	case http.MethodPatch:
		s.handlePatch(w, r, id, sid)
	case http.MethodOptions:
		options(w, "PATCH, DELETE, OPTIONS")
	default:
		h.Set("Allow", "PATCH, DELETE, OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// options answers a preflight or capability request. The Access-Control-Allow-Origin
// header is the control plane's (--cors).
func options(w http.ResponseWriter, allow string) {
	h := w.Header()
	h.Set("Allow", allow)
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Access-Control-Allow-Methods", allow)
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	w.WriteHeader(http.StatusNoContent)
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

func (s *Server) handleOffer(w http.ResponseWriter, r *http.Request, playback string) {
	body, ok := readBody(w, r, contentTypeSDP)
	if !ok {
		return
	}
	sum, err := parseOffer(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	streamID, err := s.cfg.Resolver.Resolve(r.Context(), egress.Request{
		Protocol: "whep", ID: playback, Token: bearer(r), RemoteAddr: r.RemoteAddr,
	})
	switch {
	case err == nil:
	case errors.Is(err, egress.ErrForbidden):
		writeError(w, http.StatusForbidden, "forbidden")
		return
	case errors.Is(err, egress.ErrNotFound):
		writeError(w, http.StatusNotFound, "stream not found")
		return
	default:
		s.log.Warn("whep: resolve failed", "error", err)
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	bs := s.cfg.Hub.Stream(streamID)
	if bs == nil {
		writeError(w, http.StatusNotFound, "stream is offline")
		return
	}
	if st := bs.State(); st != bus.StateLive && st != bus.StateIdle {
		writeError(w, http.StatusNotFound, "stream is offline")
		return
	}
	v, err := s.plan(bs, sum)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v.id, v.playback, v.log, v.ufrag = newSessionID(), playback, s.log, sum.ufrag
	v.stateCh, v.stop, v.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
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
			writeError(w, http.StatusNotFound, "stream is offline")
			return
		}
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		v.cancel()
		v.rd.Close()
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	st := s.streams[streamID]
	if st == nil {
		st = &stream{srv: s, id: streamID}
		s.streams[streamID] = st
	}
	st.viewers++
	v.st = st
	s.viewers[v.id] = v
	s.wg.Add(1)
	s.mu.Unlock()

	if v.transcode {
		v.sink = newAudioSink()
		if err := st.addSink(v.sink); err != nil {
			s.log.Warn("whep: no transcoder, playing without audio", "stream", streamID, "error", err)
			v.sink = nil
			v.transcode = false
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.NegotiateTimeout)
	answer, err := v.negotiate(ctx, string(body))
	cancel()
	go func() {
		defer s.wg.Done()
		v.run()
	}()
	if err != nil {
		v.end("negotiation failed")
		<-v.done
		if errors.Is(err, errBadOffer) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.log.Warn("whep: negotiation failed", "stream", streamID, "error", err)
		writeError(w, http.StatusInternalServerError, "negotiation failed")
		return
	}
	s.mu.Lock()
	v.ready = true
	s.mu.Unlock()
	s.log.Info("whep: session started", "stream", streamID, "session", v.id,
		"video", v.video != nil, "audio", v.audio != nil, "transcode", v.transcode, "remote", r.RemoteAddr)
	h := w.Header()
	h.Set("Content-Type", contentTypeSDP)
	h.Set("Location", resourceURL(playback, v.id))
	h.Set("Accept-Patch", contentTypeTrickle)
	h.Set("Cache-Control", "no-store")
	for _, l := range linkHeaders(s.cfg.ICEServers) {
		h.Add("Link", l)
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(answer))
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
			MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: c.fmtp,
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

// lookup returns the session sid if it plays playback.
func (s *Server) lookup(playback, sid string) *viewer {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.viewers[sid]
	if v == nil || v.playback != playback || !v.ready {
		return nil
	}
	return v
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, playback, sid string) {
	v := s.lookup(playback, sid)
	if v == nil {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	v.end("deleted by the viewer")
	select {
	case <-v.done:
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, playback, sid string) {
	body, ok := readBody(w, r, contentTypeTrickle)
	if !ok {
		return
	}
	v := s.lookup(playback, sid)
	if v == nil {
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	cands, err := parseTrickle(body, v.ufrag)
	switch {
	case errors.Is(err, errTrickleRestart):
		writeError(w, http.StatusUnprocessableEntity, "ICE restart is not supported")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid trickle-ice-sdpfrag: "+err.Error())
		return
	}
	for _, c := range cands {
		if err := v.pc.AddICECandidate(c); err != nil {
			writeError(w, http.StatusBadRequest, "invalid candidate")
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// forget removes a torn-down viewer, and its stream's shared state after the last one.
func (s *Server) forget(v *viewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.viewers[v.id] == v {
		delete(s.viewers, v.id)
		v.st.viewers--
		if v.st.viewers == 0 && s.streams[v.st.id] == v.st {
			delete(s.streams, v.st.id)
		}
	}
}

// Close ends every session and waits for their goroutines (transcoders stop with their
// last viewer). It is safe to call twice.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*viewer, 0, len(s.viewers))
	for _, v := range s.viewers {
		all = append(all, v)
	}
	s.mu.Unlock()
	for _, v := range all {
		v.end("server closing")
	}
	s.wg.Wait()
	return nil
}
