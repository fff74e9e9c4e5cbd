package chat

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConversation: three users in one channel exchange messages, a reply, reactions,
// an edit, deletes and pins; every client sees each event exactly once, in the order it
// happened, and refusals go to the refused client only.
func TestConversation(t *testing.T) {
	h := newHarness(t)
	h.addUser("alice", RoleUser)
	h.addUser("bob", RoleUser)
	carolU := h.addUser("carol", RoleModerator)

	alice := h.connect("alice", "general")
	bob := h.connect("bob", "general")
	if e := alice.expect("user_joined"); e.str("username") != "bob" || e.str("role") != "user" || e["anonymous"] != false {
		t.Fatalf("user_joined %v", e)
	}
	carol := h.dial("carol")
	carol.expect("unread_counts")
	info, history, pins, users := carol.join("general")
	if info.str("name") != "general" || info.str("topic") != "General discussion" || info["can_moderate"] != true {
		t.Fatalf("channel_info %v", info)
	}
	if msgs := history["messages"].([]any); len(msgs) != 0 || history["has_more"] != false {
		t.Fatalf("history %v", history)
	}
	if msgs := pins["messages"].([]any); len(msgs) != 0 {
		t.Fatalf("pins %v", pins)
	}
	var names []string
	for _, u := range users["users"].([]any) {
		names = append(names, u.(map[string]any)["username"].(string))
	}
	if !reflect.DeepEqual(names, []string{"alice", "bob", "carol"}) {
		t.Fatalf("users %v", names)
	}
	alice.expect("user_joined")
	bob.expect("user_joined")
	all := []*client{alice, bob, carol}

	// each checks that every client's next message is of type typ and returns them.
	each := func(typ string, clients ...*client) []event {
		t.Helper()
		var out []event
		for _, c := range clients {
			out = append(out, c.expect(typ))
		}
		return out
	}

	alice.send(map[string]any{"type": "message", "channel": "general", "message": "Hello!"})
	got := each("message", all...)
	m1 := got[0].num("id")
	for _, e := range got {
		if e.num("id") != m1 || e.str("message") != "Hello!" || e.str("username") != "alice" || e.str("role") != "user" ||
			e.num("user_id") != 1 || e["reply_to"] != nil || e["edited_at"] != nil || e.str("channel") != "general" {
			t.Fatalf("message %v", e)
		}
	}

	bob.send(map[string]any{"type": "message", "channel": "general", "message": "Nice!", "reply_to": m1})
	got = each("message", all...)
	m2 := got[0].num("id")
	for _, e := range got {
		rp, _ := e["reply_preview"].(map[string]any)
		if e.num("reply_to") != m1 || rp == nil || rp["id"] != float64(m1) || rp["username"] != "alice" || rp["message"] != "Hello!" {
			t.Fatalf("reply %v", e)
		}
	}

	carol.send(map[string]any{"type": "react", "message_id": m1, "emoji": "👍"})
	for _, e := range each("reaction_update", all...) {
		if e.num("message_id") != m1 || e.str("emoji") != "👍" || e.str("action") != "add" || e.str("username") != "carol" || e.num("user_id") != carolU.ID {
			t.Fatalf("reaction %v", e)
		}
	}
	carol.send(map[string]any{"type": "react", "message_id": m1, "emoji": "👍"})
	for _, e := range each("reaction_update", all...) {
		if e.str("action") != "remove" {
			t.Fatalf("reaction toggle %v", e)
		}
	}
	bob.send(map[string]any{"type": "react", "message_id": m1, "emoji": "🎉"})
	each("reaction_update", all...)

	alice.send(map[string]any{"type": "edit_message", "message_id": m1, "message": "Hello, everyone!"})
	for _, e := range each("message_edited", all...) {
		if e.num("message_id") != m1 || e.str("new_text") != "Hello, everyone!" || e.str("edited_at") == "" {
			t.Fatalf("edit %v", e)
		}
	}

	// Refusals reach the refused client only.
	bob.send(map[string]any{"type": "edit_message", "message_id": m1, "message": "hijack"})
	if e := bob.expect("error"); !strings.Contains(e.str("message"), "your own") {
		t.Fatalf("edit by non-owner: %v", e)
	}
	bob.send(map[string]any{"type": "delete", "message_id": m1})
	if e := bob.expect("error"); !strings.Contains(e.str("message"), "your own") {
		t.Fatalf("delete by non-owner: %v", e)
	}
	bob.send(map[string]any{"type": "pin_message", "message_id": m1})
	if e := bob.expect("error"); !strings.Contains(e.str("message"), "moderators") {
		t.Fatalf("pin by non-moderator: %v", e)
	}

	carol.send(map[string]any{"type": "pin_message", "message_id": m1})
	for _, e := range each("message_pinned", all...) {
		if e.num("message_id") != m1 || e.num("pinned_by") != carolU.ID || e.str("pinned_by_username") != "carol" {
			t.Fatalf("pin %v", e)
		}
	}

	bob.send(map[string]any{"type": "delete", "message_id": m2})
	for _, e := range each("message_deleted", all...) {
		if e.num("message_id") != m2 || e.num("deleted_by") != 2 {
			t.Fatalf("delete own %v", e)
		}
	}

	alice.send(map[string]any{"type": "message", "channel": "general", "message": "spam"})
	m3 := each("message", all...)[0].num("id")
	carol.send(map[string]any{"type": "delete", "message_id": m3})
	for _, e := range each("message_deleted", all...) {
		if e.num("message_id") != m3 || e.num("deleted_by") != carolU.ID {
			t.Fatalf("moderator delete %v", e)
		}
	}

	alice.send(map[string]any{"type": "typing", "channel": "general"})
	for _, e := range each("typing", bob, carol) {
		if e.str("username") != "alice" {
			t.Fatalf("typing %v", e)
		}
	}

	carol.send(map[string]any{"type": "unpin_message", "message_id": m1})
	each("message_unpinned", all...)
	carol.send(map[string]any{"type": "pin_message", "message_id": m1})
	each("message_pinned", all...)

	// A last message is everyone's next event: nothing was duplicated or left over (the
	// typing indicator did not reach its sender).
	bob.send(map[string]any{"type": "message", "channel": "general", "message": "bye"})
	for _, e := range each("message", all...) {
		if e.str("message") != "bye" {
			t.Fatalf("last %v", e)
		}
	}

	// A newcomer's join shows the state: history with the edit, the reactions and the
	// deletes applied, the pin, and the users.
	dave := h.addUser("dave", RoleUser)
	_ = dave
	d := h.dial("dave")
	d.expect("unread_counts")
	_, history, pins, _ = d.join("general")
	msgs := history["messages"].([]any)
	if len(msgs) != 2 {
		t.Fatalf("history %v", msgs)
	}
	first := event(msgs[0].(map[string]any))
	if first.num("id") != m1 || first.str("message") != "Hello, everyone!" || first["edited_at"] == nil {
		t.Fatalf("history[0] %v", first)
	}
	if r := first["reactions"].([]any); len(r) != 1 || r[0].(map[string]any)["emoji"] != "🎉" || r[0].(map[string]any)["count"] != float64(1) {
		t.Fatalf("history reactions %v", r)
	}
	if p := pins["messages"].([]any); len(p) != 1 || p[0].(map[string]any)["id"] != float64(m1) ||
		p[0].(map[string]any)["pinned_by_username"] != "carol" || p[0].(map[string]any)["message"] != "Hello, everyone!" {
		t.Fatalf("pinned_messages %v", p)
	}
	for _, c := range all {
		c.expect("user_joined")
		c.quiet(50 * time.Millisecond)
	}
}

