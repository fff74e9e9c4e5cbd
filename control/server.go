package control

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/ingest"
)

// Config configures a Server. Store, Hub and SecretKey are required.
type Config struct {
	// Store is the database.
	Store *store.Store
	// Hub is the packet bus whose events drive the streams' live state.
	Hub *bus.Hub
	// SecretKey is the 32-byte master key (LoadSecretKey): it derives the JWT signing key
	// and the AES-256-GCM keys at rest.
	SecretKey []byte
	// Version is reported by /health.
	Version string
	// PublicURL is the base of the playback URLs the API returns, e.g.
	// "http://127.0.0.1:8080". Default "http://localhost:8080".
	PublicURL string
	// RTMPURL is the plain RTMP publish base (rtmp://host:1935/live); "" when that listener
	// is off.
	RTMPURL string
	// RTMPSURL is the RTMPS publish base (rtmps://host:1936/live); "" when off.
	RTMPSURL string
	// RTSPURL and RTSPSURL are the RTSP and RTSPS bases (rtsp://host:8554/live); the
	// playback-token answer lists base/ptk_... for each one set. "" leaves them out.
	RTSPURL, RTSPSURL string
	// RTMPPlainEnabled: plain RTMP is accepted at all (RTMP_PLAIN_ENABLED), until an admin
	// sets the server setting rtmp_plain_enabled, which then wins. Without it, no
	// key or token is accepted over plain RTMP and rtmp-token requests get 403.
	RTMPPlainEnabled bool
	// RTMPPlainKeys: plain RTMP (and other cleartext protocols) accept the permanent live_
	// key; false leaves only single-use rtmp_ tokens there.
	RTMPPlainKeys bool
	// APIRateLimit is how many API requests a user (or an API key) may make per minute
	// (the reference's 60 by default; negative: no limit). Login and setup have their own
	// limit per client IP.
	APIRateLimit int
	// CORS allows any origin to call the API (off by default).
	CORS bool
	// HLS serves /api/stream/{playback_id}/hls/...; nil leaves those paths 404.
	HLS http.Handler
	// WHIP serves /api/stream/{stream_key}/webrtc/whip and its session resources; nil
	// leaves those paths 404.
	WHIP http.Handler
	// WHEP serves /api/stream/{playback_id}/webrtc/whep and its session resources; nil
	// leaves those paths 404.
	WHEP http.Handler
	// Relays runs the stream relays (relay.Manager); the server tells it when a stream's
	// relays change (Reload) and shows its Status in the API. nil: every relay shows
	// "idle" and nothing is pushed.
	Relays RelayManager
	// VODDialTimeout bounds connecting, authenticating and starting SFTP on a user's VOD
	// storage, for the API and for VODStorage's Config; 0 means storage.DefaultDialTimeout
	// (10 s).
	VODDialTimeout time.Duration
	// VOD records live streams and tells their Encoding state; nil: no recording (an
	// ended stream goes straight to Offline).
	VOD Recorder
	// Chat is the chat hub (chat.Hub over NewChatStore): /ws/chat, the /api/chat routes
	// and a channel per stream. nil: no chat (those routes are 404, chat_channel_id null).
	Chat ChatHub
	// DataDir is the data directory, whose disk the system health reports on; may be "".
	DataDir string
	// Thumbnails makes the dynamic thumbnails of live streams; nil: custom ones only.
	Thumbnails Thumbnailer
	// ThumbnailDir holds the custom thumbnails owners upload; "": uploads refused.
	ThumbnailDir string
	// Ready is an extra readiness check for /readyz (listeners bound); may be nil.
	Ready func() error
	// Metrics is where the collectors are registered and what /metrics serves; nil makes a
	// new registry.
	Metrics *prometheus.Registry
	// Logger default: slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// WebhookAllowLoopback lets outgoing webhooks reach loopback addresses. For tests
	// only (a receiver on 127.0.0.1): in production it would open an SSRF hole.
	WebhookAllowLoopback bool
	// WebhookRootCAs, when set, replaces the system roots for webhook deliveries. For
	// tests (a self-signed receiver).
	WebhookRootCAs *x509.CertPool
	// WebhookRetryBackoff is the delay before a webhook's first retry, doubled for each
	// further one; default 1 s.
	WebhookRetryBackoff time.Duration
}

// Limits and durations of the API.
const (
	sessionTTL          = 24 * time.Hour
	rtmpTokenTTL        = 15 * time.Minute
	rtmpTokenGrace      = 30 * time.Second
	authRateLimit       = 10 // requests per authRateWindow per IP on login and setup
	authRateWindow      = time.Minute
	defaultAPIRateLimit = 60 // requests per minute per user or API key
	janitorInterval     = 10 * time.Minute
	dbTimeout           = 10 * time.Second
	resolveCacheTTL     = 5 * time.Second
	defaultPublicURL    = "http://localhost:8080"
)

