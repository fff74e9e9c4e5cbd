package rtmp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
)

// Publisher defaults.
const (
	// DefaultDialTimeout bounds Dial when ctx has no earlier deadline.
	DefaultDialTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds each Publisher write.
	DefaultWriteTimeout = 10 * time.Second
)

// Publisher pushes a bus stream to an RTMP or RTMPS server (Twitch, YouTube, another
// relaycast...): the relay's client. Dial sets the connection up; WriteUnit sends units as
// FLV tags (a Muxer with timestamps starting at 0). A goroutine reads what the server sends,
// answers its pings and notices when it ends the session (Done, Err). WriteUnit and Close
// may be called from different goroutines; WriteUnit from one at a time.
type Publisher struct {
	c            *clientConn
	mux          *Muxer
	writeTimeout atomic.Int64

	wmu  sync.Mutex // serializes writes to the socket (units, pongs)
	buf  []byte
	sent atomic.Uint64

	done      chan struct{} // closed when the reader ends
	errMu     sync.Mutex
	err       error
	closeOnce sync.Once
}

// Dial connects to rawURL (rtmp://host[:port]/app/KEY or rtmps://..., default ports 1935
// and 443), sends connect, createStream and publish, and waits for the server to accept
// the publish (NetStream.Publish.Start). A refusal (wrong application or key) fails with
// ErrRejected and the server's status; errors never contain the stream key. tlsConfig is
// for rtmps (nil: system roots, server name from the URL). ctx bounds the setup
// (DefaultDialTimeout when it has no deadline).
func Dial(ctx context.Context, rawURL string, tlsConfig *tls.Config) (*Publisher, error) {
	return DialWith(ctx, rawURL, DialOptions{TLSConfig: tlsConfig})
}

// DialOptions are the options of DialWith.
type DialOptions struct {
	// TLSConfig is for rtmps (nil: system roots, server name from the URL).
	TLSConfig *tls.Config
	// Dialer makes the TCP connection (nil: a zero net.Dialer).
	Dialer *net.Dialer
	// SendBuffer, when positive, sets the socket's send buffer (SO_SNDBUF) after the
	// publish was accepted: it bounds how much the kernel holds for a slow server, so that
	// writes block (and a bus reader falls behind and skips) sooner. 0 keeps the kernel's
	// automatic sizing.
	SendBuffer int
}

// DialWith is Dial with options.
func DialWith(ctx context.Context, rawURL string, opts DialOptions) (*Publisher, error) {
	tlsConfig := opts.TLSConfig
	t, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	ctx, cancel := deadlineFor(ctx, DefaultDialTimeout)
	defer cancel()
	c, msid, err := dialClient(ctx, opts.Dialer, t, tlsConfig)
	if err == nil {
		stop := context.AfterFunc(ctx, func() { _ = c.conn.Close() })
		err = c.publish(ctx, msid)
		if !stop() && err == nil {
			err = ctx.Err()
		}
	}
	if err != nil {
		if c != nil {
			c.close()
		}
		return nil, fmt.Errorf("rtmp publish to %s: %w", t.redacted, scrub(err, t.name))
	}
	_ = c.conn.SetDeadline(time.Time{})
	if opts.SendBuffer > 0 {
		raw := c.conn
		if tc, ok := raw.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetWriteBuffer(opts.SendBuffer)
		}
	}
	p := &Publisher{c: c, mux: NewMuxer(msid, true, true), done: make(chan struct{})}
	p.writeTimeout.Store(int64(DefaultWriteTimeout))
	go p.readLoop()
	return p, nil
}

