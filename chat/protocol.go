package chat

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ClientType is the type of a message a client sends on /ws/chat.
type ClientType int

// Client message types. ClientUnknown (the zero value) is any type this server does not
// serve (yet): the hub answers it with an "error" message and keeps the connection.
const (
	ClientUnknown  ClientType = iota
	ClientJoin                // {"type":"join","channel"}
	ClientSend                // {"type":"message","channel","message","reply_to"}
	ClientDelete              // {"type":"delete","message_id"}
	ClientReact               // {"type":"react","message_id","emoji"}
	ClientEdit                // {"type":"edit_message","message_id","message"}
	ClientPin                 // {"type":"pin_message","message_id"}
	ClientUnpin               // {"type":"unpin_message","message_id"}
	ClientMarkRead            // {"type":"mark_read","message_id"}
	ClientTyping              // {"type":"typing","channel"}
	ClientHistory             // {"type":"history","channel","before_id","limit"} (relaycast extension)
)

var clientTypeNames = [...]string{
	ClientUnknown:  "unknown",
	ClientJoin:     "join",
	ClientSend:     "message",
	ClientDelete:   "delete",
	ClientReact:    "react",
	ClientEdit:     "edit_message",
	ClientPin:      "pin_message",
	ClientUnpin:    "unpin_message",
	ClientMarkRead: "mark_read",
	ClientTyping:   "typing",
	ClientHistory:  "history",
}

// String returns the type as it appears in the "type" field.
func (t ClientType) String() string {
	if t < 0 || int(t) >= len(clientTypeNames) {
		return clientTypeNames[ClientUnknown]
	}
	return clientTypeNames[t]
}

// parseClientType maps a "type" field to its ClientType (ClientUnknown when unknown).
func parseClientType(s string) ClientType {
	for t, name := range clientTypeNames {
		if t != int(ClientUnknown) && name == s {
			return ClientType(t)
		}
	}
	return ClientUnknown
}

// ClientMessage is a decoded client message. Only the fields of its type are meaningful;
// the others are zero.
type ClientMessage struct {
	Type ClientType
	// TypeName is the "type" field as sent (kept for ClientUnknown's error answer).
	TypeName  string
	Channel   string
	Message   string
	ReplyTo   int64
	ImageURL  string
	MessageID int64
	Emoji     string
	BeforeID  int64
	Limit     int
}

// clientWire is the JSON shape of every client message. Unknown fields are ignored, so
// that clients of the reference that send fields this server does not use still work.
type clientWire struct {
	Type      *string `json:"type"`
	Channel   string  `json:"channel"`
	Message   string  `json:"message"`
	ReplyTo   int64   `json:"reply_to"`
	ImageURL  string  `json:"image_url"`
	MessageID int64   `json:"message_id"`
	Emoji     string  `json:"emoji"`
	BeforeID  int64   `json:"before_id"`
	Limit     int     `json:"limit"`
}

