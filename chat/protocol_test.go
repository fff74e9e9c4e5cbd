package chat

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClientTypeString(t *testing.T) {
	for _, tc := range []struct {
		t    ClientType
		name string
	}{
		{ClientUnknown, "unknown"},
		{ClientJoin, "join"},
		{ClientSend, "message"},
		{ClientDelete, "delete"},
		{ClientReact, "react"},
		{ClientEdit, "edit_message"},
		{ClientPin, "pin_message"},
		{ClientUnpin, "unpin_message"},
		{ClientMarkRead, "mark_read"},
		{ClientTyping, "typing"},
		{ClientHistory, "history"},
		{ClientType(99), "unknown"},
		{ClientType(-1), "unknown"},
	} {
		if got := tc.t.String(); got != tc.name {
			t.Errorf("%d: %q, want %q", int(tc.t), got, tc.name)
		}
		if tc.name != "unknown" && parseClientType(tc.name) != tc.t {
			t.Errorf("parse %q: %v", tc.name, parseClientType(tc.name))
		}
	}
	if parseClientType("unknown") != ClientUnknown || parseClientType("dm_message") != ClientUnknown {
		t.Error("unknown types must parse as ClientUnknown")
	}
}

func TestRoleString(t *testing.T) {
	for r, want := range map[Role]string{RoleUnknown: "unknown", RoleUser: "user", RoleModerator: "moderator",
		RoleAdmin: "admin", Role(42): "unknown"} {
		if r.String() != want {
			t.Errorf("%d: %q", int(r), r.String())
		}
	}
}

func TestDecodeClientMessage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ClientMessage
		err  bool
	}{
		{in: `{"type": "join", "channel": "general"}`, want: ClientMessage{Type: ClientJoin, TypeName: "join", Channel: "general"}},
		{in: `{"type":"message","channel":"general","message":"Nice!","reply_to":42}`,
			want: ClientMessage{Type: ClientSend, TypeName: "message", Channel: "general", Message: "Nice!", ReplyTo: 42}},
		{in: `{"type":"message","channel":"general","message":"","image_url":"/static/uploads/chat/abc.jpg"}`,
			want: ClientMessage{Type: ClientSend, TypeName: "message", Channel: "general", ImageURL: "/static/uploads/chat/abc.jpg"}},
		{in: `{"type": "delete", "message_id": 42}`, want: ClientMessage{Type: ClientDelete, TypeName: "delete", MessageID: 42}},
		{in: `{"type": "react", "message_id": 42, "emoji": "👍"}`, want: ClientMessage{Type: ClientReact, TypeName: "react", MessageID: 42, Emoji: "👍"}},
		{in: `{"type": "edit_message", "message_id": 42, "message": "Updated text"}`,
			want: ClientMessage{Type: ClientEdit, TypeName: "edit_message", MessageID: 42, Message: "Updated text"}},
		{in: `{"type": "pin_message", "message_id": 42}`, want: ClientMessage{Type: ClientPin, TypeName: "pin_message", MessageID: 42}},
		{in: `{"type": "unpin_message", "message_id": 42}`, want: ClientMessage{Type: ClientUnpin, TypeName: "unpin_message", MessageID: 42}},
		{in: `{"type": "mark_read", "message_id": 50}`, want: ClientMessage{Type: ClientMarkRead, TypeName: "mark_read", MessageID: 50}},
		{in: `{"type": "typing", "channel": "general"}`, want: ClientMessage{Type: ClientTyping, TypeName: "typing", Channel: "general"}},
		{in: `{"type": "history", "channel": "general", "before_id": 100, "limit": 20}`,
			want: ClientMessage{Type: ClientHistory, TypeName: "history", Channel: "general", BeforeID: 100, Limit: 20}},
		// Types of later features decode as unknown; their extra fields are ignored.
		{in: `{"type": "vote_poll", "poll_id": 1, "option_index": 0}`, want: ClientMessage{Type: ClientUnknown, TypeName: "vote_poll"}},
		{in: `{"type": "join", "channel": "general", "reply_to": null}`, want: ClientMessage{Type: ClientJoin, TypeName: "join", Channel: "general"}},
		{in: " \n{\"type\":\"typing\"}\n", want: ClientMessage{Type: ClientTyping, TypeName: "typing"}},
		{in: ``, err: true},
		{in: `null`, err: true},
		{in: `[]`, err: true},
		{in: `"join"`, err: true},
		{in: `{}`, err: true},
		{in: `{"type": ""}`, err: true},
		{in: `{"type": null}`, err: true},
		{in: `{"type": 1}`, err: true},
		{in: `{"type": "delete", "message_id": "42"}`, err: true},
		{in: `{"type": "delete", "message_id": 4.5}`, err: true},
		{in: `{"type": "delete", "message_id": 1e40}`, err: true},
		{in: `{"type": "join"} x`, err: true},
		{in: `{"type": "join"`, err: true},
	} {
		got, err := DecodeClientMessage([]byte(tc.in))
		if tc.err {
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%q: err %v, want ErrMalformed", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q:\n got %+v %v\nwant %+v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzDecodeClientMessage: the decoder never panics, refuses with ErrMalformed only, and
// what it accepts is consistent (the type name given maps to Type) and survives a
// round trip through the wire form.
func FuzzDecodeClientMessage(f *testing.F) {
	for _, s := range []string{
		`{"type": "join", "channel": "general"}`,
		`{"type":"message","channel":"general","message":"Nice!","reply_to":42}`,
		`{"type": "react", "message_id": 42, "emoji": "👍"}`,
		`{"type": "history", "before_id": 100, "limit": 20}`,
		`{"type": "create_poll", "options": ["a", "b"]}`,
		`{"type": 1}`, `[]`, `null`, "{\"type\":\"\xff\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeClientMessage(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if m.TypeName == "" || parseClientType(m.TypeName) != m.Type {
			t.Fatalf("type %q decoded as %v", m.TypeName, m.Type)
		}
		wire, err := json.Marshal(clientWire{Type: &m.TypeName, Channel: m.Channel, Message: m.Message, ReplyTo: m.ReplyTo,
			ImageURL: m.ImageURL, MessageID: m.MessageID, Emoji: m.Emoji, BeforeID: m.BeforeID, Limit: m.Limit})
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeClientMessage(wire)
		if err != nil || again != m {
			t.Fatalf("round trip: %+v → %s → %+v %v", m, wire, again, err)
		}
	})
}

