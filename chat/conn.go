package chat

import (
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one client's WebSocket. Its reader runs on the goroutine of ServeWS and handles
// the client's messages one at a time; its writer goroutine drains the send queue and
// pings. Anyone may queue a message (send); nobody waits for the client.
type conn struct {
	hub  *Hub
	ws   *websocket.Conn
	user User

	out        chan *websocket.PreparedMessage
	done       chan struct{} // closed when the connection is ending
	writerDone chan struct{}
	stopOnce   sync.Once
	closeMsg   []byte // close frame the writer sends before closing; nil: none

	mu   sync.Mutex
	room *room // the joined channel; nil before the first join

	lastTyping time.Time // reader goroutine only
}

func newConn(h *Hub, ws *websocket.Conn, u User) *conn {
	return &conn{
		hub:        h,
		ws:         ws,
		user:       u,
		out:        make(chan *websocket.PreparedMessage, h.cfg.SendQueue),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// serve runs the connection until it ends, then leaves its channel and waits for the
// writer.
func (c *conn) serve() {
	go c.writeLoop()
	c.hub.sendUnreadCounts(c)
	c.readLoop()
	c.hub.leave(c)
	c.stop(0, "")
	<-c.writerDone
}

// send queues pm without waiting. A full queue means the client does not read fast
// enough: it is disconnected at once (the hub never waits for a client).
func (c *conn) send(pm *websocket.PreparedMessage) {
	if pm == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	select {
	case c.out <- pm:
	default:
		c.kill()
		c.hub.slowDisconnect(c)
	}
}

// sendJSON encodes v and queues it.
func (c *conn) sendJSON(v any) { c.send(c.hub.prepare(v)) }

// sendError queues an "error" message: the text of a domain error, a generic text for
// anything else (which is logged).
func (c *conn) sendError(err error) {
	var de *Error
	msg := "internal error"
	if errors.As(err, &de) {
		msg = de.Msg
	} else {
		c.hub.log.Error("chat: request failed", "user_id", c.user.ID, "err", err)
	}
	c.sendJSON(errorMsg{Type: "error", Message: msg})
}

// stop ends the connection: the writer sends a close frame with code (0: none) and closes
// the socket, which ends the reader. Safe to call from any goroutine, more than once.
func (c *conn) stop(code int, text string) {
	c.stopOnce.Do(func() {
		if code != 0 {
			c.closeMsg = websocket.FormatCloseMessage(code, text)
		}
		close(c.done)
	})
}

// kill ends the connection without a close frame: for a client that does not read, a
// frame would only wait behind the ones it did not take. Never blocks.
func (c *conn) kill() {
	c.stop(0, "")
	c.ws.NetConn().Close()
}

// currentRoom returns the joined channel's state (nil: none).
func (c *conn) currentRoom() *room {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.room
}

// setRoom sets the joined channel.
func (c *conn) setRoom(r *room) {
	c.mu.Lock()
	c.room = r
	c.mu.Unlock()
}

// clearRoom forgets r if it is still the joined channel.
func (c *conn) clearRoom(r *room) {
	c.mu.Lock()
	if c.room == r {
		c.room = nil
	}
	c.mu.Unlock()
}

// readLoop reads and handles frames until the connection fails, goes silent for
// PongWait, or sends a frame that is not a protocol message (closed with 1003 or 1007;
// this connection only).
func (c *conn) readLoop() {
	pongWait := c.hub.cfg.PongWait
	c.ws.SetReadLimit(maxFrameBytes)
	c.ws.SetReadDeadline(time.Now().Add(pongWait))
	c.ws.SetPongHandler(func(string) error { return c.ws.SetReadDeadline(time.Now().Add(pongWait)) })
	for {
		mt, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.ws.SetReadDeadline(time.Now().Add(pongWait))
		if mt != websocket.TextMessage {
			c.hub.stats.malformed.Add(1)
			c.stop(websocket.CloseUnsupportedData, "text frames only")
			return
		}
		m, err := DecodeClientMessage(data)
		if err != nil {
			c.hub.stats.malformed.Add(1)
			c.stop(websocket.CloseInvalidFramePayloadData, "malformed message")
			return
		}
		c.hub.handle(c, m)
		select {
		case <-c.done: // dropped while handling (slow, removed)
			return
		default:
		}
	}
}

// writeLoop writes queued messages and pings until the connection stops or a write
// fails.
func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.ws.Close()
	timeout := c.hub.cfg.WriteTimeout
	ping := time.NewTicker(c.hub.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case pm := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(timeout))
			if err := c.ws.WritePreparedMessage(pm); err != nil {
				c.kill()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(timeout)); err != nil {
				c.kill()
				return
			}
		case <-c.done:
			if c.closeMsg != nil {
				_ = c.ws.WriteControl(websocket.CloseMessage, c.closeMsg, time.Now().Add(time.Second))
			}
			return
		}
	}
}

// prepare encodes a server message once, framed for every connection that gets it.
func (h *Hub) prepare(v any) *websocket.PreparedMessage {
	b, err := json.Marshal(v)
	if err != nil {
		h.log.Error("chat: encode", "err", err)
		return nil
	}
	pm, err := websocket.NewPreparedMessage(websocket.TextMessage, b)
	if err != nil {
		h.log.Error("chat: prepare", "err", err)
		return nil
	}
	return pm
}
