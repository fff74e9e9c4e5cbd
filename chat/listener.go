package chat

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
)

// writeBuffers is shared by every connection: fan-out writes prepared frames straight to
// the socket, so a connection holds a write buffer only while it writes something else.
var writeBuffers sync.Pool

func (h *Hub) upgrader() websocket.Upgrader {
	return websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		WriteBufferPool: &writeBuffers,
		CheckOrigin:     h.checkOrigin,
		Error: func(w http.ResponseWriter, _ *http.Request, status int, reason error) {
			msg := reason.Error()
			if status == http.StatusForbidden {
				msg = "origin not allowed"
			}
			writeHTTPError(w, status, msg)
		},
	}
}

// checkOrigin accepts requests without an Origin (not from a browser), any Origin when
// AllowAnyOrigin is set, and otherwise an Origin whose host is the request's Host.
func (h *Hub) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.cfg.AllowAnyOrigin {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// ServeWS upgrades r to the chat WebSocket of u (whom the caller authenticated) and serves
// it until it closes. When it cannot upgrade it answers itself with the API's error body:
// 429 when u already has MaxConnsPerUser connections, 403 for a foreign Origin, 503 once
// the hub is closed, 400 for a request that is not a WebSocket upgrade.
func (h *Hub) ServeWS(w http.ResponseWriter, r *http.Request, u User) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		writeHTTPError(w, http.StatusServiceUnavailable, "chat is shutting down")
		return
	}
	if h.perUser[u.ID] >= h.cfg.MaxConnsPerUser {
		h.mu.Unlock()
		writeHTTPError(w, http.StatusTooManyRequests, "too many chat connections: at most "+strconv.Itoa(h.cfg.MaxConnsPerUser)+" per user")
		return
	}
	h.perUser[u.ID]++
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()

	ws, err := h.up.Upgrade(w, r, nil)
	if err != nil {
		h.release(nil, u.ID) // the upgrader answered
		return
	}
	c := newConn(h, ws, u)
	ok, first := h.register(c)
	if !ok {
		ws.Close()
		h.release(nil, u.ID)
		return
	}
	if first {
		h.emit(Event{Type: EventUserConnected, UserID: u.ID, Username: u.Username})
	}
	c.serve()
	if h.release(c, u.ID) {
		h.emit(Event{Type: EventUserDisconnected, UserID: u.ID, Username: u.Username})
	}
}

// writeHTTPError writes the API's error body, {"error": msg, "status": status}.
func writeHTTPError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}{msg, status})
}
