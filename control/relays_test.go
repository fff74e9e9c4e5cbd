package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/relay"
)

// fakeRelays is a RelayManager that records Reload calls and answers Status from a map.
type fakeRelays struct {
	mu      sync.Mutex
	reloads []string
	status  map[int64]relay.Status
}

func (f *fakeRelays) Reload(stream string) {
	f.mu.Lock()
	f.reloads = append(f.reloads, stream)
	f.mu.Unlock()
}

func (f *fakeRelays) Status(id int64) (relay.Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.status[id]
	return st, ok
}

func (f *fakeRelays) set(st relay.Status) {
	f.mu.Lock()
	if f.status == nil {
		f.status = make(map[int64]relay.Status)
	}
	f.status[st.ID] = st
	f.mu.Unlock()
}

// takeReloads returns the Reload calls since the last take.
func (f *fakeRelays) takeReloads() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.reloads
	f.reloads = nil
	return out
}

func newRelayEnv(t *testing.T) (*env, *fakeRelays) {
	f := &fakeRelays{}
	return newEnv(t, withConfig(func(c *Config) { c.Relays = f })), f
}

func relaysPath(streamID int64) string { return fmt.Sprintf("/api/streams/%d/relays", streamID) }

func relayPath(streamID, relayID int64) string {
	return fmt.Sprintf("/api/streams/%d/relays/%d", streamID, relayID)
}

// createRelay adds a relay and returns it.
func (e *env) createRelay(token string, streamID int64, body map[string]any) relayJSON {
	e.t.Helper()
	var r relayJSON
	e.call(200, "POST", relaysPath(streamID), token, body, &r)
	return r
}

func (e *env) listRelays(token string, streamID int64) []relayJSON {
	e.t.Helper()
	var out struct {
		Relays []relayJSON `json:"relays"`
	}
	e.call(200, "GET", relaysPath(streamID), token, nil, &out)
	return out.Relays
}

// targets returns RelayTargets of a playback id, failing on error.
func (e *env) targets(playbackID string) []relay.Target {
	e.t.Helper()
	ts, err := e.srv.RelayTargets(context.Background(), playbackID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ts
}

// TestRelayPlatforms locks the platform list to the reference API's, byte for byte.
func TestRelayPlatforms(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	const want = `{"platforms":[{"id":"twitch","name":"Twitch","default_url":"rtmp://live.twitch.tv/app"},` +
		`{"id":"youtube","name":"YouTube","default_url":"rtmp://a.rtmp.youtube.com/live2"},` +
		`{"id":"kick","name":"Kick","default_url":"rtmps://fa723fc1b171.global-contribute.live-video.net/app"},` +
		`{"id":"portal","name":"Portal","default_url":""},{"id":"custom","name":"Custom","default_url":""}]}` + "\n"
	if raw := e.call(200, "GET", "/api/relay-platforms", admin, nil, nil); string(raw) != want {
		t.Fatalf("platforms\n got %s\nwant %s", raw, want)
	}
	e.wantError(401, "GET", "/api/relay-platforms", "", nil)
	var key apiKeyJSON
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "reader", "scopes": "streams:read"}, &key)
	e.call(200, "GET", "/api/relay-platforms", key.APIKey, nil, nil)
}

