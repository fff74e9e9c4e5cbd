package chat

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/gorilla/websocket"
)

// room is the live state of one channel: its joined connections and online users. mu
// serialises the channel's events: every change is stored and broadcast while holding
// it, so all members see the changes in one order, the order they were stored in.
// Lock order: room.mu before conn.mu; hub.mu is never taken while holding room.mu.
type room struct {
	id int64 // channel id, immutable

	mu      sync.Mutex
	ch      Channel // latest known state of the channel
	closed  bool    // deleted: no more events
	members []*conn
	users   map[int64]*presence
}

// presence is one user in a room, with the number of their connections there.
type presence struct {
	user  User
	conns int
}

func newRoom(id int64) *room {
	return &room{id: id, users: make(map[int64]*presence)}
}

// addLocked adds c (idempotent); first reports whether c's user was not there before.
func (r *room) addLocked(c *conn) (first bool) {
	if slices.Contains(r.members, c) {
		return false
	}
	r.members = append(r.members, c)
	p := r.users[c.user.ID]
	if p == nil {
		p = &presence{user: c.user}
		r.users[c.user.ID] = p
		first = true
	}
	p.conns++
	return first
}

// removeLocked removes c; last reports whether that was its user's last connection.
func (r *room) removeLocked(c *conn) (removed, last bool) {
	i := slices.Index(r.members, c)
	if i < 0 {
		return false, false
	}
	r.members = slices.Delete(r.members, i, i+1)
	p := r.users[c.user.ID]
	if p.conns--; p.conns <= 0 {
		delete(r.users, c.user.ID)
		return true, true
	}
	return true, false
}

// broadcastLocked queues pm for every member but except. Never blocks.
func (r *room) broadcastLocked(pm *websocket.PreparedMessage, except *conn) {
	if pm == nil {
		return
	}
	for _, c := range r.members {
		if c != except {
			c.send(pm)
		}
	}
}

// usersLocked lists the room's online users by username.
func (r *room) usersLocked() []UserView {
	out := make([]UserView, 0, len(r.users))
	for _, p := range r.users {
		out = append(out, userView(p.user))
	}
	slices.SortFunc(out, func(a, b UserView) int {
		return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.UserID, b.UserID))
	})
	return out
}

func userView(u User) UserView {
	return UserView{UserID: u.ID, Username: u.Username, Nickname: nickname(u.Nickname), Role: u.Role.String()}
}

func nickname(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// join makes c a member of the channel named name (leaving the one it was in) and sends
// it channel_info, history, pinned_messages and users, in that order. History is read
// while the room is locked, so the client gets every message exactly once: in the
// history or as an event after it.
func (h *Hub) join(ctx context.Context, c *conn, name string) error {
	if name == "" {
		return errf(ErrInvalid, "channel is required")
	}
	ch, err := h.store.ChannelByName(ctx, name)
	if errors.Is(err, ErrNotFound) || (err == nil && !canSee(c.user, ch)) {
		return errf(ErrNotFound, msgNoChannel)
	}
	if err != nil {
		return err
	}
	r := h.roomFor(ch.ID)
	if old := c.currentRoom(); old != nil && old != r {
		h.leave(c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	r.ch = ch
	history, more, err := h.loadMessages(ctx, ch, 0, h.cfg.HistoryLimit)
	if err != nil {
		return err
	}
	pins, err := h.pinViews(ctx, ch.ID)
	if err != nil {
		return err
	}
	first := r.addLocked(c)
	c.setRoom(r)
	c.sendJSON(channelInfo(c.user, ch))
	c.sendJSON(historyMsg{Type: "history", Channel: ch.Name, Messages: history, HasMore: more})
	c.sendJSON(pinnedMessagesMsg{Type: "pinned_messages", Channel: ch.Name, Messages: pins})
	c.sendJSON(usersMsg{Type: "users", Channel: ch.Name, Users: r.usersLocked()})
	if first {
		u := userView(c.user)
		r.broadcastLocked(h.prepare(userJoinedMsg{Type: "user_joined", Channel: ch.Name, UserID: u.UserID,
			Username: u.Username, Nickname: u.Nickname, Role: u.Role, Anonymous: u.Anonymous, Avatar: u.Avatar}), c)
	}
	return nil
}

// leave takes c out of its channel; the others hear user_left when it was its user's last
// connection there.
func (h *Hub) leave(c *conn) {
	r := c.currentRoom()
	if r == nil {
		return
	}
	r.mu.Lock()
	removed, last := r.removeLocked(c)
	if removed && last && !r.closed {
		r.broadcastLocked(h.prepare(userLeftMsg{Type: "user_left", Channel: r.ch.Name, UserID: c.user.ID,
			Username: c.user.Username}), nil)
	}
	r.mu.Unlock()
	c.clearRoom(r)
}

func channelInfo(u User, ch Channel) channelInfoMsg {
	v := channelView(ch, 0)
	return channelInfoMsg{Type: "channel_info", ID: ch.ID, Name: ch.Name, Topic: ch.Description,
		IsStreamChannel: v.IsStreamChannel, StreamID: v.StreamID, Visibility: v.Visibility, Mode: v.Mode,
		CanModerate: canModerate(u, ch)}
}

// evictLocked removes the members that may no longer see the channel (it became
// private); to them the channel is deleted.
func (h *Hub) evictLocked(r *room) {
	var gone *websocket.PreparedMessage
	for _, c := range slices.Clone(r.members) {
		if canSee(c.user, r.ch) {
			continue
		}
		if gone == nil {
			gone = h.prepare(channelDeletedMsg{Type: "channel_deleted", ChannelID: r.id, Channel: r.ch.Name})
		}
		c.send(gone)
		if _, last := r.removeLocked(c); last {
			r.broadcastLocked(h.prepare(userLeftMsg{Type: "user_left", Channel: r.ch.Name, UserID: c.user.ID,
				Username: c.user.Username}), nil)
		}
		c.clearRoom(r)
	}
}
