#!/usr/bin/env bash
# Compares the ingest cost of relaycast binaries back to back, in the same conditions: one
# 720p30 H.264 4.7 Mbps + AAC RTMP publisher (a pre-encoded clip sent with -c copy, the
# clip of bench/ingest.sh), Low-Latency HLS always muxing, no viewer. For each binary, in
# turn, ROUNDS times: server CPU (cores, from /proc) over DURATION seconds, RSS at the end,
# and the Go heap in use (from the heap profile). With PROFILE_DIR set it also saves, for
# each binary's first round, a CPU profile over the measured interval and the heap and
# allocs profiles at its end (from /debug/pprof, with an admin token).
#   bash bench/ingest-cpu.sh                                 (builds ./cmd/relaycast)
#   BINS="/tmp/old/relaycast /tmp/new/relaycast" ROUNDS=3 bash bench/ingest-cpu.sh
# Other work on the machine moves absolute figures; alternating the binaries keeps their
# ratio meaningful.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-2}
HTTP_PORT=${HTTP_PORT:-18280}
RTMP_PORT=${RTMP_PORT:-13935}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

clip=$work/clip.flv
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
	-f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 \
	-c:v libx264 -preset veryfast -b:v 4700k -maxrate 4700k -bufsize 9400k -g 60 -bf 0 -pix_fmt yuv420p \
	-c:a aac -b:a 128k -f flv "$clip"

bins=${BINS:-}
if [ -z "$bins" ]; then
	go build -o "$work/relaycast" ./cmd/relaycast
	bins=$work/relaycast
fi
hz=$(getconf CLK_TCK)
api=http://127.0.0.1:$HTTP_PORT

measure() { # round binary index
	local round=$1 bin=$2 idx=$3
	local data=$work/data-$1-$3 pid ff tok st key pub
	"$bin" serve --data-dir "$data" --http-addr "127.0.0.1:$HTTP_PORT" --rtmp-addr "127.0.0.1:$RTMP_PORT" \
		--rtmps-addr "" --rtsp-addr "" --rtsps-addr "" --webrtc-addr "" --log-level error &
	pid=$!
	for _ in $(seq 100); do curl -sf "$api/healthz" >/dev/null && break; sleep 0.1; done
	curl -sf -X POST "$api/api/setup" -d '{"username":"bench","password":"benchbench"}' >/dev/null
	tok=$(curl -sf -X POST "$api/api/token" -d '{"username":"bench","password":"benchbench"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
	st=$(curl -sf -X POST "$api/api/streams" -H "Authorization: Bearer $tok" -d '{"title":"bench"}')
	key=$(echo "$st" | sed 's/.*"stream_key":"\([^"]*\)".*/\1/')
	pub=$(echo "$st" | sed 's/.*"playback_id":"\([^"]*\)".*/\1/')
	ffmpeg -hide_banner -loglevel fatal -re -stream_loop -1 -i "$clip" -c copy -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$key" &
	ff=$!
	local hls=$api/api/stream/$pub/hls variant
	until variant=$(curl -sf -m 5 "$hls/index.m3u8" | grep -v '^#' | grep -m1 .); do sleep 0.05; done
	until curl -sf -m 5 "$hls/$variant" | grep -qE '^#EXT(INF|-X-PART):'; do sleep 0.05; done
	sleep 5
	local prof="" pdir=""
	if [ -n "${PROFILE_DIR:-}" ] && [ "$round" = 1 ]; then
		pdir=$PROFILE_DIR/bin$idx
		mkdir -p "$pdir"
		curl -sf -m $((DURATION + 10)) -H "Authorization: Bearer $tok" \
			"$api/debug/pprof/profile?seconds=$DURATION" -o "$pdir/cpu.pprof" &
		prof=$!
	fi
	local c0 s0 c1 s1
	c0=$(awk '{print $14 + $15}' "/proc/$pid/stat"); s0=$(date +%s%N)
	sleep "$DURATION"
	c1=$(awk '{print $14 + $15}' "/proc/$pid/stat"); s1=$(date +%s%N)
	[ -n "$prof" ] && { wait "$prof" || true; }
	local heap
	heap=$(curl -sf -H "Authorization: Bearer $tok" "$api/debug/pprof/heap?debug=1" |
		awk '/^# HeapInuse/ {printf "%.1f", $4 / 1048576}' || true)
	if [ -n "$pdir" ]; then
		curl -sf -H "Authorization: Bearer $tok" "$api/debug/pprof/heap" -o "$pdir/heap.pprof"
		curl -sf -H "Authorization: Bearer $tok" "$api/debug/pprof/allocs" -o "$pdir/allocs.pprof"
	fi
	awk -v c=$((c1 - c0)) -v hz="$hz" -v ns=$((s1 - s0)) -v rss="$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")" \
		-v heap="${heap:-?}" -v b="$bin" -v r="$round" \
		'BEGIN { printf "round %s  %-40s CPU %.4f cores over %.0f s  RSS %s MB  heap in use %s MB\n", r, b, c / hz / (ns / 1e9), ns / 1e9, rss, heap }'
	kill "$ff" 2>/dev/null || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	wait "$ff" 2>/dev/null || true
}

for round in $(seq "$ROUNDS"); do
	i=0
	for bin in $bins; do
		i=$((i + 1))
		measure "$round" "$bin" "$i"
	done
done