// TestRelaysCRUD creates, lists, updates and deletes relays, checks that every change
// reloads the stream's relays by playback id and that no answer carries a stream key.
func TestRelaysCRUD(t *testing.T) {
	e, f := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "relayed"})
	var bodies [][]byte
	record := func(raw []byte) { bodies = append(bodies, raw) }

	// Twitch without rtmp_url: its default ingest.
	raw := e.call(200, "POST", relaysPath(st.ID), admin, map[string]any{"platform": "twitch", "name": "  Twitch  ", "stream_key": "live_123_twitchkey"}, nil)
	record(raw)
	var tw relayJSON
	json.Unmarshal(raw, &tw)
	if tw.ID == 0 || tw.StreamID != st.ID || tw.Platform != "twitch" || tw.Name != "Twitch" || tw.RTMPURL != "rtmp://live.twitch.tv/app" ||
		!tw.HasStreamKey || !tw.Enabled || !tw.TLSVerify || tw.State != "idle" || tw.ConnectedSince != nil {
		t.Fatalf("created %s", raw)
	}
	// Twitch with an explicit regional ingest: the given URL wins.
	tw2 := e.createRelay(admin, st.ID, map[string]any{"platform": "twitch", "name": "Twitch EU", "rtmp_url": "rtmp://fra05.contribute.live-video.net/app/",
		"stream_key": "live_456_other"})
	if tw2.RTMPURL != "rtmp://fra05.contribute.live-video.net/app/" {
		t.Fatalf("explicit url %q", tw2.RTMPURL)
	}
	// A self-signed relaycast: rtmps with tls_verify false, disabled.
	pt := e.createRelay(admin, st.ID, map[string]any{"platform": "portal", "name": "B", "rtmp_url": "rtmps://127.0.0.1:1936/live",
		"stream_key": "live_portalkey", "tls_verify": false, "enabled": false})
	if pt.TLSVerify || pt.Enabled {
		t.Fatalf("portal %+v", pt)
	}
	if got, want := f.takeReloads(), []string{st.PlaybackID, st.PlaybackID, st.PlaybackID}; !slices.Equal(got, want) {
		t.Fatalf("reloads %q, want %q", got, want)
	}
	record(e.call(200, "GET", relaysPath(st.ID), admin, nil, nil))
	list := e.listRelays(admin, st.ID)
	if len(list) != 3 || list[0].ID != tw.ID || list[1].ID != tw2.ID || list[2].ID != pt.ID {
		t.Fatalf("list %+v", list)
	}

	// PUT changes only the fields given; the key stays unless given.
	e.clock.Advance(2 * time.Second)
	var up relayJSON
	raw = e.call(200, "PUT", relayPath(st.ID, tw.ID), admin, map[string]any{"name": "Twitch main"}, &up)
	record(raw)
	if up.Name != "Twitch main" || up.RTMPURL != tw.RTMPURL || !up.Enabled || !up.TLSVerify || up.Platform != "twitch" ||
		!up.HasStreamKey || up.CreatedAt != tw.CreatedAt || up.UpdatedAt == tw.UpdatedAt {
		t.Fatalf("partial update %s", raw)
	}
	want := []relay.Target{
		{ID: tw.ID, Name: "Twitch main", URL: "rtmp://live.twitch.tv/app/live_123_twitchkey"},
		{ID: tw2.ID, Name: "Twitch EU", URL: "rtmp://fra05.contribute.live-video.net/app/live_456_other"},
	}
	if got := e.targets(st.PlaybackID); !slices.Equal(got, want) {
		t.Fatalf("targets after a partial update\n got %+v\nwant %+v", got, want)
	}
	record(e.call(200, "PUT", relayPath(st.ID, tw.ID), admin, map[string]any{"stream_key": "live_789_rotated"}, nil))
	want[0].URL = "rtmp://live.twitch.tv/app/live_789_rotated"
	if got := e.targets(st.PlaybackID); !slices.Equal(got, want) {
		t.Fatalf("targets after a key change\n got %+v\nwant %+v", got, want)
	}
	// Enable the portal relay, disable the second Twitch one.
	record(e.call(200, "PUT", relayPath(st.ID, pt.ID), admin, map[string]any{"enabled": true}, nil))
	record(e.call(200, "PUT", relayPath(st.ID, tw2.ID), admin, map[string]any{"enabled": false}, nil))
	want = []relay.Target{want[0], {ID: pt.ID, Name: "B", URL: "rtmps://127.0.0.1:1936/live/live_portalkey", SkipVerify: true}}
	if got := e.targets(st.PlaybackID); !slices.Equal(got, want) {
		t.Fatalf("targets after enable/disable\n got %+v\nwant %+v", got, want)
	}
	// An empty rtmp_url means the platform's default.
	e.call(200, "PUT", relayPath(st.ID, tw2.ID), admin, map[string]any{"rtmp_url": ""}, &up)
	if up.RTMPURL != "rtmp://live.twitch.tv/app" {
		t.Fatalf("empty rtmp_url on update: %q", up.RTMPURL)
	}
	if got := f.takeReloads(); len(got) != 5 || slices.ContainsFunc(got, func(s string) bool { return s != st.PlaybackID }) {
		t.Fatalf("reloads after updates %q", got)
	}

	record(e.call(200, "DELETE", relayPath(st.ID, tw2.ID), admin, nil, nil))
	if got := f.takeReloads(); !slices.Equal(got, []string{st.PlaybackID}) {
		t.Fatalf("reloads after delete %q", got)
	}
	e.wantError(404, "DELETE", relayPath(st.ID, tw2.ID), admin, nil)
	e.wantError(404, "PUT", relayPath(st.ID, tw2.ID), admin, map[string]any{"name": "x"})
	if got := f.takeReloads(); len(got) != 0 {
		t.Fatalf("failed changes reloaded %q", got)
	}
	if list := e.listRelays(admin, st.ID); len(list) != 2 {
		t.Fatalf("list after delete %+v", list)
	}

	for _, raw := range bodies {
		for _, key := range []string{"live_123_twitchkey", "live_456_other", "live_portalkey", "live_789_rotated", `"stream_key"`} {
			if bytes.Contains(raw, []byte(key)) {
				t.Fatalf("an answer shows %s: %s", key, raw)
			}
		}
	}

	// Deleting the stream deletes its relays and reloads.
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, nil)
	if got := f.takeReloads(); !slices.Equal(got, []string{st.PlaybackID}) {
		t.Fatalf("reloads after stream delete %q", got)
	}
	if got := e.targets(st.PlaybackID); got != nil {
		t.Fatalf("targets of a deleted stream %+v", got)
	}
	e.wantError(404, "GET", relaysPath(st.ID), admin, nil)
}

