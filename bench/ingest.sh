#!/usr/bin/env bash
# Measures, for one 720p30 H.264 4.7 Mbps + AAC RTMP publisher (a pre-encoded clip sent
# with -c copy, so ffmpeg's encoder is not in the figures): the time from ffmpeg's start to
# a playable LL-HLS playlist, and the server's CPU (cores) and RSS with HLS always muxing
# and no viewer, over DURATION seconds.
#   bash bench/ingest.sh            (DURATION=60 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
GOP=${GOP:-60}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

clip=$work/clip.flv
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
	-f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 \
	-c:v libx264 -preset veryfast -b:v 4700k -maxrate 4700k -bufsize 9400k -g "$GOP" -bf 0 -pix_fmt yuv420p \
	-c:a aac -b:a 128k -f flv "$clip"

go build -o "$work/relaycast" ./cmd/relaycast
"$work/relaycast" serve --data-dir "$work/data" --http-addr 127.0.0.1:18080 --rtmp-addr 127.0.0.1:11935 \
	--rtmps-addr "" --rtsp-addr "" --rtsps-addr "" --webrtc-addr "" --log-level error &
pid=$!
for _ in $(seq 100); do curl -sf localhost:18080/healthz >/dev/null && break; sleep 0.1; done
api=http://127.0.0.1:18080
curl -sf -X POST $api/api/setup -d '{"username":"bench","password":"benchbench"}' >/dev/null
tok=$(curl -sf -X POST $api/api/token -d '{"username":"bench","password":"benchbench"}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
st=$(curl -sf -X POST $api/api/streams -H "Authorization: Bearer $tok" -d '{"title":"bench"}')
key=$(echo "$st" | sed 's/.*"stream_key":"\([^"]*\)".*/\1/')
pub=$(echo "$st" | sed 's/.*"playback_id":"\([^"]*\)".*/\1/')

t0=$(date +%s%N)
ffmpeg -hide_banner -loglevel error -re -stream_loop -1 -i "$clip" -c copy -f flv "rtmp://127.0.0.1:11935/live/$key" &
hls=$api/api/stream/$pub/hls
until variant=$(curl -sf -m 5 "$hls/index.m3u8" | grep -v '^#' | grep -m1 .); do sleep 0.01; done
until curl -sf -m 5 "$hls/$variant" | grep -qE '^#EXT(INF|-X-PART):'; do sleep 0.01; done
t1=$(date +%s%N)
echo "publish -> playable LL-HLS media playlist: $(( (t1 - t0) / 1000000 )) ms (keyframe interval $((GOP * 1000 / 30)) ms)"

ticks() { awk '{print $14 + $15}' /proc/$pid/stat; }
sleep 5
c0=$(ticks); s0=$(date +%s%N)
sleep "$DURATION"
c1=$(ticks); s1=$(date +%s%N)
hz=$(getconf CLK_TCK)
awk -v c=$((c1 - c0)) -v hz="$hz" -v ns=$((s1 - s0)) 'BEGIN { printf "server CPU: %.4f cores over %.0f s\n", c / hz / (ns / 1e9), ns / 1e9 }'
echo "server RSS: $(awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' /proc/$pid/status)"
