//go:build !linux

package rtmp

import "net"

// rawReader is Linux-only (rawread_linux.go); elsewhere connections read through net.Conn.
type rawReader struct{}

func newRawReader(net.Conn) *rawReader { return nil }

func (*rawReader) Read([]byte) (int, error) { panic("unreachable") }
