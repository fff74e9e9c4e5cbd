package control

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2id cost of new hashes: OWASP's recommendation, 19 MiB, 2 passes, 1 lane. Stored
// hashes carry their own parameters, so it can be raised later. A variable only so that
// tests can make hashing cheap.
var argonCost = struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
}{19 * 1024, 2, 1}

const (
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Password length limits: the lower bound is the reference API's; the upper bound keeps
// hashing cost bounded.
const (
	minPasswordLen = 8
	maxPasswordLen = 1024
)

// hashPassword returns the PHC-encoded argon2id hash of password.
func hashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	rand.Read(salt)
	c := argonCost
	key := argon2.IDKey([]byte(password), salt, c.time, c.memory, c.threads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, c.memory, c.time, c.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// argonParams is a decoded argon2id hash.
type argonParams struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

var errBadHash = errors.New("control: malformed password hash")

// parsePasswordHash decodes a PHC argon2id string, refusing parameters outside sane bounds
// (so that a corrupted row cannot make a login cost gigabytes).
func parsePasswordHash(encoded string) (argonParams, error) {
	var p argonParams
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, errBadHash
	}
	var m, t, th uint64
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &th); err != nil || n != 3 {
		return p, errBadHash
	}
	if fmt.Sprintf("m=%d,t=%d,p=%d", m, t, th) != parts[3] {
		return p, errBadHash
	}
	if m < 8 || m > 1<<20 || t < 1 || t > 16 || th < 1 || th > 16 || m < 8*th {
		return p, errBadHash
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, errBadHash
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return p, errBadHash
	}
	return argonParams{memory: uint32(m), time: uint32(t), threads: uint8(th), salt: salt, key: key}, nil
}

// verifyPassword reports whether password matches the encoded hash (in constant time with
// respect to the hash).
func verifyPassword(encoded, password string) bool {
	p, err := parsePasswordHash(encoded)
	if err != nil {
		return false
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}
