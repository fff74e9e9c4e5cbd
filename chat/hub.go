package chat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a Hub. Store is required; every other field has a default.
type Config struct {
	// Store persists channels and messages.
	Store Store
	// Logger default: slog.Default().
	Logger *slog.Logger
	// Now is the clock of the domain rules (rate limit, edit window, retention, message
	// times); default time.Now. Network deadlines and keepalives use real time.
	Now func() time.Time
	// Metrics, when set, gets the chat collectors (relaycast_chat_*); Close unregisters
	// them.
	Metrics prometheus.Registerer

	// AllowAnyOrigin accepts WebSocket upgrades from any Origin (the server's CORS
	// setting); otherwise a browser's Origin must be the Host it connects to. Requests
	// without an Origin header (non-browser clients) are always accepted.
	AllowAnyOrigin bool
	// MaxConnsPerUser caps a user's simultaneous connections; default 10.
	MaxConnsPerUser int
	// SendQueue is the number of messages queued for a connection before it counts as
	// slow and is disconnected; default 256.
	SendQueue int
	// PingInterval is how often the server pings; default 25 s.
	PingInterval time.Duration
	// PongWait is how long a connection may stay silent (no frame, no pong) before it is
	// dropped; default 60 s. It must exceed PingInterval.
	PongWait time.Duration
	// WriteTimeout bounds one frame's write; default 10 s.
	WriteTimeout time.Duration

	// RateLimit messages per RateWindow per user; defaults 5 and 5 s. A negative
	// RateLimit turns the limit off (tests, trusted deployments).
	RateLimit  int
	RateWindow time.Duration
	// EditWindow is how long after sending an author may edit; default 5 min.
	EditWindow time.Duration
	// Retention is how long messages are kept; default 7 days.
	Retention time.Duration
	// PurgeInterval is how often messages past Retention are deleted; default 1 h.
	PurgeInterval time.Duration
	// HistoryLimit is the number of messages sent on join; default 50.
	HistoryLimit int

	// OnEvent, when set, is told about messages created and deleted and users connecting
	// (first connection) and disconnecting (last one), in order per channel and per
	// user. It is called on the connection's goroutine, with the channel locked for
	// message events: it must not block (the control plane only queues a webhook).
	OnEvent func(Event)
}

// DefaultChannel is the channel New creates when it does not exist.
const DefaultChannel = "general"

// Defaults and limits.
const (
	defaultMaxConns      = 10
	defaultSendQueue     = 256
	defaultPingInterval  = 25 * time.Second
	defaultPongWait      = 60 * time.Second
	defaultWriteTimeout  = 10 * time.Second
	defaultRateLimit     = 5
	defaultRateWindow    = 5 * time.Second
	defaultEditWindow    = 5 * time.Minute
	defaultRetention     = 7 * 24 * time.Hour
	defaultPurgeInterval = time.Hour
	defaultHistoryLimit  = 50
	maxHistoryLimit      = 100
	maxFrameBytes        = 16 << 10
	maxMessageRunes      = 2000
	maxPreviewRunes      = 100
	maxEmojiBytes        = 32
	maxReactionsPerUser  = 20
	maxPinsPerChannel    = 50
	maxThreadDepth       = 20
	typingInterval       = time.Second
	opTimeout            = 10 * time.Second
	slowLogInterval      = 10 * time.Second
)

// Hub is the chat server: the registry of connections and channels, the WebSocket
// protocol and the domain rules. Create it with New; it is safe for concurrent use.
type Hub struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	now     func() time.Time
	limiter *rateLimiter
	up      websocket.Upgrader
	metrics *collector
	// retention is the current message retention (nanoseconds): Config.Retention until
	// SetRetention changes it.
	retention atomic.Int64

	mu      sync.Mutex
	closed  bool
	conns   map[*conn]struct{}
	perUser map[int64]int // connections, counting upgrades in progress
	online  map[int64]int // registered connections, for OnEvent's connected/disconnected
	rooms   map[int64]*room

	stats struct {
		messages, slow, malformed atomic.Uint64
		lastSlowLog               atomic.Int64
	}

	stop      chan struct{}
	wg        sync.WaitGroup // ServeWS calls and the janitor
	closeOnce sync.Once
}