// TestConcurrentSendersOrder: when several users send at once, every client receives the
// channel's messages in the same order, each once, in id order.
func TestConcurrentSendersOrder(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimit = -1 })
	const users, each = 4, 25
	var clients []*client
	for i := range users {
		clients = append(clients, h.connect(fmt.Sprintf("u%d", i), "general"))
		for _, c := range clients[:i] {
			c.expect("user_joined")
		}
	}
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := c.ws.WriteJSON(map[string]any{"type": "message", "channel": "general", "message": fmt.Sprintf("%d-%d", i, j)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	var want []int64
	for ci, c := range clients {
		var ids []int64
		for range users * each {
			ids = append(ids, c.expect("message").num("id"))
		}
		if ci == 0 {
			want = ids
			for k := 1; k < len(ids); k++ {
				if ids[k] <= ids[k-1] {
					t.Fatalf("ids out of order: %v", ids)
				}
			}
			continue
		}
		if !reflect.DeepEqual(ids, want) {
			t.Fatalf("%s saw another order:\n%v\n%v", c.name, ids, want)
		}
	}
}

// TestRateLimit: 5 messages per 5 s per user, across the user's connections; the sixth
// gets the reference's error and is not sent.
func TestRateLimit(t *testing.T) {
	h := newHarness(t)
	a1 := h.connect("u1", "general")
	a2 := h.connect("u1", "general") // same user, second tab
	other := h.connect("u2", "general")
	a1.expect("user_joined")
	a2.expect("user_joined")
	for i := range 5 {
		c := a1
		if i%2 == 1 {
			c = a2
		}
		c.send(map[string]any{"type": "message", "channel": "general", "message": fmt.Sprint(i)})
		for _, x := range []*client{a1, a2, other} {
			x.expect("message")
		}
	}
	a2.send(map[string]any{"type": "message", "channel": "general", "message": "too fast"})
	if e := a2.expect("error"); e.str("message") != "Slow down! You're sending messages too fast." {
		t.Fatalf("rate limit error %v", e)
	}
	other.quiet(50 * time.Millisecond)
	// Another user is not limited by u1.
	other.send(map[string]any{"type": "message", "channel": "general", "message": "me"})
	a1.expect("message")
	h.clock.Advance(4 * time.Second)
	a1.send(map[string]any{"type": "message", "channel": "general", "message": "still too fast"})
	a1.expect("error")
	h.clock.Advance(time.Second)
	a1.send(map[string]any{"type": "message", "channel": "general", "message": "ok"})
	if e := a1.expect("message"); e.str("message") != "ok" {
		t.Fatalf("after the window: %v", e)
	}
}

// TestEditWindow: an author edits within 5 minutes of sending, not after.
func TestEditWindow(t *testing.T) {
	h := newHarness(t)
	a := h.connect("u1", "general")
	a.send(map[string]any{"type": "message", "channel": "general", "message": "v1"})
	id := a.expect("message").num("id")
	h.clock.Advance(5*time.Minute - time.Second)
	a.send(map[string]any{"type": "edit_message", "message_id": id, "message": "v2"})
	a.expect("message_edited")
	h.clock.Advance(2 * time.Second)
	a.send(map[string]any{"type": "edit_message", "message_id": id, "message": "v3"})
	if e := a.expect("error"); e.str("message") != "messages can only be edited within 5 minutes of sending" {
		t.Fatalf("late edit %v", e)
	}
	// Deleting is not limited in time.
	a.send(map[string]any{"type": "delete", "message_id": id})
	a.expect("message_deleted")
}

// TestRefusals: invalid requests are answered with an error and change nothing.
func TestRefusals(t *testing.T) {
	h := newHarness(t)
	c := h.dial("u1")
	c.expect("unread_counts")
	for _, tc := range []struct {
		msg  map[string]any
		want string
	}{
		{map[string]any{"type": "message", "channel": "general", "message": "hi"}, msgNotJoined},
		{map[string]any{"type": "join", "channel": "nope"}, msgNoChannel},
		{map[string]any{"type": "join"}, "channel is required"},
		{map[string]any{"type": "create_poll", "channel": "general"}, `unsupported message type "create_poll"`},
	} {
		c.send(tc.msg)
		if e := c.expect("error"); e.str("message") != tc.want {
			t.Errorf("%v: got %q, want %q", tc.msg, e.str("message"), tc.want)
		}
	}
	c.join("general")
	c.send(map[string]any{"type": "message", "channel": "general", "message": "x"})
	id := c.expect("message").num("id")
	for _, tc := range []struct {
		msg  map[string]any
		want string
	}{
		{map[string]any{"type": "message", "channel": "general", "message": "   "}, "message is empty"},
		{map[string]any{"type": "message", "channel": "general", "message": strings.Repeat("x", 2001)}, "message is longer than 2000 characters"},
		{map[string]any{"type": "message", "channel": "other", "message": "x"}, msgNotJoined},
		{map[string]any{"type": "message", "channel": "general", "message": "x", "reply_to": 999}, "the message replied to does not exist"},
		{map[string]any{"type": "message", "channel": "general", "message": "", "image_url": "/x.png"}, "image messages are not supported yet"},
		{map[string]any{"type": "edit_message", "message_id": 999, "message": "x"}, msgNoMessage},
		{map[string]any{"type": "delete"}, "message_id is required"},
		{map[string]any{"type": "react", "message_id": id, "emoji": ""}, "emoji must be 1-32 bytes without spaces"},
		{map[string]any{"type": "react", "message_id": id, "emoji": "a b"}, "emoji must be 1-32 bytes without spaces"},
		{map[string]any{"type": "mark_read", "message_id": 999}, msgNoMessage},
	} {
		c.send(tc.msg)
		if e := c.expect("error"); e.str("message") != tc.want {
			t.Errorf("%v: got %q, want %q", tc.msg, e.str("message"), tc.want)
		}
	}
	c.quiet(50 * time.Millisecond)
}

// TestHistoryPagination: join sends the newest 50 with has_more; "history" with
// before_id pages back, oldest first within a page; mark_read updates unread counts.
func TestHistoryPagination(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimit = -1 })
	w := h.connect("u1", "general")
	const n = 120
	for i := range n {
		w.send(map[string]any{"type": "message", "channel": "general", "message": fmt.Sprint(i)})
	}
	var ids []int64
	for range n {
		ids = append(ids, w.expect("message").num("id"))
	}
	r := h.dial("u2")
	if e := r.expect("unread_counts"); e["counts"].(map[string]any)["general"] != float64(n) {
		t.Fatalf("unread %v", e)
	}
	_, hist, _, _ := r.join("general")
	page := func(e event) []int64 {
		var out []int64
		for _, m := range e["messages"].([]any) {
			out = append(out, int64(m.(map[string]any)["id"].(float64)))
		}
		return out
	}
	if got := page(hist); !reflect.DeepEqual(got, ids[n-50:]) || hist["has_more"] != true {
		t.Fatalf("join history %v more=%v", got, hist["has_more"])
	}
	r.send(map[string]any{"type": "history", "channel": "general", "before_id": ids[n-50]})
	e := r.expect("history")
	if got := page(e); !reflect.DeepEqual(got, ids[n-100:n-50]) || e["has_more"] != true || e.num("before_id") != ids[n-50] {
		t.Fatalf("page 2 %v", got)
	}
	r.send(map[string]any{"type": "history", "before_id": ids[n-100], "limit": 500})
	e = r.expect("history")
	if got := page(e); !reflect.DeepEqual(got, ids[:n-100]) || e["has_more"] != false {
		t.Fatalf("page 3 %v", got)
	}
	r2 := h.dial("u2") // a second tab of u2 hears the read position too
	r2.expect("unread_counts")
	r.send(map[string]any{"type": "mark_read", "message_id": ids[n-11]})
	for _, c := range []*client{r, r2} {
		if e := c.expect("unread_counts"); e["counts"].(map[string]any)["general"] != float64(10) {
			t.Fatalf("after mark_read %v", e)
		}
	}
	// The read position never moves back.
	r.send(map[string]any{"type": "mark_read", "message_id": ids[0]})
	if e := r.expect("unread_counts"); e["counts"].(map[string]any)["general"] != float64(10) {
		t.Fatalf("after an older mark_read %v", e)
	}
}

