package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relaycast/relaycast/egress"
	"github.com/relaycast/relaycast/ingest"
)

func authorize(e *env, proto ingest.Protocol, key string) (ingest.Grant, error) {
	g, err := e.srv.Authorize(context.Background(), ingest.Request{Protocol: proto, Key: key, RemoteAddr: "127.0.0.1:5000"})
	if err != nil && key != "" && strings.Contains(err.Error(), key) {
		e.t.Fatalf("error message contains the key: %v", err)
	}
	return g, err
}

func TestAuthorizeStreamKey(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "Key test"})
	for _, p := range []ingest.Protocol{ingest.ProtocolRTMP, ingest.ProtocolRTMPS, ingest.ProtocolWHIP} {
		g, err := authorize(e, p, st.StreamKey)
		if err != nil || g.StreamID != st.PlaybackID || g.Name != "Key test" || g.Token != "" {
			t.Fatalf("%s: %+v %v", p, g, err)
		}
	}
	wrong, _, _ := newSecret(kindStreamKey)
	for _, key := range []string{wrong, "live_notakey", "", "pub_" + st.PlaybackID[4:], st.StreamKey + "x", strings.ToUpper(st.StreamKey)} {
		if _, err := authorize(e, ingest.ProtocolRTMPS, key); !errors.Is(err, ingest.ErrUnauthorized) {
			t.Fatalf("key %q: %v, want ErrUnauthorized", ingest.RedactKey(key), err)
		}
	}
	// Regenerating invalidates the old key.
	var re streamJSON
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/regenerate-key", st.ID), admin, nil, &re)
	if _, err := authorize(e, ingest.ProtocolRTMPS, st.StreamKey); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("old key after regenerate: %v", err)
	}
	if g, err := authorize(e, ingest.ProtocolRTMPS, re.StreamKey); err != nil || g.StreamID != st.PlaybackID {
		t.Fatalf("new key: %+v %v", g, err)
	}
}

func TestAuthorizePlainRTMPPolicy(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) { c.RTMPPlainKeys = false }))
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "hardened", "rtmp_enabled": true})
	if _, err := authorize(e, ingest.ProtocolRTMP, st.StreamKey); !errors.Is(err, ingest.ErrForbidden) {
		t.Fatalf("live_ over plain rtmp with plain keys off: %v", err)
	}
	if _, err := authorize(e, ingest.ProtocolRTSP, st.StreamKey); !errors.Is(err, ingest.ErrForbidden) {
		t.Fatalf("live_ over plain rtsp with plain keys off: %v", err)
	}
	if _, err := authorize(e, ingest.ProtocolRTMPS, st.StreamKey); err != nil {
		t.Fatalf("live_ over rtmps: %v", err)
	}
	// A wrong key is still "unauthorized", not "forbidden".
	wrong, _, _ := newSecret(kindStreamKey)
	if _, err := authorize(e, ingest.ProtocolRTMP, wrong); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("wrong key: %v", err)
	}
	// Tokens still work over plain RTMP.
	tok := rtmpToken(e, admin, st.ID)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); err != nil {
		t.Fatalf("token over plain rtmp: %v", err)
	}

	off := newEnv(t, withConfig(func(c *Config) { c.RTMPPlainEnabled = false }))
	admin2 := off.setup()
	st2 := off.createStream(admin2, map[string]any{"title": "no plain"})
	if _, err := authorize(off, ingest.ProtocolRTMP, st2.StreamKey); !errors.Is(err, ingest.ErrForbidden) {
		t.Fatalf("live_ over plain rtmp with plain disabled: %v", err)
	}
	if _, err := authorize(off, ingest.ProtocolRTMPS, st2.StreamKey); err != nil {
		t.Fatalf("live_ over rtmps with plain disabled: %v", err)
	}
}

func rtmpToken(e *env, token string, id int64) string {
	e.t.Helper()
	var out struct {
		Token string `json:"token"`
	}
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/rtmp-token", id), token, nil, &out)
	return out.Token
}

func TestAuthorizeRTMPTokenSingleUseWithGrace(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "tok", "rtmp_enabled": true})
	tok := rtmpToken(e, admin, st.ID)
	g, err := authorize(e, ingest.ProtocolRTMP, tok)
	if err != nil || g.StreamID != st.PlaybackID || g.Token == "" || strings.Contains(g.Token, tok) {
		t.Fatalf("first use: %+v %v", g, err)
	}
	// In use: a second publisher with the same token is refused.
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("second use while publishing: %v", err)
	}
	// Released: a reconnect within 30 s works, once.
	e.srv.Release(g)
	e.clock.Advance(29 * time.Second)
	g2, err := authorize(e, ingest.ProtocolRTMP, tok)
	if err != nil {
		t.Fatalf("reconnect within grace: %v", err)
	}
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("third use without release: %v", err)
	}
	// Released again, and more than 30 s pass: refused for good.
	e.srv.Release(g2)
	e.srv.Release(g2) // a second release changes nothing
	e.clock.Advance(31 * time.Second)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("reuse after grace: %v", err)
	}
	// Releasing a key grant is a no-op.
	e.srv.Release(ingest.Grant{StreamID: st.PlaybackID})
}

