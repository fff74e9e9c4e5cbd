package chat

// EventType is the kind of an Event.
type EventType int

// Event types. The zero value is EventUnknown.
const (
	EventUnknown EventType = iota
	// EventMessageCreated: a message (or reply) was stored and broadcast.
	EventMessageCreated
	// EventMessageDeleted: a message was deleted.
	EventMessageDeleted
	// EventUserConnected: a user opened their first chat connection.
	EventUserConnected
	// EventUserDisconnected: a user's last chat connection closed.
	EventUserDisconnected
)

// String returns the event's wire name ("message.created", ...), the names the control
// plane's webhooks use.
func (t EventType) String() string {
	switch t {
	case EventMessageCreated:
		return "message.created"
	case EventMessageDeleted:
		return "message.deleted"
	case EventUserConnected:
		return "user.connected"
	case EventUserDisconnected:
		return "user.disconnected"
	}
	return "unknown"
}

// Event is what Config.OnEvent receives. Message fields are zero for the user events.
type Event struct {
	Type        EventType
	ChannelID   int64
	ChannelName string
	MessageID   int64
	// UserID and Username are the author of a created message, the deleter of a deleted
	// one, or the user who connected or disconnected.
	UserID   int64
	Username string
	// Content is a created message's text.
	Content string
}

// emit calls Config.OnEvent, when set.
func (h *Hub) emit(e Event) {
	if h.cfg.OnEvent != nil {
		h.cfg.OnEvent(e)
	}
}