func TestRelayValidation(t *testing.T) {
	e, f := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	ok := func() map[string]any {
		return map[string]any{"platform": "custom", "name": "n", "rtmp_url": "rtmp://example.com/live", "stream_key": "k"}
	}
	with := func(k string, v any) map[string]any {
		b := ok()
		if v == nil {
			delete(b, k)
		} else {
			b[k] = v
		}
		return b
	}
	for _, tc := range []struct {
		body map[string]any
		msg  string
	}{
		{with("platform", nil), "platform is required"},
		{with("platform", "facebook"), "unknown platform"},
		{with("name", nil), "name is required"},
		{with("name", "   "), "name must be"},
		{with("name", strings.Repeat("n", 101)), "name must be"},
		{with("rtmp_url", nil), `rtmp_url is required for platform "custom"`},
		{with("rtmp_url", ""), "rtmp_url is required"},
		{with("rtmp_url", "http://example.com/live"), "rtmp:// or rtmps://"},
		{with("rtmp_url", "srt://example.com/live"), "rtmp:// or rtmps://"},
		{with("rtmp_url", "rtmp:example.com/live"), "rtmp:// or rtmps://"},
		{with("rtmp_url", "example.com/live"), "rtmp:// or rtmps://"},
		{with("rtmp_url", "rtmp:///live"), "no host"},
		{with("rtmp_url", "rtmp://example.com"), "application path"},
		{with("rtmp_url", "rtmp://example.com/"), "application path"},
		{with("rtmp_url", "rtmp://example.com:0/live"), "invalid port"},
		{with("rtmp_url", "rtmp://example.com:70000/live"), "invalid port"},
		{with("rtmp_url", "rtmp://user:pw@example.com/live"), "user info"},
		{with("rtmp_url", "rtmp://example.com/live?key=x"), "query"},
		{with("rtmp_url", "rtmp://example.com/live#x"), "fragment"},
		{with("rtmp_url", "rtmp://example.com/li ve"), "spaces"},
		{with("rtmp_url", "rtmp://example.com/"+strings.Repeat("a", 1024)), "at most 1024"},
		{with("stream_key", nil), "stream_key is required"},
		{with("stream_key", ""), "stream_key is required"},
		{with("stream_key", "  "), "stream_key is required"},
		{with("stream_key", "a b"), "spaces"},
		{with("stream_key", "a\x00b"), "control"},
		{with("stream_key", strings.Repeat("k", 513)), "at most 512"},
		{with("enabled", "yes"), "invalid JSON"},
	} {
		if msg := e.wantError(400, "POST", relaysPath(st.ID), admin, tc.body); !strings.Contains(msg, tc.msg) {
			t.Errorf("%v: message %q, want it to contain %q", tc.body, msg, tc.msg)
		}
	}
	e.wantError(400, "POST", relaysPath(st.ID), admin, `{"platform":"custom","nope":1}`)
	if got := f.takeReloads(); len(got) != 0 {
		t.Fatalf("refused creations reloaded %q", got)
	}

	// Accepted forms: rtmps, a port, a nested application, upper-case scheme, a key with
	// characters that need escaping, a key surrounded by spaces (trimmed).
	e.createRelay(admin, st.ID, with("rtmp_url", "rtmps://[::1]:1936/live/sub"))
	e.createRelay(admin, st.ID, with("rtmp_url", "RTMP://example.com/live"))
	e.createRelay(admin, st.ID, with("stream_key", strings.Repeat("k", 512)))
	r := e.createRelay(admin, st.ID, with("stream_key", "  live_1?bandwidthtest=true  "))
	ts := e.targets(st.PlaybackID)
	if got := ts[len(ts)-1]; got.ID != r.ID || got.URL != "rtmp://example.com/live/live_1%3Fbandwidthtest=true" {
		t.Fatalf("escaped key target %+v", got)
	}

	// PUT validates the fields it is given.
	path := relayPath(st.ID, r.ID)
	e.wantError(400, "PUT", path, admin, map[string]any{"rtmp_url": "http://x/app"})
	e.wantError(400, "PUT", path, admin, map[string]any{"stream_key": ""})
	e.wantError(400, "PUT", path, admin, map[string]any{"platform": "nope"})
	e.wantError(400, "PUT", path, admin, map[string]any{"name": ""})
	if msg := e.wantError(400, "PUT", path, admin, map[string]any{"rtmp_url": ""}); !strings.Contains(msg, "rtmp_url is required") {
		t.Fatalf("empty url for custom: %q", msg)
	}
	// Changing the platform keeps the URL; then an empty URL takes the new default.
	var up relayJSON
	e.call(200, "PUT", path, admin, map[string]any{"platform": "youtube"}, &up)
	if up.Platform != "youtube" || up.RTMPURL != "rtmp://example.com/live" {
		t.Fatalf("platform change %+v", up)
	}
	e.call(200, "PUT", path, admin, map[string]any{"rtmp_url": " "}, &up)
	if up.RTMPURL != "rtmp://a.rtmp.youtube.com/live2" {
		t.Fatalf("youtube default %q", up.RTMPURL)
	}
}

