// Command relaybench is relaycast's load tool: it publishes K streams to a running
// relaycast, attaches N readers per stream over RTMP, RTSP, HLS and WHEP, runs for a given
// time and reports the server's CPU and memory, each protocol's throughput, stalls and
// drops, time to first frame and glass-to-glass latency.
//
// Usage:
//
//	go run ./cmd/relaybench -api http://127.0.0.1:8080 -user admin -password 'a long password' \
//	    -pid $(pgrep -x relaycast) -streams 1 -readers rtmp=50,hls=5,whep=5,rtsp=5 -duration 30s
//
// Streams: with -user/-password (or -token) relaybench creates K public streams through
// the REST API (POST /api/token, POST /api/streams) and deletes them at the end
// (-keep-streams keeps them); -setup first creates the admin on a fresh server. Or give
// existing streams: -keys live_...,live_... and -ids pub_...,pub_... .
//
// Publishers: the clip is made once with ffmpeg (testsrc2, 1280x720 30 fps H.264 at
// 4.7 Mbps CBR without B-frames, a keyframe every -gop frames, 128 kbps AAC; cached in
// -clip-dir) unless -clip gives a file. -publish rtmp (default) sends it in a loop at its
// real pace with relaycast's RTMP publish client; -publish whip sends it over WebRTC
// (audio transcoded to Opus once); -publish ffmpeg runs ffmpeg -re -stream_loop -1 -c copy.
//
// Stamps: the rtmp and whip publishers put an H.264 SEI NAL unit (user_data_unregistered
// with relaybench's UUID) in front of every frame's first slice, holding the publisher's
// index, the frame's number and the wall clock when it was sent. Readers parse it from
// what they receive — RTMP: the FLV tag's AVCC NAL units; RTSP: the access units
// gortsplib depacketizes; HLS: the fMP4 samples (or MPEG-TS access units) of each part or
// segment; WHEP: the access units pion's packets depacketize to — and take latency as
// arrival minus stamp (readers and publishers share the clock: run them on one machine).
// Frame numbers also count frames a reader missed; a frame carrying another stream's
// index is reported as foreign. A protocol whose video arrives without stamps reports
// latency n/a and why.
//
// Readers: -readers rtmp=50,hls=10,whep=5,rtsp=5 per stream, started at -connect-rate per
// second after -warmup. RTMP is a plain player on go-rtmp's chunk reader; RTSP is
// gortsplib's client (-rtsp-transport); HLS follows the multivariant playlist's first
// variant and its audio rendition like a low-latency player (preload hints, blocking
// playlist reloads, every new part, or every new segment without parts); WHEP is pion.
//
// Figures: the measurement window (-duration) starts 2 s after the last reader started.
// Server CPU (cores) and RSS come from /proc/<pid>/stat and status of -pid (CPU of its
// child processes, such as the AAC→Opus transcoder, separately); throughput is each
// reader's received bytes over the window (RTMP: TCP payload; RTSP and WHEP: RTP payload;
// HLS: media bodies), as average and minimum over readers; time to first frame is from the
// reader's connect to its first keyframe (p50, p99); latency is over every stamped frame
// that arrives in the window (p50, p99; the cached frames a new reader starts with are
// left out). Over each reader's whole life: a stall is a silence over -stall (HLS without
// parts: over 1.5 target durations); gaps are RTMP/RTSP video timestamp jumps over 1.5
// frames, and HLS readers that fell out of the playlist window; missed frames are frame
// numbers that never arrived.
//
// The table goes to stdout, or to stderr with -json, which writes JSON to stdout
// (-json-readers adds every reader's figures). Ctrl-C during the window ends it early and
// still reports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
)

// config is relaybench's command line.
type config struct {
	api, user, password, token string
	setup, keepStreams         bool
	keys, ids                  []string
	rtmpBase, rtspBase         string
	streams                    int
	readers                    map[protocol]int
	publish                    string
	clipPath, clipDir          string
	clip                       clipOptions
	duration, warmup, stall    time.Duration
	connectRate                int
	pid                        int
	json, jsonReaders          bool
	rtspTransport              string
}

func main() {
	logrus.SetOutput(io.Discard) // go-rtmp logs through the global logrus
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs relaybench until SIGINT or SIGTERM or the end of the window and returns the
// exit code.
func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdout, stderr)
}

