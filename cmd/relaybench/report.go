package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// report is relaybench's result, printed as a table and, with -json, as JSON. Its JSON
// shape is locked by TestReportJSONShape.
type report struct {
	Streams   int                    `json:"streams"`
	Publish   string                 `json:"publish"`
	Clip      clipReport             `json:"clip"`
	WindowS   float64                `json:"window_s"`
	Server    *serverReport          `json:"server"` // nil without -pid
	BenchCPU  float64                `json:"relaybench_cpu_cores"`
	Publisher []publisherReport      `json:"publishers"`
	Protocols map[string]protoReport `json:"protocols"`
	Readers   []readerReport         `json:"readers,omitempty"`
}

type clipReport struct {
	Path     string  `json:"path"`
	Width    int     `json:"width"`
	Height   int     `json:"height"`
	FPS      float64 `json:"fps"`
	Mbps     float64 `json:"mbps"`
	GOPS     float64 `json:"gop_s"`
	Audio    bool    `json:"audio"`
	BFrames  bool    `json:"b_frames"`
	LoopSecs float64 `json:"loop_s"`
}

// serverReport is the server process over the window, from /proc.
type serverReport struct {
	PID              int     `json:"pid"`
	CPUCores         float64 `json:"cpu_cores"`
	ChildrenCPUCores float64 `json:"children_cpu_cores"`
	RSSMB            float64 `json:"rss_mb"`
	RSSPeakMB        float64 `json:"rss_peak_mb"`
}

type publisherReport struct {
	Stream     int     `json:"stream"`
	PlaybackID string  `json:"playback_id"`
	Frames     int64   `json:"video_frames"`
	Mbps       float64 `json:"mbps"`
	Error      string  `json:"error,omitempty"`
}

// pctReport holds percentiles in milliseconds.
type pctReport struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

type protoReport struct {
	Readers        int        `json:"readers"`
	WithMedia      int        `json:"with_media"`
	Failed         int        `json:"failed"`
	MbpsAvg        float64    `json:"mbps_avg"`
	MbpsMin        float64    `json:"mbps_min"`
	TTFFMs         *pctReport `json:"ttff_ms"`
	LatencyMs      *pctReport `json:"latency_ms"`
	LatencySamples uint64     `json:"latency_samples"`
	LatencyNote    string     `json:"latency_note,omitempty"`
	Stalls         int        `json:"stalls"`
	Gaps           int        `json:"gaps"`
	FramesMissed   int64      `json:"frames_missed"`
	ForeignFrames  int64      `json:"foreign_frames"`
	Errors         []string   `json:"errors,omitempty"`
}

