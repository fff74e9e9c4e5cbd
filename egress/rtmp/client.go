package rtmp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/yutopp/go-amf0"
	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/ingest/rtmpguard"
)

// target is a parsed rtmp:// or rtmps:// URL: rtmp://host[:port]/APP/NAME.
type target struct {
	secure   bool
	addr     string // host:port
	host     string
	app      string
	name     string // stream key or playback id, with its query
	tcURL    string
	redacted string // the URL without its last segment and query, for logs and errors
}

// parseURL splits an RTMP URL into the application (every path segment but the last) and
// the stream name (the last segment, with the query), as ffmpeg and OBS do.
func parseURL(raw string) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w %q", ErrBadURL, RedactURL(raw))
	}
	t := &target{host: u.Hostname()}
	port := u.Port()
	switch u.Scheme {
	case "rtmp":
		if port == "" {
			port = "1935"
		}
	case "rtmps":
		t.secure = true
		if port == "" {
			port = "443"
		}
	default:
		return nil, fmt.Errorf("%w: scheme must be rtmp or rtmps: %q", ErrBadURL, RedactURL(raw))
	}
	if t.host == "" {
		return nil, fmt.Errorf("%w: no host: %q", ErrBadURL, RedactURL(raw))
	}
	t.addr = net.JoinHostPort(t.host, port)
	path := strings.Trim(u.EscapedPath(), "/")
	i := strings.LastIndexByte(path, '/')
	if i <= 0 || i == len(path)-1 {
		return nil, fmt.Errorf("%w: needs an application and a stream name: %q", ErrBadURL, RedactURL(raw))
	}
	t.app, t.name = path[:i], path[i+1:]
	if un, err := url.PathUnescape(t.name); err == nil {
		t.name = un
	}
	if u.RawQuery != "" {
		t.name += "?" + u.RawQuery
	}
	t.tcURL = u.Scheme + "://" + u.Host + "/" + t.app
	t.redacted = RedactURL(raw)
	return t, nil
}

// RedactURL returns an RTMP URL without what may be secret: its last path segment (the
// stream key) and its query, user info included.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndexByte(raw, '/'); i >= 0 {
			return raw[:i+1] + "***"
		}
		return "***"
	}
	p := strings.TrimSuffix(u.EscapedPath(), "/")
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		p = p[:i+1] + "***"
	}
	return u.Scheme + "://" + u.Host + p
}

// readerConfig is the configuration of the go-rtmp chunk streamer a client reads with. It
// is given whole: NewChunkStreamer does not fill in defaults. The acknowledgement window
// is never reached (go-rtmp would send acknowledgements through a writer the client does
// not use): the server sends a client little.
var readerConfig = &gortmp.StreamControlStateConfig{
	DefaultChunkSize:           gortmp.DefaultChunkSize,
	MaxChunkSize:               gortmp.MaxChunkSize,
	MaxChunkStreams:            32,
	DefaultAckWindowSize:       math.MaxInt32,
	MaxAckWindowSize:           math.MaxInt32,
	DefaultBandwidthWindowSize: math.MaxInt32,
	MaxBandwidthWindowSize:     math.MaxInt32,
	MaxMessageSize:             gortmp.MaxChunkSize,
	MaxMessageStreams:          8,
}

// clientConn is the client side of an RTMP connection: our chunk writer for what it sends,
// go-rtmp's chunk streamer (reading only) for what the server sends.
type clientConn struct {
	conn net.Conn
	cs   *gortmp.ChunkStreamer
	t    *target
	src  errReader
	cmsg gortmp.ChunkMessage
	wbuf []byte
	// csOpen: cs was created (and its writer goroutine started).
	csOpen bool

	closeOnce sync.Once
}

// dialClient connects, handshakes, sends connect and createStream and returns the
// connection with its message stream id. ctx bounds the whole setup.
func dialClient(ctx context.Context, d *net.Dialer, t *target, tlsConfig *tls.Config) (c *clientConn, msid uint32, err error) {
	if d == nil {
		d = &net.Dialer{}
	}
	var conn net.Conn
	if t.secure {
		cfg := &tls.Config{}
		if tlsConfig != nil {
			cfg = tlsConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = t.host
		}
		conn, err = (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, "tcp", t.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		return nil, 0, err
	}
	// go-rtmp's handshake and our reads have no context: the deadline and a close on
	// cancellation bound them.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer func() {
		if !stop() || err != nil {
			_ = conn.Close()
			if c != nil {
				c.close()
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			c = nil
		}
	}()
	c = &clientConn{conn: conn, t: t, src: errReader{r: conn}}
	br := bufio.NewReaderSize(&c.src, 16<<10)
	if err := handshake.HandshakeWithServer(br, conn, &handshake.Config{}); err != nil {
		c = nil
		return nil, 0, fmt.Errorf("rtmp handshake: %w", err)
	}
	c.cs = gortmp.NewChunkStreamer(br, io.Discard, readerConfig)
	c.csOpen = true
	c.wbuf = appendSetChunkSize(c.wbuf[:0])
	c.wbuf = appendCommand(c.wbuf, csidCommand, 0, "connect", 1, map[string]any{
		"app": t.app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; relaycast)",
		"tcUrl": t.tcURL,
	})
	if err := c.send(); err != nil {
		return c, 0, err
	}
	if _, err := c.await(1, ""); err != nil {
		return c, 0, err
	}
	c.wbuf = appendCommand(c.wbuf[:0], csidCommand, 0, "createStream", 4, nil)
	if err := c.send(); err != nil {
		return c, 0, err
	}
	args, err := c.await(4, "")
	if err != nil {
		return c, 0, err
	}
	id, ok := args[len(args)-1].(float64)
	if !ok || id < 1 || id > 1<<20 {
		return c, 0, fmt.Errorf("%w: createStream result %v", ErrProtocol, args)
	}
	return c, uint32(id), nil
}

