package rtmp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	gortmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// errPlayEnded ends a connection whose player the Player has finished serving.
var errPlayEnded = errors.New("rtmp: play ended")

// appName is the RTMP application publishers connect to: rtmp://host/live/KEY.
const appName = "live"

// go-rtmp limits per connection. A client can make the server buffer up to one message
// (at most 16 MiB, RTMP's 24-bit length) per chunk stream; publishers use fewer than ten
// chunk streams and one message stream.
const (
	maxChunkStreams   = 16
	maxMessageStreams = 8
	// maxScratch is the largest message buffer a connection keeps between messages.
	maxScratch = 4 << 20
)

// conn is one RTMP connection: go-rtmp's handler, called on the connection's goroutine.
type conn struct {
	gortmp.DefaultHandler

	s      *Server
	nc     *netConn
	log    *slog.Logger
	opened time.Time

	app       string
	redacted  string // the stream key as it may be logged
	grant     ingest.Grant
	granted   bool
	admitted  bool // counted in Server.publishers
	refused   bool // the refusal was logged already
	playing   bool // handed to the Player
	playErr   error
	sess      *session
	buf       bytes.Buffer
	refreshed time.Time // when the read deadline was last pushed back

	// failure is the first reason the server ended the connection (handler error).
	failure error
	// libErr is the last error go-rtmp logged (protocol errors: bad chunks, bad commands).
	libErr atomic.Pointer[string]
}

func newConn(s *Server, nc *netConn) *conn {
	return &conn{
		s:      s,
		nc:     nc,
		opened: time.Now(),
		log:    s.log.With("proto", string(nc.proto), "remote", nc.RemoteAddr().String()),
	}
}

// rtmpConfig is the go-rtmp configuration of the connection. go-rtmp's log lines go to a
// discarding logger whose error lines are kept as the connection's close reason.
func (c *conn) rtmpConfig() *gortmp.ConnConfig {
	l := logrus.New()
	l.Out = io.Discard
	l.Level = logrus.ErrorLevel
	l.AddHook(errHook{c})
	return &gortmp.ConnConfig{
		Handler: c,
		ControlState: gortmp.StreamControlStateConfig{
			DefaultBandwidthWindowSize: 6 * 1024 * 1024 / 8,
			MaxChunkStreams:            maxChunkStreams,
			MaxMessageStreams:          maxMessageStreams,
		},
		Logger: l,
	}
}

// errHook keeps go-rtmp's error log lines (without their stack traces).
type errHook struct{ c *conn }

func (errHook) Levels() []logrus.Level { return []logrus.Level{logrus.ErrorLevel} }

func (h errHook) Fire(e *logrus.Entry) error {
	msg := strings.TrimPrefix(e.Message, "Server closed by error: Err = ")
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 200 {
		msg = msg[:200]
	}
	h.c.libErr.Store(&msg)
	return nil
}

// OnConnect checks the application name.
func (c *conn) OnConnect(_ uint32, cmd *message.NetConnectionConnect) (err error) {
	defer c.recoverPanic(&err)
	c.app = cmd.Command.App
	app := trimPath(cmd.Command.App)
	if app != appName && !strings.HasPrefix(app, appName+"/") {
		// Only the first path segment: the rest may be a key.
		first, _, _ := strings.Cut(app, "/")
		return c.refuse("unknown application", "app", truncate(first, 64))
	}
	return nil
}

