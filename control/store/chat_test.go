package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestChat(t *testing.T) {
	ctx := context.Background()
	s, _ := openTest(t)
	now := time.UnixMilli(1_700_000_000_000).UTC()
	alice, _ := s.CreateUser(ctx, User{Username: "alice", PasswordHash: "x", CreatedAt: now})
	bob, _ := s.CreateUser(ctx, User{Username: "bob", PasswordHash: "x", IsAdmin: true, CreatedAt: now})
	st, err := s.CreateStream(ctx, Stream{UserID: alice.ID, Title: "t", KeyHash: []byte("k"), KeyPrefix: "live_", PlaybackID: "pub_x", CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}

	gen, err := s.CreateChatChannel(ctx, ChatChannel{Name: "general", IsDefault: true, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChatChannel(ctx, ChatChannel{Name: "general", CreatedAt: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	if _, err := s.CreateChatChannel(ctx, ChatChannel{Name: "stream-999", StreamID: 999, CreatedAt: now}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown stream: %v", err)
	}
	sc, err := s.CreateChatChannel(ctx, ChatChannel{Name: "stream-1", StreamID: st.ID, OwnerID: alice.ID, Private: true, CreatedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateChatChannel(ctx, ChatChannel{Name: "stream-1b", StreamID: st.ID, CreatedAt: now}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second channel of a stream: %v", err)
	}
	if got, _ := s.StreamByID(ctx, st.ID); got.ChatChannelID != sc.ID {
		t.Fatalf("stream's chat channel %d, want %d", got.ChatChannelID, sc.ID)
	}
	if got, err := s.ChatChannelByStream(ctx, st.ID); err != nil || got != sc {
		t.Fatalf("by stream %+v %v, want %+v", got, err, sc)
	}
	list, _ := s.ListChatChannels(ctx)
	if len(list) != 2 || list[0].Name != "general" {
		t.Fatalf("list %+v", list)
	}

	// Messages: the body is whatever the caller sealed, bound to the new id.
	var sealedFor int64
	m1, err := s.CreateChatMessage(ctx, ChatMessage{ChannelID: gen.ID, UserID: alice.ID, CreatedAt: now},
		func(id int64) []byte { sealedFor = id; return []byte("sealed-1") })
	if err != nil || sealedFor != m1.ID || m1.Username != "alice" || m1.UserIsAdmin {
		t.Fatalf("create %+v %v (sealed for %d)", m1, err, sealedFor)
	}
	m2, _ := s.CreateChatMessage(ctx, ChatMessage{ChannelID: gen.ID, UserID: bob.ID, ReplyTo: m1.ID, CreatedAt: now.Add(time.Minute)},
		func(int64) []byte { return []byte("sealed-2") })
	if _, err := s.CreateChatMessage(ctx, ChatMessage{ChannelID: 12345, UserID: bob.ID, CreatedAt: now},
		func(int64) []byte { return nil }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown channel: %v", err)
	}
	got, err := s.ChatMessageByID(ctx, m2.ID)
	if err != nil || string(got.Body) != "sealed-2" || got.ReplyTo != m1.ID || !got.UserIsAdmin || got.Username != "bob" {
		t.Fatalf("get %+v %v", got, err)
	}
	if err := s.UpdateChatMessageBody(ctx, m1.ID, []byte("sealed-1b"), now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	page, _ := s.ListChatMessages(ctx, gen.ID, 0, 10)
	if len(page) != 2 || page[0].ID != m2.ID || string(page[1].Body) != "sealed-1b" || !page[1].EditedAt.Equal(now.Add(2*time.Minute)) {
		t.Fatalf("list %+v", page)
	}
	if page, _ := s.ListChatMessages(ctx, gen.ID, m2.ID, 10); len(page) != 1 || page[0].ID != m1.ID {
		t.Fatalf("before %+v", page)
	}

	// Reactions toggle, with a per-user cap.
	for i, want := range []bool{true, false, true} {
		added, err := s.ToggleChatReaction(ctx, ChatReaction{MessageID: m1.ID, UserID: bob.ID, Emoji: "👍", CreatedAt: now}, 2)
		if err != nil || added != want {
			t.Fatalf("toggle %d: %v %v", i, added, err)
		}
	}
	s.ToggleChatReaction(ctx, ChatReaction{MessageID: m1.ID, UserID: bob.ID, Emoji: "🎉", CreatedAt: now}, 2)
	if _, err := s.ToggleChatReaction(ctx, ChatReaction{MessageID: m1.ID, UserID: bob.ID, Emoji: "🔥", CreatedAt: now}, 2); !errors.Is(err, ErrLimit) {
		t.Fatalf("cap: %v", err)
	}
	if _, err := s.ToggleChatReaction(ctx, ChatReaction{MessageID: 999, UserID: bob.ID, Emoji: "🔥", CreatedAt: now}, 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
	rs, _ := s.ListChatReactions(ctx, []int64{m1.ID, m2.ID})
	if len(rs) != 2 || rs[0].Emoji != "👍" || rs[0].Username != "bob" {
		t.Fatalf("reactions %+v", rs)
	}

	// Pins: once each, a cap per channel.
	if err := s.PinChatMessage(ctx, ChatPin{MessageID: m1.ID, ChannelID: gen.ID, PinnedBy: bob.ID, PinnedAt: now}, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.PinChatMessage(ctx, ChatPin{MessageID: m1.ID, ChannelID: gen.ID, PinnedBy: bob.ID, PinnedAt: now}, 5); !errors.Is(err, ErrConflict) {
		t.Fatalf("pin twice: %v", err)
	}
	if err := s.PinChatMessage(ctx, ChatPin{MessageID: m2.ID, ChannelID: gen.ID, PinnedBy: bob.ID, PinnedAt: now}, 1); !errors.Is(err, ErrLimit) {
		t.Fatalf("pin cap: %v", err)
	}
	pins, _ := s.ListChatPins(ctx, gen.ID)
	if len(pins) != 1 || pins[0].MessageID != m1.ID || pins[0].PinnedByName != "bob" || string(pins[0].Message.Body) != "sealed-1b" ||
		pins[0].Message.Username != "alice" {
		t.Fatalf("pins %+v", pins)
	}
	if err := s.UnpinChatMessage(ctx, m2.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unpin unpinned: %v", err)
	}

	// Unread counts: others' messages after the read position, which never moves back.
	if c, _ := s.ChatUnreadCounts(ctx, alice.ID); c[gen.ID] != 1 {
		t.Fatalf("alice unread %v", c)
	}
	if c, _ := s.ChatUnreadCounts(ctx, bob.ID); c[gen.ID] != 1 {
		t.Fatalf("bob unread %v", c)
	}
	s.MarkChatRead(ctx, bob.ID, gen.ID, m1.ID)
	s.MarkChatRead(ctx, bob.ID, gen.ID, 0)
	if c, _ := s.ChatUnreadCounts(ctx, bob.ID); c[gen.ID] != 0 {
		t.Fatalf("bob unread after read %v", c)
	}

	// Purge by age; deleting a message takes its reactions and pin.
	if n, err := s.DeleteChatMessagesBefore(ctx, now.Add(30*time.Second)); err != nil || n != 1 {
		t.Fatalf("purge %d %v", n, err)
	}
	if rs, _ := s.ListChatReactions(ctx, []int64{m1.ID}); len(rs) != 0 {
		t.Fatalf("reactions left %+v", rs)
	}
	if pins, _ := s.ListChatPins(ctx, gen.ID); len(pins) != 0 {
		t.Fatalf("pins left %+v", pins)
	}

	// Deleting the stream deletes its channel and the channel's messages.
	s.CreateChatMessage(ctx, ChatMessage{ChannelID: sc.ID, UserID: bob.ID, CreatedAt: now}, func(int64) []byte { return []byte("x") })
	if err := s.DeleteStream(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ChatChannelByID(ctx, sc.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("stream channel survived: %v", err)
	}
	var n int
	s.db.QueryRow("SELECT COUNT(*) FROM chat_messages WHERE channel_id = ?", sc.ID).Scan(&n)
	if n != 0 {
		t.Fatalf("%d messages of the deleted channel", n)
	}

	// Renames: a taken name is a conflict.
	dev, _ := s.CreateChatChannel(ctx, ChatChannel{Name: "dev", CreatedAt: now})
	dev.Name = "general"
	if err := s.UpdateChatChannel(ctx, dev); !errors.Is(err, ErrConflict) {
		t.Fatalf("rename to a taken name: %v", err)
	}
	dev.Name, dev.ReadOnly = "engineering", true
	if err := s.UpdateChatChannel(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.ChatChannelByName(ctx, "engineering"); !got.ReadOnly {
		t.Fatalf("renamed %+v", got)
	}
	if err := s.DeleteChatChannel(ctx, dev.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteChatChannel(ctx, dev.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
}
