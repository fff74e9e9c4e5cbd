package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/egress"
)

// resolve asks the Resolver as an HLS viewer would, and checks that no error message
// repeats the token.
func resolve(e *env, id, token string) (string, error) {
	e.t.Helper()
	got, err := e.srv.Resolve(context.Background(), egress.Request{Protocol: "hls", ID: id, Token: token, RemoteAddr: "127.0.0.1:5000"})
	if err != nil && token != "" && strings.Contains(err.Error(), token) {
		e.t.Fatalf("error message contains the token: %v", err)
	}
	if err != nil && strings.HasPrefix(id, ptkPrefix) && strings.Contains(err.Error(), id) {
		e.t.Fatalf("error message contains the playback token: %v", err)
	}
	return got, err
}

func wantPlays(t *testing.T, e *env, what, id, token, playbackID string) {
	t.Helper()
	got, err := resolve(e, id, token)
	if err != nil || got != playbackID {
		t.Fatalf("%s: %q %v, want %s", what, got, err, playbackID)
	}
}

func wantResolveErr(t *testing.T, e *env, what, id, token string, want error) {
	t.Helper()
	if _, err := resolve(e, id, token); !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// ptkAnswer is the answer to POST /api/streams/{id}/playback-token.
type ptkAnswer struct {
	Token        string            `json:"token"`
	ExpiresAt    string            `json:"expires_at"`
	ExpiresIn    int               `json:"expires_in"`
	PlaybackURLs map[string]string `json:"playback_urls"`
}

func issuePtk(e *env, token string, id int64, body any) ptkAnswer {
	e.t.Helper()
	var out ptkAnswer
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/playback-token", id), token, body, &out)
	return out
}

func apiKey(e *env, token, scopes string) string {
	e.t.Helper()
	var k apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", token, map[string]any{"name": "k " + scopes, "scopes": scopes}, &k)
	return k.APIKey
}

func TestResolvePublicStreamNeedsNoToken(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	bob := e.user(admin, "bob")
	pub := e.createStream(admin, map[string]any{"title": "pub"})
	for _, tok := range []string{"", "garbage", bob, "portal_" + strings.Repeat("0", 64), "ptk_nope"} {
		wantPlays(t, e, "public with token "+tok, pub.PlaybackID, tok, pub.PlaybackID)
	}
}

func TestResolvePrivateStreamCredentials(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	bob := e.user(admin, "bob")
	priv := e.createStream(alice, map[string]any{"title": "private", "is_public": false})
	other := e.createStream(alice, map[string]any{"title": "other", "is_public": false})
	id := priv.PlaybackID

	wantResolveErr(t, e, "no token", id, "", egress.ErrForbidden)
	wantPlays(t, e, "owner JWT", id, alice, id)
	for _, sc := range []string{"*", "streams:read", "streams:write", "streams:*"} {
		wantPlays(t, e, "owner API key "+sc, id, apiKey(e, alice, sc), id)
	}
	wantPlays(t, e, "admin JWT", id, admin, id)
	wantPlays(t, e, "admin API key", id, apiKey(e, admin, "streams:read"), id)
	wantResolveErr(t, e, "other user's JWT", id, bob, egress.ErrForbidden)
	wantResolveErr(t, e, "other user's API key", id, apiKey(e, bob, "*"), egress.ErrForbidden)
	unknownKey, _, _ := newSecret(kindAPIKey)
	for what, tok := range map[string]string{
		"garbage": "nope", "unknown API key": unknownKey, "publish key": priv.StreamKey,
		"tampered JWT": alice[:len(alice)-2] + "xx", "pub_ id": id,
	} {
		wantResolveErr(t, e, what, id, tok, egress.ErrForbidden)
	}

	// A playback token of another stream does not open this one.
	otherTok := issuePtk(e, alice, other.ID, nil).Token
	wantResolveErr(t, e, "ptk of another stream in Token", id, otherTok, egress.ErrForbidden)
	wantPlays(t, e, "ptk of the other stream as id", otherTok, "", other.PlaybackID)

	// Revoked and expired credentials are refused as the API refuses them.
	aliceKey := apiKey(e, alice, "*")
	var keys struct {
		APIKeys []apiKeyAnswer `json:"api_keys"`
	}
	e.call(200, "GET", "/api/api-keys", alice, nil, &keys)
	for _, k := range keys.APIKeys {
		if strings.HasPrefix(aliceKey, k.KeyPrefix) {
			e.call(200, "POST", fmt.Sprintf("/api/api-keys/%d/revoke", k.ID), alice, nil, nil)
		}
	}
	wantResolveErr(t, e, "revoked API key", id, aliceKey, egress.ErrForbidden)
	alice2 := e.login("alice", "alice password")
	var toks struct {
		Tokens []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"tokens"`
	}
	e.call(200, "GET", "/api/tokens", alice2, nil, &toks)
	for _, x := range toks.Tokens {
		if !x.Current {
			e.call(200, "POST", "/api/token/revoke", alice2, map[string]string{"token_id": x.ID}, nil)
		}
	}
	wantResolveErr(t, e, "revoked JWT", id, alice, egress.ErrForbidden)
	wantPlays(t, e, "fresh JWT", id, alice2, id)
	e.clock.Advance(sessionTTL + time.Second)
	wantResolveErr(t, e, "expired JWT", id, alice2, egress.ErrForbidden)
}

func TestPlaybackTokenEndpoint(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.RTSPURL = "rtsp://127.0.0.1:8554/live" }))
	admin := e.setup()
	alice := e.user(admin, "alice")
	bob := e.user(admin, "bob")
	priv := e.createStream(alice, map[string]any{"title": "private", "is_public": false})
	pub := e.createStream(alice, map[string]any{"title": "public"})
	path := fmt.Sprintf("/api/streams/%d/playback-token", priv.ID)

	raw := e.call(200, "POST", path, alice, nil, nil)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(sortedKeys(m), ","); got != "expires_at,expires_in,playback_urls,token" {
		t.Fatalf("answer keys %s", got)
	}
	var out ptkAnswer
	json.Unmarshal(raw, &out)
	if !strings.HasPrefix(out.Token, ptkPrefix) || len(out.Token) != ptkLen || out.ExpiresIn != 3600 {
		t.Fatalf("answer %s", raw)
	}
	exp, err := time.Parse(time.RFC3339, out.ExpiresAt)
	if d := exp.Sub(e.clock.Now()); err != nil || d < time.Hour-2*time.Second || d > time.Hour+time.Second {
		t.Fatalf("expires_at %s (%v)", out.ExpiresAt, err)
	}
	base := "http://127.0.0.1:8080/api/stream/" + out.Token
	want := map[string]string{
		"hls": base + "/hls/index.m3u8", "webrtc": base + "/webrtc/whep",
		"rtmp": "rtmp://127.0.0.1:1935/live/" + out.Token, "rtmps": "rtmps://127.0.0.1:1936/live/" + out.Token,
		"rtsp": "rtsp://127.0.0.1:8554/live/" + out.Token,
	}
	if fmt.Sprint(out.PlaybackURLs) != fmt.Sprint(want) {
		t.Fatalf("playback urls\n got %v\nwant %v", out.PlaybackURLs, want)
	}
	if strings.Contains(string(raw), priv.PlaybackID) || strings.Contains(string(raw), "live_") {
		t.Fatalf("answer shows the playback id or a key: %s", raw)
	}
	wantPlays(t, e, "ptk as id", out.Token, "", priv.PlaybackID)
	wantPlays(t, e, "ptk in Token", priv.PlaybackID, out.Token, priv.PlaybackID)

	// expires_in bounds.
	for _, n := range []int{60, 86400} {
		if got := issuePtk(e, alice, priv.ID, map[string]int{"expires_in": n}); got.ExpiresIn != n {
			t.Fatalf("expires_in %d: %+v", n, got)
		}
	}
	for _, body := range []any{map[string]int{"expires_in": 59}, map[string]int{"expires_in": 86401},
		map[string]int{"expires_in": -1}, `{"expires_in":"1h"}`, `{"ttl":60}`} {
		e.wantError(400, "POST", path, alice, body)
	}
	e.call(200, "POST", path, alice, "{}", nil)

	// Owner and admins only; another user sees "not found", as for every stream route.
	issuePtk(e, admin, priv.ID, nil)
	e.wantError(404, "POST", path, bob, nil)
	e.wantError(404, "POST", path+"/revoke", bob, nil)
	e.wantError(404, "POST", "/api/streams/99999/playback-token", alice, nil)
	e.wantError(401, "POST", path, "", nil)
	e.wantError(403, "POST", path, apiKey(e, alice, "streams:read"), nil)
	issuePtk(e, apiKey(e, alice, "streams:write"), priv.ID, nil)

	// Public streams get tokens too; they play by pub_ id regardless.
	pt := issuePtk(e, alice, pub.ID, nil)
	wantPlays(t, e, "ptk of a public stream", pt.Token, "", pub.PlaybackID)
}

func TestPlaybackTokenExpires(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	priv := e.createStream(admin, map[string]any{"title": "private", "is_public": false})
	tok := issuePtk(e, admin, priv.ID, map[string]int{"expires_in": 60}).Token
	e.clock.Advance(58 * time.Second)
	wantPlays(t, e, "at 58 s", tok, "", priv.PlaybackID)
	e.clock.Advance(3 * time.Second)
	wantResolveErr(t, e, "ptk as id at 61 s", tok, "", egress.ErrForbidden)
	wantResolveErr(t, e, "ptk in Token at 61 s", priv.PlaybackID, tok, egress.ErrForbidden)
}

func TestPlaybackTokenForged(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	priv := e.createStream(admin, map[string]any{"title": "private", "is_public": false})
	other := e.createStream(admin, map[string]any{"title": "other", "is_public": false})
	tok := issuePtk(e, admin, priv.ID, nil).Token

	// Any change to any character: refused as forbidden, never resolved to some stream.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len(ptkPrefix); i < len(tok); i++ {
		b := []byte(tok)
		b[i] = alphabet[(strings.IndexByte(alphabet, b[i])+1)%len(alphabet)]
		wantResolveErr(t, e, fmt.Sprintf("char %d changed (as id)", i), string(b), "", egress.ErrForbidden)
		wantResolveErr(t, e, fmt.Sprintf("char %d changed (in Token)", i), priv.PlaybackID, string(b), egress.ErrForbidden)
	}
	// The other stream's id, signed with the wrong key; and the right key with a later
	// expiry or epoch spliced in from another token.
	exp := e.clock.Now().Add(time.Hour)
	wrongKey := deriveKey(bytes.Repeat([]byte{8}, 32), ptkPurpose)
	forged := mintPlaybackToken(wrongKey, playbackToken{PlaybackID: other.PlaybackID, Expires: exp})
	wantResolveErr(t, e, "signed with another master key", forged, "", egress.ErrForbidden)
	jwtKeyed := mintPlaybackToken(e.srv.jwtKey, playbackToken{PlaybackID: other.PlaybackID, Expires: exp})
	wantResolveErr(t, e, "signed with the JWT key", jwtKeyed, "", egress.ErrForbidden)
	a, _ := ptkEncoding.DecodeString(tok[len(ptkPrefix):])
	o, _ := ptkEncoding.DecodeString(issuePtk(e, admin, other.ID, nil).Token[len(ptkPrefix):])
	copy(a[1:1+playbackIDBytes], o[1:1+playbackIDBytes]) // other stream's id, this token's MAC
	wantResolveErr(t, e, "other stream's id spliced in", ptkPrefix+ptkEncoding.EncodeToString(a), "", egress.ErrForbidden)
	for _, s := range []string{"ptk_", "ptk_x", tok + "A", tok[:len(tok)-1], ptkPrefix + strings.ToUpper(tok[len(ptkPrefix):]), tok + "==", "ptk_" + strings.Repeat("A", ptkLen-4)} {
		wantResolveErr(t, e, "malformed", s, "", egress.ErrForbidden)
	}
	// The genuine token still works.
	wantPlays(t, e, "genuine", tok, "", priv.PlaybackID)
}

func TestPlaybackTokenRevokeRegenerateDelete(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	priv := e.createStream(alice, map[string]any{"title": "private", "is_public": false})
	path := fmt.Sprintf("/api/streams/%d", priv.ID)
	tok := issuePtk(e, alice, priv.ID, nil).Token
	wantPlays(t, e, "issued", tok, "", priv.PlaybackID) // now cached

	// A new publish key leaves playback alone.
	e.call(200, "POST", path+"/regenerate-key", alice, nil, nil)
	wantPlays(t, e, "after regenerate-key", tok, "", priv.PlaybackID)

	// Revoke voids every token at once (despite the cache); new tokens work.
	var msg map[string]string
	e.call(200, "POST", path+"/playback-token/revoke", alice, nil, &msg)
	if msg["message"] == "" {
		t.Fatalf("revoke answer %v", msg)
	}
	wantResolveErr(t, e, "revoked, as id", tok, "", egress.ErrForbidden)
	wantResolveErr(t, e, "revoked, in Token", priv.PlaybackID, tok, egress.ErrForbidden)
	tok2 := issuePtk(e, alice, priv.ID, nil).Token
	wantPlays(t, e, "issued after revoke", tok2, "", priv.PlaybackID)
	wantPlays(t, e, "owner after revoke", priv.PlaybackID, alice, priv.PlaybackID)
	e.call(200, "POST", path+"/playback-token/revoke", admin, nil, nil) // admins may revoke
	wantResolveErr(t, e, "revoked by admin", tok2, "", egress.ErrForbidden)

	// Deleting the stream: its tokens name a stream that no longer exists.
	tok3 := issuePtk(e, alice, priv.ID, nil).Token
	wantPlays(t, e, "before delete", tok3, "", priv.PlaybackID)
	e.call(200, "DELETE", path, alice, nil, nil)
	wantResolveErr(t, e, "deleted stream", tok3, "", egress.ErrNotFound)
	wantResolveErr(t, e, "deleted stream by pub_", priv.PlaybackID, alice, egress.ErrNotFound)
}

func TestVisibilityChangeTakesEffectAtOnce(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	alice := e.user(admin, "alice")
	st := e.createStream(alice, map[string]any{"title": "flip"})
	path := fmt.Sprintf("/api/streams/%d", st.ID)
	wantPlays(t, e, "public", st.PlaybackID, "", st.PlaybackID) // cached as public
	e.call(200, "PUT", path, alice, map[string]any{"is_public": false}, nil)
	wantResolveErr(t, e, "made private", st.PlaybackID, "", egress.ErrForbidden)
	wantPlays(t, e, "private, owner", st.PlaybackID, alice, st.PlaybackID)
	e.call(200, "PUT", path, alice, map[string]any{"is_public": true}, nil)
	wantPlays(t, e, "public again", st.PlaybackID, "", st.PlaybackID)

	// Deleting the owner drops their cached streams too.
	wantPlays(t, e, "cached", st.PlaybackID, "", st.PlaybackID)
	var users struct {
		Users []struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
		} `json:"users"`
	}
	e.call(200, "GET", "/api/admin/users", admin, nil, &users)
	for _, u := range users.Users {
		if u.Username == "alice" {
			e.call(200, "DELETE", fmt.Sprintf("/api/admin/users/%d", u.ID), admin, nil, nil)
		}
	}
	wantResolveErr(t, e, "owner deleted", st.PlaybackID, "", egress.ErrNotFound)
}

// TestVisibilityChangeRacingResolve makes a stream private while viewers keep resolving
// it: once the PUT has answered, no cached "public" may outlive it. The window it probes
// is narrow, so this is a smoke test under -race; TestResolveCacheGeneration checks the
// guard deterministically.
func TestVisibilityChangeRacingResolve(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "race"})
	path := fmt.Sprintf("/api/streams/%d", st.ID)
	for round := range 20 {
		e.call(200, "PUT", path, admin, map[string]any{"is_public": true}, nil)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					e.srv.Resolve(context.Background(), egress.Request{Protocol: "hls", ID: st.PlaybackID})
				}
			}()
		}
		e.call(200, "PUT", path, admin, map[string]any{"is_public": false}, nil)
		if _, err := resolve(e, st.PlaybackID, ""); !errors.Is(err, egress.ErrForbidden) {
			t.Fatalf("round %d: private stream resolved without token: %v", round, err)
		}
		close(stop)
		wg.Wait()
		if _, err := resolve(e, st.PlaybackID, ""); !errors.Is(err, egress.ErrForbidden) {
			t.Fatalf("round %d: after the readers stopped: %v", round, err)
		}
	}
}

func TestResolveCacheGeneration(t *testing.T) {
	var c resolveCache
	now := time.Now()
	a := streamAccess{playbackID: "pub_1", public: true}
	gen := c.generation()
	c.forget("pub_1") // an invalidation between the database read and put
	c.put(a, now.Add(time.Second), gen)
	if _, ok := c.get("pub_1", now); ok {
		t.Fatal("entry read before an invalidation was cached")
	}
	c.put(a, now.Add(time.Second), c.generation())
	if got, ok := c.get("pub_1", now); !ok || got != a {
		t.Fatalf("get %+v %v", got, ok)
	}
	if _, ok := c.get("pub_1", now.Add(time.Second)); ok {
		t.Fatal("expired entry returned")
	}
	c.prune(now.Add(time.Second))
	c.put(a, now.Add(time.Second), c.generation())
	c.clear()
	if _, ok := c.get("pub_1", now); ok {
		t.Fatal("entry survived clear")
	}
}

func TestPrivateStreamView(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	priv := e.createStream(admin, map[string]any{"title": "private", "is_public": false})
	raw := e.call(200, "GET", fmt.Sprintf("/api/streams/%d", priv.ID), admin, nil, nil)
	var m map[string]json.RawMessage
	json.Unmarshal(raw, &m)
	base := "http://127.0.0.1:8080/api/stream/" + priv.PlaybackID
	if want := `{"hls":"` + base + `/hls/index.m3u8","webrtc":"` + base + `/webrtc/whep","thumbnail":"` + base + `/thumbnail","requires_token":true}`; string(m["playback_urls"]) != want {
		t.Fatalf("playback_urls %s\nwant %s", m["playback_urls"], want)
	}
}

func TestRedactPath(t *testing.T) {
	tok := strings.Repeat("A", 82)
	for in, want := range map[string]string{
		"/api/stream/ptk_" + tok + "/hls/index.m3u8":        "/api/stream/ptk_[redacted]/hls/index.m3u8",
		"/api/stream/live_" + strings.Repeat("a", 64) + "/": "/api/stream/live_[redacted]/",
		"/api/stream/pub_0123/hls/video1_stream.m3u8":       "/api/stream/pub_0123/hls/video1_stream.m3u8",
		"/health": "/health",
	} {
		if got := redactPath(in); got != want {
			t.Errorf("redactPath(%q) = %q, want %q", in, got, want)
		}
	}
}
