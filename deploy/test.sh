#!/usr/bin/env bash
# The whole relaycast test suite, as the README gives it: installs the test tools it needs
# when they are missing (ffmpeg/ffprobe, chromium and chromedriver from Debian's packages), checks formatting, vet and
# staticcheck, runs the race detector on the media path (bus, ingest, egress), runs every
# other package's tests (the end-to-end tests drive the real binary with ffmpeg), then gives
# every fuzz target a short run.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${RELAYCAST_FUZZTIME:-5s}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
	echo "== installing $* (Debian packages)"
	as_root apt-get update -qq
	DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v systemd-analyze >/dev/null || missing+=(systemd)   # verifies deploy/systemd
command -v /usr/sbin/sshd >/dev/null || [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
if [ ${#missing[@]} -gt 0 ]; then
	apt_install "${missing[@]}"
fi
command -v go >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl" >&2; exit 1; }

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change: $unformatted" >&2; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

echo "== go test -race (bus, ingest, egress)"
go test -race -count=1 -timeout 10m ./bus/... ./ingest/... ./egress/...

echo "== go test (everything else)"
others=$(go list ./... | grep -v -E '/(bus|ingest|egress)(/|$)')
go test -count=1 -timeout 10m $others

echo "== fuzz targets ($FUZZTIME each)"
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "-- $pkg $fz"
		# Go's fuzzer can end a clean run with a bare "context deadline exceeded" when the
		# time runs out while it minimizes a new input (no failing input written): run again
		# once in that case; a real failure names its failing input.
		for try in 1 2; do
			if go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime 2s "$pkg" >/tmp/relaycast-fuzz.log 2>&1; then
				break
			fi
			if [ "$try" = 1 ] && grep -q 'context deadline exceeded' /tmp/relaycast-fuzz.log &&
				! grep -q 'Failing input written' /tmp/relaycast-fuzz.log; then
				echo "   (fuzzer timed out while minimizing; running it again)"
				continue
			fi
			cat /tmp/relaycast-fuzz.log >&2
			exit 1
		done
	done
done
echo "== all tests passed"
