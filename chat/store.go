package chat

import (
	"context"
	"time"
)

// Store is the persistence the hub needs; control satisfies it over its database, sealing
// message text at rest. Every method is safe for concurrent use. Lookups of a missing row
// return ErrNotFound; a taken channel name ErrConflict; a limit passed ErrLimit.
type Store interface {
	// CreateChannel inserts ch (ID ignored) and returns it with its id.
	CreateChannel(ctx context.Context, ch Channel) (Channel, error)
	// UpdateChannel stores ch's name, description, visibility and mode.
	UpdateChannel(ctx context.Context, ch Channel) error
	// DeleteChannel deletes channel id with its messages, reactions, pins and read marks.
	DeleteChannel(ctx context.Context, id int64) error
	// Channel returns channel id.
	Channel(ctx context.Context, id int64) (Channel, error)
	// ChannelByName returns the channel named name.
	ChannelByName(ctx context.Context, name string) (Channel, error)
	// ChannelByStream returns the channel of stream streamID.
	ChannelByStream(ctx context.Context, streamID int64) (Channel, error)
	// Channels returns every channel: the default one first, then by name.
	Channels(ctx context.Context) ([]Channel, error)

	// CreateMessage inserts m (ID ignored) and returns it with its id and its author's
	// username and role.
	CreateMessage(ctx context.Context, m Message) (Message, error)
	// Message returns message id with its author's username and role.
	Message(ctx context.Context, id int64) (Message, error)
	// EditMessage replaces the text of message id and sets its edit time.
	EditMessage(ctx context.Context, id int64, text string, at time.Time) error
	// DeleteMessage deletes message id with its reactions and pin.
	DeleteMessage(ctx context.Context, id int64) error
	// Messages returns up to limit messages of channel channelID with an id below beforeID
	// (0: no bound), newest first.
	Messages(ctx context.Context, channelID, beforeID int64, limit int) ([]Message, error)
	// PurgeMessages deletes the messages created before t and returns how many.
	PurgeMessages(ctx context.Context, before time.Time) (int64, error)

	// ToggleReaction removes r when the user already reacted with that emoji, else adds
	// it, unless the user already has maxPerUser reactions on the message (ErrLimit).
	ToggleReaction(ctx context.Context, r Reaction, maxPerUser int) (added bool, err error)
	// Reactions returns the reactions of the messages, oldest first, with usernames.
	Reactions(ctx context.Context, messageIDs []int64) ([]Reaction, error)

	// Pin pins a message: ErrConflict when it is pinned, ErrLimit when its channel
	// already has maxPerChannel pins.
	Pin(ctx context.Context, p Pin, maxPerChannel int) error
	// Unpin unpins a message (ErrNotFound when it is not pinned).
	Unpin(ctx context.Context, messageID int64) error
	// Pins returns the pins of a channel, oldest first, with their messages and the
	// pinner's username.
	Pins(ctx context.Context, channelID int64) ([]Pin, error)

	// MarkRead records that userID has read channelID up to messageID (it never moves
	// back).
	MarkRead(ctx context.Context, userID, channelID, messageID int64) error
	// UnreadCounts returns, per channel id, how many messages by others userID has not
	// read.
	UnreadCounts(ctx context.Context, userID int64) (map[int64]int, error)
}

// Channel is a chat channel: the default "general", one per stream, or one an admin
// created.
type Channel struct {
	ID          int64
	Name        string
	Description string
	IsDefault   bool
	// StreamID is the stream whose channel this is; 0 for other channels.
	StreamID int64
	// OwnerID is the stream's owner or the channel's creator (0: none); the owner
	// moderates the channel.
	OwnerID int64
	// Private: only the owner, admins (and, later, members) see and join it.
	Private bool
	// ReadOnly: only moderators send.
	ReadOnly  bool
	CreatedAt time.Time
}

// Message is a stored chat message.
type Message struct {
	ID        int64
	ChannelID int64
	UserID    int64
	// Username and AuthorRole are the author's, filled in by the store on reads.
	Username   string
	AuthorRole Role
	Text       string
	// ReplyTo is the parent message id (0: not a reply); the parent may be gone.
	ReplyTo   int64
	Anonymous bool
	CreatedAt time.Time
	// EditedAt is the last edit (zero: never edited).
	EditedAt time.Time
}

// Reaction is one user's emoji on a message.
type Reaction struct {
	MessageID int64
	UserID    int64
	Username  string // filled in by Reactions
	Emoji     string
	CreatedAt time.Time
}

// Pin is a pinned message.
type Pin struct {
	MessageID int64
	ChannelID int64
	PinnedBy  int64
	// PinnedByName and Message are filled in by Pins.
	PinnedByName string
	PinnedAt     time.Time
	Message      Message
}