// OnPublish admits or refuses a publisher: plain RTMP allowed, key authorized, stream not
// already live. A refusal makes go-rtmp answer NetStream.Publish.Failed and close.
func (c *conn) OnPublish(_ *gortmp.StreamContext, _ uint32, cmd *message.NetStreamPublish) (err error) {
	defer c.recoverPanic(&err)
	if c.sess != nil || c.granted {
		return c.refuse("second publish on one connection")
	}
	if c.nc.proto == ingest.ProtocolRTMP && !c.s.cfg.PlainEnabled {
		return c.refuse("plain RTMP is disabled: publish over RTMPS")
	}
	key, ok := streamKey(c.app, cmd.PublishingName)
	if !ok {
		return c.refuse("no stream key in the publish URL")
	}
	c.redacted = ingest.RedactKey(key)
	ctx, cancel := context.WithTimeout(c.s.ctx, c.s.cfg.HandshakeTimeout)
	grant, err := c.s.cfg.Auth.Authorize(ctx, ingest.Request{
		Protocol: c.nc.proto, Key: key, RemoteAddr: c.nc.RemoteAddr().String(),
	})
	cancel()
	if err != nil {
		return c.refuse("not authorized", "key", c.redacted, "err", err)
	}
	c.grant, c.granted = grant, true
	// The stream is taken if this server admitted a publisher for it (which may still be
	// waiting for its tracks) or another ingest publishes it; a race with the latter ends
	// in bus.ErrBusy when the session publishes.
	if st := c.s.cfg.Hub.Stream(grant.StreamID); (st != nil && st.State() == bus.StateLive) ||
		!c.s.reserve(grant.StreamID) {
		return c.refuse("stream already has a publisher", "stream", grant.StreamID, "key", c.redacted)
	}
	now := time.Now()
	c.log = c.log.With("stream", grant.StreamID)
	c.sess = newSession(c.s.cfg.Hub, grant.StreamID, c.log, c.s.cfg.TrackWait, now)
	c.admitted = true
	c.s.publishers.Add(1)
	// The handshake deadline ends here; from now on only media keeps the connection open.
	_ = c.nc.SetReadDeadline(now.Add(c.s.cfg.IdleTimeout))
	c.nc.bufferReads(publisherReadBuffer)
	c.refreshed = now
	c.log.Info("publishing", "name", grant.Name, "key", c.redacted,
		"setup", now.Sub(c.opened).Round(time.Millisecond))
	return nil
}

// OnPlay hands a player to Config.Player (refused without one). The Player serves the
// connection until the viewer leaves; then the connection closes.
func (c *conn) OnPlay(sc *gortmp.StreamContext, _ uint32, cmd *message.NetStreamPlay) (err error) {
	defer c.recoverPanic(&err)
	p := c.s.cfg.Player
	if p == nil {
		return c.refuse("play is not served on this listener")
	}
	if c.sess != nil || c.granted || c.playing {
		return c.refuse("play on a connection that publishes or plays already")
	}
	name, query := splitQuery(cmd.StreamName)
	app, appQuery := splitQuery(c.app)
	if query == "" {
		query = appQuery
	}
	if name == "" && strings.HasPrefix(app, appName+"/") {
		name = app[len(appName)+1:] // "live/ID" as the application, empty play name
	}
	if name == "" || strings.ContainsAny(name, "/ \t\r\n") || len(name) > 512 {
		return c.refuse("no playback id in the play URL")
	}
	c.playing = true
	c.s.players.Add(1)
	defer c.s.players.Add(-1)
	// The handshake deadline covered the setup; the Player sets its own from here.
	_ = c.nc.Conn.SetDeadline(time.Time{})
	// The Player writes to the socket itself (unwrapped: writev on TCP); go-rtmp's writer is
	// idle by now (its last message, createStream's result, was answered by this play).
	perr := p.Play(c.s.ctx, PlayRequest{
		App: app, Name: name, Query: query, RemoteAddr: c.nc.RemoteAddr().String(),
		Secure: c.nc.proto == ingest.ProtocolRTMPS, StreamID: sc.StreamID,
	}, c.nc.Conn)
	c.playErr = perr
	// Close the socket before go-rtmp answers the play command: its reply and its read
	// loop fail at once, which ends the connection.
	c.nc.abort()
	return errPlayEnded
}

// OnSetDataFrame takes the stream's metadata hints.
func (c *conn) OnSetDataFrame(_ uint32, data *message.NetStreamSetDataFrame) (err error) {
	defer c.recoverPanic(&err)
	if c.sess != nil {
		c.sess.onMetadata(data.Payload)
	}
	return nil
}

// OnAudio is the per-packet path for audio.
func (c *conn) OnAudio(ts uint32, payload io.Reader) (err error) {
	defer c.recoverPanic(&err)
	if c.sess == nil {
		return nil
	}
	b, now, err := c.read(payload)
	if err == nil {
		err = c.sess.onAudio(ts, b, now)
	}
	return c.fail(err)
}

// OnVideo is the per-packet path for video.
func (c *conn) OnVideo(ts uint32, payload io.Reader) (err error) {
	defer c.recoverPanic(&err)
	if c.sess == nil {
		return nil
	}
	b, now, err := c.read(payload)
	if err == nil {
		err = c.sess.onVideo(ts, b, now)
	}
	return c.fail(err)
}

