package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/relaycast/relaycast/ingest/whip/signal"
)

// settle is how long after the last reader started the measurement window begins:
// keyframe bursts and connection setup are over by then.
const settle = 2 * time.Second

// bench runs one measurement: streams, clip, publishers, readers, window, report.
func bench(ctx context.Context, cfg *config, logf func(string, ...any)) (*report, error) {
	// One HTTP client for the API and the WHIP/WHEP exchanges, whose idle connections are
	// closed at the end (HLS readers have their own).
	tr := &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	api := &apiClient{base: cfg.api, token: cfg.token, http: hc}
	targets, cleanup, err := prepareStreams(ctx, cfg, api, logf)
	if err != nil {
		return nil, err
	}
	defer cleanup()

	c, err := prepareClip(ctx, cfg, logf)
	if err != nil {
		return nil, err
	}
	frameDur := c.frameDur
	if c.bFrames {
		frameDur = 0 // decoding order differs from presentation order: no gap check
		logf("warning: the clip has B-frames; WebRTC viewers cannot play them")
	}
	po := &publishOptions{mode: cfg.publish, clip: c, http: hc}
	if cfg.publish == publishWHIP || cfg.readers[protoWHEP] > 0 {
		if po.api, err = webrtcAPI(cfg.api); err != nil {
			return nil, err
		}
	}
	if cfg.publish == publishWHIP {
		if po.whipFrames, err = whipFrames(ctx, c, cfg.clipDir); err != nil {
			return nil, err
		}
	}

	var mon *procMonitor
	if cfg.pid > 0 {
		if mon, err = startProcMonitor(procReader{root: "/proc"}, cfg.pid); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
		defer mon.Close()
	}

	// Publishers.
	pubCtx, stopPubs := context.WithCancel(context.Background())
	var pubWG sync.WaitGroup
	defer func() {
		stopPubs()
		pubWG.Wait()
	}()
	pubs := make([]*publisherStats, len(targets))
	ready := make(chan error, len(targets))
	for i, t := range targets {
		pubs[i] = &publisherStats{stream: i}
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			var once sync.Once
			publish(pubCtx, po, t, pubs[i], func(err error) { once.Do(func() { ready <- err }) })
		}()
	}
	for range targets {
		select {
		case err := <-ready:
			if err != nil {
				return nil, fmt.Errorf("publisher: %w", err)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	logf("%d publisher(s) live over %s; warming up %s", len(targets), cfg.publish, cfg.warmup)
	if !waitCtx(ctx, cfg.warmup) {
		return nil, ctx.Err()
	}

	// Readers.
	lat := map[protocol]*histogram{}
	for _, p := range protocols {
		lat[p] = &histogram{}
	}
	var (
		readers   []*readerStats
		measuring atomic.Bool
	)
	type job struct {
		p  protocol
		t  streamTarget
		rs *readerStats
	}
	var jobs []job
	for n := 0; ; n++ { // round-robin over streams and protocols: every mix ramps evenly
		added := false
		for _, t := range targets {
			for _, p := range protocols {
				if n < cfg.readers[p] {
					rs := newReaderStats(p, t.index, frameDur, cfg.stall, lat[p], &measuring)
					readers = append(readers, rs)
					jobs = append(jobs, job{p, t, rs})
					added = true
				}
			}
		}
		if !added {
			break
		}
	}
	readCtx, stopReaders := context.WithCancel(context.Background())
	var readWG sync.WaitGroup
	defer func() {
		stopReaders()
		readWG.Wait()
	}()
	if len(jobs) > 0 {
		logf("starting %d reader(s)", len(jobs))
	}
	start := time.Now()
	for i, j := range jobs {
		if cfg.connectRate > 0 {
			if !waitCtx(ctx, time.Until(start.Add(time.Duration(i)*time.Second/time.Duration(cfg.connectRate)))) {
				break
			}
		}
		readWG.Add(1)
		go func() {
			defer readWG.Done()
			if err := runReader(readCtx, cfg, po, j.p, j.t, j.rs); err != nil {
				j.rs.fail(err)
			}
		}()
	}
	if len(jobs) > 0 {
		waitCtx(ctx, settle)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("interrupted before the measurement window: %w", ctx.Err())
	}

	// The window.
	benchSelf := procReader{root: "/proc"}
	self0, _ := benchSelf.stat(os.Getpid())
	var srv0 procSample
	if mon != nil {
		if srv0, err = mon.sample(); err != nil {
			return nil, fmt.Errorf("-pid: %w", err)
		}
	}
	bytes0 := make([]int64, len(readers))
	for i, r := range readers {
		bytes0[i] = r.bytes.Load()
	}
	pubBytes0 := make([]int64, len(pubs))
	for i, p := range pubs {
		pubBytes0[i] = p.bytes.Load()
	}
	w0 := time.Now()
	measuring.Store(true)
	logf("measuring for %s", cfg.duration)
	waitCtx(ctx, cfg.duration)
	measuring.Store(false)
	w1 := time.Now()
	window := w1.Sub(w0)
	rep := &report{Streams: len(targets), Publish: cfg.publish, WindowS: window.Seconds()}
	if mon != nil {
		srv1, err := mon.sample()
		if err != nil {
			return nil, fmt.Errorf("-pid: the server is gone: %w", err)
		}
		cpu, children := cpuBetween(srv0, srv1)
		rep.Server = &serverReport{PID: cfg.pid, CPUCores: cpu.Seconds() / window.Seconds(),
			ChildrenCPUCores: children.Seconds() / window.Seconds(),
			RSSMB:            float64(srv1.rss) / 1e6, RSSPeakMB: float64(mon.peakRSS()) / 1e6}
	}
	if self1, err := benchSelf.stat(os.Getpid()); err == nil {
		rep.BenchCPU = float64(self1.ticks-self0.ticks) / userHZ / window.Seconds()
	}

	// Stop readers, then publishers, and close the books.
	stopReaders()
	readWG.Wait()
	for _, r := range readers {
		r.finish(w1)
	}
	stopPubs()
	pubWG.Wait()
	for i, p := range pubs {
		pr := publisherReport{Stream: i, PlaybackID: targets[i].playbackID, Frames: p.frames.Load(),
			Mbps: float64(p.bytes.Load()-pubBytes0[i]) * 8 / window.Seconds() / 1e6}
		if err := p.error(); err != nil {
			pr.Error = err.Error()
		}
		rep.Publisher = append(rep.Publisher, pr)
	}
	rep.Clip = clipReport{Path: c.path, Width: c.video.Width, Height: c.video.Height,
		FPS: float64(time.Second) / float64(c.frameDur), Mbps: c.bitrate() / 1e6, GOPS: gopSeconds(c),
		Audio: c.audio != nil, BFrames: c.bFrames, LoopSecs: c.loop.Seconds()}
	rep.Protocols, rep.Readers = summarize(readers, bytes0, window, lat, cfg.publish, cfg.jsonReaders)
	return rep, nil
}

// runReader plays target t over protocol p until ctx ends.
func runReader(ctx context.Context, cfg *config, po *publishOptions, p protocol, t streamTarget, rs *readerStats) error {
	switch p {
	case protoRTMP:
		return readRTMP(ctx, t.rtmpPlay, rs)
	case protoRTSP:
		return readRTSP(ctx, t.rtspPlay, cfg.rtspTransport, rs)
	case protoHLS:
		return readHLS(ctx, t.hls, rs)
	case protoWHEP:
		return readWHEP(ctx, t.whep, po.api, po.http, rs)
	}
	return fmt.Errorf("protocol %v", p)
}

// prepareStreams returns the streams under test: the ones given, or K new ones created
// through the API (deleted by cleanup unless -keep-streams).
func prepareStreams(ctx context.Context, cfg *config, api *apiClient, logf func(string, ...any)) ([]streamTarget, func(), error) {
	ep := endpoints{api: cfg.api, rtmp: cfg.rtmpBase, rtsp: cfg.rtspBase}
	var err error
	if ep.rtmp == "" {
		if ep.rtmp, err = defaultEndpoint(cfg.api, "rtmp", "1935"); err != nil {
			return nil, nil, err
		}
	}
	if ep.rtsp == "" {
		if ep.rtsp, err = defaultEndpoint(cfg.api, "rtsp", "8554"); err != nil {
			return nil, nil, err
		}
	}
	if len(cfg.keys) > 0 {
		var ts []streamTarget
		for i := range cfg.keys {
			ts = append(ts, ep.target(i, cfg.keys[i], cfg.ids[i]))
		}
		return ts, func() {}, nil
	}
	if cfg.setup {
		if err := api.setup(ctx, cfg.user, cfg.password); err != nil {
			logf("setup: %v (continuing: the user may exist already)", err)
		}
	}
	if api.token == "" {
		if err := api.login(ctx, cfg.user, cfg.password); err != nil {
			return nil, nil, fmt.Errorf("log in: %w", err)
		}
	}
	var (
		ts      []streamTarget
		created []int64
	)
	cleanup := func() {
		if cfg.keepStreams {
			return
		}
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, id := range created {
			if err := api.deleteStream(dctx, id); err != nil {
				logf("delete stream %d: %v", id, err)
			}
		}
	}
	for i := 0; i < cfg.streams; i++ {
		st, err := api.createStream(ctx, fmt.Sprintf("relaybench %d", i))
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("create stream: %w", err)
		}
		created = append(created, st.ID)
		ts = append(ts, ep.fromAPI(i, st, cfg.rtmpBase != ""))
	}
	return ts, cleanup, nil
}

// prepareClip loads the clip given, or generates (once) and loads the default one.
func prepareClip(ctx context.Context, cfg *config, logf func(string, ...any)) (*clip, error) {
	path := cfg.clipPath
	var err error
	if path == "" {
		if path, err = generateClip(ctx, cfg.clipDir, cfg.clip); err != nil {
			return nil, err
		}
	} else if path, err = remuxToFLV(ctx, cfg.clipDir, path); err != nil {
		return nil, err
	}
	c, err := loadClip(path)
	if err != nil {
		return nil, err
	}
	logf("clip %s: %dx%d, %.2f Mbps, %s loop, GOP %.1f s", path, c.video.Width, c.video.Height, c.bitrate()/1e6,
		c.loop, gopSeconds(c))
	return c, nil
}

// gopSeconds returns the clip's keyframe interval (its first one).
func gopSeconds(c *clip) float64 {
	var keys []time.Duration
	for _, f := range c.frames {
		if f.video && f.key {
			keys = append(keys, f.dts)
		}
	}
	if len(keys) < 2 {
		return c.loop.Seconds()
	}
	return (keys[1] - keys[0]).Seconds()
}

// webrtcAPI returns the pion API for WHIP and WHEP: loopback candidates only when the
// server is on a loopback address.
func webrtcAPI(base string) (*webrtc.API, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(u.Hostname())
	api, err := signal.NewAPI(ip != nil && ip.IsLoopback() || u.Hostname() == "localhost")
	if err != nil {
		return nil, errors.Join(errors.New("webrtc"), err)
	}
	return api, nil
}