// Server is the control plane. Create it with New; it is safe for concurrent use.
type Server struct {
	cfg     Config
	store   *store.Store
	hub     *bus.Hub
	log     *slog.Logger
	now     func() time.Time
	jwtKey  []byte
	ptkKey  []byte // HMAC key of playback tokens
	handler http.Handler
	metrics *metrics

	// relayKeys seals the relays' destination stream keys.
	relayKeys *Sealer
	totpKeys  *Sealer
	// vodKeys seals the VOD storages' passwords, private keys and passphrases.
	vodKeys *Sealer
	// vodConns keeps idle connections to the users' VOD storages.
	vodConns vodConns
	// webhookKeys seals webhook URLs, secrets and delivery payloads; webhooks delivers.
	webhookKeys *Sealer
	webhooks    *webhookDispatcher

	// dummyHash is verified against when a login names an unknown user, so that the
	// answer takes as long as for a known one. Made on first need.
	dummyOnce sync.Once
	dummyHash string
	authLimit *rateLimiter
	// registerLimit: accounts per IP per day; inviteKey derives the daily invite code.
	registerLimit *rateLimiter
	inviteKey     []byte
	apiLimit      *rateLimiter // nil: no limit
	resolve       resolveCache

	live    liveQueue
	events  eventFeed
	set     settingsCell
	setMu   sync.Mutex // serializes settings changes
	quiet   notifyQuiet
	openapi openAPIDoc
	subsMu  sync.Mutex
	subs    map[int]func(StreamEvent)
	nextSub int

	unwatch   func()
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ ingest.Authorizer = (*Server)(nil)
	_ egress.Resolver   = (*Server)(nil)
)

// New builds the server, resets streams left live by a previous run, starts following the
// hub's events and starts its goroutines.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Hub == nil {
		return nil, errors.New("control: Config.Store and Config.Hub are required")
	}
	if len(cfg.SecretKey) != 32 {
		return nil, errors.New("control: Config.SecretKey must be 32 bytes")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:    cfg,
		store:  cfg.Store,
		hub:    cfg.Hub,
		log:    cfg.Logger,
		now:    cfg.Now,
		jwtKey: deriveKey(cfg.SecretKey, "jwt"),
		ptkKey: deriveKey(cfg.SecretKey, ptkPurpose),
		subs:   make(map[int]func(StreamEvent)),
		stop:   make(chan struct{}),
	}
	relayKeys, err := NewSealer(cfg.SecretKey, relaySealPurpose)
	if err != nil {
		return nil, err
	}
	s.relayKeys = relayKeys
	if s.vodKeys, err = NewSealer(cfg.SecretKey, vodSealPurpose); err != nil {
		return nil, err
	}
	if s.totpKeys, err = NewSealer(cfg.SecretKey, twoFactorSealPurpose); err != nil {
		return nil, err
	}
	s.authLimit = newRateLimiter(authRateLimit, authRateWindow, s.now)
	s.registerLimit = newRateLimiter(registerPerIP, registerWindow, s.now)
	s.inviteKey = deriveKey(cfg.SecretKey, "invite-code")
	if cfg.APIRateLimit == 0 {
		cfg.APIRateLimit = defaultAPIRateLimit
		s.cfg.APIRateLimit = defaultAPIRateLimit
	}
	if cfg.APIRateLimit > 0 {
		s.apiLimit = newRateLimiter(cfg.APIRateLimit, time.Minute, s.now)
	}
	s.live.init()
	s.events.init()
	m, err := newMetrics(cfg.Metrics, cfg.Hub)
	if err != nil {
		return nil, err
	}
	s.metrics = m

	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	if n, err := s.store.ResetLive(ctx); err != nil {
		m.unregister()
		return nil, err
	} else if n > 0 {
		s.log.Info("reset streams left live by the previous run", "streams", n)
	}
	if err := s.loadSettings(ctx); err != nil {
		m.unregister()
		return nil, err
	}
	s.handler = s.routes()
	s.unwatch = s.hub.Watch(s.onBusEvent)
	if err := s.startWebhooks(); err != nil {
		s.unwatch()
		m.unregister()
		return nil, err
	}
	// Streams published before New (none when cmd wires the Authorizer late) are live too.
	for _, st := range s.hub.Streams() {
		s.live.push(liveItem{playbackID: st.ID(), live: true, t: s.now()})
	}
	s.wg.Add(3)
	go s.runLive()
	go s.runJanitor()
	go s.runVODPrune()
	return s, nil
}

// Handler returns the whole HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// Close stops following the bus, applies the live-state changes already queued, stops
// the goroutines and waits for them. It is safe to call twice. Streams still live when the
// process stops are reset by the next New.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.unwatch()
		close(s.stop)
		s.wg.Wait()
		s.metrics.unregister()
	})
	return nil
}

// runJanitor deletes expired sessions and RTMP tokens and old rate-limit buckets.
func (s *Server) runJanitor() {
	defer s.wg.Done()
	t := time.NewTicker(janitorInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
		now := s.now()
		if _, err := s.store.DeleteStaleRTMPTokens(ctx, now, rtmpTokenGrace); err != nil {
			s.log.Warn("janitor: rtmp tokens", "err", err)
		}
		if _, err := s.store.DeleteExpiredSessions(ctx, now); err != nil {
			s.log.Warn("janitor: sessions", "err", err)
		}
		set := s.settings()
		if _, err := s.store.PruneNotifications(ctx, now.Add(-days(set.NotificationRetentionDays))); err != nil {
			s.log.Warn("janitor: notifications", "err", err)
		}
		if _, err := s.store.PruneActivity(ctx, now.Add(-days(set.ActivityRetentionDays))); err != nil {
			s.log.Warn("janitor: activity", "err", err)
		}
		s.pruneWebhookLogs(ctx, now)
		cancel()
		s.authLimit.prune()
		s.registerLimit.prune()
		if s.apiLimit != nil {
			s.apiLimit.prune()
		}
		s.resolve.prune(now)
	}
}

// dbCtx returns a context for database work done outside a request.
func dbCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}