type readerReport struct {
	Protocol     string   `json:"protocol"`
	Stream       int      `json:"stream"`
	Mbps         float64  `json:"mbps"`
	TTFFMs       *float64 `json:"ttff_ms"`
	LatencyAvgMs *float64 `json:"latency_avg_ms"`
	LatencyMaxMs *float64 `json:"latency_max_ms"`
	Frames       int64    `json:"video_frames"`
	Stamped      int64    `json:"stamped_frames"`
	Missed       int64    `json:"frames_missed"`
	Stalls       int      `json:"stalls"`
	Gaps         int      `json:"gaps"`
	Error        string   `json:"error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// summarize builds the per-protocol figures. bytes0 are the readers' byte counts at the
// window's start; window is its length.
func summarize(readers []*readerStats, bytes0 []int64, window time.Duration, lat map[protocol]*histogram,
	mode string, withReaders bool) (map[string]protoReport, []readerReport) {
	out := map[string]protoReport{}
	var per []readerReport
	ttffs := map[protocol][]time.Duration{}
	errs := map[protocol]map[string]int{}
	for i, r := range readers {
		pr := out[r.proto.String()]
		mbps := float64(r.bytes.Load()-bytes0[i]) * 8 / window.Seconds() / 1e6
		r.mu.Lock()
		pr.Readers++
		if r.frames > 0 {
			pr.WithMedia++
		}
		if r.err != nil {
			pr.Failed++
			if errs[r.proto] == nil {
				errs[r.proto] = map[string]int{}
			}
			errs[r.proto][r.err.Error()]++
		}
		pr.MbpsAvg += mbps
		if pr.Readers == 1 || mbps < pr.MbpsMin {
			pr.MbpsMin = mbps
		}
		pr.Stalls += r.stalls
		pr.Gaps += r.gaps
		pr.FramesMissed += r.missed
		pr.ForeignFrames += r.foreign
		rr := readerReport{Protocol: r.proto.String(), Stream: r.stream, Mbps: mbps, Frames: r.frames,
			Stamped: r.stamped, Missed: r.missed, Stalls: r.stalls, Gaps: r.gaps}
		if r.err != nil {
			rr.Error = r.err.Error()
		}
		if r.latN > 0 {
			avg, mx := ms(r.latSum/time.Duration(r.latN)), ms(r.latMax)
			rr.LatencyAvgMs, rr.LatencyMaxMs = &avg, &mx
		}
		r.mu.Unlock()
		if d, ok := r.ttff(); ok {
			ttffs[r.proto] = append(ttffs[r.proto], d)
			v := ms(d)
			rr.TTFFMs = &v
		}
		if withReaders {
			per = append(per, rr)
		}
		out[r.proto.String()] = pr
	}
	for _, p := range protocols {
		pr, ok := out[p.String()]
		if !ok {
			continue
		}
		pr.MbpsAvg /= float64(pr.Readers)
		if t := sortDurations(ttffs[p]); len(t) > 0 {
			pr.TTFFMs = &pctReport{P50: ms(percentile(t, 50)), P99: ms(percentile(t, 99)), Max: ms(t[len(t)-1])}
		}
		h := lat[p]
		pr.LatencySamples = h.count.Load()
		switch {
		case pr.LatencySamples > 0:
			pr.LatencyMs = &pctReport{P50: ms(h.percentile(50)), P99: ms(h.percentile(99)),
				Max: ms(time.Duration(h.max.Load()) * time.Microsecond)}
		case pr.WithMedia == 0:
			pr.LatencyNote = "no video received"
		case mode == publishFFmpeg:
			pr.LatencyNote = "n/a: the ffmpeg publisher cannot stamp frames (use -publish rtmp or whip)"
		default:
			pr.LatencyNote = "n/a: video arrived without stamps: the server dropped the SEI NAL units on this path"
		}
		for e, n := range errs[p] {
			pr.Errors = append(pr.Errors, fmt.Sprintf("%d× %s", n, e))
		}
		sort.Strings(pr.Errors)
		if len(pr.Errors) > 5 {
			pr.Errors = append(pr.Errors[:5], fmt.Sprintf("… %d more distinct errors", len(pr.Errors)-5))
		}
		out[p.String()] = pr
	}
	return out, per
}

// writeJSON writes r indented.
func (r *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable writes r for people.
func (r *report) writeTable(w io.Writer) {
	c := r.Clip
	fmt.Fprintf(w, "relaybench: %d stream(s), publish %s, clip %dx%d %.0f fps %.2f Mbps GOP %.1f s, window %.1f s\n",
		r.Streams, r.Publish, c.Width, c.Height, c.FPS, c.Mbps, c.GOPS, r.WindowS)
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server pid %d: CPU %.4f cores (+%.4f in children), RSS %.1f MB (peak %.1f MB)\n",
			s.PID, s.CPUCores, s.ChildrenCPUCores, s.RSSMB, s.RSSPeakMB)
		if n := r.totalReaders(); n > 0 {
			fmt.Fprintf(w, "server CPU per reader: %.3f ms per second (whole server CPU / %d readers, ingest included)\n",
				s.CPUCores*1000/float64(n), n)
		}
	} else {
		fmt.Fprintln(w, "server: not measured (no -pid)")
	}
	fmt.Fprintf(w, "relaybench itself: CPU %.3f cores\n", r.BenchCPU)
	for _, p := range r.Publisher {
		if p.Error != "" {
			fmt.Fprintf(w, "publisher %d: %s\n", p.Stream, p.Error)
		}
	}
	if len(r.Protocols) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "protocol\treaders\tmedia\tfailed\tMbps avg\tMbps min\tTTFF p50\tTTFF p99\tlatency p50\tlatency p99\tstalls\tgaps\tmissed\t")
	var notes []string
	for _, p := range protocols {
		pr, ok := r.Protocols[p.String()]
		if !ok {
			continue
		}
		tt50, tt99, l50, l99 := "-", "-", "n/a", "n/a"
		if pr.TTFFMs != nil {
			tt50, tt99 = fmtMs(pr.TTFFMs.P50), fmtMs(pr.TTFFMs.P99)
		}
		if pr.LatencyMs != nil {
			l50, l99 = fmtMs(pr.LatencyMs.P50), fmtMs(pr.LatencyMs.P99)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t\n", p, pr.Readers, pr.WithMedia,
			pr.Failed, pr.MbpsAvg, pr.MbpsMin, tt50, tt99, l50, l99, pr.Stalls, pr.Gaps, pr.FramesMissed)
		if pr.LatencyNote != "" {
			notes = append(notes, p.String()+" latency: "+pr.LatencyNote)
		}
		if pr.ForeignFrames > 0 {
			notes = append(notes, fmt.Sprintf("%s: %d frames stamped by another stream's publisher", p, pr.ForeignFrames))
		}
		for _, e := range pr.Errors {
			notes = append(notes, p.String()+" error: "+e)
		}
	}
	_ = tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

func (r *report) totalReaders() int {
	n := 0
	for _, p := range r.Protocols {
		n += p.Readers
	}
	return n
}

func fmtMs(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f ms", v)
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.2f", v/1000), "0") + " s"
}
