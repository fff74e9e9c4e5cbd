package control

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestStreamsCRUDAndKeyExposure(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "  My Stream  ", "description": "desc"})
	if st.ID == 0 || st.Title != "My Stream" || !st.IsPublic || st.RTMPEnabled || st.IsLive != 0 {
		t.Fatalf("created %+v", st)
	}
	if !strings.HasPrefix(st.StreamKey, "live_") || len(st.StreamKey) != 69 || !strings.HasPrefix(st.StreamKey, st.StreamKeyPrefix) {
		t.Fatalf("stream key %q prefix %q", st.StreamKey, st.StreamKeyPrefix)
	}
	if !validPlaybackID(st.PlaybackID) {
		t.Fatalf("playback id %q", st.PlaybackID)
	}
	if want := "http://127.0.0.1:8080/api/stream/" + st.PlaybackID + "/hls/index.m3u8"; st.PlaybackURLs.HLS != want {
		t.Fatalf("hls %q want %q", st.PlaybackURLs.HLS, want)
	}
	if st.PublishURLs == nil || st.PublishURLs.WHIP != "http://127.0.0.1:8080/api/stream/"+st.StreamKey+"/webrtc/whip" ||
		st.PublishURLs.RTMPS != "rtmps://127.0.0.1:1936/live" || st.PublishURLs.RTMP != "rtmp://127.0.0.1:1935/live" {
		t.Fatalf("publish urls %+v", st.PublishURLs)
	}
	for _, u := range []string{st.PlaybackURLs.HLS, st.PlaybackURLs.WebRTC} {
		if !strings.Contains(u, "pub_") || strings.Contains(u, "live_") {
			t.Fatalf("playback url %q", u)
		}
	}
	// The key never shows again: not in get, list, public listing or update.
	paths := []string{fmt.Sprintf("/api/streams/%d", st.ID), "/api/streams", "/api/streams/public"}
	for _, p := range paths {
		raw := e.call(200, "GET", p, admin, nil, nil)
		if strings.Contains(string(raw), st.StreamKey) || strings.Contains(string(raw), `"stream_key"`) || strings.Contains(string(raw), "/webrtc/whip") {
			t.Fatalf("GET %s shows the stream key: %s", p, raw)
		}
	}
	var up streamJSON
	raw := e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"title": "New", "is_public": false, "rtmp_enabled": true}, &up)
	if up.Title != "New" || up.Description != "desc" || up.IsPublic || !up.RTMPEnabled || strings.Contains(string(raw), st.StreamKey) {
		t.Fatalf("updated %s", raw)
	}
	var list struct {
		Streams []streamJSON `json:"streams"`
	}
	e.call(200, "GET", "/api/streams", admin, nil, &list)
	if len(list.Streams) != 1 || list.Streams[0].Title != "New" {
		t.Fatalf("list %+v", list)
	}
	// Regenerate: a new key, shown once, the playback id stays.
	var re streamJSON
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/regenerate-key", st.ID), admin, nil, &re)
	if !strings.HasPrefix(re.StreamKey, "live_") || re.StreamKey == st.StreamKey || re.PlaybackID != st.PlaybackID {
		t.Fatalf("regenerated %+v", re)
	}
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, nil)
	e.wantError(404, "GET", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil)
	e.wantError(404, "DELETE", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil)
}

func TestStreamValidation(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	e.wantError(400, "POST", "/api/streams", admin, map[string]any{})
	e.wantError(400, "POST", "/api/streams", admin, map[string]any{"title": "   "})
	e.wantError(400, "POST", "/api/streams", admin, map[string]any{"title": strings.Repeat("x", 201)})
	e.createStream(admin, map[string]any{"title": strings.Repeat("é", 200)})
	e.wantError(400, "POST", "/api/streams", admin, map[string]any{"title": "x", "description": strings.Repeat("d", 2001)})
	st := e.createStream(admin, map[string]any{"title": "ok", "is_public": false})
	if st.IsPublic {
		t.Fatal("is_public false ignored")
	}
	e.wantError(400, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"title": ""})
}

func TestStreamOwnership(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	bob := e.user(admin, "bob")
	st := e.createStream(alice, map[string]any{"title": "alice's"})
	path := fmt.Sprintf("/api/streams/%d", st.ID)
	var msgs []string
	msgs = append(msgs, e.wantError(404, "GET", path, bob, nil))
	msgs = append(msgs, e.wantError(404, "PUT", path, bob, map[string]any{"title": "mine"}))
	msgs = append(msgs, e.wantError(404, "DELETE", path, bob, nil))
	msgs = append(msgs, e.wantError(404, "POST", path+"/regenerate-key", bob, nil))
	msgs = append(msgs, e.wantError(404, "POST", path+"/rtmp-token", bob, nil))
	// Not found and not yours look the same.
	msgs = append(msgs, e.wantError(404, "GET", "/api/streams/99999", bob, nil))
	for _, m := range msgs {
		if m != msgs[0] {
			t.Fatalf("messages differ: %q", msgs)
		}
	}
	var list struct {
		Streams []streamJSON `json:"streams"`
	}
	e.call(200, "GET", "/api/streams", bob, nil, &list)
	if len(list.Streams) != 0 {
		t.Fatalf("bob lists %+v", list)
	}
	// An admin may read, not change, another user's stream.
	e.call(200, "GET", path, admin, nil, nil)
	e.wantError(404, "PUT", path, admin, map[string]any{"title": "admin's"})
	e.call(200, "GET", path, alice, nil, nil)
}

