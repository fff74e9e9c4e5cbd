package chat

import (
	"context"
	"errors"
	"slices"
	"time"
	"unicode/utf8"
)

// loadMessages returns up to limit messages of ch before beforeID (0: the newest),
// oldest first, with reactions and reply previews, and whether older ones exist.
func (h *Hub) loadMessages(ctx context.Context, ch Channel, beforeID int64, limit int) ([]MessageView, bool, error) {
	msgs, err := h.store.Messages(ctx, ch.ID, beforeID, limit+1)
	if err != nil {
		return nil, false, err
	}
	more := len(msgs) > limit
	msgs = msgs[:min(len(msgs), limit)]
	slices.Reverse(msgs)
	views, err := h.views(ctx, ch, msgs)
	return views, more, err
}

// views renders msgs (of ch) with their reactions and reply previews.
func (h *Hub) views(ctx context.Context, ch Channel, msgs []Message) ([]MessageView, error) {
	out := make([]MessageView, 0, len(msgs))
	if len(msgs) == 0 {
		return out, nil
	}
	byID := make(map[int64]*Message, len(msgs))
	ids := make([]int64, len(msgs))
	for i := range msgs {
		byID[msgs[i].ID] = &msgs[i]
		ids[i] = msgs[i].ID
	}
	reactions, err := h.store.Reactions(ctx, ids)
	if err != nil {
		return nil, err
	}
	perMsg := make(map[int64][]Reaction)
	for _, rc := range reactions {
		perMsg[rc.MessageID] = append(perMsg[rc.MessageID], rc)
	}
	for _, m := range msgs {
		var parent *Message
		if m.ReplyTo > 0 {
			if p, ok := byID[m.ReplyTo]; ok {
				parent = p
			} else if p, err := h.store.Message(ctx, m.ReplyTo); err == nil && p.ChannelID == ch.ID {
				parent = &p
				byID[p.ID] = &p
			} else if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
		}
		out = append(out, messageView(ch, m, parent, perMsg[m.ID]))
	}
	return out, nil
}

// messageView renders m of ch; parent (may be nil) is the message it replies to.
func messageView(ch Channel, m Message, parent *Message, reactions []Reaction) MessageView {
	v := MessageView{
		ID:        m.ID,
		ChannelID: ch.ID,
		Channel:   ch.Name,
		UserID:    m.UserID,
		Username:  m.Username,
		Role:      m.AuthorRole.String(),
		Anonymous: m.Anonymous,
		Message:   m.Text,
		CreatedAt: apiTime(m.CreatedAt),
		Reactions: []ReactionView{},
	}
	if m.Anonymous {
		v.Username = "Anonymous"
	}
	if !m.EditedAt.IsZero() {
		e := apiTime(m.EditedAt)
		v.EditedAt = &e
	}
	if m.ReplyTo > 0 {
		v.ReplyTo = &m.ReplyTo
		if parent != nil {
			name := parent.Username
			if parent.Anonymous {
				name = "Anonymous"
			}
			v.ReplyPreview = &ReplyPreview{ID: parent.ID, Username: name, Message: preview(parent.Text)}
		}
	}
	for _, rc := range reactions {
		i := slices.IndexFunc(v.Reactions, func(x ReactionView) bool { return x.Emoji == rc.Emoji })
		if i < 0 {
			v.Reactions = append(v.Reactions, ReactionView{Emoji: rc.Emoji})
			i = len(v.Reactions) - 1
		}
		v.Reactions[i].Count++
		v.Reactions[i].UserIDs = append(v.Reactions[i].UserIDs, rc.UserID)
	}
	return v
}

// preview returns the start of a message for reply_preview.
func preview(s string) string {
	if utf8.RuneCountInString(s) <= maxPreviewRunes {
		return s
	}
	r := []rune(s)
	return string(r[:maxPreviewRunes]) + "…"
}

// pinViews lists a channel's pins for pinned_messages.
func (h *Hub) pinViews(ctx context.Context, channelID int64) ([]PinView, error) {
	pins, err := h.store.Pins(ctx, channelID)
	if err != nil {
		return nil, err
	}
	out := make([]PinView, 0, len(pins))
	for _, p := range pins {
		name := p.Message.Username
		if p.Message.Anonymous {
			name = "Anonymous"
		}
		out = append(out, PinView{ID: p.MessageID, UserID: p.Message.UserID, Username: name, Message: p.Message.Text,
			CreatedAt: apiTime(p.Message.CreatedAt), PinnedBy: p.PinnedBy, PinnedByUsername: p.PinnedByName,
			PinnedAt: apiTime(p.PinnedAt)})
	}
	return out, nil
}

// apiTime formats a time as RFC 3339 UTC with second precision, as the REST API does.
func apiTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }
