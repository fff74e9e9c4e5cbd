package control

// VOD storage configuration: the input of POST /api/vods/storage, its validation and the
// sealing of the secrets at rest. The wire contract is in doc.go, "VOD storage".

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/relaycast/relaycast/control/store"
	"github.com/relaycast/relaycast/vod/storage"
)

// vodSealPurpose is the Sealer purpose of VOD storage secrets.
const vodSealPurpose = "vod-storage"

// VOD storage field limits.
const (
	maxVODHost       = 253
	maxVODUsername   = 255
	maxVODPassword   = 1024
	maxVODPrivateKey = 16 << 10
	maxVODRemotePath = 1024
)

var errNoVODStorage = &apiError{http.StatusNotFound, "no VOD storage configured: save one with POST /api/vods/storage"}

// vodStorageInput is the body of POST /api/vods/storage and, optionally, of POST
// /api/vods/storage/test. Absent fields keep their stored value (or default on creation);
// an absent or empty password, private_key or passphrase keeps the stored secret.
type vodStorageInput struct {
	Host             *string `json:"host"`
	Port             *int    `json:"port"`
	Username         *string `json:"username"`
	AuthMethod       *string `json:"auth_method"`
	Password         *string `json:"password"`
	PrivateKey       *string `json:"private_key"`
	Passphrase       *string `json:"passphrase"`
	RemotePath       *string `json:"remote_path"`
	HostKey          *string `json:"host_key"`
	RecordingEnabled *bool   `json:"recording_enabled"`
}

// empty reports whether in has no field at all.
func (in vodStorageInput) empty() bool { return in == vodStorageInput{} }

// vodConfig is a user's VOD storage with its secrets in clear: it lives only in memory.
type vodConfig struct {
	row store.VODStorage // the sealed secret fields are ignored
	// password, privateKey and passphrase are the secrets in clear ("" when absent).
	password, privateKey, passphrase string
	// setHostKey: row.HostKey was set explicitly (the input's host_key) and is saved as is.
	setHostKey bool
}

// storageConfig returns the storage client's Config: only the secrets of the auth method.
func (c vodConfig) storageConfig(dialTimeout time.Duration) storage.Config {
	cfg := storage.Config{
		Host:        c.row.Host,
		Port:        c.row.Port,
		Username:    c.row.Username,
		RemotePath:  c.row.RemotePath,
		HostKey:     c.row.HostKey,
		DialTimeout: dialTimeout,
	}
	if c.row.AuthMethod == store.AuthKey {
		cfg.PrivateKey, cfg.Passphrase = []byte(c.privateKey), c.passphrase
	} else {
		cfg.Password = c.password
	}
	return cfg
}

// apply validates in and writes it onto c. creating: c holds no stored storage yet.
func (in vodStorageInput) apply(c *vodConfig, creating bool) error {
	oldHost, oldPort := c.row.Host, c.row.Port
	if in.Host != nil {
		h, err := checkVODHost(*in.Host)
		if err != nil {
			return err
		}
		c.row.Host = h
	}
	if in.Port != nil {
		if *in.Port < 1 || *in.Port > 65535 {
			return errorf(http.StatusBadRequest, "port must be 1-65535")
		}
		c.row.Port = *in.Port
	}
	if in.Username != nil {
		u := strings.TrimSpace(*in.Username)
		if n := utf8.RuneCountInString(u); n == 0 || n > maxVODUsername || hasControl(u) {
			return errorf(http.StatusBadRequest, "username must be 1-%d characters without control characters", maxVODUsername)
		}
		c.row.Username = u
	}
	if in.AuthMethod != nil {
		switch m := strings.TrimSpace(*in.AuthMethod); m {
		case store.AuthPassword, store.AuthKey:
			c.row.AuthMethod = m
		default:
			return errorf(http.StatusBadRequest, `auth_method must be "password" or "key"`)
		}
	} else if creating {
		c.row.AuthMethod = store.AuthPassword
		if in.PrivateKey != nil && *in.PrivateKey != "" {
			c.row.AuthMethod = store.AuthKey
		}
	}
	if in.RemotePath != nil {
		p := strings.TrimSpace(*in.RemotePath)
		if len(p) > maxVODRemotePath || hasControl(p) || !utf8.ValidString(p) {
			return errorf(http.StatusBadRequest, "remote_path must be at most %d bytes of UTF-8 without control characters", maxVODRemotePath)
		}
		c.row.RemotePath = p
	}
	if in.RecordingEnabled != nil {
		c.row.RecordingEnabled = *in.RecordingEnabled
	}
	moved := !creating && (c.row.Host != oldHost || c.row.Port != oldPort)
	if err := in.applySecrets(c, moved); err != nil {
		return err
	}
	switch {
	case in.HostKey != nil && strings.TrimSpace(*in.HostKey) != "":
		k, err := storage.ParseHostKey(strings.TrimSpace(*in.HostKey))
		if err != nil {
			return errorf(http.StatusBadRequest, `host_key must be an SSH public key in authorized_keys format ("ssh-ed25519 AAAA...")`)
		}
		c.row.HostKey, c.setHostKey = k.String(), true
	case in.HostKey != nil:
		c.row.HostKey, c.setHostKey = "", true
	case moved:
		// Another server: its key is pinned anew on the first connection.
		c.row.HostKey = ""
	}
	return c.validate()
}

