package rtmp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// TestNetConnBufferedReads checks a publisher's read path (read-ahead buffer, and on Linux
// raw reads of the socket): every byte in order whatever the sizes asked, the bytes counted,
// io.EOF at the end, and the read deadline reported as a timeout.
func TestNetConnBufferedReads(t *testing.T) {
	for _, buffered := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "buffered"}[buffered], func(t *testing.T) {
			client, server := tcpPair(t)
			s := &Server{}
			nc := &netConn{Conn: server, s: s}
			if buffered {
				nc.bufferReads(1024)
				if runtime.GOOS == "linux" && nc.raw == nil {
					t.Fatal("no raw reader on Linux")
				}
			}
			want := make([]byte, 200_000)
			for i := range want {
				want[i] = byte(rand.IntN(256))
			}
			go func() {
				// Like ffmpeg: many small writes (a chunk header, then 128 bytes).
				for b := want; len(b) > 0; {
					n := min(len(b), 1+rand.IntN(300))
					if _, err := client.Write(b[:n]); err != nil {
						return
					}
					b = b[n:]
				}
				client.(*net.TCPConn).CloseWrite()
			}()
			var got bytes.Buffer
			buf := make([]byte, 4096)
			for {
				n, err := nc.Read(buf[:1+rand.IntN(len(buf))])
				got.Write(buf[:n])
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("read %d bytes, not the %d written", got.Len(), len(want))
			}
			if n := s.bytesIn.Load(); n != uint64(len(want)) {
				t.Fatalf("bytes counted %d, want %d", n, len(want))
			}
			if !errors.Is(nc.readErr, io.EOF) {
				t.Fatalf("readErr %v", nc.readErr)
			}
			if _, err := nc.Read(buf); !errors.Is(err, io.EOF) {
				t.Fatalf("read after EOF: %v", err)
			}
		})
	}
}

func TestNetConnBufferedReadDeadline(t *testing.T) {
	client, server := tcpPair(t)
	nc := &netConn{Conn: server, s: &Server{}}
	nc.bufferReads(1024)
	if _, err := client.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 10)
	if n, err := io.ReadFull(nc, buf[:3]); err != nil || string(buf[:n]) != "abc" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	start := time.Now()
	_, err := nc.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("deadline honoured after %v", d)
	}
	if !errors.As(nc.readErr, &ne) || !ne.Timeout() {
		t.Fatalf("readErr %v", nc.readErr)
	}
	// A timeout is not final: with the deadline moved, reading goes on.
	_ = nc.SetReadDeadline(time.Time{})
	if _, err := client.Write([]byte("de")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(nc, buf[:2]); err != nil || string(buf[:n]) != "de" {
		t.Fatalf("read after a timeout: %q %v", buf[:n], err)
	}
	// A closed socket ends a waiting read.
	done := make(chan error, 1)
	go func() {
		_, err := nc.Read(buf)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	nc.abort()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read on a closed socket succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read not ended by close")
	}
}
