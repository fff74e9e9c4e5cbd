package chat

import "github.com/prometheus/client_golang/prometheus"

// collector exposes the hub's counters at scrape time, so the hot path pays nothing.
type collector struct{ h *Hub }

var (
	descConns = prometheus.NewDesc("relaycast_chat_connections",
		"Chat WebSocket connections open.", nil, nil)
	descUsers = prometheus.NewDesc("relaycast_chat_online_users",
		"Distinct users connected to chat.", nil, nil)
	descMessages = prometheus.NewDesc("relaycast_chat_messages_total",
		"Chat messages accepted.", nil, nil)
	descDisconnects = prometheus.NewDesc("relaycast_chat_disconnects_total",
		"Chat connections dropped by the server, by reason (slow: send queue full; malformed: a frame that is not a protocol message).",
		[]string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConns
	ch <- descUsers
	ch <- descMessages
	ch <- descDisconnects
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.h.Stats()
	ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, float64(st.Connections))
	ch <- prometheus.MustNewConstMetric(descUsers, prometheus.GaugeValue, float64(st.Users))
	ch <- prometheus.MustNewConstMetric(descMessages, prometheus.CounterValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(descDisconnects, prometheus.CounterValue, float64(st.SlowDisconnects), "slow")
	ch <- prometheus.MustNewConstMetric(descDisconnects, prometheus.CounterValue, float64(st.MalformedCloses), "malformed")
}