// TestServerWireShapes locks the field names of every server message.
func TestServerWireShapes(t *testing.T) {
	keys := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for k := range m {
			out = append(out, k)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	}
	created := time.Date(2026, 2, 10, 12, 0, 0, 0, time.UTC)
	ch := Channel{ID: 1, Name: "general", Description: "General discussion", IsDefault: true, CreatedAt: created}
	parent := Message{ID: 42, ChannelID: 1, UserID: 1, Username: "alice", AuthorRole: RoleUser, Text: "Hello!", CreatedAt: created}
	reply := Message{ID: 43, ChannelID: 1, UserID: 2, Username: "bob", AuthorRole: RoleAdmin, Text: "Nice!", ReplyTo: 42, CreatedAt: created}
	v := messageView(ch, reply, &parent, []Reaction{{MessageID: 43, UserID: 1, Emoji: "👍"}, {MessageID: 43, UserID: 3, Emoji: "👍"}})
	v.Type = "message"
	for _, tc := range []struct {
		v    any
		want string
	}{
		{v, "anonymous,avatar,channel,channel_id,created_at,edited_at,id,message,nickname,reactions,reply_preview,reply_to,role,type,user_id,username"},
		{messageView(ch, parent, nil, nil), "anonymous,avatar,channel,channel_id,created_at,edited_at,id,message,nickname,reactions,role,user_id,username"},
		{channelInfo(User{ID: 1}, ch), "can_moderate,id,is_stream_channel,mode,name,stream_id,topic,type,visibility"},
		{historyMsg{Type: "history"}, "channel,has_more,messages,type"},
		{pinnedMessagesMsg{Type: "pinned_messages"}, "channel,messages,type"},
		{PinView{}, "created_at,id,message,pinned_at,pinned_by,pinned_by_username,user_id,username"},
		{usersMsg{Type: "users"}, "channel,type,users"},
		{userView(User{ID: 1, Username: "alice", Role: RoleUser}), "anonymous,avatar,nickname,role,user_id,username"},
		{userJoinedMsg{}, "anonymous,avatar,channel,nickname,role,type,user_id,username"},
		{userLeftMsg{}, "channel,type,user_id,username"},
		{messageDeletedMsg{}, "channel,deleted_by,message_id,type"},
		{messageEditedMsg{}, "channel,edited_at,message_id,new_text,type"},
		{reactionUpdateMsg{}, "action,channel,emoji,message_id,type,user_id,username"},
		{messagePinnedMsg{}, "channel,message_id,pinned_by,pinned_by_username,type"},
		{messageUnpinnedMsg{}, "channel,message_id,type"},
		{typingMsg{}, "channel,type,user_id,username"},
		{channelRenamedMsg{}, "channel_id,new_name,old_name,type"},
		{channelDeletedMsg{}, "channel,channel_id,type"},
		{unreadCountsMsg{}, "counts,type"},
		{errorMsg{}, "message,type"},
		{channelView(ch, 3), "created_at,description,id,is_default,is_stream_channel,mode,name,stream_id,unread_count,visibility"},
	} {
		if got := keys(tc.v); got != tc.want {
			t.Errorf("%T:\n got %s\nwant %s", tc.v, got, tc.want)
		}
	}
	b, _ := json.Marshal(v)
	const want = `{"type":"message","id":43,"channel_id":1,"channel":"general","user_id":2,"username":"bob","nickname":null,` +
		`"role":"admin","anonymous":false,"avatar":null,"message":"Nice!","reply_to":42,` +
		`"reply_preview":{"id":42,"username":"alice","message":"Hello!"},"created_at":"2026-02-10T12:00:00Z","edited_at":null,` +
		`"reactions":[{"emoji":"👍","count":2,"user_ids":[1,3]}]}`
	if string(b) != want {
		t.Fatalf("message\n got %s\nwant %s", b, want)
	}
	b, _ = json.Marshal(channelView(ch, 3))
	if string(b) != `{"id":1,"name":"general","description":"General discussion","is_default":1,"is_stream_channel":false,`+
		`"stream_id":null,"visibility":"public","mode":"open","created_at":"2026-02-10T12:00:00Z","unread_count":3}` {
		t.Fatalf("channel %s", b)
	}
}

