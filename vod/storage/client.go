package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// Defaults for the zero values of [Config].
const (
	DefaultPort        = 22
	DefaultDialTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
	// DefaultMaxPacket is the SFTP write/read request size: 32 KiB, the size every SFTP
	// server must accept (draft-ietf-secsh-filexfer-02 §3). With 64 requests in flight it
	// keeps a loopback or LAN link busy; raise it only for servers known to accept more.
	DefaultMaxPacket = 32 << 10
)

// Config says where and how to reach one user's SFTP storage. The zero value of every
// optional field means its documented default.
type Config struct {
	Host     string // host name or IP address; required
	Port     int    // TCP port; 0 means DefaultPort (22)
	Username string // required
	// Password authenticates with "password" and "keyboard-interactive". Optional when
	// PrivateKey is set; both may be set (the key is offered first).
	Password string
	// PrivateKey is a private key in PEM or OpenSSH format ("-----BEGIN OPENSSH PRIVATE
	// KEY-----"); Passphrase decrypts it when it is encrypted.
	PrivateKey []byte
	Passphrase string
	// RemotePath is the directory every relative path is resolved in. A relative
	// RemotePath is relative to the login directory; empty means the login directory.
	RemotePath string
	// HostKey pins the server's host key: an authorized_keys line ("ssh-ed25519 AAAA...",
	// a trailing comment is ignored) or a fingerprint ("SHA256:..."). Empty means trust on
	// first use: any key is accepted and reported by [Client.HostKey] so the caller can
	// pin it. A mismatch fails with a [*HostKeyMismatchError].
	HostKey string
	// DialTimeout bounds TCP connect, SSH handshake, authentication and SFTP start;
	// 0 means DefaultDialTimeout (10 s).
	DialTimeout time.Duration
	// KeepAlive is the interval of SSH keepalive requests; a server that does not answer
	// one within three intervals (as OpenSSH's ServerAliveCountMax 3: an answer can queue
	// behind a large upload) is considered gone and the connection is closed, failing any
	// operation in flight. 0 means DefaultKeepAlive (15 s); negative disables.
	KeepAlive time.Duration
	// MaxPacket is the SFTP request payload size in bytes; 0 means DefaultMaxPacket.
	MaxPacket int
	// DialContext, when set, replaces net.Dialer.DialContext (proxies, tests).
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// String describes the Config without its secrets, so that logging a Config (%v, %+v)
// never leaks the password or the key.
func (c Config) String() string {
	return fmt.Sprintf("sftp://%s@%s%s (password:%t key:%t)", c.Username,
		net.JoinHostPort(c.Host, strconv.Itoa(c.withDefaults().Port)), c.RemotePath,
		c.Password != "", len(c.PrivateKey) > 0)
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

func (c Config) withDefaults() Config {
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxPacket == 0 {
		c.MaxPacket = DefaultMaxPacket
	}
	return c
}

// HostKey is the SSH host key a server presented. The zero value is no key.
type HostKey struct {
	key ssh.PublicKey
}

// ParseHostKey parses an authorized_keys line ("ssh-ed25519 AAAA... comment").
func ParseHostKey(s string) (HostKey, error) {
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s))
	if err != nil {
		return HostKey{}, fmt.Errorf("%w: host key: %v", ErrConfig, err)
	}
	return HostKey{key: key}, nil
}

// String returns the key in authorized_keys format without comment or newline
// ("ssh-ed25519 AAAA..."), the form Config.HostKey accepts; "" for the zero HostKey.
func (k HostKey) String() string {
	if k.key == nil {
		return ""
	}
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(k.key)))
}

// Fingerprint returns the OpenSSH SHA256 fingerprint ("SHA256:..."), as ssh-keygen -l
// prints it; "" for the zero HostKey.
func (k HostKey) Fingerprint() string {
	if k.key == nil {
		return ""
	}
	return ssh.FingerprintSHA256(k.key)
}

// Type returns the key algorithm ("ssh-ed25519", "ssh-rsa", ...).
func (k HostKey) Type() string {
	if k.key == nil {
		return ""
	}
	return k.key.Type()
}

// IsZero reports whether k holds no key.
func (k HostKey) IsZero() bool { return k.key == nil }

