package rtmp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	gortmp "github.com/yutopp/go-rtmp"

	"github.com/relaycast/relaycast/ingest"
	"github.com/relaycast/relaycast/ingest/rtmpguard"
)

// listener is one accept loop (plain RTMP or RTMPS). go-rtmp's Server runs the loop and
// starts one goroutine per connection; listener is the net.Listener it accepts from, so that
// the server registers every connection (to close it and wait for it), sets the handshake
// deadline, and backs off on accept errors (go-rtmp retries them in a busy loop).
type listener struct {
	s     *Server
	inner net.Listener
	proto ingest.Protocol
	srv   *gortmp.Server

	done     chan struct{}
	doneOnce sync.Once
}

func newListener(s *Server, ln net.Listener, proto ingest.Protocol) *listener {
	l := &listener{s: s, inner: ln, proto: proto, done: make(chan struct{})}
	l.srv = gortmp.NewServer(&gortmp.ServerConfig{OnConnect: l.onConnect})
	return l
}

// serve runs the accept loop until close.
func (l *listener) serve() { _ = l.srv.Serve(l) }

// close stops the accept loop. go-rtmp's Close must come first: its Serve treats an
// Accept error as final only once its own Close was called.
func (l *listener) close() {
	_ = l.srv.Close()
	_ = l.Close()
}

// Accept implements net.Listener for go-rtmp's Serve.
func (l *listener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case <-l.done:
				return nil, net.ErrClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				<-l.done // closed under us: wait for close rather than spin
				return nil, net.ErrClosed
			}
			l.s.log.Warn("accept failed", "listener", string(l.proto), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return nil, net.ErrClosed
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		_ = c.SetDeadline(time.Now().Add(l.s.cfg.HandshakeTimeout))
		nc := &netConn{Conn: c, s: l.s, proto: l.proto}
		if !l.s.track(nc) {
			_ = c.Close() // the server is closing; the listener closes next
			continue
		}
		return nc, nil
	}
}

// Close implements net.Listener; go-rtmp calls it when Serve returns.
func (l *listener) Close() error {
	var err error
	l.doneOnce.Do(func() {
		close(l.done)
		err = l.inner.Close()
	})
	return err
}

// Addr implements net.Listener.
func (l *listener) Addr() net.Addr { return l.inner.Addr() }

// onConnect is go-rtmp's per-connection hook, called on the connection's goroutine.
func (l *listener) onConnect(c net.Conn) (io.ReadWriteCloser, *gortmp.ConnConfig) {
	nc := c.(*netConn)
	h := newConn(l.s, nc)
	// The guard ends the connection, not the process, on AMF0 that go-amf0 must not decode.
	return rtmpguard.NewConn(nc), h.rtmpConfig()
}

// netConn is an accepted connection as go-rtmp sees it: it counts the bytes read, bounds
// every write by the write timeout, remembers why reading stopped, and unregisters itself
// when go-rtmp closes it (the last thing go-rtmp's connection goroutine does).
type netConn struct {
	net.Conn
	s     *Server
	proto ingest.Protocol

	// readErr is the first read error; written and read on the connection's goroutine.
	readErr error

	// rbuf[rpos:rend] holds bytes read ahead for go-rtmp (bufferReads); rerr is an error
	// that came with bytes read ahead, returned once they are consumed.
	rbuf       []byte
	rpos, rend int
	rerr       error
	// raw reads the socket once bufferReads was called, when the platform allows
	// (rawread_linux.go); nil otherwise.
	raw *rawReader

	closeOnce sync.Once
}

// publisherReadBuffer is how much a publisher's connection reads from the socket at once.
// go-rtmp reads through a 4 KiB bufio.Reader; a publisher's frames come in bursts of many
// small chunks (ffmpeg: 128-byte chunks, each its own write), so a 4 KiB read often ends
// in the middle of a burst: the larger read takes the burst in one system call. Players
// keep go-rtmp's buffer alone: they send little, and there may be thousands of them.
const publisherReadBuffer = 64 << 10

// bufferReads makes later reads fill a buffer of size n ahead of go-rtmp's. It is called
// on the connection's goroutine, between two of go-rtmp's reads.
func (c *netConn) bufferReads(n int) {
	if c.rbuf == nil {
		c.rbuf = make([]byte, n)
		c.raw = newRawReader(c.Conn)
	}
}

func (c *netConn) Read(b []byte) (int, error) {
	if c.rbuf == nil {
		return c.readConn(b)
	}
	if c.rpos == c.rend {
		if err := c.rerr; err != nil {
			c.rerr = nil
			return 0, err
		}
		n, err := c.readConn(c.rbuf)
		if n == 0 {
			return 0, err
		}
		c.rpos, c.rend, c.rerr = 0, n, err
	}
	n := copy(b, c.rbuf[c.rpos:c.rend])
	c.rpos += n
	return n, nil
}

func (c *netConn) readConn(b []byte) (int, error) {
	var n int
	var err error
	if c.raw != nil {
		n, err = c.raw.Read(b)
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		c.s.bytesIn.Add(uint64(n))
	}
	if err != nil && c.readErr == nil {
		c.readErr = err
	}
	return n, err
}

func (c *netConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	return c.Conn.Write(b)
}

// Close is called by go-rtmp when the connection's goroutine ends.
func (c *netConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		err = c.Conn.Close()
		c.s.forget(c)
	})
	return err
}

// abort closes the socket under go-rtmp (server shutdown): its reads fail and its
// goroutine ends, calling Close. A TLS connection's TCP socket is closed directly: a TLS
// close_notify could wait for a blocked writer.
func (c *netConn) abort() {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		_ = tc.NetConn().Close()
		return
	}
	_ = c.Conn.Close()
}
