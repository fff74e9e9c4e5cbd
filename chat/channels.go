package chat

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Channel field limits.
const (
	maxDescriptionRunes = 500
	streamChannelPrefix = "stream-"
)

// channelNameRE: lowercase letters, digits and hyphens, 1-50 characters, starting with a
// letter or digit.
var channelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,49}$`)

// Visibility and mode values on the wire.
const (
	visibilityPublic  = "public"
	visibilityPrivate = "private"
	modeOpen          = "open"
	modeReadOnly      = "readonly"
)

// channelView renders ch for the REST API.
func channelView(ch Channel, unread int) ChannelView {
	v := ChannelView{ID: ch.ID, Name: ch.Name, Description: ch.Description, IsStreamChannel: ch.StreamID != 0,
		Visibility: visibilityPublic, Mode: modeOpen, CreatedAt: apiTime(ch.CreatedAt), UnreadCount: unread}
	if ch.IsDefault {
		v.IsDefault = 1
	}
	if ch.StreamID != 0 {
		id := ch.StreamID
		v.StreamID = &id
	}
	if ch.Private {
		v.Visibility = visibilityPrivate
	}
	if ch.ReadOnly {
		v.Mode = modeReadOnly
	}
	return v
}

// Channels lists the channels u may see, with u's unread counts.
func (h *Hub) Channels(ctx context.Context, u User) ([]ChannelView, error) {
	chans, err := h.store.Channels(ctx)
	if err != nil {
		return nil, err
	}
	counts, err := h.store.UnreadCounts(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	out := make([]ChannelView, 0, len(chans))
	for _, ch := range chans {
		if canSee(u, ch) {
			out = append(out, channelView(ch, counts[ch.ID]))
		}
	}
	return out, nil
}

// ChannelInput is the body of channel creation and update; nil fields keep their value
// (creation: description "", visibility "public", mode "open").
type ChannelInput struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Visibility  *string `json:"visibility"`
	Mode        *string `json:"mode"`
}

// apply validates in and writes it onto ch.
func (in ChannelInput) apply(ch *Channel) error {
	if in.Name != nil {
		name := strings.TrimSpace(*in.Name)
		if !channelNameRE.MatchString(name) {
			return errf(ErrInvalid, "name must be 1-50 lowercase letters, digits or hyphens")
		}
		if strings.HasPrefix(name, streamChannelPrefix) {
			return errf(ErrInvalid, "names starting with %q are reserved for stream channels", streamChannelPrefix)
		}
		ch.Name = name
	}
	if in.Description != nil {
		d := strings.TrimSpace(*in.Description)
		if utf8.RuneCountInString(d) > maxDescriptionRunes {
			return errf(ErrInvalid, "description must be at most %d characters", maxDescriptionRunes)
		}
		ch.Description = d
	}
	if in.Visibility != nil {
		switch *in.Visibility {
		case visibilityPublic, visibilityPrivate:
			ch.Private = *in.Visibility == visibilityPrivate
		default:
			return errf(ErrInvalid, "visibility must be public or private")
		}
	}
	if in.Mode != nil {
		switch *in.Mode {
		case modeOpen, modeReadOnly:
			ch.ReadOnly = *in.Mode == modeReadOnly
		default:
			return errf(ErrInvalid, "mode must be open or readonly")
		}
	}
	return nil
}

// CreateChannel creates a channel; admins only. u becomes its owner.
func (h *Hub) CreateChannel(ctx context.Context, u User, in ChannelInput) (ChannelView, error) {
	if u.Role != RoleAdmin {
		return ChannelView{}, errf(ErrForbidden, "admin access required")
	}
	if in.Name == nil {
		return ChannelView{}, errf(ErrInvalid, "name is required")
	}
	ch := Channel{OwnerID: u.ID, CreatedAt: h.now()}
	if err := in.apply(&ch); err != nil {
		return ChannelView{}, err
	}
	ch, err := h.store.CreateChannel(ctx, ch)
	if errors.Is(err, ErrConflict) {
		return ChannelView{}, errf(ErrConflict, "channel name already taken")
	}
	if err != nil {
		return ChannelView{}, err
	}
	return channelView(ch, 0), nil
}

// manageable returns channel id for an admin's change; stream channels follow their
// stream and are refused.
func (h *Hub) manageable(ctx context.Context, u User, id int64) (Channel, error) {
	if u.Role != RoleAdmin {
		return Channel{}, errf(ErrForbidden, "admin access required")
	}
	ch, err := h.store.Channel(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Channel{}, errf(ErrNotFound, msgNoChannel)
	}
	if err != nil {
		return Channel{}, err
	}
	if ch.StreamID != 0 {
		return Channel{}, errf(ErrForbidden, "a stream's channel changes with its stream")
	}
	return ch, nil
}

// UpdateChannel renames or changes a channel; admins only. The default channel keeps its
// name. A rename is announced (channel_renamed) to every connection that sees the channel.
func (h *Hub) UpdateChannel(ctx context.Context, u User, id int64, in ChannelInput) (ChannelView, error) {
	ch, err := h.manageable(ctx, u, id)
	if err != nil {
		return ChannelView{}, err
	}
	old := ch
	if err := in.apply(&ch); err != nil {
		return ChannelView{}, err
	}
	if ch.IsDefault && ch.Name != old.Name {
		return ChannelView{}, errf(ErrForbidden, "the default channel cannot be renamed")
	}
	if err := h.store.UpdateChannel(ctx, ch); errors.Is(err, ErrConflict) {
		return ChannelView{}, errf(ErrConflict, "channel name already taken")
	} else if errors.Is(err, ErrNotFound) {
		return ChannelView{}, errf(ErrNotFound, msgNoChannel)
	} else if err != nil {
		return ChannelView{}, err
	}
	h.channelChanged(old, ch)
	return channelView(ch, 0), nil
}

// channelChanged applies a stored change of a channel to its room (evicting members who
// may no longer see it) and announces a rename.
func (h *Hub) channelChanged(old, ch Channel) {
	var notify []*conn
	if old.Name != ch.Name {
		notify = h.snapshot(func(c *conn) bool { return canSee(c.user, ch) })
	}
	r := h.existingRoom(ch.ID)
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ch = ch
		h.evictLocked(r)
	}
	if len(notify) > 0 {
		pm := h.prepare(channelRenamedMsg{Type: "channel_renamed", ChannelID: ch.ID, OldName: old.Name, NewName: ch.Name})
		for _, c := range notify {
			c.send(pm)
		}
	}
}

// DeleteChannel deletes a channel and its messages; admins only, not the default channel
// nor a stream's.
func (h *Hub) DeleteChannel(ctx context.Context, u User, id int64) error {
	ch, err := h.manageable(ctx, u, id)
	if err != nil {
		return err
	}
	if ch.IsDefault {
		return errf(ErrForbidden, "the default channel cannot be deleted")
	}
	return h.removeChannel(ctx, ch)
}

// removeChannel deletes ch from the store, closes its room and announces channel_deleted
// to its members and every connection that could see it.
func (h *Hub) removeChannel(ctx context.Context, ch Channel) error {
	notify := h.snapshot(func(c *conn) bool { return canSee(c.user, ch) })
	if err := h.store.DeleteChannel(ctx, ch.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	pm := h.prepare(channelDeletedMsg{Type: "channel_deleted", ChannelID: ch.ID, Channel: ch.Name})
	if r := h.existingRoom(ch.ID); r != nil {
		r.mu.Lock()
		r.closed = true
		for _, c := range r.members {
			c.clearRoom(r)
			if !slices.Contains(notify, c) {
				c.send(pm)
			}
		}
		r.members = nil
		clear(r.users)
		// Sent under the lock: after every event of the channel.
		for _, c := range notify {
			c.send(pm)
		}
		r.mu.Unlock()
		h.forgetRoom(r)
		return nil
	}
	for _, c := range notify {
		c.send(pm)
	}
	return nil
}

// StreamChannel describes a stream for its chat channel.
type StreamChannel struct {
	StreamID int64
	OwnerID  int64
	// Title becomes the channel's description (its topic).
	Title string
	// Private: the stream is not public; its channel is private too.
	Private bool
}

// StreamChannelName is the name of the channel of stream id.
func StreamChannelName(id int64) string { return streamChannelPrefix + strconv.FormatInt(id, 10) }

// CreateStreamChannel creates the channel of a new stream (named StreamChannelName, owned
// and moderated by the stream's owner).
func (h *Hub) CreateStreamChannel(ctx context.Context, sc StreamChannel) (Channel, error) {
	return h.store.CreateChannel(ctx, Channel{Name: StreamChannelName(sc.StreamID), Description: sc.Title,
		StreamID: sc.StreamID, OwnerID: sc.OwnerID, Private: sc.Private, CreatedAt: h.now()})
}

// UpdateStreamChannel follows a change of a stream's title or visibility; members who
// may no longer see a channel made private leave it (channel_deleted).
func (h *Hub) UpdateStreamChannel(ctx context.Context, sc StreamChannel) error {
	ch, err := h.store.ChannelByStream(ctx, sc.StreamID)
	if errors.Is(err, ErrNotFound) {
		return nil // a stream created before chat existed
	}
	if err != nil {
		return err
	}
	old := ch
	ch.Description, ch.Private = sc.Title, sc.Private
	if ch == old {
		return nil
	}
	if err := h.store.UpdateChannel(ctx, ch); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	h.channelChanged(old, ch)
	return nil
}

// DeleteStreamChannel deletes the channel of a stream about to be deleted (members get
// channel_deleted). A stream without a channel is not an error.
func (h *Hub) DeleteStreamChannel(ctx context.Context, streamID int64) error {
	ch, err := h.store.ChannelByStream(ctx, streamID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return h.removeChannel(ctx, ch)
}

// visibleChannel returns channel id if u may see it.
func (h *Hub) visibleChannel(ctx context.Context, u User, id int64) (Channel, error) {
	ch, err := h.store.Channel(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && !canSee(u, ch)) {
		return Channel{}, errf(ErrNotFound, msgNoChannel)
	}
	return ch, err
}

// ChannelMessages returns up to limit (default 100, at most 100) messages of channel id
// before beforeID (0: the newest), newest first, and whether older ones exist.
func (h *Hub) ChannelMessages(ctx context.Context, u User, id, beforeID int64, limit int) ([]MessageView, bool, error) {
	if beforeID < 0 || limit < 0 {
		return nil, false, errf(ErrInvalid, "before_id and limit must be positive")
	}
	if limit == 0 || limit > maxHistoryLimit {
		limit = maxHistoryLimit
	}
	ch, err := h.visibleChannel(ctx, u, id)
	if err != nil {
		return nil, false, err
	}
	msgs, more, err := h.loadMessages(ctx, ch, beforeID, limit)
	if err != nil {
		return nil, false, err
	}
	slices.Reverse(msgs)
	return msgs, more, nil
}

// Thread returns the reply chain that ends at message id: the message and the ones it
// replies to, up to 20 messages, oldest first. The chain stops at a deleted message.
func (h *Hub) Thread(ctx context.Context, u User, id int64) ([]MessageView, error) {
	m, err := h.store.Message(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, errf(ErrNotFound, msgNoMessage)
	}
	if err != nil {
		return nil, err
	}
	ch, err := h.visibleChannel(ctx, u, m.ChannelID)
	if errors.Is(err, ErrNotFound) {
		return nil, errf(ErrNotFound, msgNoMessage)
	}
	if err != nil {
		return nil, err
	}
	chain := []Message{m}
	for cur := m; cur.ReplyTo > 0 && len(chain) < maxThreadDepth; {
		p, err := h.store.Message(ctx, cur.ReplyTo)
		if errors.Is(err, ErrNotFound) || (err == nil && p.ChannelID != ch.ID) {
			break
		}
		if err != nil {
			return nil, err
		}
		chain = append(chain, p)
		cur = p
	}
	slices.Reverse(chain)
	return h.views(ctx, ch, chain)
}