// runContext is run ending early when ctx does: 0 done, 1 failed, 2 bad command line.
func runContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "relaybench: %v\n", err)
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, "relaybench: "+format+"\n", a...) }
	rep, err := bench(ctx, cfg, logf)
	if err != nil {
		fmt.Fprintf(stderr, "relaybench: %v\n", err)
		return 1
	}
	if cfg.json {
		rep.writeTable(stderr)
		if err := rep.writeJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "relaybench: %v\n", err)
			return 1
		}
		return 0
	}
	rep.writeTable(stdout)
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("relaybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: relaybench -api URL (-user U -password P | -token T | -keys K -ids I) -pid PID [flags]")
		fmt.Fprintln(stderr, "Publishes streams to relaycast, reads them over RTMP/RTSP/HLS/WHEP and reports CPU, memory,")
		fmt.Fprintln(stderr, "throughput, stalls, time to first frame and latency. See `go doc ./cmd/relaybench`.")
		fs.PrintDefaults()
	}
	cache, _ := os.UserCacheDir()
	if cache == "" {
		cache = os.TempDir()
	}
	var keys, ids, readers string
	fs.StringVar(&c.api, "api", "http://127.0.0.1:8080", "relaycast's HTTP base URL (API, HLS, WHIP, WHEP)")
	fs.StringVar(&c.user, "user", "", "user to log in as, to create the streams")
	fs.StringVar(&c.password, "password", "", "that user's password")
	fs.StringVar(&c.token, "token", "", "API key or JWT, instead of -user/-password")
	fs.BoolVar(&c.setup, "setup", false, "first create -user as the admin of a fresh server (POST /api/setup)")
	fs.BoolVar(&c.keepStreams, "keep-streams", false, "do not delete the streams relaybench created")
	fs.StringVar(&keys, "keys", "", "comma-separated stream keys of existing streams, instead of creating them")
	fs.StringVar(&ids, "ids", "", "comma-separated playback ids of those streams, in the same order")
	fs.StringVar(&c.rtmpBase, "rtmp", "", "RTMP base URL (default: the API's publish URL, else rtmp://API-HOST:1935/live)")
	fs.StringVar(&c.rtspBase, "rtsp", "", "RTSP base URL (default rtsp://API-HOST:8554/live)")
	fs.IntVar(&c.streams, "streams", 1, "number of streams to publish (K)")
	fs.StringVar(&readers, "readers", "rtmp=10", "readers per stream and protocol: rtmp=N,rtsp=N,hls=N,whep=N (none: \"\")")
	fs.StringVar(&c.publish, "publish", publishRTMP, "publisher: rtmp, whip or ffmpeg (no latency)")
	fs.StringVar(&c.clipPath, "clip", "", "clip file with H.264 (+AAC) to publish, instead of generating one")
	fs.StringVar(&c.clipDir, "clip-dir", filepath.Join(cache, "relaybench"), "where generated clips are cached")
	fs.IntVar(&c.clip.width, "width", 1280, "generated clip: width")
	fs.IntVar(&c.clip.height, "height", 720, "generated clip: height")
	fs.IntVar(&c.clip.fps, "fps", 30, "generated clip: frames per second")
	fs.IntVar(&c.clip.gop, "gop", 60, "generated clip: frames from one keyframe to the next")
	fs.IntVar(&c.clip.videoKbps, "video-kbps", 4700, "generated clip: video bitrate (kbit/s)")
	fs.DurationVar(&c.clip.duration, "clip-duration", 10*time.Second, "generated clip: length (it is sent in a loop)")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "measurement window")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "wait between the publishers' start and the first reader")
	fs.DurationVar(&c.stall, "stall", 2*time.Second, "a reader without media for longer has a stall")
	fs.IntVar(&c.connectRate, "connect-rate", 200, "readers started per second (0: all at once)")
	fs.IntVar(&c.pid, "pid", 0, "relaycast's process id, for CPU and RSS from /proc (required; -1: do not measure)")
	fs.BoolVar(&c.json, "json", false, "write the report as JSON to stdout (the table goes to stderr)")
	fs.BoolVar(&c.jsonReaders, "json-readers", false, "with -json, add every reader's figures")
	fs.StringVar(&c.rtspTransport, "rtsp-transport", "tcp", "RTSP transport: tcp or udp")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.readers, err = parseReaders(readers); err != nil {
		return nil, err
	}
	c.keys, c.ids = splitList(keys), splitList(ids)
	switch {
	case c.pid == 0:
		return nil, errors.New("-pid is required: relaycast's process id (or -1 not to measure the server)")
	case c.streams < 1 && len(c.keys) == 0:
		return nil, errors.New("-streams must be at least 1")
	case len(c.keys) != len(c.ids):
		return nil, fmt.Errorf("-keys has %d entries and -ids %d: give both, in the same order", len(c.keys), len(c.ids))
	case len(c.keys) == 0 && c.token == "" && (c.user == "" || c.password == ""):
		return nil, errors.New("give -user and -password (or -token) to create the streams, or -keys and -ids")
	case c.publish != publishRTMP && c.publish != publishWHIP && c.publish != publishFFmpeg:
		return nil, fmt.Errorf("-publish %q: want rtmp, whip or ffmpeg", c.publish)
	case c.rtspTransport != "tcp" && c.rtspTransport != "udp":
		return nil, fmt.Errorf("-rtsp-transport %q: want tcp or udp", c.rtspTransport)
	case c.duration <= 0:
		return nil, errors.New("-duration must be positive")
	case c.clip.fps <= 0 || c.clip.gop <= 0 || c.clip.videoKbps <= 0 || c.clip.width <= 0 || c.clip.height <= 0 ||
		c.clip.duration < time.Second:
		return nil, errors.New("clip options must be positive, -clip-duration at least 1s")
	}
	if len(c.keys) > 0 {
		c.streams = len(c.keys)
	}
	c.api = strings.TrimSuffix(c.api, "/")
	return c, nil
}

// parseReaders parses "rtmp=50,hls=10".
func parseReaders(s string) (map[protocol]int, error) {
	out := map[protocol]int{}
	for _, item := range splitList(s) {
		name, num, ok := strings.Cut(item, "=")
		p := parseProtocol(strings.TrimSpace(name))
		n, err := strconv.Atoi(strings.TrimSpace(num))
		if !ok || p == protoUnknown || err != nil || n < 0 {
			return nil, fmt.Errorf("-readers: bad item %q: want PROTOCOL=N with PROTOCOL rtmp, rtsp, hls or whep", item)
		}
		out[p] += n
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
