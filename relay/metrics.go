package relay

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	descRelays = prometheus.NewDesc("relaycast_relays",
		"Relays that ran since their stream went live, by state.", []string{"state"}, nil)
	descUp = prometheus.NewDesc("relaycast_relay_up",
		"1 while the relay pushes to its destination.", []string{"relay_id", "stream"}, nil)
	descBytes = prometheus.NewDesc("relaycast_relay_bytes_sent_total",
		"Bytes written to the relay's destination in its stream's current session.",
		[]string{"relay_id", "stream"}, nil)
	descReconnects = prometheus.NewDesc("relaycast_relay_reconnects_total",
		"Connection attempts after the first in the stream's current session.",
		[]string{"relay_id", "stream"}, nil)
	descSkipped = prometheus.NewDesc("relaycast_relay_skipped_units_total",
		"Units skipped because the destination was slower than the stream.",
		[]string{"relay_id", "stream"}, nil)
)

// collector reads the relays' statuses at scrape time: the hot path keeps no metric.
type collector struct{ m *Manager }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRelays, descUp, descBytes, descReconnects, descSkipped} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counts := make(map[State]int)
	for _, st := range c.m.Statuses() {
		counts[st.State]++
		id := strconv.FormatInt(st.ID, 10)
		up := 0.0
		if st.State == StateLive {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up, id, st.Stream)
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.BytesSent), id, st.Stream)
		ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(st.Reconnects), id, st.Stream)
		ch <- prometheus.MustNewConstMetric(descSkipped, prometheus.CounterValue, float64(st.Skipped), id, st.Stream)
	}
	for s := StateIdle; s <= StateFailed; s++ {
		ch <- prometheus.MustNewConstMetric(descRelays, prometheus.GaugeValue, float64(counts[s]), s.String())
	}
}
