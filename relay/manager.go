package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/bus"
)

// Defaults of Config.
const (
	DefaultMinBackoff   = 250 * time.Millisecond
	DefaultMaxBackoff   = 4 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	// DefaultStableAfter: a connection that stayed up this long resets the backoff.
	DefaultStableAfter = 10 * time.Second
	// loadTimeout bounds one TargetSource call.
	loadTimeout = 10 * time.Second
)

// Config configures a Manager. Hub and Targets are required.
type Config struct {
	// Hub is the bus whose live streams are relayed.
	Hub *bus.Hub
	// Targets gives each stream's enabled targets.
	Targets TargetSource
	// Logger default: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, gets the relay collectors (relaycast_relay_*).
	Metrics prometheus.Registerer
	// MinBackoff and MaxBackoff bound the wait before a new attempt: it doubles from
	// MinBackoff with each failure up to MaxBackoff, and the wait is drawn at random
	// between half of it and all of it (jitter), so that relays of many streams that fail
	// together do not come back together. Defaults 250 ms and 4 s: a destination that comes
	// back is pushed to again within MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// DialTimeout bounds connecting, the handshake and the publish (default 10 s): a
	// destination that accepts TCP and never answers is retried after it.
	DialTimeout time.Duration
	// WriteTimeout is how long a write may block before the destination counts as stalled
	// (default 10 s).
	WriteTimeout time.Duration
	// SendBuffer, when positive, is the socket send buffer of each relay connection: the
	// most the kernel holds for a slow destination before writes block and the relay starts
	// skipping to newer keyframes. 0 (default) keeps the kernel's automatic sizing, which
	// on Linux grows to tcp_wmem's maximum (4 MiB by default).
	SendBuffer int
	// StableAfter: a connection that lasted this long resets the backoff (default 10 s).
	StableAfter time.Duration
	// OnChange, when set, is called after a relay's state changed (from the relay's
	// goroutine); it must not block.
	OnChange func(Status)
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.StableAfter <= 0 {
		c.StableAfter = DefaultStableAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Manager runs the relays of every live stream. Create it with New; it is safe for
// concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	groups  map[string]*group // by bus stream id: streams with workers (running or done)
	workers map[int64]*worker // by relay id: the latest worker of each relay, for Status
	pending map[string]struct{}
	wake    chan struct{}

	metrics *collector
	unwatch func()
	ctx     context.Context // canceled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup // the sync loop and every worker
	closed  sync.Once
}

// group is the workers of one stream's live session.
type group struct {
	stream  *bus.Stream
	workers map[int64]*worker
}

// New starts a Manager following cfg.Hub. Streams already live are relayed too.
func New(cfg Config) (*Manager, error) {
	if cfg.Hub == nil || cfg.Targets == nil {
		return nil, errors.New("relay: Config.Hub and Config.Targets are required")
	}
	cfg.setDefaults()
	m := &Manager{
		cfg:     cfg,
		log:     cfg.Logger,
		groups:  make(map[string]*group),
		workers: make(map[int64]*worker),
		pending: make(map[string]struct{}),
		wake:    make(chan struct{}, 1),
	}
	if cfg.Metrics != nil {
		m.metrics = &collector{m: m}
		if err := cfg.Metrics.Register(m.metrics); err != nil {
			return nil, err
		}
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.unwatch = cfg.Hub.Watch(m.onEvent)
	for _, s := range cfg.Hub.Streams() {
		m.Reload(s.ID())
	}
	m.wg.Add(1)
	go m.run()
	return m, nil
}

// onEvent is the hub watcher: a stream that goes live (not a resume within the grace) or
// ends is synced.
func (m *Manager) onEvent(e bus.Event) {
	if e.Stream == nil {
		return
	}
	if (e.Type == bus.EventLive && !e.Resumed) || e.Type == bus.EventEnded {
		m.Reload(e.Stream.ID())
	}
}

// Reload makes the relays of stream match its targets, soon and without waiting: while
// the stream is live, new targets start, removed or disabled ones stop and changed ones
// restart; when it is not live, running relays stop. Safe to call at any time, for any id.
func (m *Manager) Reload(stream string) {
	m.mu.Lock()
	m.pending[stream] = struct{}{}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run syncs streams as Reload asks, one at a time, so that syncs of a stream never race.
func (m *Manager) run() {
	defer m.wg.Done()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.wake:
		}
		for {
			m.mu.Lock()
			var id string
			found := false
			for k := range m.pending {
				id, found = k, true
				delete(m.pending, k)
				break
			}
			m.mu.Unlock()
			if !found || m.ctx.Err() != nil {
				break
			}
			m.sync(id)
		}
	}
}

// sync reconciles one stream's workers with the hub's state and its targets.
func (m *Manager) sync(id string) {
	s := m.cfg.Hub.Stream(id)
	live := s != nil && s.State() != bus.StateEnded

	ctx, cancel := context.WithTimeout(m.ctx, loadTimeout)
	targets, err := m.cfg.Targets.RelayTargets(ctx, id)
	cancel()
	if err != nil {
		// Keep what runs: a database hiccup must not stop relays. Try again later.
		m.log.Error("relay targets", "stream", id, "err", err)
		if live {
			m.retrySyncLater(id)
		}
		return
	}
	want := make(map[int64]Target, len(targets))
	for _, t := range targets {
		want[t.ID] = t
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.groups[id]
	if g != nil && (!live || g.stream != s) {
		// Offline, or a new live session: stop the old session's workers (their final
		// status stays readable until replaced).
		for _, w := range g.workers {
			w.stop()
		}
		delete(m.groups, id)
		g = nil
	}
	// Statuses of relays that are gone or disabled go too.
	for rid, w := range m.workers {
		if _, ok := want[rid]; !ok && w.stream == id {
			w.stop()
			delete(m.workers, rid)
			if g != nil {
				delete(g.workers, rid)
			}
		}
	}
	if !live {
		return
	}
	if g == nil {
		g = &group{stream: s, workers: make(map[int64]*worker)}
		m.groups[id] = g
	}
	for rid, t := range want {
		if w := g.workers[rid]; w != nil {
			if w.target == t {
				continue
			}
			w.stop() // edited: a new connection with the new target
		}
		w := newWorker(m, id, t)
		g.workers[rid] = w
		m.workers[rid] = w
		m.wg.Add(1)
		go w.run()
	}
}

// retrySyncLater asks for another sync of id after a while (the target source failed).
func (m *Manager) retrySyncLater(id string) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		t := time.NewTimer(m.cfg.MaxBackoff)
		defer t.Stop()
		select {
		case <-t.C:
			m.Reload(id)
		case <-m.ctx.Done():
		}
	}()
}

// Status returns the status of relay id, and false when the relay has not run since it
// was created, enabled or edited while its stream was offline (callers show it idle).
func (m *Manager) Status(id int64) (Status, bool) {
	m.mu.Lock()
	w := m.workers[id]
	m.mu.Unlock()
	if w == nil {
		return Status{ID: id, State: StateIdle}, false
	}
	return w.status(), true
}

// Statuses returns the status of every relay that ran.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	ws := make([]*worker, 0, len(m.workers))
	for _, w := range m.workers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	out := make([]Status, len(ws))
	for i, w := range ws {
		out[i] = w.status()
	}
	return out
}

// Close stops following the hub, stops every relay and waits for them. It is safe to
// call twice.
func (m *Manager) Close() error {
	m.closed.Do(func() {
		m.unwatch()
		m.cancel()
		m.wg.Wait()
		if m.metrics != nil {
			m.cfg.Metrics.Unregister(m.metrics)
		}
	})
	return nil
}
