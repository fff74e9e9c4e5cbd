package control

import (
	"errors"
	"net/http"
	"net/http/httptest"
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
