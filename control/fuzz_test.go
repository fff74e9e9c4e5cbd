package control

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParseSecret(f *testing.F) {
	full, _, _ := newSecret(kindStreamKey)
	f.Add(full)
	f.Add("rtmp_" + strings.Repeat("0", 64))
	f.Add("portal_")
	f.Add("pub_0123456789abcdef01234567")
	f.Add("live_\x00")
	f.Fuzz(func(t *testing.T, s string) {
		kind, ok := parseSecret(s)
		if ok && (len(s) != len(kind)+1+64 || !strings.HasPrefix(s, kind+"_")) {
			t.Fatalf("accepted %q as %q", s, kind)
		}
		if validPlaybackID(s) && len(s) != 28 {
			t.Fatalf("playback id %q", s)
		}
	})
}

func FuzzParsePasswordHash(f *testing.F) {
	f.Add(hashPassword("password"))
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$a$b")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePasswordHash(s)
		if err != nil {
			return
		}
		if p.memory > 1<<20 || p.time > 16 || p.threads == 0 || p.threads > 16 || len(p.salt) < 8 || len(p.key) < 16 {
			t.Fatalf("accepted out-of-bounds parameters %+v from %q", p, s)
		}
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"title":"x","description":"d","is_public":true,"rtmp_enabled":false}`)
	f.Add(`{"title":`)
	f.Add(`{} {}`)
	f.Add(`[]`)
	f.Add(`{"title":"x","nope":1}`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/api/streams", strings.NewReader(body))
		var in streamInput
		err := decodeJSON(httptest.NewRecorder(), r, &in)
		if err != nil {
			ae, ok := err.(*apiError)
			if !ok || (ae.Status != http.StatusBadRequest && ae.Status != http.StatusRequestEntityTooLarge) {
				t.Fatalf("error %v is not a 400/413 apiError", err)
			}
		}
	})
}

func FuzzCredential(f *testing.F) {
	f.Add("Bearer abc", "")
	f.Add("", "tok")
	f.Add("Basic x", "y")
	f.Fuzz(func(t *testing.T, header, query string) {
		r := httptest.NewRequest("GET", "/api/me", nil)
		r.Header.Set("Authorization", header)
		q := r.URL.Query()
		q.Set("token", query)
		r.URL.RawQuery = q.Encode()
		tok, err := credential(r)
		if err == nil && tok == "" {
			t.Fatal("empty credential accepted")
		}
	})
}

// FuzzPlaybackToken: the parser never panics, accepts only the canonical spelling, and
// verifies only what the key signed (a mutated genuine token never verifies).
func FuzzPlaybackToken(f *testing.F) {
	key := deriveKey(make([]byte, 32), ptkPurpose)
	exp := time.Unix(1_900_000_000, 0).UTC()
	genuine := mintPlaybackToken(key, playbackToken{PlaybackID: "pub_0123456789abcdef01234567", Expires: exp, Epoch: 3})
	f.Add(genuine)
	f.Add(genuine[:len(genuine)-1] + "B")
	f.Add("ptk_")
	f.Add("ptk_" + strings.Repeat("A", ptkLen-4))
	f.Add("ptk_" + strings.Repeat("_", ptkLen-4))
	f.Add("pub_0123456789abcdef01234567")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := openPlaybackToken(key, s)
		if err != nil {
			if !errors.Is(err, errPtkMalformed) && !errors.Is(err, errPtkForged) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if s != genuine {
			t.Fatalf("verified a token the key did not sign: %q", s)
		}
		if !validPlaybackID(tok.PlaybackID) || mintPlaybackToken(key, tok) != s {
			t.Fatalf("round trip of %q: %+v", s, tok)
		}
	})
}

// FuzzRelayInput checks the relay validation: an accepted rtmp_url and stream_key always
// make a publish URL whose last path segment is exactly the key and that carries nothing
// else (no query, fragment or user info), with an rtmp or rtmps scheme and a host.
func FuzzRelayInput(f *testing.F) {
	f.Add("rtmp://live.twitch.tv/app", "live_123_abc")
	f.Add("rtmps://[::1]:1936/live/sub/", "a/b?c#d")
	f.Add("RTMP://h/app", "%2F")
	f.Add("rtmp://h:0/app", "k")
	f.Add("rtmp://u@h/app?x#y", "k k")
	f.Add("rtmp:h/app", "\x00")
	f.Fuzz(func(t *testing.T, base, key string) {
		urlErr, keyErr := checkRelayURL(base), checkRelayKey(key)
		for _, err := range []error{urlErr, keyErr} {
			if ae, ok := err.(*apiError); err != nil && (!ok || ae.Status != http.StatusBadRequest) {
				t.Fatalf("error %v is not a 400 apiError", err)
			}
		}
		if urlErr != nil || keyErr != nil {
			return
		}
		full := relayURL(base, key)
		u, err := url.Parse(full)
		if err != nil {
			t.Fatalf("%q + %q: %q does not parse: %v", base, key, full, err)
		}
		if (u.Scheme != "rtmp" && u.Scheme != "rtmps") || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Fatalf("%q + %q: %q", base, key, full)
		}
		p := u.EscapedPath()
		i := strings.LastIndexByte(p, '/')
		if i <= 0 {
			t.Fatalf("%q + %q: %q has no application", base, key, full)
		}
		if name, err := url.PathUnescape(p[i+1:]); err != nil || name != key {
			t.Fatalf("%q + %q: %q carries the key as %q (%v)", base, key, full, name, err)
		}
	})
}
