package control

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Kinds of secret credential, by prefix.
const (
	kindStreamKey = "live"   // permanent publish key of a stream
	kindRTMPToken = "rtmp"   // single-use publish token for plain RTMP
	kindAPIKey    = "portal" // API key
)

const (
	secretBytes     = 32 // random bytes behind a secret's prefix
	playbackIDBytes = 12 // random bytes behind "pub_"
	// displayChars is how many characters after the prefix a stored display prefix keeps.
	displayChars = 8
)

// newSecret returns a new secret credential of kind ("live", "rtmp", "portal"): the full
// value (shown once), its SHA-256 (stored) and its display prefix (stored).
func newSecret(kind string) (full string, hash []byte, prefix string) {
	b := make([]byte, secretBytes)
	rand.Read(b)
	full = kind + "_" + hex.EncodeToString(b)
	return full, hashSecret(full), full[:len(kind)+1+displayChars]
}

// hashSecret returns the stored form of a secret credential.
func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// parseSecret returns the kind of a well-formed secret credential: a known prefix, "_",
// then exactly 64 lowercase hex digits. Anything else is not a credential of ours and is
// refused before any database lookup.
func parseSecret(s string) (kind string, ok bool) {
	kind, rest, found := strings.Cut(s, "_")
	if !found {
		return "", false
	}
	switch kind {
	case kindStreamKey, kindRTMPToken, kindAPIKey:
	default:
		return "", false
	}
	if !isLowerHex(rest, 2*secretBytes) {
		return "", false
	}
	return kind, true
}

// newPlaybackID returns a new public playback id ("pub_" + 24 hex digits).
func newPlaybackID() string {
	b := make([]byte, playbackIDBytes)
	rand.Read(b)
	return "pub_" + hex.EncodeToString(b)
}

// validPlaybackID reports whether s has the form of a playback id.
func validPlaybackID(s string) bool {
	rest, ok := strings.CutPrefix(s, "pub_")
	return ok && isLowerHex(rest, 2*playbackIDBytes)
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// newID returns a random 128-bit id in hex (JWT ids).
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