// Client is one SSH connection with one SFTP session to a user's storage, rooted at the
// resolved Config.RemotePath. Its methods may be called from several goroutines. When the
// connection breaks every method fails; Dial a new Client to continue.
type Client struct {
	conn    *ssh.Client
	sftp    *sftp.Client
	root    string
	hostKey HostKey

	posixRename bool // server has posix-rename@openssh.com
	fsync       bool // server has fsync@openssh.com

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// Dial connects, authenticates, checks the host key, starts SFTP and resolves RemotePath
// (RemotePath need not exist yet). Errors wrap ErrConfig, ErrAuth, ErrHostKeyMismatch or
// the network error; they never contain the password or the key.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	sshCfg, pinned, err := clientConfig(cfg)
	if err != nil {
		return nil, err
	}
	var presented ssh.PublicKey
	sshCfg.HostKeyCallback = func(_ string, _ net.Addr, key ssh.PublicKey) error {
		presented = key
		if pinned.match(key) {
			return nil
		}
		return &HostKeyMismatchError{Expected: pinned.fingerprint(), Presented: ssh.FingerprintSHA256(key), PresentedKey: HostKey{key: key}}
	}

	addr := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
	dialCtx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	dial := cfg.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	nc, err := dial(dialCtx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("storage: dial %s: %w", addr, err)
	}
	// The SSH handshake and the SFTP start ignore contexts: bound them by a deadline and
	// by closing the socket if ctx ends first.
	deadline, _ := dialCtx.Deadline()
	_ = nc.SetDeadline(deadline)
	stop := context.AfterFunc(dialCtx, func() { nc.Close() })

	c, err := handshake(nc, addr, cfg, sshCfg)
	if !stop() {
		// ctx ended or the dial timeout passed: the socket was closed under the handshake.
		if err == nil {
			c.Close()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("storage: dial %s: %w", addr, ctx.Err())
		}
		return nil, fmt.Errorf("storage: dial %s: %w", addr, context.DeadlineExceeded)
	}
	if err != nil {
		nc.Close()
		var mismatch *HostKeyMismatchError
		switch {
		case errors.As(err, &mismatch):
			return nil, mismatch
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, fmt.Errorf("%w: %s@%s", ErrAuth, cfg.Username, addr)
		case errors.Is(err, os.ErrDeadlineExceeded) || (dialCtx.Err() != nil && ctx.Err() == nil):
			return nil, fmt.Errorf("storage: dial %s: %w (%v)", addr, context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("storage: dial %s: %w", addr, err)
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		c.Close()
		return nil, fmt.Errorf("storage: dial %s: %w", addr, err)
	}
	c.hostKey = HostKey{key: presented}
	if cfg.KeepAlive > 0 {
		c.wg.Add(1)
		go c.keepalive(cfg.KeepAlive)
	}
	return c, nil
}

// handshake runs SSH and SFTP over nc and resolves the root.
func handshake(nc net.Conn, addr string, cfg Config, sshCfg *ssh.ClientConfig) (*Client, error) {
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, sshCfg)
	if err != nil {
		return nil, err
	}
	conn := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(conn,
		sftp.UseConcurrentWrites(true),
		sftp.UseConcurrentReads(true),
		sftp.MaxPacketUnchecked(cfg.MaxPacket),
	)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("start sftp: %w", err)
	}
	c := &Client{conn: conn, sftp: sc2, done: make(chan struct{})}
	_, c.posixRename = sc2.HasExtension("posix-rename@openssh.com")
	_, c.fsync = sc2.HasExtension("fsync@openssh.com")

	root := cfg.RemotePath
	if !path.IsAbs(root) {
		home, err := sc2.Getwd()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("login directory: %w", err)
		}
		root = path.Join(home, root)
	}
	// Resolve symlinks in RemotePath itself, so that a symlink below it can be compared
	// with the place RemotePath really is.
	if c.root, err = c.walk("/", strings.Split(path.Clean(root), "/"), true); err != nil {
		if errors.Is(err, ErrBadPath) {
			c.Close()
			return nil, fmt.Errorf("resolve remote path: %w", err)
		}
		// Some restricted servers refuse Lstat above the user's directory: take the path
		// as given (symlinks below it are still checked against it).
		c.root = path.Clean(root)
	}
	return c, nil
}

