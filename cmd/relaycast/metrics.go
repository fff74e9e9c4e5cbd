package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/relaycast/relaycast/egress/hls"
	rtmpegress "github.com/relaycast/relaycast/egress/rtmp"
	"github.com/relaycast/relaycast/ingest/rtmp"
)

// serverCollector exports the protocol servers' own counters (the bus and the control plane
// export theirs from the control package).
type serverCollector struct {
	hls      *hls.Server
	rtmp     *rtmp.Server
	rtmpPlay *rtmpegress.Server

	hlsMuxers, hlsViewers, hlsRequests, hlsBytes, hlsTimeouts, hlsErrors *prometheus.Desc
	rtmpConns, rtmpPublishers, rtmpAccepted, rtmpRefused, rtmpBytes      *prometheus.Desc
	playViewers, playBytes, playSkips, playDisconnected                  *prometheus.Desc
}

func newServerCollector(h *hls.Server, r *rtmp.Server, play *rtmpegress.Server) *serverCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &serverCollector{
		hls: h, rtmp: r, rtmpPlay: play,
		hlsMuxers:        d("relaycast_hls_muxers", "HLS muxers running (one per live stream)."),
		hlsViewers:       d("relaycast_hls_viewers", "HLS sessions seen within the viewer window."),
		hlsRequests:      d("relaycast_hls_requests_total", "HLS HTTP requests."),
		hlsBytes:         d("relaycast_hls_bytes_out_total", "HLS playlist and media bytes served."),
		hlsTimeouts:      d("relaycast_hls_timeouts_total", "HLS requests that gave up waiting for content."),
		hlsErrors:        d("relaycast_hls_encode_errors_total", "Errors reported by the HLS muxers."),
		rtmpConns:        d("relaycast_rtmp_connections", "Open RTMP/RTMPS connections."),
		rtmpPublishers:   d("relaycast_rtmp_publishers", "RTMP/RTMPS connections publishing."),
		rtmpAccepted:     d("relaycast_rtmp_accepted_total", "RTMP/RTMPS connections accepted."),
		rtmpRefused:      d("relaycast_rtmp_refused_total", "RTMP/RTMPS requests refused."),
		rtmpBytes:        d("relaycast_rtmp_bytes_in_total", "Bytes read from RTMP/RTMPS clients."),
		playViewers:      d("relaycast_rtmp_play_viewers", "RTMP/RTMPS playback viewers."),
		playBytes:        d("relaycast_rtmp_play_bytes_out_total", "Bytes written to RTMP/RTMPS viewers."),
		playSkips:        d("relaycast_rtmp_play_skips_total", "Times a slow RTMP viewer skipped to a newer keyframe."),
		playDisconnected: d("relaycast_rtmp_play_disconnected_total", "RTMP viewers closed because their socket stalled."),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.hlsMuxers, c.hlsViewers, c.hlsRequests, c.hlsBytes, c.hlsTimeouts,
		c.hlsErrors, c.rtmpConns, c.rtmpPublishers, c.rtmpAccepted, c.rtmpRefused, c.rtmpBytes,
		c.playViewers, c.playBytes, c.playSkips, c.playDisconnected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	h := c.hls.Stats()
	g(c.hlsMuxers, float64(h.Muxers))
	g(c.hlsViewers, float64(h.Viewers))
	n(c.hlsRequests, h.Requests)
	n(c.hlsBytes, h.BytesServed)
	n(c.hlsTimeouts, h.Timeouts)
	n(c.hlsErrors, h.EncodeErrors)
	r := c.rtmp.Stats()
	g(c.rtmpConns, float64(r.Connections))
	g(c.rtmpPublishers, float64(r.Publishers))
	n(c.rtmpAccepted, r.Accepted)
	n(c.rtmpRefused, r.Refused)
	n(c.rtmpBytes, r.BytesIn)
	p := c.rtmpPlay.Stats()
	g(c.playViewers, float64(p.Viewers))
	n(c.playBytes, p.BytesOut)
	n(c.playSkips, p.Skips)
	n(c.playDisconnected, p.Disconnected)
}