// applySecrets applies the secrets of in. When the storage moved to another host or port,
// the stored secret of the auth method is not carried over: it is only ever sent to the
// server it was given for, so the caller must give it again.
func (in vodStorageInput) applySecrets(c *vodConfig, moved bool) error {
	given := func(p *string) bool { return p != nil && *p != "" }
	if given(in.Password) {
		if len(*in.Password) > maxVODPassword {
			return errorf(http.StatusBadRequest, "password must be at most %d bytes", maxVODPassword)
		}
		c.password = *in.Password
	} else if moved {
		c.password = ""
	}
	if given(in.PrivateKey) {
		if len(*in.PrivateKey) > maxVODPrivateKey {
			return errorf(http.StatusBadRequest, "private_key must be at most %d bytes", maxVODPrivateKey)
		}
		// A new key comes with its own passphrase (or none).
		c.privateKey, c.passphrase = *in.PrivateKey, ""
	} else if moved {
		c.privateKey, c.passphrase = "", ""
	}
	if given(in.Passphrase) {
		if len(*in.Passphrase) > maxVODPassword {
			return errorf(http.StatusBadRequest, "passphrase must be at most %d bytes", maxVODPassword)
		}
		c.passphrase = *in.Passphrase
	}
	return nil
}

// validate checks a complete configuration and drops the secrets its auth method does not
// use.
func (c *vodConfig) validate() error {
	switch {
	case c.row.Host == "":
		return errorf(http.StatusBadRequest, "host is required")
	case c.row.Username == "":
		return errorf(http.StatusBadRequest, "username is required")
	}
	if c.row.AuthMethod == store.AuthPassword {
		if c.password == "" {
			return errorf(http.StatusBadRequest, `password is required for auth_method "password" (and again when host or port changes)`)
		}
		c.privateKey, c.passphrase = "", ""
		return nil
	}
	if c.privateKey == "" {
		return errorf(http.StatusBadRequest, `private_key is required for auth_method "key" (and again when host or port changes)`)
	}
	c.password = ""
	return checkPrivateKey(c.privateKey, c.passphrase)
}

// checkVODHost accepts a host name or an IP address (IPv6 with or without brackets) and
// returns it in lower case.
func checkVODHost(raw string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(raw))
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if net.ParseIP(h) != nil {
		return h, nil
	}
	ok := h != "" && len(h) <= maxVODHost
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			ok = false
			break
		}
	}
	if !ok || strings.HasPrefix(h, ".") || strings.HasPrefix(h, "-") || strings.Contains(h, "..") {
		return "", errorf(http.StatusBadRequest, "host must be a host name or an IP address (no scheme, port or path)")
	}
	return h, nil
}

// checkPrivateKey checks that key parses (with passphrase when it is encrypted). The
// messages never quote the key.
func checkPrivateKey(key, passphrase string) error {
	_, err := ssh.ParseRawPrivateKey([]byte(key))
	var missing *ssh.PassphraseMissingError
	if errors.As(err, &missing) {
		if passphrase == "" {
			return errorf(http.StatusBadRequest, "private_key is encrypted: give its passphrase")
		}
		_, err = ssh.ParseRawPrivateKeyWithPassphrase([]byte(key), []byte(passphrase))
		if errors.Is(err, x509.IncorrectPasswordError) {
			return errorf(http.StatusBadRequest, "passphrase does not decrypt private_key")
		}
	}
	if err != nil {
		return errorf(http.StatusBadRequest, "private_key must be a private key in PEM or OpenSSH format")
	}
	return nil
}

func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// vodSecretAAD is the associated data of one sealed secret of a user's storage: a sealed
// value moved to another user or another column does not open.
func vodSecretAAD(userID int64, field string) []byte {
	return []byte("user:" + strconv.FormatInt(userID, 10) + "/" + field)
}

func (s *Server) sealVOD(userID int64, field, v string) []byte {
	if v == "" {
		return nil
	}
	return s.vodKeys.Seal([]byte(v), vodSecretAAD(userID, field))
}

func (s *Server) openVOD(userID int64, field string, sealed []byte) (string, error) {
	if len(sealed) == 0 {
		return "", nil
	}
	pt, err := s.vodKeys.Open(sealed, vodSecretAAD(userID, field))
	if err != nil {
		return "", errorf(http.StatusInternalServerError,
			"the stored VOD storage %s cannot be decrypted (was the server's secret key changed?): save the storage again", field)
	}
	return string(pt), nil
}

// loadVODConfig returns userID's storage with its secrets opened; errNoVODStorage when it
// has none.
func (s *Server) loadVODConfig(ctx context.Context, userID int64) (vodConfig, error) {
	row, err := s.store.VODStorage(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return vodConfig{}, errNoVODStorage
	}
	if err != nil {
		return vodConfig{}, err
	}
	c := vodConfig{row: row}
	if c.password, err = s.openVOD(userID, "password", row.Password); err != nil {
		return vodConfig{}, err
	}
	if c.privateKey, err = s.openVOD(userID, "private_key", row.PrivateKey); err != nil {
		return vodConfig{}, err
	}
	if c.passphrase, err = s.openVOD(userID, "passphrase", row.Passphrase); err != nil {
		return vodConfig{}, err
	}
	return c, nil
}

// mergeVODConfig applies in to userID's stored storage, or to a new one when there is
// none; it saves nothing.
func (s *Server) mergeVODConfig(ctx context.Context, userID int64, in vodStorageInput) (vodConfig, bool, error) {
	c, err := s.loadVODConfig(ctx, userID)
	creating := errors.Is(err, errNoVODStorage)
	if err != nil && !creating {
		return vodConfig{}, false, err
	}
	if creating {
		c = vodConfig{row: store.VODStorage{UserID: userID, Port: storage.DefaultPort, RecordingEnabled: true}}
	}
	if err := in.apply(&c, creating); err != nil {
		return vodConfig{}, false, err
	}
	return c, creating, nil
}
