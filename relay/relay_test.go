package relay

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/bus"
)

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{
		StateUnknown: "unknown", StateIdle: "idle", StateConnecting: "connecting", StateLive: "live",
		StateRetrying: "retrying", StateFailed: "failed", State(99): "unknown", State(-1): "unknown",
	} {
		if got := s.String(); got != want {
			t.Errorf("State(%d) = %q, want %q", int(s), got, want)
		}
		if b, _ := s.MarshalText(); string(b) != want {
			t.Errorf("State(%d).MarshalText = %q", int(s), b)
		}
	}
}

func TestBackoff(t *testing.T) {
	minD, maxD := 250*time.Millisecond, 4*time.Second
	for n, want := range []time.Duration{250, 500, 1000, 2000, 4000, 4000, 4000} {
		want *= time.Millisecond
		for range 200 {
			d := backoff(minD, maxD, n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(n=%d) = %s, want in [%s, %s]", n, d, want/2, want)
			}
		}
	}
	if d := backoff(minD, maxD, 1000); d < maxD/2 || d > maxD {
		t.Fatalf("backoff(n=1000) = %s", d)
	}
	// Jitter: draws differ.
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[backoff(minD, maxD, 4)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("backoff has no jitter: %d distinct values", len(seen))
	}
}

// TestRelay publishes with ffmpeg to A, which relays to B over RTMP and RTMPS (its
// self-signed certificate, verification off for that relay) and to an ffmpeg -listen sink.
// B gets the same tracks; the sink records decodable video. Then the sink is killed and
// restarted: that relay retries and comes back within 5 s of the restart while the others
// never stop. The metrics show every relay.
func TestRelay(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t, Config{Metrics: reg})
	b := newNode(t, e.log, bus.Config{ReconnectGrace: -1})
	sk := newSink(t)
	sk.start()
	e.targets.set("s1",
		Target{ID: 1, Name: "B rtmp", URL: b.url("rtmp", "live_key7")},
		Target{ID: 2, Name: "B rtmps", URL: b.url("rtmps", "live_key8"), SkipVerify: true},
		Target{ID: 3, Name: "sink", URL: sk.url()},
	)

	start := time.Now()
	ffmpegPublish(t, e.a.url("rtmp", "live_key1"), 30, "1500k")
	waitLive(t, e.a.hub, "s1", 1, 15*time.Second)
	live := time.Now()
	waitLive(t, b.hub, "s7", 1, 10*time.Second)
	t.Logf("publish start → A live %s; A live → first unit at B %s", live.Sub(start).Round(time.Millisecond),
		time.Since(live).Round(time.Millisecond))
	waitLive(t, b.hub, "s8", 60, 10*time.Second)
	waitLive(t, b.hub, "s7", 60, 10*time.Second)
	for _, id := range []string{"s7", "s8"} {
		src, dst := e.a.hub.Stream("s1").Tracks(), b.hub.Stream(id).Tracks()
		if len(dst) != len(src) {
			t.Fatalf("%s: %d tracks, want %d", id, len(dst), len(src))
		}
		for i := range src {
			if dst[i].Codec != src[i].Codec {
				t.Fatalf("%s track %d: codec %v, want %v", id, i, dst[i].Codec, src[i].Codec)
			}
		}
	}
	st1 := e.waitState(t, 1, StateLive, 5*time.Second)
	e.waitState(t, 2, StateLive, 5*time.Second)
	e.waitState(t, 3, StateLive, 10*time.Second)

	// Let the sink record a few seconds, then kill it mid-stream.
	time.Sleep(3 * time.Second)
	sk.kill()
	codec, frames := videoFrames(t, sk.out)
	if codec != "h264" || frames < 30 {
		t.Fatalf("sink recorded %s with %d video frames, want h264 and ≥ 30", codec, frames)
	}
	st := e.waitState(t, 3, StateRetrying, 15*time.Second)
	if st.LastError == "" {
		t.Fatal("retrying without last_error")
	}
	t.Logf("sink killed: %+v", st)
	time.Sleep(2 * time.Second) // down for a while: several failed attempts
	restarted := time.Now()
	sk.start()
	st = e.waitState(t, 3, StateLive, 5*time.Second)
	t.Logf("sink restarted: live again after %s, %d reconnects", time.Since(restarted).Round(time.Millisecond), st.Reconnects)
	if st.Reconnects < 1 {
		t.Fatalf("reconnects = %d after a reconnect", st.Reconnects)
	}
	// The other relays never stopped.
	for _, id := range []int64{1, 2} {
		s, _ := e.m.Status(id)
		if s.State != StateLive || s.Reconnects != 0 || s.LastError != "" {
			t.Fatalf("relay %d disturbed: %+v", id, s)
		}
	}
	if s, _ := e.m.Status(1); !s.ConnectedSince.Equal(st1.ConnectedSince) || s.BytesSent <= st1.BytesSent {
		t.Fatalf("relay 1 reconnected or stalled: %+v then %+v", st1, s)
	}
	time.Sleep(2 * time.Second)
	sk.kill()
	if codec, frames := videoFrames(t, sk.out); codec != "h264" || frames < 20 {
		t.Fatalf("restarted sink recorded %s with %d video frames", codec, frames)
	}

	e.waitState(t, 3, StateRetrying, 15*time.Second)
	for id, want := range map[string]float64{"1": 1, "2": 1, "3": 0} {
		if v := metricValue(t, reg, "relaycast_relay_up", id); v != want {
			t.Fatalf("relaycast_relay_up{relay_id=%s} = %v, want %v", id, v, want)
		}
	}
	if v := metricValue(t, reg, "relaycast_relay_reconnects_total", "3"); v < 1 {
		t.Fatalf("relaycast_relay_reconnects_total{relay_id=3} = %v", v)
	}
	if v := metricValue(t, reg, "relaycast_relay_bytes_sent_total", "1"); v < 100_000 {
		t.Fatalf("relaycast_relay_bytes_sent_total{relay_id=1} = %v", v)
	}
}

