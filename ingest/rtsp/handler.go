package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"

	"github.com/relaycast/relaycast/bus"
	"github.com/relaycast/relaycast/ingest"
)

// pathPrefix is the first path segment of every publish and play URL.
const pathPrefix = "live/"

// handler is the gortsplib handler of one listener (RTSP or RTSPS). gortsplib calls it from
// its connection and session goroutines.
type handler struct {
	s     *Server
	proto ingest.Protocol
	gs    *gortsplib.Server
	log   *slog.Logger

	// unusedUDP holds the pre-bound UDP sockets until gortsplib takes them (bindUDP).
	unusedUDP map[string]net.PacketConn

	mu       sync.Mutex
	sessions map[*gortsplib.ServerSession]*session
	// playing holds the readers whose PLAY is being answered, by connection: the Player
	// learns about them in OnResponse, once gortsplib has made the session active.
	playing map[*gortsplib.ServerConn]*readSession
}

// session is relaycast's state of one gortsplib session: a publisher or a reader.
type session struct {
	pub  *pubSession
	read *readSession
}

// readSession is one reader's hold on a Player stream.
type readSession struct {
	path    string
	st      *gortsplib.ServerStream
	release func()
	// playing is set when the PLAY was accepted; stop once the Player knows of it.
	playing bool
	stop    func()
}

func newHandler(s *Server, proto ingest.Protocol) *handler {
	h := &handler{
		s:        s,
		proto:    proto,
		log:      s.log.With("protocol", string(proto)),
		sessions: make(map[*gortsplib.ServerSession]*session),
		playing:  make(map[*gortsplib.ServerConn]*readSession),
	}
	h.gs = &gortsplib.Server{
		Handler:     h,
		ReadTimeout: s.cfg.ReadTimeout,
		// A new reader gets the stream's cached GOP at once: the per-session queue must
		// hold a few seconds of a high-bitrate stream (gortsplib's default is 256 packets).
		WriteQueueSize: 4096,
	}
	return h
}

func (h *handler) start() error {
	err := h.gs.Start()
	if err != nil {
		for _, pc := range h.unusedUDP {
			pc.Close()
		}
	}
	h.unusedUDP = nil
	return err
}

// OnConnClose forgets a connection's pending PLAY.
func (h *handler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	h.mu.Lock()
	delete(h.playing, ctx.Conn)
	h.mu.Unlock()
}

// OnSessionClose ends a publisher (Publisher.Close, Auth.Release) or a reader's hold.
func (h *handler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	defer h.recoverPanic("session close")
	h.mu.Lock()
	sess := h.sessions[ctx.Session]
	delete(h.sessions, ctx.Session)
	var stop, release func()
	if sess != nil && sess.read != nil {
		stop, release = sess.read.stop, sess.read.release
		sess.read.stop, sess.read.release = nil, nil
	}
	h.mu.Unlock()
	if sess == nil {
		return
	}
	if stop != nil {
		stop()
		h.s.readers.Add(-1)
	}
	if release != nil {
		release()
	}
	if sess.pub != nil {
		sess.pub.close(ctx.Error)
	}
}

// OnDescribe hands a reader's DESCRIBE to the Player.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (
	res *base.Response, _ *gortsplib.ServerStream, err error,
) {
	defer h.recoverResponse(&res, &err, "describe")
	path, ok := livePath(ctx.Path)
	if !ok || h.s.cfg.Player == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, errNotFound
	}
	st, release, status, err := h.open(ctx.Conn, path, ctx.Query)
	if err != nil {
		return &base.Response{StatusCode: status}, nil, err
	}
	// The Player keeps the stream open a while after the last release: long enough for
	// the SETUP that follows, which takes its own hold.
	release()
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

var errNotFound = errors.New("not found")

// open calls the Player and maps its refusal to an RTSP status.
func (h *handler) open(sc *gortsplib.ServerConn, path, query string) (
	*gortsplib.ServerStream, func(), base.StatusCode, error,
) {
	ctx, cancel := context.WithTimeout(h.s.ctx, h.s.cfg.RequestTimeout)
	defer cancel()
	st, release, err := h.s.cfg.Player.Open(ctx, h.gs, path, query, remote(sc))
	if err != nil {
		status := base.StatusInternalServerError
		var sc interface{ StatusCode() base.StatusCode }
		if errors.As(err, &sc) {
			status = sc.StatusCode()
		} else if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			status = base.StatusServiceUnavailable
		}
		h.s.refused.Add(1)
		h.log.Debug("read refused", "path", truncate(path, 80), "status", int(status), "err", err)
		return nil, nil, status, err
	}
	return st, release, base.StatusOK, nil
}