func TestPublicAndOpenListings(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	pub := e.createStream(admin, map[string]any{"title": "public"})
	priv := e.createStream(admin, map[string]any{"title": "private", "is_public": false})
	live := e.createStream(admin, map[string]any{"title": "live"})
	if _, _, err := e.store.SetLive(t.Context(), live.PlaybackID, true, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.SetLive(t.Context(), priv.PlaybackID, true, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Streams []map[string]json.RawMessage `json:"streams"`
	}
	raw := e.call(200, "GET", "/api/streams/public", bob, nil, &list)
	if len(list.Streams) != 2 || strings.Contains(string(raw), priv.PlaybackID) {
		t.Fatalf("public: %s", raw)
	}
	if string(list.Streams[0]["playback_id"]) != `"`+live.PlaybackID+`"` {
		t.Fatalf("live stream not first: %s", raw)
	}
	for _, s := range list.Streams {
		if _, ok := s["stream_key_prefix"]; ok {
			t.Fatalf("public listing shows key prefix: %s", raw)
		}
		if _, ok := s["publish_urls"]; ok {
			t.Fatalf("public listing shows publish urls: %s", raw)
		}
	}
	raw = e.call(200, "GET", "/api/streams/open", bob, nil, &list)
	if len(list.Streams) != 1 || !strings.Contains(string(raw), live.PlaybackID) || strings.Contains(string(raw), pub.PlaybackID) {
		t.Fatalf("open: %s", raw)
	}
	var stats map[string]int
	e.call(200, "GET", "/api/stats/public", bob, nil, &stats)
	if stats["live_streams"] != 1 || len(stats) != 2 {
		t.Fatalf("stats %v", stats)
	}
	e.wantError(401, "GET", "/api/streams/public", "", nil)
}

func TestRTMPTokenEndpoint(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "t"})
	path := fmt.Sprintf("/api/streams/%d/rtmp-token", st.ID)
	if msg := e.wantError(400, "POST", path, admin, nil); !strings.Contains(msg, "rtmp_enabled") {
		t.Fatalf("rtmp disabled message %q", msg)
	}
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"rtmp_enabled": true}, nil)
	var tok map[string]any
	e.call(200, "POST", path, admin, nil, &tok)
	if s, _ := tok["token"].(string); !strings.HasPrefix(s, "rtmp_") || tok["expires_in"] != float64(900) || tok["rtmp_url"] != "rtmp://127.0.0.1:1935/live" || len(tok) != 3 {
		t.Fatalf("token answer %v", tok)
	}
	e.call(200, "POST", path, admin, "{}", nil)

	off := newEnv(t, withConfig(func(c *Config) { c.RTMPPlainEnabled = false }))
	admin2 := off.setup()
	st2 := off.createStream(admin2, map[string]any{"title": "t", "rtmp_enabled": true})
	if msg := off.wantError(403, "POST", fmt.Sprintf("/api/streams/%d/rtmp-token", st2.ID), admin2, nil); !strings.Contains(msg, "RTMP_PLAIN_ENABLED") {
		t.Fatalf("plain disabled message %q", msg)
	}
}

// TestStreamWireShape locks the JSON field names of a stream, in each view.
func TestStreamWireShape(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	created := e.call(200, "POST", "/api/streams", admin, map[string]any{"title": "shape"}, nil)
	keys := func(raw []byte) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return strings.Join(sortedKeys(m), ",")
	}
	const owner = "chat_channel_id,created_at,description,id,is_live,is_public,last_live_at,playback_id,playback_urls,publish_urls,record,rtmp_enabled,stream_key_prefix,title,user_id,viewer_count"
	if got, want := keys(created), "chat_channel_id,created_at,description,id,is_live,is_public,last_live_at,playback_id,playback_urls,publish_urls,record,rtmp_enabled,stream_key,stream_key_prefix,title,user_id,viewer_count"; got != want {
		t.Fatalf("create keys\n got %s\nwant %s", got, want)
	}
	var st streamJSON
	json.Unmarshal(created, &st)
	got := e.call(200, "GET", fmt.Sprintf("/api/streams/%d", st.ID), admin, nil, nil)
	if k := keys(got); k != owner {
		t.Fatalf("get keys\n got %s\nwant %s", k, owner)
	}
	var m map[string]json.RawMessage
	json.Unmarshal(got, &m)
	for field, want := range map[string]string{
		"chat_channel_id": "null", "last_live_at": "null", "is_live": "0", "viewer_count": "0", "is_public": "true",
		"rtmp_enabled": "false", "record": "true", "description": `""`, "title": `"shape"`,
		"playback_urls": `{"hls":"http://127.0.0.1:8080/api/stream/` + st.PlaybackID + `/hls/index.m3u8","webrtc":"http://127.0.0.1:8080/api/stream/` + st.PlaybackID + `/webrtc/whep","thumbnail":"http://127.0.0.1:8080/api/stream/` + st.PlaybackID + `/thumbnail"}`,
		"publish_urls":  `{"rtmps":"rtmps://127.0.0.1:1936/live","rtmp":"rtmp://127.0.0.1:1935/live"}`,
	} {
		if string(m[field]) != want {
			t.Errorf("%s = %s, want %s", field, m[field], want)
		}
	}
	var list struct {
		Streams []json.RawMessage `json:"streams"`
	}
	e.call(200, "GET", "/api/streams/public", admin, nil, &list)
	if k, want := keys(list.Streams[0]), "chat_channel_id,created_at,description,id,is_live,is_public,last_live_at,playback_id,playback_urls,rtmp_enabled,title,user_id,viewer_count"; k != want {
		t.Fatalf("public keys\n got %s\nwant %s", k, want)
	}
	// The error body.
	_, raw, _ := e.do("GET", "/api/streams/424242", admin, nil)
	if string(raw) != `{"error":"stream not found","status":404}`+"\n" {
		t.Fatalf("error body %s", raw)
	}
}
