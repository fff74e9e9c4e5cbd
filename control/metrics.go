package control

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/bus"
)

// metrics holds the control plane's collectors. Every series is prefixed relaycast_.
//
// Bus series are read from bus stream stats at scrape time (busCollector), so the hot path
// pays nothing for them; per-stream series are labelled with the playback id (public) and
// disappear when the stream ends.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	bus      *busCollector
}

func newMetrics(reg *prometheus.Registry, hub *bus.Hub) (*metrics, error) {
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relaycast_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "relaycast_http_request_duration_seconds",
			Help:    "HTTP request durations by route template.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"route"}),
		bus: newBusCollector(hub),
	}
	for i, c := range []prometheus.Collector{m.requests, m.duration, m.bus} {
		if err := reg.Register(c); err != nil {
			for _, done := range []prometheus.Collector{m.requests, m.duration, m.bus}[:i] {
				reg.Unregister(done)
			}
			return nil, fmt.Errorf("control: metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) unregister() {
	m.reg.Unregister(m.requests)
	m.reg.Unregister(m.duration)
	m.reg.Unregister(m.bus)
}

func (m *metrics) observeHTTP(route, method string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(d.Seconds())
}

// busCollector exports the bus's stream stats.
type busCollector struct {
	hub                                       *bus.Hub
	live, idle                                *prometheus.Desc
	readers, viewers, bytesIn, unitsIn, drops *prometheus.Desc
	publishes                                 *prometheus.Desc
}

func newBusCollector(hub *bus.Hub) *busCollector {
	stream := []string{"stream"}
	return &busCollector{
		hub:       hub,
		live:      prometheus.NewDesc("relaycast_live_streams", "Streams with a publisher.", nil, nil),
		idle:      prometheus.NewDesc("relaycast_idle_streams", "Streams whose publisher left, in their reconnect grace.", nil, nil),
		readers:   prometheus.NewDesc("relaycast_stream_readers", "Bus readers attached to a stream, by protocol.", []string{"stream", "protocol"}, nil),
		viewers:   prometheus.NewDesc("relaycast_stream_viewers", "Viewers of a stream.", stream, nil),
		bytesIn:   prometheus.NewDesc("relaycast_stream_bytes_in_total", "Payload bytes the publishers of a stream wrote.", stream, nil),
		unitsIn:   prometheus.NewDesc("relaycast_stream_units_in_total", "Access units the publishers of a stream wrote.", stream, nil),
		drops:     prometheus.NewDesc("relaycast_bus_dropped_units_total", "Units slow readers of a stream skipped.", stream, nil),
		publishes: prometheus.NewDesc("relaycast_stream_publishes_total", "Publishes of a stream (1 + reconnects).", stream, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *busCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.live, c.idle, c.readers, c.viewers, c.bytesIn, c.unitsIn, c.drops, c.publishes} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *busCollector) Collect(ch chan<- prometheus.Metric) {
	var live, idle int
	for _, s := range c.hub.Streams() {
		st := s.Stats()
		switch st.State {
		case bus.StateLive:
			live++
		case bus.StateIdle:
			idle++
		}
		id := s.ID()
		for proto, n := range st.ReadersByProtocol {
			ch <- prometheus.MustNewConstMetric(c.readers, prometheus.GaugeValue, float64(n), id, proto)
		}
		ch <- prometheus.MustNewConstMetric(c.viewers, prometheus.GaugeValue, float64(st.Viewers), id)
		ch <- prometheus.MustNewConstMetric(c.bytesIn, prometheus.CounterValue, float64(st.BytesIn), id)
		ch <- prometheus.MustNewConstMetric(c.unitsIn, prometheus.CounterValue, float64(st.UnitsIn), id)
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(st.Dropped), id)
		ch <- prometheus.MustNewConstMetric(c.publishes, prometheus.CounterValue, float64(st.Publishes), id)
	}
	ch <- prometheus.MustNewConstMetric(c.live, prometheus.GaugeValue, float64(live))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(idle))
}