// metricValue returns the value of the series of name with relay_id id.
func metricValue(t *testing.T, reg *prometheus.Registry, name, id string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "relay_id" && l.GetValue() == id {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{relay_id=%q}", name, id)
	return 0
}

// TestRelayLifecycle: relays survive a publisher drop within the grace and stop when
// the stream ends; a relay edited, added or removed while live changes at once.
func TestRelayLifecycle(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, Config{})
	b := newNode(t, e.log, bus.Config{ReconnectGrace: -1})
	e.targets.set("s1", Target{ID: 1, URL: b.url("rtmp", "live_key7")})

	pub := ffmpegPublish(t, e.a.url("rtmp", "live_key1"), 60, "800k")
	waitLive(t, b.hub, "s7", 30, 15*time.Second)
	st1 := e.waitState(t, 1, StateLive, 5*time.Second)

	// Add a relay while live: it starts at once.
	e.targets.set("s1", Target{ID: 1, URL: b.url("rtmp", "live_key7")}, Target{ID: 2, URL: b.url("rtmp", "live_key8")})
	e.m.Reload("s1")
	waitLive(t, b.hub, "s8", 30, 10*time.Second)
	// Edit it: it reconnects with the new target.
	e.targets.set("s1", Target{ID: 1, URL: b.url("rtmp", "live_key7")}, Target{ID: 2, URL: b.url("rtmp", "live_key9")})
	e.m.Reload("s1")
	waitLive(t, b.hub, "s9", 30, 10*time.Second)
	waitFor(t, 5*time.Second, func() bool { s := b.hub.Stream("s8"); return s == nil || s.State() == bus.StateEnded })
	// Remove it: it stops and its status goes.
	e.targets.set("s1", Target{ID: 1, URL: b.url("rtmp", "live_key7")})
	e.m.Reload("s1")
	waitFor(t, 5*time.Second, func() bool { s := b.hub.Stream("s9"); return s == nil || s.State() == bus.StateEnded })
	if _, ok := e.m.Status(2); ok {
		t.Fatal("removed relay still has a status")
	}

	// The publisher drops and comes back within A's 2 s grace: relay 1 never notices.
	_ = pub.Process.Kill()
	_ = pub.Wait()
	ffmpegPublish(t, e.a.url("rtmp", "live_key1"), 60, "800k")
	waitFor(t, 10*time.Second, func() bool { return e.a.hub.Stream("s1").State() == bus.StateLive })
	time.Sleep(time.Second)
	if s, _ := e.m.Status(1); s.State != StateLive || !s.ConnectedSince.Equal(st1.ConnectedSince) {
		t.Fatalf("relay disturbed by a publisher reconnect within the grace: %+v", s)
	}

	// The stream ends: the relay stops (B's stream ends) once A's grace ran out.
	stopped := time.Now()
	e.a.hub.End("s1")
	e.waitState(t, 1, StateIdle, 5*time.Second)
	waitFor(t, 5*time.Second, func() bool { s := b.hub.Stream("s7"); return s == nil || s.State() == bus.StateEnded })
	t.Logf("stream end → relay stopped in %s", time.Since(stopped).Round(time.Millisecond))
}

