package chat

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// handle serves one client message on c's reader goroutine; a refusal becomes an "error"
// message to c alone.
func (h *Hub) handle(c *conn, m ClientMessage) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	var err error
	switch m.Type {
	case ClientJoin:
		err = h.join(ctx, c, m.Channel)
	case ClientSend:
		err = h.sendMessage(ctx, c, m)
	case ClientEdit:
		err = h.editMessage(ctx, c, m.MessageID, m.Message)
	case ClientDelete:
		err = h.deleteMessage(ctx, c, m.MessageID)
	case ClientReact:
		err = h.react(ctx, c, m.MessageID, m.Emoji)
	case ClientPin:
		err = h.pin(ctx, c, m.MessageID, true)
	case ClientUnpin:
		err = h.pin(ctx, c, m.MessageID, false)
	case ClientTyping:
		err = h.typing(c, m.Channel)
	case ClientMarkRead:
		err = h.markRead(ctx, c, m.MessageID)
	case ClientHistory:
		err = h.history(ctx, c, m)
	default:
		err = errf(ErrInvalid, "unsupported message type %q", m.TypeName)
	}
	if err != nil {
		c.sendError(err)
	}
}

// joined returns c's room when c is in the channel named channel ("" means the joined
// one).
func joined(c *conn, channel string) (*room, error) {
	r := c.currentRoom()
	if r == nil {
		return nil, errf(ErrInvalid, msgNotJoined)
	}
	r.mu.Lock()
	name := r.ch.Name
	r.mu.Unlock()
	if channel != "" && channel != name {
		return nil, errf(ErrInvalid, msgNotJoined)
	}
	return r, nil
}

// messageIn returns message id when it belongs to the channel c has joined, and that
// channel's room. Operations on messages are done from the channel they are in.
func (h *Hub) messageIn(ctx context.Context, c *conn, id int64) (Message, *room, error) {
	if id <= 0 {
		return Message{}, nil, errf(ErrInvalid, "message_id is required")
	}
	r := c.currentRoom()
	if r == nil {
		return Message{}, nil, errf(ErrInvalid, msgNotJoined)
	}
	m, err := h.store.Message(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && m.ChannelID != r.id) {
		return Message{}, nil, errf(ErrNotFound, msgNoMessage)
	}
	return m, r, err
}

// cleanText trims a message's text and checks its length.
func cleanText(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errf(ErrInvalid, "message is empty")
	}
	if utf8.RuneCountInString(s) > maxMessageRunes {
		return "", errf(ErrInvalid, "message is longer than %d characters", maxMessageRunes)
	}
	return s, nil
}

// sendMessage stores and broadcasts a message (a reply when reply_to is set).
func (h *Hub) sendMessage(ctx context.Context, c *conn, cm ClientMessage) error {
	if cm.ImageURL != "" {
		return errf(ErrInvalid, "image messages are not supported yet")
	}
	text, err := cleanText(cm.Message)
	if err != nil {
		return err
	}
	if cm.ReplyTo < 0 {
		return errf(ErrInvalid, "reply_to must be a message id")
	}
	r, err := joined(c, cm.Channel)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	ch := r.ch
	if !canSend(c.user, ch) {
		return errf(ErrForbidden, "only moderators can send messages in this channel")
	}
	var parent *Message
	if cm.ReplyTo > 0 {
		p, err := h.store.Message(ctx, cm.ReplyTo)
		if errors.Is(err, ErrNotFound) || (err == nil && p.ChannelID != ch.ID) {
			return errf(ErrInvalid, "the message replied to does not exist")
		}
		if err != nil {
			return err
		}
		parent = &p
	}
	now := h.now()
	if !h.limiter.allow(c.user.ID, now) {
		return errf(ErrRateLimited, msgRateLimited)
	}
	m, err := h.store.CreateMessage(ctx, Message{ChannelID: ch.ID, UserID: c.user.ID, Username: c.user.Username,
		AuthorRole: c.user.Role, Text: text, ReplyTo: cm.ReplyTo, CreatedAt: now})
	if err != nil {
		return err
	}
	h.stats.messages.Add(1)
	v := messageView(ch, m, parent, nil)
	v.Type = "message"
	r.broadcastLocked(h.prepare(v), nil)
	h.emit(Event{Type: EventMessageCreated, ChannelID: ch.ID, ChannelName: ch.Name, MessageID: m.ID,
		UserID: c.user.ID, Username: c.user.Username, Content: text})
	return nil
}

