//go:build race

package chat

// raceEnabled: the race detector is on (go test -race).
const raceEnabled = true
