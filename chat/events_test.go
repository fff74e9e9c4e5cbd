package chat

import "testing"

func TestEventTypeString(t *testing.T) {
	for typ, want := range map[EventType]string{
		EventUnknown:          "unknown",
		EventMessageCreated:   "message.created",
		EventMessageDeleted:   "message.deleted",
		EventUserConnected:    "user.connected",
		EventUserDisconnected: "user.disconnected",
		EventType(99):         "unknown",
	} {
		if got := typ.String(); got != want {
			t.Errorf("%d: %q, want %q", typ, got, want)
		}
	}
}