// publish sends releaseStream, FCPublish and publish and waits for NetStream.Publish.Start.
func (c *clientConn) publish(ctx context.Context, msid uint32) error {
	name := c.t.name
	c.wbuf = appendCommand(c.wbuf[:0], csidCommand, 0, "releaseStream", 2, nil, name)
	c.wbuf = appendCommand(c.wbuf, csidCommand, 0, "FCPublish", 3, nil, name)
	c.wbuf = appendCommand(c.wbuf, csidData, msid, "publish", 5, nil, name, "live")
	if err := c.send(); err != nil {
		return err
	}
	_, err := c.await(-1, string(message.NetStreamOnStatusCodePublishStart))
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// scrub removes the stream key from an error's text (a server may echo it).
func scrub(err error, key string) error {
	if name, _, _ := strings.Cut(key, "?"); len(name) >= 4 && strings.Contains(err.Error(), name) {
		return fmt.Errorf("%w (%s)", errors.Unwrap(err), strings.ReplaceAll(err.Error(), name, "***"))
	}
	return err
}

// SetWriteTimeout changes how long a write may block before the Publisher fails
// (DefaultWriteTimeout).
func (p *Publisher) SetWriteTimeout(d time.Duration) { p.writeTimeout.Store(int64(d)) }

// SetTracks announces the stream's tracks before the first unit (see Muxer.SetTracks).
func (p *Publisher) SetTracks(ts []*bus.Track) {
	p.wmu.Lock()
	p.mux.SetTracks(ts)
	p.wmu.Unlock()
}

// WriteUnit sends u (with the metadata and sequence headers before the first unit and on a
// track change). The first unit should be a keyframe (a bus reader's default start). It
// returns the Publisher's error once the connection failed or was closed.
func (p *Publisher) WriteUnit(u *bus.Unit) error {
	if err := p.Err(); err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.buf = p.mux.AppendUnit(p.buf[:0], u)
	if len(p.buf) == 0 {
		return nil
	}
	_ = p.c.conn.SetWriteDeadline(time.Now().Add(time.Duration(p.writeTimeout.Load())))
	n, err := p.c.conn.Write(p.buf)
	p.sent.Add(uint64(n))
	if cap(p.buf) > 4<<20 {
		p.buf = nil
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("rtmp publish to %s: server took no data for %s", p.c.t.redacted,
				time.Duration(p.writeTimeout.Load()))
		} else {
			err = fmt.Errorf("rtmp publish to %s: %w", p.c.t.redacted, err)
		}
		p.fail(err)
		return p.Err()
	}
	return nil
}

// BytesSent returns the bytes written to the server since Dial returned.
func (p *Publisher) BytesSent() uint64 { return p.sent.Load() }

// Done is closed when the connection ended (server closed it, refused the stream, error,
// or Close).
func (p *Publisher) Done() <-chan struct{} { return p.done }

// Err returns why the connection ended, or nil while it is up.
func (p *Publisher) Err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

func (p *Publisher) fail(err error) {
	p.errMu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.errMu.Unlock()
	_ = p.c.conn.Close()
}

// readLoop reads the server's messages: it answers pings, ends the Publisher on an error
// status (the server dropped the stream) and when the connection ends.
func (p *Publisher) readLoop() {
	defer close(p.done)
	for {
		msg, err := p.c.read()
		if err != nil {
			p.fail(fmt.Errorf("rtmp publish to %s: connection ended: %w", p.c.t.redacted, err))
			return
		}
		switch m := msg.(type) {
		case *message.CommandMessage:
			if m.CommandName != "onStatus" {
				continue
			}
			args := DecodeCommandArgs(m.Body)
			if level, _ := infoObject(args)["level"].(string); level == "error" {
				p.fail(fmt.Errorf("rtmp publish to %s: %w: %s", p.c.t.redacted, ErrRejected,
					scrubText(describe(args), p.c.t.name)))
				return
			}
		case *message.UserCtrl:
			if ping, ok := m.Event.(*message.UserCtrlEventPingRequest); ok {
				p.wmu.Lock()
				_ = p.c.conn.SetWriteDeadline(time.Now().Add(time.Duration(p.writeTimeout.Load())))
				err := p.c.pong(ping.Timestamp)
				p.wmu.Unlock()
				if err != nil {
					p.fail(fmt.Errorf("rtmp publish to %s: %w", p.c.t.redacted, err))
					return
				}
			}
		default:
			if err := p.c.control(msg); err != nil {
				p.fail(fmt.Errorf("rtmp publish to %s: %w", p.c.t.redacted, err))
				return
			}
		}
	}
}

func scrubText(s, key string) string {
	if name, _, _ := strings.Cut(key, "?"); len(name) >= 4 {
		return strings.ReplaceAll(s, name, "***")
	}
	return s
}

// Close ends the publish (FCUnpublish and deleteStream, best effort within a second, not
// when a write is blocked), closes the connection and waits for the reader goroutine. It
// is safe to call twice and from another goroutine than WriteUnit's.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		// Say goodbye unless a write is stuck (then the close below unblocks it).
		if p.Err() == nil && p.wmu.TryLock() {
			b := appendCommand(nil, csidCommand, 0, "FCUnpublish", 6, nil, p.c.t.name)
			b = appendCommand(b, csidCommand, 0, "deleteStream", 7, nil, float64(p.mux.msid))
			_ = p.c.conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = p.c.conn.Write(b)
			p.wmu.Unlock()
		}
		p.fail(ErrClosed)
		<-p.done
		p.c.close()
	})
	return nil
}