// TestSwitchChannel: joining another channel leaves the first (user_left there) and
// events of the first no longer arrive.
func TestSwitchChannel(t *testing.T) {
	h := newHarness(t)
	admin := h.addUser("admin", RoleAdmin)
	if _, err := h.hub.CreateChannel(t.Context(), admin, ChannelInput{Name: ptr("dev")}); err != nil {
		t.Fatal(err)
	}
	a := h.connect("u1", "general")
	b := h.connect("u2", "general")
	a.expect("user_joined")
	b.join("dev")
	if e := a.expect("user_left"); e.str("username") != "u2" {
		t.Fatalf("user_left %v", e)
	}
	a.send(map[string]any{"type": "message", "channel": "general", "message": "only general"})
	a.expect("message")
	b.quiet(50 * time.Millisecond)
}

// TestStreamChannels: a stream's channel is created, follows the stream's visibility
// (private: owner and staff only) and is deleted with it.
func TestStreamChannels(t *testing.T) {
	h := newHarness(t)
	owner := h.addUser("owner", RoleUser)
	h.addUser("viewer", RoleUser)
	ctx := t.Context()
	ch, err := h.hub.CreateStreamChannel(ctx, StreamChannel{StreamID: 7, OwnerID: owner.ID, Title: "My Stream"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Name != "stream-7" {
		t.Fatalf("name %q", ch.Name)
	}
	o := h.connect("owner", "stream-7")
	v := h.dial("viewer")
	v.expect("unread_counts")
	info, _, _, _ := v.join("stream-7")
	if info.str("topic") != "My Stream" || info["is_stream_channel"] != true || info.num("stream_id") != 7 || info["can_moderate"] != false {
		t.Fatalf("channel_info %v", info)
	}
	o.expect("user_joined")
	// The owner moderates the stream's channel.
	v.send(map[string]any{"type": "message", "channel": "stream-7", "message": "rude"})
	id := v.expect("message").num("id")
	o.expect("message")
	o.send(map[string]any{"type": "delete", "message_id": id})
	o.expect("message_deleted")
	v.expect("message_deleted")

	// Private: the viewer is out, the owner stays.
	if err := h.hub.UpdateStreamChannel(ctx, StreamChannel{StreamID: 7, OwnerID: owner.ID, Title: "My Stream", Private: true}); err != nil {
		t.Fatal(err)
	}
	if e := v.expect("channel_deleted"); e.str("channel") != "stream-7" {
		t.Fatalf("evicted %v", e)
	}
	o.expect("user_left")
	v.send(map[string]any{"type": "join", "channel": "stream-7"})
	if e := v.expect("error"); e.str("message") != msgNoChannel {
		t.Fatalf("join private %v", e)
	}
	list, err := h.hub.Channels(ctx, h.users["viewer"])
	if err != nil || len(list) != 1 || list[0].Name != "general" {
		t.Fatalf("viewer's channels %v %v", list, err)
	}

	if err := h.hub.DeleteStreamChannel(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if e := o.expect("channel_deleted"); e.str("channel") != "stream-7" {
		t.Fatalf("deleted %v", e)
	}
	o.send(map[string]any{"type": "message", "channel": "stream-7", "message": "x"})
	o.expect("error")
	if _, err := h.store.ChannelByStream(ctx, 7); err != ErrNotFound {
		t.Fatalf("channel still stored: %v", err)
	}
}

// TestChannelAdmin: admins create, rename and delete channels; others cannot; renames
// and deletes are announced.
func TestChannelAdmin(t *testing.T) {
	h := newHarness(t)
	admin := h.addUser("admin", RoleAdmin)
	user := h.addUser("user", RoleUser)
	ctx := t.Context()
	if _, err := h.hub.CreateChannel(ctx, user, ChannelInput{Name: ptr("x")}); !isKind(err, ErrForbidden) {
		t.Fatalf("user creates: %v", err)
	}
	for _, bad := range []string{"", "Dev", "dev talk", "stream-1", "-x", strings.Repeat("a", 51)} {
		if _, err := h.hub.CreateChannel(ctx, admin, ChannelInput{Name: ptr(bad)}); !isKind(err, ErrInvalid) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	dev, err := h.hub.CreateChannel(ctx, admin, ChannelInput{Name: ptr("dev-talk"), Description: ptr("devs")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.hub.CreateChannel(ctx, admin, ChannelInput{Name: ptr("dev-talk")}); !isKind(err, ErrConflict) {
		t.Fatalf("duplicate: %v", err)
	}
	u := h.connect("user", "dev-talk")
	other := h.connect("u9", "general")
	if _, err := h.hub.UpdateChannel(ctx, admin, dev.ID, ChannelInput{Name: ptr("engineering")}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{u, other} {
		if e := c.expect("channel_renamed"); e.str("old_name") != "dev-talk" || e.str("new_name") != "engineering" {
			t.Fatalf("renamed %v", e)
		}
	}
	u.send(map[string]any{"type": "message", "channel": "engineering", "message": "x"})
	if e := u.expect("message"); e.str("channel") != "engineering" {
		t.Fatalf("after rename %v", e)
	}
	list, _ := h.hub.Channels(ctx, admin)
	gen := list[0]
	if gen.Name != "general" || gen.IsDefault != 1 {
		t.Fatalf("channels %v", list)
	}
	if err := h.hub.DeleteChannel(ctx, admin, gen.ID); !isKind(err, ErrForbidden) {
		t.Fatalf("delete general: %v", err)
	}
	if _, err := h.hub.UpdateChannel(ctx, admin, gen.ID, ChannelInput{Name: ptr("main")}); !isKind(err, ErrForbidden) {
		t.Fatalf("rename general: %v", err)
	}
	if err := h.hub.DeleteChannel(ctx, user, dev.ID); !isKind(err, ErrForbidden) {
		t.Fatalf("user deletes: %v", err)
	}
	if err := h.hub.DeleteChannel(ctx, admin, dev.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{u, other} {
		if e := c.expect("channel_deleted"); e.str("channel") != "engineering" {
			t.Fatalf("deleted %v", e)
		}
		c.quiet(30 * time.Millisecond)
	}
}

// TestThreadAndChannelMessages: the REST views of a reply chain and of a channel's
// messages (newest first, paginated).
func TestThreadAndChannelMessages(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.RateLimit = -1 })
	a := h.connect("u1", "general")
	var prev int64
	var ids []int64
	for i := range 25 {
		m := map[string]any{"type": "message", "channel": "general", "message": fmt.Sprint(i)}
		if prev != 0 {
			m["reply_to"] = prev
		}
		a.send(m)
		prev = a.expect("message").num("id")
		ids = append(ids, prev)
	}
	u := h.users["u1"]
	thread, err := h.hub.Thread(t.Context(), u, prev)
	if err != nil {
		t.Fatal(err)
	}
	if len(thread) != 20 || thread[19].ID != prev || thread[0].ID != ids[5] {
		t.Fatalf("thread of %d from %d", len(thread), thread[0].ID)
	}
	gen, _ := h.store.ChannelByName(t.Context(), "general")
	msgs, more, err := h.hub.ChannelMessages(t.Context(), u, gen.ID, 0, 10)
	if err != nil || !more || len(msgs) != 10 || msgs[0].ID != prev || msgs[9].ID != ids[15] {
		t.Fatalf("messages %v %v %v", msgs, more, err)
	}
	msgs, more, _ = h.hub.ChannelMessages(t.Context(), u, gen.ID, ids[5], 0)
	if more || len(msgs) != 5 || msgs[0].ID != ids[4] {
		t.Fatalf("page %v %v", msgs, more)
	}
}

// TestPurge: the janitor deletes messages older than the retention.
func TestPurge(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Retention = time.Hour })
	a := h.connect("u1", "general")
	a.send(map[string]any{"type": "message", "channel": "general", "message": "old"})
	old := a.expect("message").num("id")
	h.clock.Advance(30 * time.Minute)
	a.send(map[string]any{"type": "message", "channel": "general", "message": "new"})
	a.expect("message")
	h.clock.Advance(31 * time.Minute)
	h.hub.purge()
	if _, err := h.store.Message(t.Context(), old); err != ErrNotFound {
		t.Fatalf("old message: %v", err)
	}
	gen, _ := h.store.ChannelByName(t.Context(), "general")
	if msgs, _ := h.store.Messages(t.Context(), gen.ID, 0, 10); len(msgs) != 1 {
		t.Fatalf("left %v", msgs)
	}
}

func ptr[T any](v T) *T { return &v }

func isKind(err, kind error) bool {
	e, ok := err.(*Error)
	return ok && e.Kind == kind
}