// pin is a parsed Config.HostKey.
type pin struct {
	key ssh.PublicKey // set for an authorized_keys pin
	fp  string        // set for a fingerprint pin, and for key pins too
}

func (p pin) match(key ssh.PublicKey) bool {
	switch {
	case p.key != nil:
		return bytes.Equal(p.key.Marshal(), key.Marshal())
	case p.fp != "":
		return p.fp == ssh.FingerprintSHA256(key)
	}
	return true // trust on first use
}

func (p pin) fingerprint() string { return p.fp }

// clientConfig builds the SSH client config (without HostKeyCallback) and parses the pin.
func clientConfig(cfg Config) (*ssh.ClientConfig, pin, error) {
	var p pin
	switch {
	case cfg.Host == "":
		return nil, p, fmt.Errorf("%w: no host", ErrConfig)
	case cfg.Username == "":
		return nil, p, fmt.Errorf("%w: no username", ErrConfig)
	case cfg.Password == "" && len(cfg.PrivateKey) == 0:
		return nil, p, fmt.Errorf("%w: neither password nor private key", ErrConfig)
	case cfg.Port < 0 || cfg.Port > 65535:
		return nil, p, fmt.Errorf("%w: port %d", ErrConfig, cfg.Port)
	}
	sshCfg := &ssh.ClientConfig{User: cfg.Username}
	if len(cfg.PrivateKey) > 0 {
		var signer ssh.Signer
		var err error
		if cfg.Passphrase != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase(cfg.PrivateKey, []byte(cfg.Passphrase))
		} else {
			signer, err = ssh.ParsePrivateKey(cfg.PrivateKey)
		}
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, p, fmt.Errorf("%w: private key is encrypted and no passphrase is set", ErrConfig)
			}
			// The parser's message names the format problem, never key material.
			return nil, p, fmt.Errorf("%w: private key: %v", ErrConfig, err)
		}
		sshCfg.Auth = append(sshCfg.Auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		pw := cfg.Password
		sshCfg.Auth = append(sshCfg.Auth,
			ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	if pinned := strings.TrimSpace(cfg.HostKey); pinned != "" {
		if strings.HasPrefix(pinned, "SHA256:") {
			p.fp = pinned
		} else {
			k, err := ParseHostKey(pinned)
			if err != nil {
				return nil, p, err
			}
			p.key, p.fp = k.key, k.Fingerprint()
			// Ask for the pinned algorithm, so a server with several host keys presents
			// the pinned one rather than its preferred one.
			if k.Type() == ssh.KeyAlgoRSA {
				sshCfg.HostKeyAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
			} else {
				sshCfg.HostKeyAlgorithms = []string{k.Type()}
			}
		}
	}
	return sshCfg, p, nil
}

// keepalive closes the connection when the server stops answering, so that operations
// blocked on a vanished server fail instead of hanging.
func (c *Client) keepalive(interval time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		replied := make(chan error, 1)
		go func() {
			// Returns when the server answers or the connection closes.
			_, _, err := c.conn.SendRequest("keepalive@openssh.com", true, nil)
			replied <- err
		}()
		timeout := time.NewTimer(3 * interval)
		select {
		case err := <-replied:
			timeout.Stop()
			if err != nil {
				c.conn.Close()
				return
			}
		case <-timeout.C:
			c.conn.Close()
			<-replied
			return
		case <-c.done:
			timeout.Stop()
			<-replied // Close closed the connection
			return
		}
	}
}

// HostKey returns the host key the server presented. With trust on first use
// (Config.HostKey empty) store HostKey().String() and pass it as Config.HostKey next time.
func (c *Client) HostKey() HostKey { return c.hostKey }

// Root returns the absolute remote directory all relative paths resolve in: RemotePath
// with the login directory prepended when relative, and symlinks resolved.
func (c *Client) Root() string { return c.root }

// Close ends the SFTP session and the connection and waits for the Client's goroutines.
// It is safe to call more than once; only the first call does anything.
func (c *Client) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		c.sftp.Close()
		if cerr := c.conn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = fmt.Errorf("storage: close: %w", cerr)
		}
		c.wg.Wait()
	})
	return err
}

// abort closes the connection without waiting, making every blocked operation fail.
func (c *Client) abort() { c.conn.Close() }