func TestRateLimiter(t *testing.T) {
	l := newRateLimiter(5, 5*time.Second)
	t0 := time.Unix(1000, 0)
	for i := range 5 {
		if !l.allow(1, t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("event %d refused", i)
		}
	}
	if l.allow(1, t0.Add(4999*time.Millisecond)) {
		t.Fatal("sixth event within 5 s allowed")
	}
	if !l.allow(2, t0) {
		t.Fatal("another user limited")
	}
	// The window slides: at t0+5s the first event has left it, the second has not.
	if !l.allow(1, t0.Add(5*time.Second)) || l.allow(1, t0.Add(5500*time.Millisecond)) {
		t.Fatal("sliding window")
	}
	l.prune(t0.Add(20 * time.Second))
	if len(l.users) != 0 {
		t.Fatalf("prune left %d", len(l.users))
	}
	off := newRateLimiter(-1, time.Second)
	for range 100 {
		if !off.allow(1, t0) {
			t.Fatal("disabled limiter refused")
		}
	}
}

func TestPermissions(t *testing.T) {
	owner, user, mod, admin := User{ID: 1, Role: RoleUser}, User{ID: 2, Role: RoleUser}, User{ID: 3, Role: RoleModerator}, User{ID: 4, Role: RoleAdmin}
	pub := Channel{OwnerID: 1}
	priv := Channel{OwnerID: 1, Private: true}
	ro := Channel{OwnerID: 1, ReadOnly: true}
	for _, tc := range []struct {
		name          string
		u             User
		ch            Channel
		see, mod, snd bool
	}{
		{"user public", user, pub, true, false, true},
		{"owner public", owner, pub, true, true, true},
		{"user private", user, priv, false, false, false},
		{"owner private", owner, priv, true, true, true},
		{"moderator private", mod, priv, true, true, true},
		{"admin private", admin, priv, true, true, true},
		{"user readonly", user, ro, true, false, false},
		{"owner readonly", owner, ro, true, true, true},
		{"no owner", User{ID: 0, Role: RoleUser}, Channel{Private: true}, false, false, false},
	} {
		if got := [3]bool{canSee(tc.u, tc.ch), canModerate(tc.u, tc.ch), canSend(tc.u, tc.ch)}; got != [3]bool{tc.see, tc.mod, tc.snd} {
			t.Errorf("%s: see/moderate/send %v", tc.name, got)
		}
	}
}

func TestValidEmoji(t *testing.T) {
	for s, want := range map[string]bool{"👍": true, "👨‍👩‍👧": true, "❤️": true, ":+1:": true, "": false, "a b": false,
		"\x00": false, "\u202e": false, strings.Repeat("👍", 9): false, "\xff": false} {
		if validEmoji(s) != want {
			t.Errorf("%q: %v", s, !want)
		}
	}
}

func TestWindowText(t *testing.T) {
	for d, want := range map[time.Duration]string{5 * time.Minute: "5 minutes", time.Minute: "1 minute",
		90 * time.Minute: "90 minutes", 30 * time.Second: "30s"} {
		if got := windowText(d); got != want {
			t.Errorf("%v: %q", d, got)
		}
	}
}
