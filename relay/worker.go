package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/egress/rtmp"
)

// worker pushes one stream to one target until its stream ends, it is stopped, or the
// destination rejects it.
type worker struct {
	m      *Manager
	stream string
	target Target
	ctx    context.Context
	cancel context.CancelFunc

	mu             sync.Mutex
	state          State
	lastErr        string
	connectedSince time.Time
	reconnects     int
	bytesDone      uint64 // bytes of finished connections
	pub            *rtmp.Publisher
	skipped        atomic.Uint64
}

func newWorker(m *Manager, stream string, t Target) *worker {
	w := &worker{m: m, stream: stream, target: t, state: StateConnecting}
	w.ctx, w.cancel = context.WithCancel(m.ctx)
	return w
}

// stop ends the worker without waiting for it (Manager.Close waits).
func (w *worker) stop() { w.cancel() }

func (w *worker) status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := Status{
		ID: w.target.ID, Stream: w.stream, State: w.state, LastError: w.lastErr,
		ConnectedSince: w.connectedSince, BytesSent: w.bytesDone, Reconnects: w.reconnects,
		Skipped: w.skipped.Load(),
	}
	if w.pub != nil {
		st.BytesSent += w.pub.BytesSent()
	}
	return st
}

// set changes the state (and the error, when err is not nil) and tells OnChange.
func (w *worker) set(s State, err error) {
	w.mu.Lock()
	changed := w.state != s
	w.state = s
	if err != nil {
		w.lastErr = err.Error()
		changed = true
	}
	if s != StateLive {
		w.connectedSince = time.Time{}
	}
	w.mu.Unlock()
	if changed && w.m.cfg.OnChange != nil {
		w.m.cfg.OnChange(w.status())
	}
}

func (w *worker) run() {
	defer w.m.wg.Done()
	log := w.m.log.With("relay_id", w.target.ID, "stream", w.stream, "name", w.target.Name,
		"url", rtmp.RedactURL(w.target.URL))
	cfg := &w.m.cfg
	failures := 0     // attempts since the last stable connection
	accepted := false // the destination accepted this target at least once
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			w.mu.Lock()
			w.reconnects++
			w.mu.Unlock()
		}
		w.set(StateConnecting, nil)
		up, err := w.session()
		switch {
		case err == nil || w.ctx.Err() != nil:
			// The stream ended (or the relay was stopped): done until the next session.
			w.set(StateIdle, nil)
			if err == nil {
				log.Info("relay stopped: stream ended")
			}
			return
		case errors.Is(err, rtmp.ErrBadURL), errors.Is(err, rtmp.ErrRejected) && !accepted && up == 0:
			// Wrong URL, application or key: asking again will not help.
			log.Warn("relay failed", "err", err)
			w.set(StateFailed, err)
			return
		}
		if up > 0 {
			accepted = true
		}
		if up >= cfg.StableAfter {
			failures = 0
		}
		delay := backoff(cfg.MinBackoff, cfg.MaxBackoff, failures)
		failures++
		log.Warn("relay retrying", "err", err, "in", delay.Round(time.Millisecond))
		w.set(StateRetrying, err)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			w.set(StateIdle, nil)
			return
		}
	}
}

// backoff is the wait before attempt n+1 after n failures: min·2ⁿ capped at max, drawn at
// random in its upper half.
func backoff(minD, maxD time.Duration, n int) time.Duration {
	d := maxD
	if n < 30 {
		if e := minD << n; e > 0 && e < maxD {
			d = e
		}
	}
	return d/2 + rand.N(d/2+1)
}

// session makes one connection and pushes the stream over it. It returns nil when the
// stream ended, else why the connection ended, and how long it was up (0 if the
// destination never accepted the publish).
func (w *worker) session() (time.Duration, error) {
	cfg := &w.m.cfg
	ctx, cancel := context.WithCancel(w.ctx)
	defer cancel()

	// Subscribe first: a stream that ended meanwhile ends the worker without a dial.
	r, err := cfg.Hub.Subscribe(ctx, w.stream, bus.ReaderOptions{Protocol: "relay"})
	if errors.Is(err, bus.ErrNotFound) || errors.Is(err, bus.ErrClosed) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()

	var tlsCfg *tls.Config
	if w.target.SkipVerify {
		tlsCfg = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for per relay
	}
	dctx, dcancel := context.WithTimeout(ctx, cfg.DialTimeout)
	p, err := rtmp.DialWith(dctx, w.target.URL, rtmp.DialOptions{TLSConfig: tlsCfg, SendBuffer: cfg.SendBuffer})
	dcancel()
	if err != nil {
		var ne net.Error
		if ctx.Err() == nil && (dctx.Err() != nil || errors.As(err, &ne) && ne.Timeout() ||
			strings.Contains(err.Error(), "i/o timeout")) {
			err = fmt.Errorf("no answer within %s: %w", cfg.DialTimeout, err)
		}
		return 0, err
	}
	p.SetWriteTimeout(cfg.WriteTimeout)
	since := cfg.Now()
	w.mu.Lock()
	w.pub = p
	w.mu.Unlock()
	defer func() {
		_ = p.Close()
		w.mu.Lock()
		w.bytesDone += p.BytesSent()
		w.pub = nil
		w.mu.Unlock()
	}()
	w.mu.Lock()
	w.connectedSince = since
	w.mu.Unlock()
	w.set(StateLive, nil)
	w.m.log.Info("relay live", "relay_id", w.target.ID, "stream", w.stream,
		"url", rtmp.RedactURL(w.target.URL))

	// The destination may end the session while the stream has nothing to send: its end
	// cancels the read.
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-p.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watched
	}()

	p.SetTracks(r.Stream().Tracks())
	dropped := r.Dropped()
	for {
		u, err := r.Next(ctx)
		if err != nil {
			up := cfg.Now().Sub(since)
			if errors.Is(err, bus.ErrEnded) || errors.Is(err, bus.ErrClosed) {
				return up, nil
			}
			if perr := p.Err(); perr != nil && w.ctx.Err() == nil {
				return up, perr
			}
			return up, err
		}
		if err := p.WriteUnit(u); err != nil {
			return cfg.Now().Sub(since), err
		}
		if d := r.Dropped(); d != dropped {
			w.skipped.Add(d - dropped)
			dropped = d
		}
	}
}