// DecodeClientMessage decodes one client frame. A frame that is not a JSON object with a
// non-empty string "type" and fields of the protocol's JSON types is ErrMalformed; a
// well-formed frame of a type this server does not serve decodes with Type ClientUnknown.
// Field values are not validated here (the hub checks them with the state they concern).
func DecodeClientMessage(data []byte) (ClientMessage, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return ClientMessage{}, fmt.Errorf("%w: not a JSON object", ErrMalformed)
	}
	var w clientWire
	if err := json.Unmarshal(data, &w); err != nil {
		return ClientMessage{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if w.Type == nil || *w.Type == "" {
		return ClientMessage{}, fmt.Errorf("%w: missing \"type\"", ErrMalformed)
	}
	return ClientMessage{
		Type:      parseClientType(*w.Type),
		TypeName:  *w.Type,
		Channel:   w.Channel,
		Message:   w.Message,
		ReplyTo:   w.ReplyTo,
		ImageURL:  w.ImageURL,
		MessageID: w.MessageID,
		Emoji:     w.Emoji,
		BeforeID:  w.BeforeID,
		Limit:     w.Limit,
	}, nil
}

// Avatar is a user's avatar (a color and an emoji). Profiles arrive with /api/me/avatar;
// until then it is null on the wire.
type Avatar struct {
	Color string `json:"color"`
	Emoji string `json:"emoji"`
}

// MessageView is a message on the wire: the "message" event (Type "message"), an entry of
// "history" and of the REST message lists (Type empty, left out).
type MessageView struct {
	Type         string         `json:"type,omitempty"`
	ID           int64          `json:"id"`
	ChannelID    int64          `json:"channel_id"`
	Channel      string         `json:"channel"`
	UserID       int64          `json:"user_id"`
	Username     string         `json:"username"`
	Nickname     *string        `json:"nickname"`
	Role         string         `json:"role"`
	Anonymous    bool           `json:"anonymous"`
	Avatar       *Avatar        `json:"avatar"`
	Message      string         `json:"message"`
	ReplyTo      *int64         `json:"reply_to,omitempty"`
	ReplyPreview *ReplyPreview  `json:"reply_preview,omitempty"`
	CreatedAt    string         `json:"created_at"`
	EditedAt     *string        `json:"edited_at"`
	Reactions    []ReactionView `json:"reactions"`
}

// ReplyPreview is the start of the message a reply answers.
type ReplyPreview struct {
	ID       int64  `json:"id"`
	Username string `json:"username"`
	Message  string `json:"message"`
}

// ReactionView is one emoji's reactions on a message: who reacted, in order.
type ReactionView struct {
	Emoji   string  `json:"emoji"`
	Count   int     `json:"count"`
	UserIDs []int64 `json:"user_ids"`
}

// PinView is an entry of "pinned_messages".
type PinView struct {
	ID               int64  `json:"id"`
	UserID           int64  `json:"user_id"`
	Username         string `json:"username"`
	Message          string `json:"message"`
	CreatedAt        string `json:"created_at"`
	PinnedBy         int64  `json:"pinned_by"`
	PinnedByUsername string `json:"pinned_by_username"`
	PinnedAt         string `json:"pinned_at"`
}

// UserView is an entry of "users" (online users of a channel).
type UserView struct {
	UserID    int64   `json:"user_id"`
	Username  string  `json:"username"`
	Nickname  *string `json:"nickname"`
	Role      string  `json:"role"`
	Anonymous bool    `json:"anonymous"`
	Avatar    *Avatar `json:"avatar"`
}

// ChannelView is a channel in the REST API (GET /api/chat/channels). is_default is 1 or
// 0 as in the API reference.
type ChannelView struct {
	ID              int64  `json:"id"`
	Name            string `json:"name"`
	Description     string `json:"description"`
	IsDefault       int    `json:"is_default"`
	IsStreamChannel bool   `json:"is_stream_channel"`
	StreamID        *int64 `json:"stream_id"`
	Visibility      string `json:"visibility"`
	Mode            string `json:"mode"`
	CreatedAt       string `json:"created_at"`
	UnreadCount     int    `json:"unread_count"`
}

// Server messages. Each carries "channel" (the channel name) where the reference's
// example has none, so that a client knows where an event belongs.
type (
	channelInfoMsg struct {
		Type            string `json:"type"`
		ID              int64  `json:"id"`
		Name            string `json:"name"`
		Topic           string `json:"topic"`
		IsStreamChannel bool   `json:"is_stream_channel"`
		StreamID        *int64 `json:"stream_id"`
		Visibility      string `json:"visibility"`
		Mode            string `json:"mode"`
		CanModerate     bool   `json:"can_moderate"`
	}
	historyMsg struct {
		Type     string        `json:"type"`
		Channel  string        `json:"channel"`
		Messages []MessageView `json:"messages"`
		HasMore  bool          `json:"has_more"`
		BeforeID *int64        `json:"before_id,omitempty"`
	}
	pinnedMessagesMsg struct {
		Type     string    `json:"type"`
		Channel  string    `json:"channel"`
		Messages []PinView `json:"messages"`
	}
	usersMsg struct {
		Type    string     `json:"type"`
		Channel string     `json:"channel"`
		Users   []UserView `json:"users"`
	}
	userJoinedMsg struct {
		Type      string  `json:"type"`
		Channel   string  `json:"channel"`
		UserID    int64   `json:"user_id"`
		Username  string  `json:"username"`
		Nickname  *string `json:"nickname"`
		Role      string  `json:"role"`
		Anonymous bool    `json:"anonymous"`
		Avatar    *Avatar `json:"avatar"`
	}
	userLeftMsg struct {
		Type     string `json:"type"`
		Channel  string `json:"channel"`
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}
	messageDeletedMsg struct {
		Type      string `json:"type"`
		Channel   string `json:"channel"`
		MessageID int64  `json:"message_id"`
		DeletedBy int64  `json:"deleted_by"`
	}
	messageEditedMsg struct {
		Type      string `json:"type"`
		Channel   string `json:"channel"`
		MessageID int64  `json:"message_id"`
		NewText   string `json:"new_text"`
		EditedAt  string `json:"edited_at"`
	}
	reactionUpdateMsg struct {
		Type      string `json:"type"`
		Channel   string `json:"channel"`
		MessageID int64  `json:"message_id"`
		Emoji     string `json:"emoji"`
		UserID    int64  `json:"user_id"`
		Username  string `json:"username"`
		Action    string `json:"action"`
	}
	messagePinnedMsg struct {
		Type             string `json:"type"`
		Channel          string `json:"channel"`
		MessageID        int64  `json:"message_id"`
		PinnedBy         int64  `json:"pinned_by"`
		PinnedByUsername string `json:"pinned_by_username"`
	}
	messageUnpinnedMsg struct {
		Type      string `json:"type"`
		Channel   string `json:"channel"`
		MessageID int64  `json:"message_id"`
	}
	typingMsg struct {
		Type     string `json:"type"`
		Channel  string `json:"channel"`
		UserID   int64  `json:"user_id"`
		Username string `json:"username"`
	}
	channelRenamedMsg struct {
		Type      string `json:"type"`
		ChannelID int64  `json:"channel_id"`
		OldName   string `json:"old_name"`
		NewName   string `json:"new_name"`
	}
	channelDeletedMsg struct {
		Type      string `json:"type"`
		ChannelID int64  `json:"channel_id"`
		Channel   string `json:"channel"`
	}
	unreadCountsMsg struct {
		Type   string         `json:"type"`
		Counts map[string]int `json:"counts"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
)