// editMessage replaces the text of the author's own message within EditWindow.
func (h *Hub) editMessage(ctx context.Context, c *conn, id int64, text string) error {
	m, r, err := h.messageIn(ctx, c, id)
	if err != nil {
		return err
	}
	if m.UserID != c.user.ID {
		return errf(ErrForbidden, "you can only edit your own messages")
	}
	now := h.now()
	if now.Sub(m.CreatedAt) > h.cfg.EditWindow {
		return errf(ErrForbidden, "messages can only be edited within %s of sending", windowText(h.cfg.EditWindow))
	}
	if text, err = cleanText(text); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	if err := h.store.EditMessage(ctx, id, text, now); errors.Is(err, ErrNotFound) {
		return errf(ErrNotFound, msgNoMessage)
	} else if err != nil {
		return err
	}
	r.broadcastLocked(h.prepare(messageEditedMsg{Type: "message_edited", Channel: r.ch.Name, MessageID: id,
		NewText: text, EditedAt: apiTime(now)}), nil)
	return nil
}

// windowText renders the edit window for the error message ("5 minutes").
func windowText(d time.Duration) string {
	switch {
	case d == time.Minute:
		return "1 minute"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + " minutes"
	}
	return d.String()
}

// deleteMessage deletes a message: its author's own, any for the channel's moderators.
func (h *Hub) deleteMessage(ctx context.Context, c *conn, id int64) error {
	m, r, err := h.messageIn(ctx, c, id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	if m.UserID != c.user.ID && !canModerate(c.user, r.ch) {
		return errf(ErrForbidden, "you can only delete your own messages")
	}
	if err := h.store.DeleteMessage(ctx, id); errors.Is(err, ErrNotFound) {
		return errf(ErrNotFound, msgNoMessage)
	} else if err != nil {
		return err
	}
	r.broadcastLocked(h.prepare(messageDeletedMsg{Type: "message_deleted", Channel: r.ch.Name, MessageID: id,
		DeletedBy: c.user.ID}), nil)
	h.emit(Event{Type: EventMessageDeleted, ChannelID: r.ch.ID, ChannelName: r.ch.Name, MessageID: id,
		UserID: c.user.ID, Username: c.user.Username})
	return nil
}

// validEmoji accepts 1-32 bytes of printable, non-space UTF-8.
func validEmoji(s string) bool {
	if s == "" || len(s) > maxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		// U+200D (zero width joiner) and U+FE0F (variation selector) are format
		// characters that emoji sequences need.
		if unicode.IsSpace(r) || unicode.IsControl(r) || (unicode.Is(unicode.Cf, r) && r != 0x200d && r != 0xfe0f) {
			return false
		}
	}
	return true
}

// react toggles the user's emoji reaction on a message.
func (h *Hub) react(ctx context.Context, c *conn, id int64, emoji string) error {
	if !validEmoji(emoji) {
		return errf(ErrInvalid, "emoji must be 1-%d bytes without spaces", maxEmojiBytes)
	}
	_, r, err := h.messageIn(ctx, c, id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	added, err := h.store.ToggleReaction(ctx, Reaction{MessageID: id, UserID: c.user.ID, Emoji: emoji,
		CreatedAt: h.now()}, maxReactionsPerUser)
	switch {
	case errors.Is(err, ErrLimit):
		return errf(ErrLimit, "at most %d reactions per message", maxReactionsPerUser)
	case errors.Is(err, ErrNotFound):
		return errf(ErrNotFound, msgNoMessage)
	case err != nil:
		return err
	}
	action := "remove"
	if added {
		action = "add"
	}
	r.broadcastLocked(h.prepare(reactionUpdateMsg{Type: "reaction_update", Channel: r.ch.Name, MessageID: id,
		Emoji: emoji, UserID: c.user.ID, Username: c.user.Username, Action: action}), nil)
	return nil
}

// pin pins (on) or unpins a message; moderators only.
func (h *Hub) pin(ctx context.Context, c *conn, id int64, on bool) error {
	_, r, err := h.messageIn(ctx, c, id)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errf(ErrNotFound, msgNoChannel)
	}
	if !canModerate(c.user, r.ch) {
		return errf(ErrForbidden, "only moderators can pin messages")
	}
	if !on {
		if err := h.store.Unpin(ctx, id); errors.Is(err, ErrNotFound) {
			return errf(ErrInvalid, "message is not pinned")
		} else if err != nil {
			return err
		}
		r.broadcastLocked(h.prepare(messageUnpinnedMsg{Type: "message_unpinned", Channel: r.ch.Name, MessageID: id}), nil)
		return nil
	}
	err = h.store.Pin(ctx, Pin{MessageID: id, ChannelID: r.id, PinnedBy: c.user.ID, PinnedAt: h.now()}, maxPinsPerChannel)
	switch {
	case errors.Is(err, ErrConflict):
		return errf(ErrConflict, "message is already pinned")
	case errors.Is(err, ErrLimit):
		return errf(ErrLimit, "at most %d pinned messages per channel", maxPinsPerChannel)
	case errors.Is(err, ErrNotFound):
		return errf(ErrNotFound, msgNoMessage)
	case err != nil:
		return err
	}
	r.broadcastLocked(h.prepare(messagePinnedMsg{Type: "message_pinned", Channel: r.ch.Name, MessageID: id,
		PinnedBy: c.user.ID, PinnedByUsername: c.user.Username}), nil)
	return nil
}

