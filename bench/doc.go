// Package bench holds relaycast's benchmark suites that run the real binary and measure it
// from outside (server CPU from /proc, time to first frame). Run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./bench
//
// They need ffmpeg and Linux's /proc. Unit-level benchmarks live beside their packages
// (bus.BenchmarkFanout, egress/rtmp.BenchmarkFanout).
package bench