// TestRelayFailures: a destination that accepts TCP and never answers is retried with a
// useful error and never blocks the stream's start or end; one that rejects the key is
// marked failed and not asked again; a bad URL fails at once.
func TestRelayFailures(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	e := newEnv(t, Config{DialTimeout: time.Second})
	b := newNode(t, e.log, bus.Config{ReconnectGrace: -1})

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	accepted := make(chan net.Conn, 100)
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c // held open, never answered
		}
	}()
	t.Cleanup(func() {
		_ = silent.Close()
		for c := range accepted {
			_ = c.Close()
		}
	})

	e.targets.set("s1",
		Target{ID: 1, URL: "rtmp://" + silent.Addr().String() + "/live/secretkey1"},
		Target{ID: 2, URL: b.url("rtmp", "wrong_secretkey2")},
		Target{ID: 3, URL: "http://example.com/live/secretkey3"},
		Target{ID: 4, URL: b.url("rtmp", "live_key7")},
	)
	ffmpegPublish(t, e.a.url("rtmp", "live_key1"), 60, "800k")
	waitLive(t, e.a.hub, "s1", 1, 15*time.Second)
	// The silent destination does not hold up the good one.
	waitLive(t, b.hub, "s7", 1, 5*time.Second)

	st := e.waitState(t, 1, StateRetrying, 5*time.Second)
	if !strings.Contains(st.LastError, "no answer within 1s") {
		t.Fatalf("silent destination: last_error %q", st.LastError)
	}
	st = e.waitState(t, 2, StateFailed, 5*time.Second)
	if !strings.Contains(st.LastError, "rejected") {
		t.Fatalf("rejected key: last_error %q", st.LastError)
	}
	st3 := e.waitState(t, 3, StateFailed, 5*time.Second)
	for _, st := range []Status{st, st3} {
		if strings.Contains(st.LastError, "secretkey") {
			t.Fatalf("error shows the key: %q", st.LastError)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	if st2, _ := e.m.Status(2); st2.State != StateFailed || st2.Reconnects != 0 {
		t.Fatalf("rejected relay asked again: %+v", st2)
	}
	if st1, _ := e.m.Status(1); st1.Reconnects < 1 {
		t.Fatalf("silent relay not retried: %+v", st1)
	}

	// The stream ends while relay 1 waits on its silent destination: everything stops at once.
	ended := time.Now()
	e.a.hub.End("s1")
	e.waitState(t, 1, StateIdle, time.Second)
	e.waitState(t, 4, StateIdle, time.Second)
	closed := time.Now()
	_ = e.m.Close()
	t.Logf("end → idle %s, Close %s", closed.Sub(ended).Round(time.Millisecond), time.Since(closed).Round(time.Millisecond))
	if time.Since(closed) > time.Second {
		t.Fatalf("Close took %s", time.Since(closed))
	}
}

// TestRelaySlowDestination: a destination slower than the stream (a throttling proxy in
// front of B) is skipped forward to newer keyframes instead of buffered for, without a
// reconnect; the fast relay of the same stream skips nothing.
func TestRelaySlowDestination(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	log := e0Log(t)
	a := newNode(t, log, bus.Config{ReconnectGrace: -1, RingSize: 128})
	ts := &targets{m: make(map[string][]Target)}
	m, err := New(Config{Hub: a.hub, Targets: ts, Logger: log, WriteTimeout: 20 * time.Second, SendBuffer: 32 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	e := &env{log: log, a: a, targets: ts, m: m}
	b := newNode(t, log, bus.Config{ReconnectGrace: -1})
	proxy := throttle(t, b.in.Addr().String(), 40_000) // 40 kB/s for a ~250 kB/s stream

	ts.set("s1",
		Target{ID: 1, URL: b.url("rtmp", "live_key7")},
		Target{ID: 2, URL: "rtmp://" + proxy + "/live/live_key8"},
	)
	ffmpegPublish(t, a.url("rtmp", "live_key1"), 60, "2000k")
	waitLive(t, b.hub, "s8", 1, 20*time.Second)
	waitFor(t, 20*time.Second, func() bool { s, _ := m.Status(2); return s.Skipped > 0 })
	waitLive(t, b.hub, "s8", b.hub.Stream("s8").Stats().UnitsIn+10, 10*time.Second)
	s1, _ := e.m.Status(1)
	s2, _ := e.m.Status(2)
	t.Logf("fast %+v; slow %+v", s1, s2)
	if s1.Skipped != 0 || s1.State != StateLive || s2.State != StateLive || s2.Reconnects != 0 {
		t.Fatalf("fast %+v, slow %+v", s1, s2)
	}
}

func e0Log(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