// OnAnnounce admits or refuses a publisher.
func (h *handler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (res *base.Response, err error) {
	defer h.recoverResponse(&res, &err, "announce")
	key, ok := livePath(ctx.Path)
	if !ok || key == "" || strings.ContainsAny(key, "/ \t\r\n") || len(key) > 512 {
		h.refuse("no stream key in the publish URL", "path", truncate(ctx.Path, 64))
		return &base.Response{StatusCode: base.StatusNotFound}, errNotFound
	}
	redacted := ingest.RedactKey(key)
	actx, cancel := context.WithTimeout(h.s.ctx, h.s.cfg.RequestTimeout)
	grant, err := h.s.cfg.Auth.Authorize(actx, ingest.Request{Protocol: h.proto, Key: key, RemoteAddr: remote(ctx.Conn)})
	cancel()
	if err != nil {
		status := base.StatusUnauthorized
		if errors.Is(err, ingest.ErrForbidden) {
			status = base.StatusForbidden
		} else if !errors.Is(err, ingest.ErrUnauthorized) {
			status = base.StatusServiceUnavailable
		}
		h.refuse("not authorized", "key", redacted, "err", err)
		return &base.Response{StatusCode: status}, err
	}
	if st := h.s.cfg.Hub.Stream(grant.StreamID); st != nil && st.State() == bus.StateLive {
		h.s.cfg.Auth.Release(grant)
		h.refuse("stream already has a publisher", "stream", grant.StreamID, "key", redacted)
		return &base.Response{StatusCode: statusConflict}, bus.ErrBusy
	}
	log := h.log.With("stream", grant.StreamID, "remote", remote(ctx.Conn))
	p, err := newPubSession(h, ctx.Session, ctx.Description, grant, redacted, log)
	if err != nil {
		h.s.cfg.Auth.Release(grant)
		h.refuse("unsupported stream", "stream", grant.StreamID, "key", redacted, "err", err)
		return &base.Response{StatusCode: base.StatusUnsupportedMediaType}, err
	}
	h.mu.Lock()
	h.sessions[ctx.Session] = &session{pub: p}
	h.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// statusConflict answers a publisher whose stream already has one (RTSP 2.0 keeps HTTP's
// 409; RTSP 1.0 clients print the code and give up, which is what we want).
const statusConflict base.StatusCode = 409

// OnSetup accepts a publisher's SETUP and hands a reader's to the Player.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (
	res *base.Response, _ *gortsplib.ServerStream, err error,
) {
	defer h.recoverResponse(&res, &err, "setup")
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	path, ok := livePath(ctx.Path)
	if !ok || h.s.cfg.Player == nil {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, errNotFound
	}
	h.mu.Lock()
	sess := h.sessions[ctx.Session]
	h.mu.Unlock()
	if sess != nil && sess.read != nil {
		// SETUP of the next media of the same session.
		if sess.read.path != path {
			return &base.Response{StatusCode: base.StatusBadRequest}, nil, errors.New("path changed between SETUPs")
		}
		return &base.Response{StatusCode: base.StatusOK}, sess.read.st, nil
	}
	st, release, status, err := h.open(ctx.Conn, path, ctx.Query)
	if err != nil {
		return &base.Response{StatusCode: status}, nil, err
	}
	h.mu.Lock()
	h.sessions[ctx.Session] = &session{read: &readSession{path: path, st: st, release: release}}
	h.mu.Unlock()
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay notes the reader; the Player hears of it in OnResponse.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sess := h.sessions[ctx.Session]
	if sess == nil || sess.read == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("PLAY without SETUP")
	}
	if !sess.read.playing {
		h.playing[ctx.Conn] = sess.read
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnResponse runs on the connection's goroutine after the session handled the request. For
// an accepted PLAY, gortsplib has by then made the session a reader of its stream, so the
// Player can start writing and the reader misses nothing (the cached keyframe first).
func (h *handler) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	h.mu.Lock()
	rs := h.playing[sc]
	if rs == nil {
		h.mu.Unlock()
		return
	}
	delete(h.playing, sc)
	if res.StatusCode != base.StatusOK || rs.playing || rs.release == nil {
		h.mu.Unlock()
		return
	}
	rs.playing = true
	h.mu.Unlock()
	stop := h.s.cfg.Player.Play(rs.st)
	h.s.readers.Add(1)
	h.mu.Lock()
	if rs.release == nil {
		// The session closed meanwhile.
		h.mu.Unlock()
		stop()
		h.s.readers.Add(-1)
		return
	}
	rs.stop = stop
	h.mu.Unlock()
}

// OnRecord starts taking the publisher's packets.
func (h *handler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (res *base.Response, err error) {
	defer h.recoverResponse(&res, &err, "record")
	h.mu.Lock()
	sess := h.sessions[ctx.Session]
	h.mu.Unlock()
	if sess == nil || sess.pub == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, errors.New("RECORD without ANNOUNCE")
	}
	if err := sess.pub.record(); err != nil {
		if errors.Is(err, bus.ErrBusy) {
			return &base.Response{StatusCode: statusConflict}, err
		}
		return &base.Response{StatusCode: base.StatusInternalServerError}, err
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// refuse counts and logs a refusal (once, with the reason; the key only redacted).
func (h *handler) refuse(why string, attrs ...any) {
	h.s.refused.Add(1)
	h.log.Warn("refused: "+why, attrs...)
}

// recoverPanic is the last line of defence: a bug in the handling of network input ends
// that request, not the process.
func (h *handler) recoverPanic(where string) {
	if r := recover(); r != nil {
		h.log.Error("panic in rtsp "+where, "panic", r, "stack", string(debug.Stack()))
	}
}

// recoverResponse turns a panic in a request handler into a 500 answer (gortsplib needs a
// response) that closes the connection.
func (h *handler) recoverResponse(res **base.Response, err *error, where string) {
	if r := recover(); r != nil {
		h.log.Error("panic in rtsp "+where, "panic", r, "stack", string(debug.Stack()))
		*res = &base.Response{StatusCode: base.StatusInternalServerError}
		*err = fmt.Errorf("internal error: %v", r)
	}
}

// livePath strips the leading slash and the "live/" prefix of a request path.
func livePath(p string) (string, bool) {
	p = strings.TrimPrefix(p, "/")
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	p = strings.TrimSuffix(p, "/")
	if !strings.HasPrefix(p, pathPrefix) || len(p) == len(pathPrefix) {
		return "", false
	}
	return p[len(pathPrefix):], true
}

func remote(sc *gortsplib.ServerConn) string {
	if sc == nil {
		return ""
	}
	return sc.NetConn().RemoteAddr().String()
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