// TestRelayLimit allows 10 relays per stream; the 11th is a 400 that says so.
func TestRelayLimit(t *testing.T) {
	e, _ := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	other := e.createStream(admin, map[string]any{"title": "other"})
	body := map[string]any{"platform": "youtube", "name": "yt", "stream_key": "k"}
	for range 10 {
		e.createRelay(admin, st.ID, body)
	}
	if msg := e.wantError(400, "POST", relaysPath(st.ID), admin, body); !strings.Contains(msg, "at most 10 relays") {
		t.Fatalf("11th relay: %q", msg)
	}
	e.createRelay(admin, other.ID, body) // the limit is per stream
	e.call(200, "DELETE", relayPath(st.ID, e.listRelays(admin, st.ID)[0].ID), admin, nil, nil)
	e.createRelay(admin, st.ID, body)
}

// TestRelayOwnership: only the stream's owner sees or changes its relays; everyone else,
// admins included, gets the same 404 as for the stream itself.
func TestRelayOwnership(t *testing.T) {
	e, f := newRelayEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	bob := e.user(admin, "bob")
	st := e.createStream(alice, map[string]any{"title": "alice's"})
	r := e.createRelay(alice, st.ID, map[string]any{"platform": "twitch", "name": "tw", "stream_key": "alicekey"})
	f.takeReloads()
	streamMsg := e.wantError(404, "GET", fmt.Sprintf("/api/streams/%d", st.ID), bob, nil)
	body := map[string]any{"platform": "twitch", "name": "mine", "stream_key": "bobkey"}
	for _, tok := range []string{bob, admin} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"GET", relaysPath(st.ID), nil},
			{"POST", relaysPath(st.ID), body},
			{"PUT", relayPath(st.ID, r.ID), map[string]any{"enabled": false}},
			{"DELETE", relayPath(st.ID, r.ID), nil},
		} {
			if msg := e.wantError(404, req.method, req.path, tok, req.body); msg != streamMsg {
				t.Fatalf("%s %s: %q, want the stream's %q", req.method, req.path, msg, streamMsg)
			}
		}
	}
	// A relay id of another stream, through a stream the caller owns, is not found either.
	bobs := e.createStream(bob, map[string]any{"title": "bob's"})
	if msg := e.wantError(404, "PUT", relayPath(bobs.ID, r.ID), bob, map[string]any{"enabled": false}); msg != "relay not found" {
		t.Fatalf("foreign relay id: %q", msg)
	}
	e.wantError(404, "DELETE", relayPath(bobs.ID, r.ID), bob, nil)
	if got := f.takeReloads(); len(got) != 0 {
		t.Fatalf("refused changes reloaded %q", got)
	}
	if list := e.listRelays(alice, st.ID); len(list) != 1 || !list[0].Enabled || list[0].Name != "tw" {
		t.Fatalf("alice's relays changed: %+v", list)
	}
	// Scopes: streams:read may list, not change.
	var key apiKeyJSON
	e.call(200, "POST", "/api/api-keys", alice, map[string]any{"name": "reader", "scopes": "streams:read"}, &key)
	e.listRelays(key.APIKey, st.ID)
	e.wantError(403, "POST", relaysPath(st.ID), key.APIKey, body)
	e.wantError(403, "DELETE", relayPath(st.ID, r.ID), key.APIKey, nil)

	// Deleting a user reloads the relays of each of their streams.
	e.call(200, "DELETE", fmt.Sprintf("/api/admin/users/%d", userID(t, e, alice)), admin, nil, nil)
	if got := f.takeReloads(); !slices.Equal(got, []string{st.PlaybackID}) {
		t.Fatalf("reloads after user delete %q", got)
	}
	if got := e.targets(st.PlaybackID); got != nil {
		t.Fatalf("targets of a deleted user's stream %+v", got)
	}
}

