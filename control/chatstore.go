package control

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/relaycast/relaycast/chat"
	"github.com/relaycast/relaycast/control/store"
)

// chatSealPurpose is the Sealer purpose of chat message bodies.
const chatSealPurpose = "chat"

// ChatStore is the chat hub's storage (chat.Store) over the database. Message text is
// sealed at rest with AES-256-GCM (purpose "chat", the channel and message ids as
// associated data, so that a body cannot be moved to another message or channel); the
// database never holds it in clear.
type ChatStore struct {
	st   *store.Store
	seal *Sealer
}

var _ chat.Store = (*ChatStore)(nil)

// NewChatStore returns the chat storage over st, sealing with a key derived from the
// 32-byte master key.
func NewChatStore(st *store.Store, master []byte) (*ChatStore, error) {
	sealer, err := NewSealer(master, chatSealPurpose)
	if err != nil {
		return nil, err
	}
	return &ChatStore{st: st, seal: sealer}, nil
}

// chatAAD binds a sealed body to its message and channel.
func chatAAD(channelID, messageID int64) []byte {
	return []byte("chat-message:" + strconv.FormatInt(channelID, 10) + ":" + strconv.FormatInt(messageID, 10))
}

// chatErr maps the store's sentinels to chat's.
func chatErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return chat.ErrNotFound
	case errors.Is(err, store.ErrConflict):
		return chat.ErrConflict
	case errors.Is(err, store.ErrLimit):
		return chat.ErrLimit
	}
	return err
}

func toChatChannel(c store.ChatChannel) chat.Channel {
	return chat.Channel{ID: c.ID, Name: c.Name, Description: c.Description, IsDefault: c.IsDefault, StreamID: c.StreamID,
		OwnerID: c.OwnerID, Private: c.Private, ReadOnly: c.ReadOnly, CreatedAt: c.CreatedAt}
}

func fromChatChannel(c chat.Channel) store.ChatChannel {
	return store.ChatChannel{ID: c.ID, Name: c.Name, Description: c.Description, IsDefault: c.IsDefault, StreamID: c.StreamID,
		OwnerID: c.OwnerID, Private: c.Private, ReadOnly: c.ReadOnly, CreatedAt: c.CreatedAt}
}

// chatRole is the chat role of a user: admins are chat admins.
func chatRole(isAdmin bool) chat.Role {
	if isAdmin {
		return chat.RoleAdmin
	}
	return chat.RoleUser
}

// open decrypts a stored message.
func (c *ChatStore) open(m store.ChatMessage) (chat.Message, error) {
	text, err := c.seal.Open(m.Body, chatAAD(m.ChannelID, m.ID))
	if err != nil {
		return chat.Message{}, fmt.Errorf("chat message %d: %w", m.ID, err)
	}
	return chat.Message{ID: m.ID, ChannelID: m.ChannelID, UserID: m.UserID, Username: m.Username, AuthorRole: chatRole(m.UserIsAdmin),
		Text: string(text), ReplyTo: m.ReplyTo, Anonymous: m.Anonymous, CreatedAt: m.CreatedAt, EditedAt: m.EditedAt}, nil
}

// CreateChannel implements chat.Store.
func (c *ChatStore) CreateChannel(ctx context.Context, ch chat.Channel) (chat.Channel, error) {
	sc, err := c.st.CreateChatChannel(ctx, fromChatChannel(ch))
	return toChatChannel(sc), chatErr(err)
}

// UpdateChannel implements chat.Store.
func (c *ChatStore) UpdateChannel(ctx context.Context, ch chat.Channel) error {
	return chatErr(c.st.UpdateChatChannel(ctx, fromChatChannel(ch)))
}

// DeleteChannel implements chat.Store.
func (c *ChatStore) DeleteChannel(ctx context.Context, id int64) error {
	return chatErr(c.st.DeleteChatChannel(ctx, id))
}

// Channel implements chat.Store.
func (c *ChatStore) Channel(ctx context.Context, id int64) (chat.Channel, error) {
	sc, err := c.st.ChatChannelByID(ctx, id)
	return toChatChannel(sc), chatErr(err)
}

// ChannelByName implements chat.Store.
func (c *ChatStore) ChannelByName(ctx context.Context, name string) (chat.Channel, error) {
	sc, err := c.st.ChatChannelByName(ctx, name)
	return toChatChannel(sc), chatErr(err)
}

// ChannelByStream implements chat.Store.
func (c *ChatStore) ChannelByStream(ctx context.Context, streamID int64) (chat.Channel, error) {
	sc, err := c.st.ChatChannelByStream(ctx, streamID)
	return toChatChannel(sc), chatErr(err)
}

// Channels implements chat.Store.
func (c *ChatStore) Channels(ctx context.Context) ([]chat.Channel, error) {
	list, err := c.st.ListChatChannels(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Channel, len(list))
	for i, sc := range list {
		out[i] = toChatChannel(sc)
	}
	return out, nil
}

