package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/chat"
	"github.com/relaycast/relaycast/control"
	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/egress/hls"
	rtmpegress "github.com/relaycast/relaycast/egress/rtmp"
	rtspegress "github.com/relaycast/relaycast/egress/rtsp"
	"github.com/relaycast/relaycast/egress/thumb"
	"github.com/relaycast/relaycast/egress/whep"
	"github.com/relaycast/relaycast/ingest"
	"github.com/relaycast/relaycast/ingest/rtmp"
	rtspingest "github.com/relaycast/relaycast/ingest/rtsp"
	"github.com/relaycast/relaycast/ingest/whip"
	"github.com/relaycast/relaycast/relay"
	"github.com/relaycast/relaycast/vod"
	"github.com/relaycast/relaycast/vod/storage"
)

// serve runs the server until ctx ends. Components start in dependency order; if one fails
// the ones already started are closed, and on shutdown they close in reverse order.
func serve(ctx context.Context, o *options, logOut io.Writer) (err error) {
	log, err := newLogger(o, logOut)
	if err != nil {
		return err
	}
	var closers []func() error
	defer func() {
		for i := len(closers) - 1; i >= 0; i-- {
			if cerr := closers[i](); cerr != nil {
				log.Warn("shutdown", "err", cerr)
			}
		}
	}()

	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	key, err := control.LoadSecretKey(o.DataDir, o.SecretKey)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, filepath.Join(o.DataDir, "relaycast.db"))
	if err != nil {
		return err
	}
	closers = append(closers, st.Close)

	hub := bus.New(bus.Config{ReconnectGrace: o.ReconnectGrace, Logger: log.With("component", "bus")})
	closers = append(closers, func() error { hub.Close(); return nil })

	// Bind the listeners first: the URLs the API hands out depend on the bound ports.
	var httpLn net.Listener
	if o.HTTPAddr != "" {
		if httpLn, err = net.Listen("tcp", o.HTTPAddr); err != nil {
			return fmt.Errorf("http listener: %w", err)
		}
		closers = append(closers, func() error { httpLn.Close(); return nil })
	}
	var tlsConf *tls.Config
	if o.RTMPSAddr != "" || o.RTSPSAddr != "" {
		var generated bool
		if tlsConf, generated, err = loadTLS(o.TLSCert, o.TLSKey, o.DataDir); err != nil {
			return err
		}
		if generated {
			log.Info("generated a self-signed TLS certificate", "dir", filepath.Join(o.DataDir, "tls"))
		}
	}

	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The protocol servers come before the control plane, which needs their handlers and
	// bound addresses; they reach the control plane through late, which refuses everything
	// until it is set.
	late := &lateControl{}
	hlsSrv, err := hls.New(hls.Config{Hub: hub, Resolver: late, Variant: o.HLSVariant, Logger: log.With("component", "hls")})
	if err != nil {
		return err
	}
	closers = append(closers, hlsSrv.Close)

	rtmpPlay, err := rtmpegress.New(rtmpegress.Config{Hub: hub, Resolver: late, Logger: log.With("component", "rtmp-play")})
	if err != nil {
		return err
	}
	closers = append(closers, rtmpPlay.Close)
	rtmpSrv, err := rtmp.New(rtmp.Config{
		Addr:      o.RTMPAddr,
		TLSAddr:   o.RTMPSAddr,
		TLSConfig: tlsConf,
		Hub:       hub,
		Auth:      late,
		// Plain RTMP is decided per publish by the control plane (the server setting
		// rtmp_plain_enabled, which admins can change while the server runs).
		PlainEnabled: true,
		Player: rtmp.PlayerFunc(func(ctx context.Context, r rtmp.PlayRequest, c net.Conn) error {
			return rtmpPlay.Play(ctx, rtmpegress.PlayRequest(r), c)
		}),
		Logger: log.With("component", "rtmp"),
	})
	if err != nil {
		return err
	}
	closers = append(closers, rtmpSrv.Close)
	logListener(log, "rtmp", rtmpSrv.Addr())
	logListener(log, "rtmps", rtmpSrv.TLSAddr())

	var rtspSrv *rtspingest.Server
	if o.RTSPAddr != "" || o.RTSPSAddr != "" {
		player, err := rtspegress.New(rtspegress.Config{Hub: hub, Resolver: late, Logger: log.With("component", "rtsp-play")})
		if err != nil {
			return err
		}
		closers = append(closers, player.Close)
		rtspSrv, err = rtspingest.New(rtspingest.Config{
			Addr:       o.RTSPAddr,
			TLSAddr:    o.RTSPSAddr,
			TLSConfig:  tlsConf,
			UDP:        o.RTSPUDPAddr != "",
			UDPRTPAddr: o.RTSPUDPAddr,
			Hub:        hub,
			Auth:       late,
			Player:     player,
			Logger:     log.With("component", "rtsp"),
		})
		if err != nil {
			return err
		}
		closers = append(closers, rtspSrv.Close)
		logListener(log, "rtsp", rtspSrv.Addr())
		logListener(log, "rtsps", rtspSrv.TLSAddr())
	}

	var whipSrv *whip.Server
	var whepSrv *whep.Server
	if o.WebRTCAddr != "" {
		ice := make([]webrtc.ICEServer, 0, len(o.ICEServers))
		for _, u := range o.ICEServers {
			srv, _ := parseICEServer(u) // validated with the options
			ice = append(ice, srv)
		}
		api, apiCloser, err := newWebRTCAPI(webrtcOptions{
			Addr:      o.WebRTCAddr,
			PublicIPs: o.WebRTCPublicIPs,
			Loopback:  isLoopbackAddr(o.WebRTCAddr),
			Logger:    log.With("component", "webrtc"),
		})
		if err != nil {
			return err
		}
		closers = append(closers, apiCloser.Close)
		if whipSrv, err = whip.New(whip.Config{Hub: hub, Auth: late, API: api, ICEServers: ice, Logger: log.With("component", "whip")}); err != nil {
			return err
		}
		closers = append(closers, whipSrv.Close)
		if whepSrv, err = whep.New(whep.Config{Hub: hub, Resolver: late, API: api, ICEServers: ice, OpusBitrate: o.OpusBitrate,
			Logger: log.With("component", "whep")}); err != nil {
			return err
		}
		closers = append(closers, whepSrv.Close)
	}
	metrics.MustRegister(newServerCollector(hlsSrv, rtmpSrv, rtmpPlay))

	// The relay manager follows the hub and asks the control plane (through late) for each
	// live stream's destinations; it closes before the hub, after the control plane.
	relays, err := relay.New(relay.Config{Hub: hub, Targets: late, Logger: log.With("component", "relay"), Metrics: metrics,
		DialTimeout: o.RelayDialTimeout, MaxBackoff: o.RelayMaxBackoff, OnChange: late.RelayChanged})
	if err != nil {
		return err
	}
	closers = append(closers, relays.Close)

	// The VOD service records live streams of owners with storage into the spool and
	// uploads the chunks; at start it repairs and queues what a previous run left. It
	// closes before the hub (finishing the chunks being written), after the control plane.
	vodSvc, err := vod.NewService(vod.ServiceConfig{
		Hub: hub, SpoolDir: filepath.Join(o.DataDir, "vod-spool"), ChunkDuration: o.VODChunkDuration,
		SpoolLimit: o.VODSpoolLimit, Storage: late, OnEncodingDone: late.EncodingDone,
		OnUploadFailure: late.VODUploadFailed, OnSpoolFull: late.VODSpoolFull,
		Logger: log.With("component", "vod"),
	})
	if err != nil {
		return err
	}
	closers = append(closers, vodSvc.Close)

	// Chat: its hub closes (saying goodbye to every client) after the control plane,
	// before the store.
	chatStore, err := control.NewChatStore(st, key)
	if err != nil {
		return err
	}
	chatHub, err := chat.New(chat.Config{Store: chatStore, AllowAnyOrigin: o.CORS, Metrics: metrics,
		Logger: log.With("component", "chat"), OnEvent: late.ChatEvent})
	if err != nil {
		return err
	}
	closers = append(closers, chatHub.Close)
	thumbs, err := thumb.New(thumb.Config{Hub: hub, Logger: log.With("component", "thumbnails")})
	if err != nil {
		return err
	}

	var ready atomic.Bool
	pub := publicURL(o.PublicURL, httpLn)
	rtmpURL := publishURL("rtmp", pub, rtmpSrv.Addr()) // shown while plain RTMP is enabled
	cfg := control.Config{
		Store:            st,
		Hub:              hub,
		SecretKey:        key,
		Version:          version,
		PublicURL:        pub,
		RTMPURL:          rtmpURL,
		RTMPSURL:         publishURL("rtmps", pub, rtmpSrv.TLSAddr()),
		RTMPPlainEnabled: o.RTMPPlainEnabled,
		RTMPPlainKeys:    o.RTMPPlainKeys,
		CORS:             o.CORS,
		APIRateLimit:     o.APIRateLimit,
		DataDir:          o.DataDir,
		HLS:              hlsSrv,
		Ready: func() error {
			if !ready.Load() {
				return errors.New("listeners not ready")
			}
			return nil
		},
		Relays: relays,
		VOD:    vodSvc,
		Chat:   chatHub,
		// Dynamic thumbnails run ffmpeg, as the WHEP transcoder does.
		Thumbnails:   thumbs,
		ThumbnailDir: filepath.Join(o.DataDir, "thumbnails"),
		Metrics:      metrics,
		Logger:       log.With("component", "control"),
	}
	if rtspSrv != nil {
		cfg.RTSPURL, cfg.RTSPSURL = publishURL("rtsp", pub, rtspSrv.Addr()), publishURL("rtsps", pub, rtspSrv.TLSAddr())
	}
	// Typed nil pointers must not become non-nil interfaces.
	if whipSrv != nil {
		cfg.WHIP, cfg.WHEP = whipSrv, whepSrv
	}
	ctl, err := control.New(cfg)
	if err != nil {
		return err
	}
	closers = append(closers, ctl.Close)
	late.set(ctl)

	httpErr := make(chan error, 1)
	if httpLn != nil {
		srv := &http.Server{
			Handler:           ctl.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
		go func() { httpErr <- srv.Serve(httpLn) }()
		closers = append(closers, func() error {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := srv.Shutdown(sctx)
			<-httpErr
			return err
		})
		log.Info("listening", "listener", "http", "addr", httpLn.Addr().String())
	}
	ready.Store(true)
	log.Info("relaycast started", "version", version, "data_dir", o.DataDir)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
		return nil
	case err := <-httpErr:
		httpErr <- err // let the closer above see it
		return fmt.Errorf("http server: %w", err)
	}
}

