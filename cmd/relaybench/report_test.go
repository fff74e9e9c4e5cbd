package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestReportJSONShape locks the JSON wire shape scripts read (bench/relaybench.sh).
func TestReportJSONShape(t *testing.T) {
	var measuring atomic.Bool
	measuring.Store(true)
	lat := map[protocol]*histogram{}
	for _, p := range protocols {
		lat[p] = &histogram{}
	}
	t0 := time.Unix(1000, 0)
	r1 := newReaderStats(protoRTMP, 0, 33*time.Millisecond, 2*time.Second, lat[protoRTMP], &measuring)
	r1.begin(t0)
	r1.video(videoFrame{at: t0.Add(5 * time.Millisecond), key: true, stamped: true,
		st: stamp{Seq: 1, Sent: t0.Add(3 * time.Millisecond).UnixNano()}})
	r1.bytes.Store(1_000_000)
	r2 := newReaderStats(protoHLS, 0, 33*time.Millisecond, 2*time.Second, lat[protoHLS], &measuring)
	r2.begin(t0)
	r2.video(videoFrame{at: t0.Add(time.Second), key: true}) // no stamp
	r2.fail(errors.New("hls: boom"))
	protos, readers := summarize([]*readerStats{r1, r2}, []int64{0, 0}, 2*time.Second, lat, publishRTMP, true)
	rep := &report{Streams: 1, Publish: publishRTMP, WindowS: 2,
		Clip:      clipReport{Path: "c.flv", Width: 1280, Height: 720, FPS: 30, Mbps: 4.7, GOPS: 2, Audio: true, LoopSecs: 10},
		Server:    &serverReport{PID: 1, CPUCores: 0.5, ChildrenCPUCores: 0.25, RSSMB: 80, RSSPeakMB: 90},
		BenchCPU:  0.125,
		Publisher: []publisherReport{{Stream: 0, PlaybackID: "pub_x", Frames: 60, Mbps: 4.75}},
		Protocols: protos, Readers: readers,
	}
	var b bytes.Buffer
	if err := rep.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	want := `{
  "streams": 1,
  "publish": "rtmp",
  "clip": {"path": "c.flv", "width": 1280, "height": 720, "fps": 30, "mbps": 4.7, "gop_s": 2,
    "audio": true, "b_frames": false, "loop_s": 10},
  "window_s": 2,
  "server": {"pid": 1, "cpu_cores": 0.5, "children_cpu_cores": 0.25, "rss_mb": 80, "rss_peak_mb": 90},
  "relaybench_cpu_cores": 0.125,
  "publishers": [{"stream": 0, "playback_id": "pub_x", "video_frames": 60, "mbps": 4.75}],
  "protocols": {
    "hls": {"readers": 1, "with_media": 1, "failed": 1, "mbps_avg": 0, "mbps_min": 0,
      "ttff_ms": {"p50": 1000, "p99": 1000, "max": 1000}, "latency_ms": null, "latency_samples": 0,
      "latency_note": "n/a: video arrived without stamps: the server dropped the SEI NAL units on this path",
      "stalls": 0, "gaps": 0, "frames_missed": 0, "foreign_frames": 0, "errors": ["1× hls: boom"]},
    "rtmp": {"readers": 1, "with_media": 1, "failed": 0, "mbps_avg": 4, "mbps_min": 4,
      "ttff_ms": {"p50": 5, "p99": 5, "max": 5}, "latency_ms": {"p50": 2, "p99": 2, "max": 2},
      "latency_samples": 1, "stalls": 0, "gaps": 0, "frames_missed": 0, "foreign_frames": 0}
  },
  "readers": [
    {"protocol": "rtmp", "stream": 0, "mbps": 4, "ttff_ms": 5, "latency_avg_ms": 2, "latency_max_ms": 2,
      "video_frames": 1, "stamped_frames": 1,
      "frames_missed": 0, "stalls": 0, "gaps": 0},
    {"protocol": "hls", "stream": 0, "mbps": 0, "ttff_ms": 1000, "latency_avg_ms": null, "latency_max_ms": null,
      "video_frames": 1, "stamped_frames": 0,
      "frames_missed": 0, "stalls": 0, "gaps": 0, "error": "hls: boom"}
  ]
}`
	var got, exp any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if !bytes.Equal(gb, eb) {
		t.Errorf("JSON shape changed:\n got %s\nwant %s", gb, eb)
	}

	var table strings.Builder
	rep.writeTable(&table)
	for _, s := range []string{"server pid 1: CPU 0.5000 cores", "rtmp", "hls latency: n/a", "hls error: 1× hls: boom"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
}

func TestParseFlags(t *testing.T) {
	var stderr bytes.Buffer
	good := []string{"-pid", "1", "-user", "u", "-password", "p"}
	c, err := parseFlags(append(good, "-readers", "rtmp=2,hls=1", "-api", "http://h:9/"), &stderr)
	if err != nil || c.api != "http://h:9" || c.readers[protoRTMP] != 2 || c.streams != 1 {
		t.Fatalf("%+v %v", c, err)
	}
	c, err = parseFlags([]string{"-pid", "-1", "-keys", "live_a,live_b", "-ids", "pub_a,pub_b"}, &stderr)
	if err != nil || c.streams != 2 {
		t.Fatalf("keys: %+v %v", c, err)
	}
	for _, bad := range [][]string{
		{"-user", "u", "-password", "p"}, // no -pid
		{"-pid", "1"},                    // no way to get streams
		{"-pid", "1", "-keys", "a", "-ids", "b,c"},
		append(good, "-publish", "srt"),
		append(good, "-readers", "rtmp"),
		append(good, "-rtsp-transport", "http"),
		append(good, "-duration", "0s"),
		append(good, "extra"),
	} {
		if _, err := parseFlags(bad, &stderr); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
