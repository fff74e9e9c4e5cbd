package control

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// secretKeyFile is the name of the generated master key in the data dir.
const secretKeyFile = "secret.key"

// minPassphrase is the shortest --secret-key accepted as a passphrase.
const minPassphrase = 16

// LoadSecretKey returns the 32-byte master key.
//
// When value is not empty it is the key: 64 hex digits, or base64 (standard or URL
// alphabet, padded or not) of 32 bytes, is used as is; any other string of at least 16
// characters is a passphrase and the key is its SHA-256 (a passphrase is only as strong as
// it is long: prefer `openssl rand -hex 32`). Otherwise the key is read from
// dataDir/secret.key (hex or base64), and generated there (mode 0600, hex) when that file
// does not exist. A secret.key that exists but cannot be decoded is an error: making a new
// key would silently make every encrypted value unreadable.
func LoadSecretKey(dataDir, value string) ([]byte, error) {
	if value != "" {
		if k, ok := decodeKey(value); ok {
			return k, nil
		}
		if len(value) < minPassphrase {
			return nil, fmt.Errorf("secret key: not 32 bytes in hex or base64, and shorter than %d characters for a passphrase", minPassphrase)
		}
		sum := sha256.Sum256([]byte(value))
		return sum[:], nil
	}
	path := filepath.Join(dataDir, secretKeyFile)
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			k, ok := decodeKey(string(b))
			if !ok {
				return nil, fmt.Errorf("secret key: %s does not hold 32 bytes in hex or base64", path)
			}
			return k, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		k, err := generateKeyFile(dataDir, path)
		if errors.Is(err, fs.ErrExist) {
			continue // another process created it first: read theirs
		}
		return k, err
	}
	return nil, fmt.Errorf("secret key: cannot read or create %s", path)
}

func generateKeyFile(dataDir, path string) ([]byte, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	k := make([]byte, 32)
	rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(k) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("secret key: write %s: %w", path, err)
	}
	return k, nil
}

// decodeKey decodes 32 bytes written in hex or base64.
func decodeKey(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) == 64 {
		if k, err := hex.DecodeString(s); err == nil {
			return k, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, true
		}
	}
	return nil, false
}

// deriveKey derives a 32-byte key for one purpose from the master key (HKDF-SHA256), so
// that the JWT signing key and each encryption key are independent.
func deriveKey(master []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, "relaycast/v1/"+purpose, 32)
	if err != nil {
		panic(err) // only for a length HKDF-SHA256 cannot produce; 32 always works
	}
	return k
}

// Sealer encrypts small values at rest (relay stream keys, SFTP passwords, webhook
// secrets, chat messages) with AES-256-GCM under a key derived from the master key for
// one purpose. A sealed value is: version byte 1, 12-byte random nonce, ciphertext and tag.
// Safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// sealVersion is the first byte of every sealed value.
const sealVersion = 1

// ErrSealed is returned by Sealer.Open for a value that is not authentic (wrong key, wrong
// purpose or associated data, or altered).
var ErrSealed = errors.New("control: sealed value cannot be opened")

// NewSealer returns a Sealer for purpose (e.g. "relay-keys") under the 32-byte master key.
func NewSealer(master []byte, purpose string) (*Sealer, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("control: master key is %d bytes, want 32", len(master))
	}
	block, err := aes.NewCipher(deriveKey(master, "seal/"+purpose))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts plaintext; aad (e.g. the row id) is authenticated but not stored, and the
// same aad must be given to Open.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1 : 1+ns])
	return s.aead.Seal(out, out[1:1+ns], plaintext, aad)
}

// Open decrypts a value made by Seal with the same purpose and aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, ErrSealed
	}
	pt, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, ErrSealed
	}
	return pt, nil
}
