#!/usr/bin/env bash
# Measures how many HLS playlist requests per second the server answers: wrk with
# CONNS connections (50) and 2 threads for DURATION seconds (15) against a live stream's
# Low-Latency HLS media playlist (the plain, non-blocking reload), as a non-Apple player
# (playlist without gohlslib's leading gap segments) and as an Apple one (AppleCoreMedia
# User-Agent: gaps kept), then against the multivariant playlist. The stream is one
# 720p30 H.264 4.7 Mbps + AAC RTMP publisher (a pre-encoded clip sent with -c copy, so
# ffmpeg's encoder is not in the figures; HLS always muxing). The server's RSS is sampled
# before and after each run, with its peak, to show that memory stays flat.
#   bash bench/hls-rps.sh                 (builds ./cmd/relaycast)
#   BIN=/path/to/relaycast bash bench/hls-rps.sh   (measures a given binary)
#   PROFILE_DIR=/tmp/prof bash bench/hls-rps.sh    (also saves a CPU profile of each run,
#                                                    from /debug/pprof with an admin token)
# wrk (Debian package wrk) is installed with apt-get when missing. wrk shares the machine's
# cores with the server: the figure is for both on one machine, as measured in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
CONNS=${CONNS:-50}
HTTP_PORT=${HTTP_PORT:-18180}
RTMP_PORT=${RTMP_PORT:-12935}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

if ! command -v wrk >/dev/null; then
	as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
	echo "== installing wrk (Debian package)"
	as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi

clip=$work/clip.flv
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
	-f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 \
	-c:v libx264 -preset veryfast -b:v 4700k -maxrate 4700k -bufsize 9400k -g 60 -bf 0 -pix_fmt yuv420p \
	-c:a aac -b:a 128k -f flv "$clip"

bin=${BIN:-}
if [ -z "$bin" ]; then
	bin=$work/relaycast
	go build -o "$bin" ./cmd/relaycast
fi
"$bin" serve --data-dir "$work/data" --http-addr "127.0.0.1:$HTTP_PORT" --rtmp-addr "127.0.0.1:$RTMP_PORT" \
	--rtmps-addr "" --rtsp-addr "" --rtsps-addr "" --webrtc-addr "" --log-level error &
pid=$!
api=http://127.0.0.1:$HTTP_PORT
for _ in $(seq 100); do curl -sf "$api/healthz" >/dev/null && break; sleep 0.1; done
curl -sf -X POST "$api/api/setup" -d '{"username":"bench","password":"benchbench"}' >/dev/null
tok=$(curl -sf -X POST "$api/api/token" -d '{"username":"bench","password":"benchbench"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
st=$(curl -sf -X POST "$api/api/streams" -H "Authorization: Bearer $tok" -d '{"title":"bench"}')
key=$(echo "$st" | sed 's/.*"stream_key":"\([^"]*\)".*/\1/')
pub=$(echo "$st" | sed 's/.*"playback_id":"\([^"]*\)".*/\1/')

ffmpeg -hide_banner -loglevel fatal -re -stream_loop -1 -i "$clip" -c copy -f flv "rtmp://127.0.0.1:$RTMP_PORT/live/$key" &
hls=$api/api/stream/$pub/hls
until variant=$(curl -sf -m 5 "$hls/index.m3u8" | grep -v '^#' | grep -m1 .); do sleep 0.05; done
until curl -sf -m 5 "$hls/$variant" | grep -qE '^#EXT(INF|-X-PART):'; do sleep 0.05; done
# Past gohlslib's seven leading gap segments' worth of time, so that the playlist has its
# steady-state size (7 segments, parts of the last two), and past the first garbage
# collections, so that the RSS before the first run is the stream's steady state.
sleep "${SETTLE:-30}"

rss() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
n=0
run() { # label url [header]
	local label=$1 url=$2 before after peak=0 out rps prof=""
	n=$((n + 1))
	if [ -n "${PROFILE_DIR:-}" ]; then
		mkdir -p "$PROFILE_DIR"
		curl -sf -m $((DURATION + 10)) -H "Authorization: Bearer $tok" \
			"$api/debug/pprof/profile?seconds=$((DURATION - 2))" -o "$PROFILE_DIR/hls-rps-$n.pprof" &
		prof=$!
	fi
	before=$(rss)
	local args=(-c "$CONNS" -t 2 -d "${DURATION}s" --latency)
	[ $# -ge 3 ] && args+=(-H "$3")
	(while sleep 0.5; do rss; echo; done) >"$work/rss" 2>/dev/null &
	local sampler=$!
	local c0 c1
	c0=$(ticks)
	out=$(wrk "${args[@]}" "$url")
	c1=$(ticks)
	kill "$sampler" 2>/dev/null || true
	wait "$sampler" 2>/dev/null || true
	after=$(rss)
	[ -n "$prof" ] && { wait "$prof" || true; }
	peak=$(sort -n "$work/rss" | tail -1)
	rps=$(echo "$out" | awk '/^Requests\/sec/ {printf "%.0f", $2}')
	# Server CPU per request: less sensitive than requests/s to other work on the machine.
	local reqs cpu
	reqs=$(echo "$out" | awk '/requests in/ {print $1}')
	cpu=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$reqs" 'BEGIN { printf "%.1f", c / hz * 1e6 / n }')
	local p50 p99 non2xx
	p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
	p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
	non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
	printf '%-34s %6s rps  server CPU %5s us/req  p50 %-7s p99 %-8s non-2xx %-3s RSS %s -> %s MB (peak %s)\n' \
		"$label" "$rps" "$cpu" "$p50" "$p99" "${non2xx:-0}" "$before" "$after" "$peak"
}
echo "wrk -c$CONNS -t2 -d${DURATION}s, server pid $pid, $(nproc) cores"
run "media playlist (non-Apple UA)" "$hls/$variant"
run "media playlist (AppleCoreMedia UA)" "$hls/$variant" "User-Agent: AppleCoreMedia/1.0.0 (iPhone)"
run "multivariant playlist" "$hls/index.m3u8"
