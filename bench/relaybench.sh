#!/usr/bin/env bash
# Measures the README's relaybench figures against a freshly built relaycast, one fresh
# server per figure (loopback, ports chosen by the kernel), and prints relaybench's table
# for each run and a summary:
#   1. ingest only: one 720p30 4.7 Mbps H.264 + AAC RTMP publisher, HLS always muxing
#   2. one 4.7 Mbps stream and 50 RTMP readers: server CPU per reader
#   3. one 3 Mbps stream and 1,000 RTMP readers: sustained, drops, CPU
#   4. one 3 Mbps stream and 20 WHEP viewers (the AAC->Opus transcoder in children CPU)
#   5. one 4.7 Mbps stream and 5 readers of each protocol: time to first frame, latency
# The JSON reports are kept in $RESULTS (a temporary directory by default); RUNS picks
# some of the runs (names below).
#   bash bench/relaybench.sh            (DURATION=30, RUNS="ingest rtmp50 rtmp1000 whep20 latency")
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
RUNS=${RUNS:-ingest rtmp50 rtmp1000 whep20 latency}
RESULTS=${RESULTS:-$(mktemp -d)}
mkdir -p "$RESULTS"
work=$(mktemp -d)
pid=
stop_server() {
	if [ -n "$pid" ]; then
		kill -INT "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		pid=
	fi
}
trap 'stop_server; rm -rf "$work"' EXIT

go build -o "$work/relaycast" ./cmd/relaycast
go build -o "$work/relaybench" ./cmd/relaybench

# start_server: a fresh relaycast; sets pid, api, rtsp.
start_server() {
	rm -rf "$work/data"
	"$work/relaycast" serve --data-dir "$work/data" --http-addr 127.0.0.1:0 --rtmp-addr 127.0.0.1:0 \
		--rtmps-addr "" --rtsp-addr 127.0.0.1:0 --rtsps-addr "" --rtsp-udp-addr "" \
		--webrtc-addr 127.0.0.1:0 --log-format json --log-level info 2>"$work/server.log" &
	pid=$!
	for _ in $(seq 300); do grep -q '"relaycast started"' "$work/server.log" && break; sleep 0.05; done
	addr() { grep '"msg":"listening"' "$work/server.log" | grep "\"listener\":\"$1\"" | sed 's/.*"addr":"\([^"]*\)".*/\1/'; }
	api=http://$(addr http)
	rtsp=rtsp://$(addr rtsp)/live
}

# run NAME ARGS...: one relaybench run on a fresh server; the table on the terminal, the
# JSON in $RESULTS/NAME.json.
run() {
	local name=$1
	shift
	case " $RUNS " in *" $name "*) ;; *) return 0 ;; esac
	start_server
	echo "== $name (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
	echo "   relaybench -setup -user bench -password ... -pid PID -rtsp $rtsp -duration ${DURATION}s $*"
	"$work/relaybench" -api "$api" -setup -user bench -password "relaybench password" -pid "$pid" \
		-rtsp "$rtsp" -duration "${DURATION}s" -json "$@" >"$RESULTS/$name.json" 2>"$work/table.txt"
	grep -v '^relaybench: \(clip\|[0-9]* publisher\|starting\|measuring\|setup\)' "$work/table.txt" || true
	stop_server
}

# field FILE KEY: the first number of "KEY": in a JSON report (0 without that run).
field() { { grep -o "\"$2\": [-0-9.e+]*" "$1" 2>/dev/null || echo ": 0"; } | head -1 | sed 's/.*: //'; }

run ingest -readers ""
run rtmp50 -readers rtmp=50
run rtmp1000 -readers rtmp=1000 -video-kbps 3000
run whep20 -readers whep=20 -video-kbps 3000
run latency -readers rtmp=5,rtsp=5,hls=5,whep=5

echo "== summary ($RESULTS)"
r=$RESULTS
ingest=$(field "$r/ingest.json" cpu_cores)
if [ -f "$r/ingest.json" ]; then
	awk -v c="$ingest" -v rss="$(field "$r/ingest.json" rss_mb)" \
		'BEGIN { printf "ingest only (4.7 Mbps RTMP, LL-HLS muxing): %.4f cores, RSS %.0f MB\n", c, rss }'
fi
if [ -f "$r/rtmp50.json" ]; then
	awk -v c="$(field "$r/rtmp50.json" cpu_cores)" -v i="$ingest" \
		'BEGIN { printf "50 RTMP readers: %.4f cores, %.2f ms CPU per second per reader (above the ingest run'"'"'s %.4f)\n", c, (c - i) * 1000 / 50, i }'
fi
if [ -f "$r/rtmp1000.json" ]; then
	awk -v c="$(field "$r/rtmp1000.json" cpu_cores)" \
		'BEGIN { printf "1000 RTMP readers of 3 Mbps: %.3f cores, %.3f ms CPU per second per reader\n", c, c }'
fi
if [ -f "$r/whep20.json" ]; then
	awk -v c="$(field "$r/whep20.json" cpu_cores)" -v t="$(field "$r/whep20.json" children_cpu_cores)" \
		'BEGIN { printf "20 WHEP viewers of 3 Mbps: %.4f cores (+%.4f transcoder), %.2f ms per second per viewer\n", c, t, c * 1000 / 20 }'
fi