// typing tells the channel's other members that c's user is typing, at most once per
// typingInterval per connection (more are dropped silently).
func (h *Hub) typing(c *conn, channel string) error {
	r, err := joined(c, channel)
	if err != nil {
		return err
	}
	now := time.Now()
	if now.Sub(c.lastTyping) < typingInterval {
		return nil
	}
	c.lastTyping = now
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.closed {
		r.broadcastLocked(h.prepare(typingMsg{Type: "typing", Channel: r.ch.Name, UserID: c.user.ID,
			Username: c.user.Username}), c)
	}
	return nil
}

// markRead records the read position of c's user in the message's channel and sends the
// new unread counts to every connection of the user.
func (h *Hub) markRead(ctx context.Context, c *conn, id int64) error {
	if id <= 0 {
		return errf(ErrInvalid, "message_id is required")
	}
	m, err := h.store.Message(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return errf(ErrNotFound, msgNoMessage)
	}
	if err != nil {
		return err
	}
	ch, err := h.store.Channel(ctx, m.ChannelID)
	if errors.Is(err, ErrNotFound) || (err == nil && !canSee(c.user, ch)) {
		return errf(ErrNotFound, msgNoMessage)
	}
	if err != nil {
		return err
	}
	if err := h.store.MarkRead(ctx, c.user.ID, ch.ID, id); err != nil {
		return err
	}
	pm := h.prepare(h.unreadCounts(ctx, c.user))
	for _, uc := range h.snapshot(func(x *conn) bool { return x.user.ID == c.user.ID }) {
		uc.send(pm)
	}
	return nil
}

// unreadCounts builds the unread_counts message of u (channel name → count).
func (h *Hub) unreadCounts(ctx context.Context, u User) unreadCountsMsg {
	out := unreadCountsMsg{Type: "unread_counts", Counts: map[string]int{}}
	chans, err := h.store.Channels(ctx)
	if err != nil {
		h.log.Warn("chat: unread counts", "err", err)
		return out
	}
	counts, err := h.store.UnreadCounts(ctx, u.ID)
	if err != nil {
		h.log.Warn("chat: unread counts", "err", err)
		return out
	}
	for _, ch := range chans {
		if canSee(u, ch) {
			out.Counts[ch.Name] = counts[ch.ID]
		}
	}
	return out
}

// sendUnreadCounts sends a new connection its unread counts.
func (h *Hub) sendUnreadCounts(c *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c.sendJSON(h.unreadCounts(ctx, c.user))
}

// history sends messages of the joined channel before before_id (0: the newest), up to
// limit (default HistoryLimit, at most 100), oldest first, with has_more.
func (h *Hub) history(ctx context.Context, c *conn, m ClientMessage) error {
	r, err := joined(c, m.Channel)
	if err != nil {
		return err
	}
	if m.BeforeID < 0 || m.Limit < 0 {
		return errf(ErrInvalid, "before_id and limit must be positive")
	}
	limit := m.Limit
	if limit == 0 {
		limit = h.cfg.HistoryLimit
	}
	limit = min(limit, maxHistoryLimit)
	r.mu.Lock()
	ch := r.ch
	r.mu.Unlock()
	msgs, more, err := h.loadMessages(ctx, ch, m.BeforeID, limit)
	if err != nil {
		return err
	}
	out := historyMsg{Type: "history", Channel: ch.Name, Messages: msgs, HasMore: more}
	if m.BeforeID > 0 {
		out.BeforeID = &m.BeforeID
	}
	c.sendJSON(out)
	return nil
}
