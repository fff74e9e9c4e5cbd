#!/usr/bin/env bash
# Measures relays: one 3 Mbps H.264 + AAC RTMP publisher (a pre-encoded clip sent with -c copy)
# to relaycast A, which relays it to relaycast B. Prints the time from ffmpeg's start to the
# relay's first byte sent, and A's CPU (cores) over DURATION seconds with no relay and with
# RELAYS relays, as CPU per relay.
#   bash bench/relay.sh            (DURATION=30, RELAYS=10 by default)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-30}
RELAYS=${RELAYS:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

clip=$work/clip.flv
ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30 \
	-f lavfi -i sine=frequency=440:sample_rate=48000 -t 30 \
	-c:v libx264 -preset veryfast -b:v 3000k -maxrate 3000k -bufsize 6000k -g 60 -bf 0 -pix_fmt yuv420p \
	-c:a aac -b:a 128k -f flv "$clip"

go build -o "$work/relaycast" ./cmd/relaycast
serve() { # name http rtmp
	"$work/relaycast" serve --data-dir "$work/$1" --http-addr "127.0.0.1:$2" --rtmp-addr "127.0.0.1:$3" \
		--rtmps-addr "" --rtsp-addr "" --rtsps-addr "" --webrtc-addr "" --log-level error --api-rate-limit=-1 >/dev/null 2>&1 &
}
login() { # http
	for _ in $(seq 100); do curl -sf "localhost:$1/healthz" >/dev/null && break; sleep 0.1; done
	curl -sf -X POST "localhost:$1/api/setup" -d '{"username":"bench","password":"benchbench"}' >/dev/null
	curl -sf -X POST "localhost:$1/api/token" -d '{"username":"bench","password":"benchbench"}' | sed 's/.*"token":"\([^"]*\)".*/\1/'
}
field() { sed "s/.*\"$1\":\"\{0,1\}\([^\",]*\).*/\1/"; }
serve a 18081 11936
pidA=$!
serve b 18082 11937
tokA=$(login 18081)
tokB=$(login 18082)
A=http://127.0.0.1:18081
B=http://127.0.0.1:18082
st=$(curl -sf -X POST $A/api/streams -H "Authorization: Bearer $tokA" -d '{"title":"source"}')
key=$(echo "$st" | field stream_key)
sid=$(echo "$st" | field id)
addRelays() { # first count
	for i in $(seq "$1" "$2"); do
		k=$(curl -sf -X POST $B/api/streams -H "Authorization: Bearer $tokB" -d "{\"title\":\"r$i\"}" | field stream_key)
		curl -sf -X POST "$A/api/streams/$sid/relays" -H "Authorization: Bearer $tokA" \
			-d "{\"platform\":\"portal\",\"name\":\"r$i\",\"rtmp_url\":\"rtmp://127.0.0.1:11937/live\",\"stream_key\":\"$k\"}" >/dev/null
	done
}
addRelays 1 1

t0=$(date +%s%N)
ffmpeg -hide_banner -loglevel fatal -re -stream_loop -1 -i "$clip" -c copy -f flv "rtmp://127.0.0.1:11936/live/$key" &
until curl -sf "$A/api/streams/$sid/relays" -H "Authorization: Bearer $tokA" | grep -q '"bytes_sent":[1-9]'; do sleep 0.005; done
t1=$(date +%s%N)
echo "publish -> relay's first byte sent: $(( (t1 - t0) / 1000000 )) ms"

ticks() { awk '{print $14 + $15}' /proc/$pidA/stat; }
hz=$(getconf CLK_TCK)
measure() { # label
	sleep 3
	local c0 s0 c1 s1
	c0=$(ticks); s0=$(date +%s%N)
	sleep "$DURATION"
	c1=$(ticks); s1=$(date +%s%N)
	awk -v c=$((c1 - c0)) -v hz="$hz" -v ns=$((s1 - s0)) 'BEGIN { printf "%.5f", c / hz / (ns / 1e9) }'
}
one=$(measure)
addRelays 2 "$RELAYS"
many=$(measure)
live=$(curl -sf "$A/api/streams/$sid/relays" -H "Authorization: Bearer $tokA" | grep -o '"state":"live"' | wc -l)
awk -v a="$one" -v b="$many" -v n="$RELAYS" -v live="$live" 'BEGIN {
	printf "server A CPU: %.4f cores with 1 relay, %.4f cores with %d relays (%d live)\n", a, b, n, live
	printf "CPU per relay of a 3 Mbps stream: %.2f ms per second\n", (b - a) / (n - 1) * 1000 }'