func TestAuthorizeRTMPTokenExpiresUnused(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "tok", "rtmp_enabled": true})
	tok := rtmpToken(e, admin, st.ID)
	fresh := rtmpToken(e, admin, st.ID)
	e.clock.Advance(14 * time.Minute)
	if _, err := authorize(e, ingest.ProtocolRTMP, fresh); err != nil {
		t.Fatalf("token at 14 min: %v", err)
	}
	e.clock.Advance(time.Minute + time.Second)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("token after 15 min: %v", err)
	}
}

func TestAuthorizeRTMPTokenGates(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "tok", "rtmp_enabled": true})
	tok := rtmpToken(e, admin, st.ID)
	// RTMP turned off on the stream after the token was made: refused, token not spent.
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"rtmp_enabled": false}, nil)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); !errors.Is(err, ingest.ErrForbidden) {
		t.Fatalf("rtmp_enabled false: %v", err)
	}
	e.call(200, "PUT", fmt.Sprintf("/api/streams/%d", st.ID), admin, map[string]any{"rtmp_enabled": true}, nil)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok); err != nil {
		t.Fatalf("token after re-enabling: %v", err)
	}
	// Regenerating the key drops unused tokens.
	tok2 := rtmpToken(e, admin, st.ID)
	e.call(200, "POST", fmt.Sprintf("/api/streams/%d/regenerate-key", st.ID), admin, nil, nil)
	if _, err := authorize(e, ingest.ProtocolRTMP, tok2); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("token after regenerate: %v", err)
	}
	// A well-formed token nobody issued.
	unknown, _, _ := newSecret(kindRTMPToken)
	if _, err := authorize(e, ingest.ProtocolRTMP, unknown); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("unknown token: %v", err)
	}
	// An API key is not a publish key.
	var k apiKeyAnswer
	e.call(200, "POST", "/api/api-keys", admin, map[string]any{"name": "k"}, &k)
	if _, err := authorize(e, ingest.ProtocolRTMPS, k.APIKey); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("api key as publish key: %v", err)
	}
}

func TestAuthorizeRTMPTokenConcurrentUse(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	st := e.createStream(admin, map[string]any{"title": "race", "rtmp_enabled": true})
	tok := rtmpToken(e, admin, st.ID)
	const n = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, refusals := 0, 0
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := e.srv.Authorize(context.Background(), ingest.Request{Protocol: ingest.ProtocolRTMP, Key: tok})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ingest.ErrUnauthorized):
				refusals++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if wins != 1 || refusals != n-1 {
		t.Fatalf("%d wins, %d refusals", wins, refusals)
	}
}

func TestResolve(t *testing.T) {
	e := newEnv(t)
	admin := e.setup()
	pub := e.createStream(admin, map[string]any{"title": "pub"})
	ctx := context.Background()
	for range 2 { // the second hits the cache
		id, err := e.srv.Resolve(ctx, egress.Request{Protocol: "hls", ID: pub.PlaybackID})
		if err != nil || id != pub.PlaybackID {
			t.Fatalf("resolve %s: %q %v", pub.PlaybackID, id, err)
		}
	}
	// Private streams are protected, not unlisted: see playback_test.go.
	for _, id := range []string{pub.StreamKey, newPlaybackID(), "", "pub_", "../etc"} {
		if _, err := e.srv.Resolve(ctx, egress.Request{Protocol: "hls", ID: id}); !errors.Is(err, egress.ErrNotFound) {
			t.Fatalf("resolve %q: %v, want ErrNotFound", ingest.RedactKey(id), err)
		}
	}
	// A deleted stream stops resolving at once.
	e.call(200, "DELETE", fmt.Sprintf("/api/streams/%d", pub.ID), admin, nil, nil)
	if _, err := e.srv.Resolve(ctx, egress.Request{Protocol: "hls", ID: pub.PlaybackID}); !errors.Is(err, egress.ErrNotFound) {
		t.Fatalf("deleted stream: %v", err)
	}
	if _, err := authorize(e, ingest.ProtocolRTMPS, pub.StreamKey); !errors.Is(err, ingest.ErrUnauthorized) {
		t.Fatalf("key of a deleted stream: %v", err)
	}
}