func logListener(log *slog.Logger, name string, addr net.Addr) {
	if addr != nil {
		log.Info("listening", "listener", name, "addr", addr.String())
	}
}

// isLoopbackAddr reports whether a listen address binds a loopback IP only, in which case
// WebRTC must offer loopback candidates or nobody could reach it.
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(o *options, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, hopts)), nil
	}
	return slog.New(slog.NewTextHandler(w, hopts)), nil
}

// publicURL returns the base of the URLs the API hands out: --public-url, or one derived
// from the bound HTTP listener.
func publicURL(flagValue string, ln net.Listener) string {
	if flagValue != "" {
		return strings.TrimRight(flagValue, "/")
	}
	if ln == nil {
		return "http://localhost"
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// publishURL returns the base URL (scheme://host:port/live) of a bound RTMP or RTSP
// listener, with the public URL's host; "" when the listener is off.
func publishURL(scheme, public string, addr net.Addr) string {
	if addr == nil {
		return ""
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	host := "localhost"
	if u, err := url.Parse(public); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/live"
}

// lateControl lets components built before the control plane reach it once it exists:
// until then it refuses publishers, knows no stream and has no relay targets.
type lateControl struct {
	c atomic.Pointer[control.Server]
}

var (
	_ egress.Resolver    = (*lateControl)(nil)
	_ ingest.Authorizer  = (*lateControl)(nil)
	_ relay.TargetSource = (*lateControl)(nil)
	_ vod.StorageSource  = (*lateControl)(nil)
)

func (l *lateControl) set(c *control.Server) { l.c.Store(c) }

// ChatEvent is chat.Config.OnEvent: chat events become webhooks once the control plane
// exists (none are lost in practice: chat connections need its HTTP API).
func (l *lateControl) ChatEvent(e chat.Event) {
	if c := l.c.Load(); c != nil {
		c.ChatEvent(e)
	}
}

// Resolve implements egress.Resolver.
func (l *lateControl) Resolve(ctx context.Context, req egress.Request) (string, error) {
	c := l.c.Load()
	if c == nil {
		return "", egress.ErrNotFound
	}
	return c.Resolve(ctx, req)
}

// Authorize implements ingest.Authorizer.
func (l *lateControl) Authorize(ctx context.Context, req ingest.Request) (ingest.Grant, error) {
	c := l.c.Load()
	if c == nil {
		return ingest.Grant{}, fmt.Errorf("server is starting: %w", ingest.ErrUnauthorized)
	}
	return c.Authorize(ctx, req)
}

// Release implements ingest.Authorizer.
func (l *lateControl) Release(g ingest.Grant) {
	if c := l.c.Load(); c != nil {
		c.Release(g)
	}
}

// RelayTargets implements relay.TargetSource.
func (l *lateControl) RelayTargets(ctx context.Context, stream string) ([]relay.Target, error) {
	c := l.c.Load()
	if c == nil {
		return nil, nil
	}
	return c.RelayTargets(ctx, stream)
}

// VODStorage implements vod.StorageSource.
func (l *lateControl) VODStorage(ctx context.Context, owner int64) (storage.Config, bool, error) {
	c := l.c.Load()
	if c == nil {
		return storage.Config{}, false, errors.New("server is starting")
	}
	return c.VODStorage(ctx, owner)
}

// PinVODHostKey implements vod.StorageSource.
func (l *lateControl) PinVODHostKey(ctx context.Context, owner int64, key string) error {
	c := l.c.Load()
	if c == nil {
		return errors.New("server is starting")
	}
	return c.PinVODHostKey(ctx, owner, key)
}

// EncodingDone passes the VOD service's news on to the control plane.
func (l *lateControl) EncodingDone(stream string) {
	if c := l.c.Load(); c != nil {
		c.EncodingDone(stream)
	}
}

// RelayChanged passes a relay's new status on to the control plane's event feed.
func (l *lateControl) RelayChanged(st relay.Status) {
	if c := l.c.Load(); c != nil {
		c.RelayChanged(st)
	}
}

// VODUploadFailed passes a failed upload on to the control plane's notifications.
func (l *lateControl) VODUploadFailed(owner int64, session string, err error) {
	if c := l.c.Load(); c != nil {
		c.VODUploadFailed(owner, session, err)
	}
}

// VODSpoolFull passes a spool-full pause on to the control plane's notifications.
func (l *lateControl) VODSpoolFull(owner int64, stream string, full bool) {
	if c := l.c.Load(); c != nil {
		c.VODSpoolFull(owner, stream, full)
	}
}