func userID(t *testing.T, e *env, token string) int64 {
	t.Helper()
	var me struct {
		ID int64 `json:"id"`
	}
	e.call(200, "GET", "/api/me", token, nil, &me)
	return me.ID
}

// TestRelayKeySealedAtRest: the destination keys never reach the database file or its WAL
// in clear, while the relay's other fields do (so the right files are read).
func TestRelayKeySealedAtRest(t *testing.T) {
	e, _ := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	const key1, key2 = "sk-plaintext-destination-key-1", "sk-plaintext-destination-key-2"
	r := e.createRelay(admin, st.ID, map[string]any{"platform": "custom", "name": "needle-relay-name", "rtmp_url": "rtmp://example.com/live", "stream_key": key1})
	e.call(200, "PUT", relayPath(st.ID, r.ID), admin, map[string]any{"stream_key": key2}, nil)
	var all []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if err != nil && suffix == "" {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if !bytes.Contains(all, []byte("needle-relay-name")) {
		t.Fatal("the relay's name is not in the database files: wrong files?")
	}
	for _, k := range []string{key1, key2} {
		if bytes.Contains(all, []byte(k)) {
			t.Fatalf("the database files contain %q in clear", k)
		}
	}
	if ts := e.targets(st.PlaybackID); len(ts) != 1 || ts[0].URL != "rtmp://example.com/live/"+key2 {
		t.Fatalf("targets %+v", ts)
	}
	// A sealed key moved to another stream's relay does not open there (the stream id is
	// the associated data): the relay is left out rather than pushed with a wrong key.
	other := e.createStream(admin, map[string]any{"title": "other"})
	r2 := e.createRelay(admin, other.ID, map[string]any{"platform": "custom", "name": "o", "rtmp_url": "rtmp://example.com/live", "stream_key": "x"})
	sealed, err := e.store.RelayByID(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	moved, _ := e.store.RelayByID(context.Background(), r2.ID)
	moved.StreamKey = sealed.StreamKey
	if err := e.store.UpdateRelay(context.Background(), moved); err != nil {
		t.Fatal(err)
	}
	if ts := e.targets(other.PlaybackID); len(ts) != 0 {
		t.Fatalf("a key sealed for another stream opened: %+v", ts)
	}
}

// TestRelayTargets: enabled relays only, URL = base without trailing slash + "/" +
// escaped key, SkipVerify = !tls_verify; an unknown stream has none.
func TestRelayTargets(t *testing.T) {
	e, _ := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	if ts := e.targets(st.PlaybackID); len(ts) != 0 {
		t.Fatalf("no relays: %+v", ts)
	}
	a := e.createRelay(admin, st.ID, map[string]any{"platform": "kick", "name": "kick", "stream_key": "sk_us-west-2_abc"})
	e.createRelay(admin, st.ID, map[string]any{"platform": "youtube", "name": "off", "stream_key": "k", "enabled": false})
	c := e.createRelay(admin, st.ID, map[string]any{"platform": "custom", "name": "self-signed", "rtmp_url": "rtmps://10.0.0.2:1936/live//",
		"stream_key": "a/b?c", "tls_verify": false})
	want := []relay.Target{
		{ID: a.ID, Name: "kick", URL: "rtmps://fa723fc1b171.global-contribute.live-video.net/app/sk_us-west-2_abc"},
		{ID: c.ID, Name: "self-signed", URL: "rtmps://10.0.0.2:1936/live/a%2Fb%3Fc", SkipVerify: true},
	}
	if got := e.targets(st.PlaybackID); !slices.Equal(got, want) {
		t.Fatalf("targets\n got %+v\nwant %+v", got, want)
	}
	if ts, err := e.srv.RelayTargets(context.Background(), "pub_unknown"); ts != nil || err != nil {
		t.Fatalf("unknown stream: %+v %v", ts, err)
	}
}

// TestRelayStatus shows the manager's status; unknown or disabled relays are idle.
func TestRelayStatus(t *testing.T) {
	e, f := newRelayEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	body := map[string]any{"platform": "twitch", "name": "tw", "stream_key": "k"}
	live := e.createRelay(admin, st.ID, body)
	retrying := e.createRelay(admin, st.ID, body)
	disabled := e.createRelay(admin, st.ID, body)
	unknown := e.createRelay(admin, st.ID, body)
	e.call(200, "PUT", relayPath(st.ID, disabled.ID), admin, map[string]any{"enabled": false}, nil)
	since := time.Date(2026, 2, 8, 4, 24, 49, 500, time.UTC)
	f.set(relay.Status{ID: live.ID, Stream: st.PlaybackID, State: relay.StateLive, LastError: "rtmp publish to rtmp://x/app/***: EOF",
		ConnectedSince: since, BytesSent: 12345, Reconnects: 2, Skipped: 7})
	f.set(relay.Status{ID: retrying.ID, Stream: st.PlaybackID, State: relay.StateRetrying, LastError: "dial tcp: connection refused", Reconnects: 3})
	f.set(relay.Status{ID: disabled.ID, Stream: st.PlaybackID, State: relay.StateLive, ConnectedSince: since, BytesSent: 9})

	var out struct {
		Relays []map[string]json.RawMessage `json:"relays"`
	}
	e.call(200, "GET", relaysPath(st.ID), admin, nil, &out)
	byID := map[int64]map[string]json.RawMessage{}
	for _, r := range out.Relays {
		var id int64
		json.Unmarshal(r["id"], &id)
		byID[id] = r
	}
	check := func(id int64, fields map[string]string) {
		t.Helper()
		for k, want := range fields {
			if got := string(byID[id][k]); got != want {
				t.Errorf("relay %d: %s = %s, want %s", id, k, got, want)
			}
		}
	}
	check(live.ID, map[string]string{"state": `"live"`, "connected_since": `"2026-02-08T04:24:49Z"`, "bytes_sent": "12345",
		"reconnects": "2", "skipped": "7", "last_error": `"rtmp publish to rtmp://x/app/***: EOF"`})
	check(retrying.ID, map[string]string{"state": `"retrying"`, "connected_since": "null", "last_error": `"dial tcp: connection refused"`, "reconnects": "3"})
	check(disabled.ID, map[string]string{"state": `"idle"`, "connected_since": "null", "bytes_sent": "9"})
	check(unknown.ID, map[string]string{"state": `"idle"`, "connected_since": "null", "bytes_sent": "0", "reconnects": "0", "skipped": "0", "last_error": `""`})
}

// TestRelayWireShape locks the JSON field names and default values of a relay, the list
// wrapper and the delete answer.
func TestRelayWireShape(t *testing.T) {
	e := newEnv(t) // no RelayManager: every relay is idle
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "shape"})
	createdRaw := e.call(200, "POST", relaysPath(st.ID), admin, map[string]any{"platform": "youtube", "name": "yt", "stream_key": "k"}, nil)
	keys := func(raw []byte) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return strings.Join(sortedKeys(m), ",")
	}
	const fields = "bytes_sent,connected_since,created_at,enabled,has_stream_key,id,last_error,name,platform,reconnects,rtmp_url,skipped,state,stream_id,tls_verify,updated_at"
	if got := keys(createdRaw); got != fields {
		t.Fatalf("relay keys\n got %s\nwant %s", got, fields)
	}
	var m map[string]json.RawMessage
	json.Unmarshal(createdRaw, &m)
	for field, want := range map[string]string{
		"stream_id": fmt.Sprint(st.ID), "platform": `"youtube"`, "name": `"yt"`, "rtmp_url": `"rtmp://a.rtmp.youtube.com/live2"`,
		"has_stream_key": "true", "enabled": "true", "tls_verify": "true", "state": `"idle"`, "last_error": `""`,
		"connected_since": "null", "bytes_sent": "0", "reconnects": "0", "skipped": "0",
	} {
		if string(m[field]) != want {
			t.Errorf("%s = %s, want %s", field, m[field], want)
		}
	}
	var created, updated time.Time
	if json.Unmarshal(m["created_at"], &created) != nil || json.Unmarshal(m["updated_at"], &updated) != nil ||
		created.IsZero() || !created.Equal(updated) {
		t.Errorf("created_at %s updated_at %s", m["created_at"], m["updated_at"])
	}
	var id int64
	json.Unmarshal(m["id"], &id)
	raw := e.call(200, "GET", relaysPath(st.ID), admin, nil, nil)
	var list map[string][]json.RawMessage
	json.Unmarshal(raw, &list)
	if len(list) != 1 || len(list["relays"]) != 1 || keys(list["relays"][0]) != fields {
		t.Fatalf("list %s", raw)
	}
	if raw := e.call(200, "DELETE", relayPath(st.ID, id), admin, nil, nil); string(raw) != `{"message":"relay deleted"}`+"\n" {
		t.Fatalf("delete answer %s", raw)
	}
	if raw := e.call(200, "GET", relaysPath(st.ID), admin, nil, nil); string(raw) != `{"relays":[]}`+"\n" {
		t.Fatalf("empty list %s", raw)
	}
	_, raw, _ = e.do("DELETE", relayPath(st.ID, id), admin, nil)
	if string(raw) != `{"error":"relay not found","status":404}`+"\n" {
		t.Fatalf("error body %s", raw)
	}
}