// read copies a message body into the connection's reusable buffer (go-rtmp's reader has
// no length nor byte access) and pushes the idle deadline back, at most once a second.
func (c *conn) read(payload io.Reader) ([]byte, time.Time, error) {
	now := time.Now()
	if now.Sub(c.refreshed) >= time.Second {
		_ = c.nc.SetReadDeadline(now.Add(c.s.cfg.IdleTimeout))
		c.refreshed = now
	}
	if c.buf.Cap() > maxScratch {
		c.buf = bytes.Buffer{}
	}
	c.buf.Reset()
	if _, err := c.buf.ReadFrom(payload); err != nil {
		return nil, now, err
	}
	return c.buf.Bytes(), now, nil
}

// OnClose ends the publishing and releases the grant; go-rtmp calls it once.
func (c *conn) OnClose() {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("panic closing rtmp connection", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if c.sess != nil {
		c.sess.close()
	}
	if c.admitted {
		c.s.publishers.Add(-1)
		c.s.unreserve(c.grant.StreamID)
	}
	if c.granted {
		c.granted = false
		c.s.cfg.Auth.Release(c.grant)
	}
	reason, abnormal := c.closeReason()
	switch {
	case c.playing:
		c.log.Debug("player connection closed", "err", c.playErr)
	case c.refused:
		// logged when refused
	case c.admitted:
		level := slog.LevelInfo
		if abnormal {
			level = slog.LevelWarn
		}
		c.log.Log(context.Background(), level, "publisher stopped", "reason", reason,
			"duration", time.Since(c.opened).Round(time.Millisecond))
	case abnormal:
		c.log.Warn("connection closed", "reason", reason)
	default:
		c.log.Debug("connection closed", "reason", reason)
	}
}

// closeReason says why the connection ended, and whether that was abnormal.
func (c *conn) closeReason() (string, bool) {
	if c.failure != nil {
		return c.failure.Error(), true
	}
	select {
	case <-c.s.ctx.Done():
		return "server shutting down", false
	default:
	}
	err := c.nc.readErr
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return "closed by client", false
	case errors.As(err, &ne) && ne.Timeout():
		if c.sess != nil {
			return fmt.Sprintf("no media for %s", c.s.cfg.IdleTimeout), true
		}
		return fmt.Sprintf("handshake not finished within %s", c.s.cfg.HandshakeTimeout), true
	}
	if p := c.libErr.Load(); p != nil {
		return "rtmp protocol error: " + *p, true
	}
	if err != nil {
		return err.Error(), true
	}
	return "closed", false
}

// refuse logs why a request was refused (once) and returns the error that makes go-rtmp
// answer with an error status and close the connection.
func (c *conn) refuse(why string, attrs ...any) error {
	c.refused = true
	c.s.refused.Add(1)
	c.log.Warn("refused: "+why, attrs...)
	return ErrRefused
}

// fail records the first error that ends the connection. A bus refusal (another publisher
// won the race for the stream) is logged as a refusal.
func (c *conn) fail(err error) error {
	if err == nil {
		return nil
	}
	if c.failure == nil {
		c.failure = err
		if errors.Is(err, bus.ErrBusy) {
			c.refuse("stream already has a publisher", "key", c.redacted)
		}
	}
	return err
}

// recoverPanic is the last line of defence: a bug in the conversion of network input
// closes the connection, not the process.
func (c *conn) recoverPanic(err *error) {
	if r := recover(); r != nil {
		c.log.Error("panic in rtmp connection", "panic", r, "stack", string(debug.Stack()))
		*err = fmt.Errorf("internal error: %v", r)
		if c.failure == nil {
			c.failure = *err
		}
	}
}

// streamKey finds the stream key in the application and the publishing name: OBS and
// ffmpeg send app "live" and the key as the name; some clients put the key in the
// application path ("live/KEY") with an empty name. Query strings are dropped.
func streamKey(app, name string) (string, bool) {
	app, name = trimPath(app), trimPath(name)
	if name == "" && strings.HasPrefix(app, appName+"/") {
		name = app[len(appName)+1:]
	}
	if name == "" || strings.ContainsAny(name, "/ \t\r\n") || len(name) > 512 {
		return "", false
	}
	return name, true
}

// trimPath drops a "?query" and surrounding slashes.
func trimPath(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return strings.Trim(s, "/")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