func (c *clientConn) send() error {
	_, err := c.conn.Write(c.wbuf)
	return err
}

// await reads messages until the _result of transaction txn (returning its arguments), or,
// with status set, until an onStatus whose code has that prefix. An _error or an onStatus
// of level error fails with ErrRejected.
func (c *clientConn) await(txn float64, status string) ([]any, error) {
	for {
		msg, err := c.read()
		if err != nil {
			return nil, err
		}
		cmd, ok := msg.(*message.CommandMessage)
		if !ok {
			if err := c.control(msg); err != nil {
				return nil, err
			}
			continue
		}
		args := DecodeCommandArgs(cmd.Body)
		switch cmd.CommandName {
		case "_result":
			if status == "" && float64(cmd.TransactionID) == txn {
				return args, nil
			}
		case "_error":
			if float64(cmd.TransactionID) == txn {
				return nil, fmt.Errorf("%w: %s", ErrRejected, describe(args))
			}
		case "onStatus":
			info := infoObject(args)
			code, _ := info["code"].(string)
			if level, _ := info["level"].(string); level == "error" {
				return nil, fmt.Errorf("%w: %s", ErrRejected, describe(args))
			}
			if status != "" && strings.HasPrefix(code, status) {
				return args, nil
			}
		}
	}
}

// read returns the next message from the server. A message go-rtmp cannot decode (ffmpeg's
// server sends onFCPublish without a transaction id) is skipped: the chunk stream is intact.
// go-rtmp's reader panics on some malformed input: that is a protocol error of this
// connection, not a crash.
func (c *clientConn) read() (msg message.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrProtocol, r)
		}
	}()
	for skipped := 0; ; skipped++ {
		_, _, err := c.cs.Read(&c.cmsg)
		if err == nil {
			return c.cmsg.Message, nil
		}
		if c.src.err != nil {
			return nil, c.src.err
		}
		if skipped == 100 {
			return nil, fmt.Errorf("%w: %v", ErrProtocol, err)
		}
	}
}

// errReader remembers the error of the connection's reads, to tell a broken connection
// from a message go-rtmp could not decode.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// control handles the server's protocol control messages: its chunk size, and pings.
func (c *clientConn) control(msg message.Message) error {
	switch m := msg.(type) {
	case *message.SetChunkSize:
		if m.ChunkSize < 1 || m.ChunkSize > 1<<24 {
			return fmt.Errorf("%w: chunk size %d", ErrProtocol, m.ChunkSize)
		}
		return c.cs.PeerState().SetChunkSize(m.ChunkSize)
	case *message.UserCtrl:
		if p, ok := m.Event.(*message.UserCtrlEventPingRequest); ok {
			return c.pong(p.Timestamp)
		}
	}
	return nil
}

// pong answers a ping request. Only the setup and the Publisher's reader call it; the
// Publisher serializes it with its media writes.
func (c *clientConn) pong(ts uint32) error {
	b := appendUserControl(nil, eventPingResponse, ts)
	_, err := c.conn.Write(b)
	return err
}

// close closes the connection and stops go-rtmp's streamer (once: its Close panics the
// second time).
func (c *clientConn) close() {
	c.closeOnce.Do(func() {
		_ = c.conn.Close()
		if c.csOpen {
			_ = c.cs.Close()
		}
	})
}

// DecodeCommandArgs decodes the AMF0 values of a command body (after its name and
// transaction id), at most 8. A body rtmpguard.CheckAMF0 refuses has no values: go-amf0 could allocate 32 GiB for a
// few bytes of it, a fatal error, and the server at the other end is not trusted.
func DecodeCommandArgs(r io.Reader) (args []any) {
	defer func() { _ = recover() }() // go-amf0 decodes through reflection
	b, err := io.ReadAll(r)
	if err != nil || rtmpguard.CheckAMF0(b) != nil {
		return nil
	}
	dec := amf0.NewDecoder(bytes.NewReader(b))
	for len(args) < 8 {
		var v any
		if err := dec.Decode(&v); err != nil {
			break
		}
		args = append(args, v)
	}
	return args
}

// infoObject returns the first object among args (an onStatus or _error information).
func infoObject(args []any) map[string]any {
	for _, a := range args {
		switch m := a.(type) {
		case map[string]any:
			return m
		case amf0.ECMAArray:
			return m
		}
	}
	return nil
}

// describe formats a status for an error: code and description, bounded.
func describe(args []any) string {
	info := infoObject(args)
	code, _ := info["code"].(string)
	desc, _ := info["description"].(string)
	s := strings.TrimSpace(code + " " + desc)
	if s == "" {
		s = "no description"
	}
	return truncate(s, 200)
}

// deadlineFor returns the dial timeout's deadline unless ctx has an earlier one.
func deadlineFor(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}