// New checks cfg, creates the default channel if missing and starts the janitor.
func New(cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		return nil, errors.New("chat: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	setDefault(&cfg.MaxConnsPerUser, defaultMaxConns)
	setDefault(&cfg.SendQueue, defaultSendQueue)
	setDefault(&cfg.PingInterval, defaultPingInterval)
	setDefault(&cfg.PongWait, defaultPongWait)
	setDefault(&cfg.WriteTimeout, defaultWriteTimeout)
	if cfg.RateLimit == 0 {
		cfg.RateLimit = defaultRateLimit
	}
	setDefault(&cfg.RateWindow, defaultRateWindow)
	setDefault(&cfg.EditWindow, defaultEditWindow)
	setDefault(&cfg.Retention, defaultRetention)
	setDefault(&cfg.PurgeInterval, defaultPurgeInterval)
	setDefault(&cfg.HistoryLimit, defaultHistoryLimit)
	if cfg.PongWait <= cfg.PingInterval {
		return nil, fmt.Errorf("chat: PongWait (%v) must exceed PingInterval (%v)", cfg.PongWait, cfg.PingInterval)
	}
	h := &Hub{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		now:     cfg.Now,
		limiter: newRateLimiter(cfg.RateLimit, cfg.RateWindow),
		conns:   make(map[*conn]struct{}),
		perUser: make(map[int64]int),
		online:  make(map[int64]int),
		rooms:   make(map[int64]*room),
		stop:    make(chan struct{}),
	}
	h.up = h.upgrader()
	h.retention.Store(int64(cfg.Retention))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := h.ensureDefault(ctx); err != nil {
		return nil, err
	}
	if cfg.Metrics != nil {
		h.metrics = &collector{h: h}
		if err := cfg.Metrics.Register(h.metrics); err != nil {
			return nil, fmt.Errorf("chat: metrics: %w", err)
		}
	}
	h.wg.Add(1)
	go h.runJanitor()
	return h, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ensureDefault creates the "general" channel unless it exists.
func (h *Hub) ensureDefault(ctx context.Context) error {
	_, err := h.store.ChannelByName(ctx, DefaultChannel)
	if errors.Is(err, ErrNotFound) {
		_, err = h.store.CreateChannel(ctx, Channel{Name: DefaultChannel, Description: "General discussion",
			IsDefault: true, CreatedAt: h.now()})
		if errors.Is(err, ErrConflict) { // created meanwhile by another process
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("chat: default channel: %w", err)
	}
	return nil
}

// Close disconnects every client, stops the janitor and waits for every goroutine the
// hub started or serves. It is safe to call twice.
func (h *Hub) Close() error {
	h.closeOnce.Do(func() {
		h.mu.Lock()
		h.closed = true
		conns := make([]*conn, 0, len(h.conns))
		for c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		close(h.stop)
		for _, c := range conns {
			c.stop(websocket.CloseGoingAway, "server shutting down")
		}
		h.wg.Wait()
		if h.metrics != nil {
			h.cfg.Metrics.Unregister(h.metrics)
		}
	})
	return nil
}

// register adds an upgraded connection; false when the hub closed meanwhile. first
// tells that it is the user's only registered connection.
func (h *Hub) register(c *conn) (ok, first bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false, false
	}
	h.conns[c] = struct{}{}
	h.online[c.user.ID]++
	return true, h.online[c.user.ID] == 1
}

// release gives back a connection slot of user (and forgets c when registered).
// last tells that c was the user's last registered connection.
func (h *Hub) release(c *conn, user int64) (last bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.conns[c]; ok {
		delete(h.conns, c)
		if h.online[user]--; h.online[user] <= 0 {
			delete(h.online, user)
			last = true
		}
	}
	if h.perUser[user]--; h.perUser[user] <= 0 {
		delete(h.perUser, user)
	}
	return last
}

// roomFor returns the in-memory state of channel id, creating it on first use.
func (h *Hub) roomFor(id int64) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[id]
	if r == nil {
		r = newRoom(id)
		h.rooms[id] = r
	}
	return r
}

// existingRoom returns the state of channel id if anyone used it.
func (h *Hub) existingRoom(id int64) *room {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[id]
}

// forgetRoom drops r from the registry.
func (h *Hub) forgetRoom(r *room) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms[r.id] == r {
		delete(h.rooms, r.id)
	}
}

// snapshot returns the connections for which keep returns true.
func (h *Hub) snapshot(keep func(*conn) bool) []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*conn
	for c := range h.conns {
		if keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// OnlineUsers returns the number of distinct users connected.
func (h *Hub) OnlineUsers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.perUser)
}

// Stats are the hub's counters.
type Stats struct {
	// Connections and Users connected now.
	Connections, Users int
	// Messages accepted since start.
	Messages uint64
	// SlowDisconnects counts connections dropped because their send queue was full;
	// MalformedCloses those closed for a frame that is not a protocol message.
	SlowDisconnects, MalformedCloses uint64
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	st := Stats{Connections: len(h.conns), Users: len(h.perUser)}
	h.mu.Unlock()
	st.Messages = h.stats.messages.Load()
	st.SlowDisconnects = h.stats.slow.Load()
	st.MalformedCloses = h.stats.malformed.Load()
	return st
}

// DisconnectUser closes every connection of user (deleted account).
func (h *Hub) DisconnectUser(user int64) {
	for _, c := range h.snapshot(func(c *conn) bool { return c.user.ID == user }) {
		c.stop(websocket.ClosePolicyViolation, "account removed")
	}
}

// runJanitor deletes messages past the retention and forgets idle rate-limit entries.
func (h *Hub) runJanitor() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.PurgeInterval)
	defer t.Stop()
	for {
		h.purge()
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
	}
}

// purge runs one janitor pass.
func (h *Hub) purge() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	now := h.now()
	retention := time.Duration(h.retention.Load())
	n, err := h.store.PurgeMessages(ctx, now.Add(-retention))
	switch {
	case err != nil:
		h.log.Warn("chat: purge", "err", err)
	case n > 0:
		h.log.Info("chat: purged old messages", "messages", n, "retention", retention)
	}
	h.limiter.prune(now)
}

// slowDisconnect counts a slow client's disconnection and logs at most once per period.
func (h *Hub) slowDisconnect(c *conn) {
	n := h.stats.slow.Add(1)
	now := time.Now().UnixNano()
	last := h.stats.lastSlowLog.Load()
	if now-last >= int64(slowLogInterval) && h.stats.lastSlowLog.CompareAndSwap(last, now) {
		h.log.Info("chat: slow client disconnected (send queue full)", "user_id", c.user.ID, "slow_total", n)
	}
}

// SetRetention changes how long messages are kept, from the next purge on (d ≤ 0: no
// change).
func (h *Hub) SetRetention(d time.Duration) {
	if d > 0 {
		h.retention.Store(int64(d))
	}
}