// CreateMessage implements chat.Store: the text is sealed for the new message's id.
func (c *ChatStore) CreateMessage(ctx context.Context, m chat.Message) (chat.Message, error) {
	sm, err := c.st.CreateChatMessage(ctx, store.ChatMessage{ChannelID: m.ChannelID, UserID: m.UserID, ReplyTo: m.ReplyTo,
		Anonymous: m.Anonymous, CreatedAt: m.CreatedAt}, func(id int64) []byte {
		return c.seal.Seal([]byte(m.Text), chatAAD(m.ChannelID, id))
	})
	if err != nil {
		return chat.Message{}, chatErr(err)
	}
	m.ID, m.Username, m.AuthorRole = sm.ID, sm.Username, chatRole(sm.UserIsAdmin)
	return m, nil
}

// Message implements chat.Store.
func (c *ChatStore) Message(ctx context.Context, id int64) (chat.Message, error) {
	sm, err := c.st.ChatMessageByID(ctx, id)
	if err != nil {
		return chat.Message{}, chatErr(err)
	}
	return c.open(sm)
}

// EditMessage implements chat.Store.
func (c *ChatStore) EditMessage(ctx context.Context, id int64, text string, at time.Time) error {
	sm, err := c.st.ChatMessageByID(ctx, id)
	if err != nil {
		return chatErr(err)
	}
	return chatErr(c.st.UpdateChatMessageBody(ctx, id, c.seal.Seal([]byte(text), chatAAD(sm.ChannelID, id)), at))
}

// DeleteMessage implements chat.Store.
func (c *ChatStore) DeleteMessage(ctx context.Context, id int64) error {
	return chatErr(c.st.DeleteChatMessage(ctx, id))
}

// Messages implements chat.Store.
func (c *ChatStore) Messages(ctx context.Context, channelID, beforeID int64, limit int) ([]chat.Message, error) {
	list, err := c.st.ListChatMessages(ctx, channelID, beforeID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Message, 0, len(list))
	for _, sm := range list {
		m, err := c.open(sm)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// PurgeMessages implements chat.Store.
func (c *ChatStore) PurgeMessages(ctx context.Context, before time.Time) (int64, error) {
	return c.st.DeleteChatMessagesBefore(ctx, before)
}

// ToggleReaction implements chat.Store.
func (c *ChatStore) ToggleReaction(ctx context.Context, r chat.Reaction, maxPerUser int) (bool, error) {
	added, err := c.st.ToggleChatReaction(ctx, store.ChatReaction{MessageID: r.MessageID, UserID: r.UserID, Emoji: r.Emoji,
		CreatedAt: r.CreatedAt}, maxPerUser)
	return added, chatErr(err)
}

// Reactions implements chat.Store.
func (c *ChatStore) Reactions(ctx context.Context, messageIDs []int64) ([]chat.Reaction, error) {
	list, err := c.st.ListChatReactions(ctx, messageIDs)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Reaction, len(list))
	for i, r := range list {
		out[i] = chat.Reaction{MessageID: r.MessageID, UserID: r.UserID, Username: r.Username, Emoji: r.Emoji, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// Pin implements chat.Store.
func (c *ChatStore) Pin(ctx context.Context, p chat.Pin, maxPerChannel int) error {
	return chatErr(c.st.PinChatMessage(ctx, store.ChatPin{MessageID: p.MessageID, ChannelID: p.ChannelID, PinnedBy: p.PinnedBy,
		PinnedAt: p.PinnedAt}, maxPerChannel))
}

// Unpin implements chat.Store.
func (c *ChatStore) Unpin(ctx context.Context, messageID int64) error {
	return chatErr(c.st.UnpinChatMessage(ctx, messageID))
}

// Pins implements chat.Store.
func (c *ChatStore) Pins(ctx context.Context, channelID int64) ([]chat.Pin, error) {
	list, err := c.st.ListChatPins(ctx, channelID)
	if err != nil {
		return nil, err
	}
	out := make([]chat.Pin, 0, len(list))
	for _, p := range list {
		m, err := c.open(p.Message)
		if err != nil {
			return nil, err
		}
		out = append(out, chat.Pin{MessageID: p.MessageID, ChannelID: p.ChannelID, PinnedBy: p.PinnedBy,
			PinnedByName: p.PinnedByName, PinnedAt: p.PinnedAt, Message: m})
	}
	return out, nil
}

// MarkRead implements chat.Store.
func (c *ChatStore) MarkRead(ctx context.Context, userID, channelID, messageID int64) error {
	return chatErr(c.st.MarkChatRead(ctx, userID, channelID, messageID))
}

// UnreadCounts implements chat.Store.
func (c *ChatStore) UnreadCounts(ctx context.Context, userID int64) (map[int64]int, error) {
	return c.st.ChatUnreadCounts(ctx, userID)
}
