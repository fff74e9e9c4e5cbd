package sftptest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// SSHD is where Debian's openssh-server installs the daemon.
const SSHD = "/usr/sbin/sshd"

// Options selects the kind of server. The zero value is OpenSSH sshd.
type Options struct {
	// InProcess runs the x/crypto/ssh + pkg/sftp server inside the test process instead of
	// sshd. It accepts the client key and Password; sshd, unprivileged, cannot check
	// passwords and accepts only the key.
	InProcess bool
	// Password is the password the in-process server accepts for User(); empty means a
	// random one (see Server.Password).
	Password string
}

// Server is one running (or stopped) SFTP server. Its methods may be called from any
// goroutine, except that Restart, which fails the test on error, follows the testing
// package's rule for Fatal.
type Server struct {
	t        testing.TB
	dir      string // private: config, keys, pid file, log
	root     string // Root()
	user     string
	password string
	port     int

	clientKey     []byte // OpenSSH PEM
	clientKeyFile string
	clientPub     ssh.PublicKey
	hostKey       string // authorized_keys line
	hostSigner    ssh.Signer
	hostKeyPEM    []byte

	mu      sync.Mutex
	running bool
	impl    backend
}

// backend is the server implementation: sshd or in-process.
type backend interface {
	start(port int) error // listen on 127.0.0.1:port and serve; the port may be taken
	stop()                // close the listener and every connection, wait for the end
	log() string          // diagnostics to print when the test failed
}

// Start starts a server and registers its stop with t.Cleanup. It fails the test (never
// skips it) when the server cannot start, for instance when /usr/sbin/sshd is missing.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	s := &Server{t: t, dir: dir, root: filepath.Join(dir, "root"), password: opts.Password}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	s.user = currentUser(t)
	if s.password == "" {
		s.password = randomHex(12)
	}
	var clientSigner ssh.Signer
	s.clientKey, _, clientSigner = generate(t)
	s.clientPub = clientSigner.PublicKey()
	s.clientKeyFile = filepath.Join(dir, "client_ed25519")
	if err := os.WriteFile(s.clientKeyFile, s.clientKey, 0o600); err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	s.hostKeyPEM, s.hostKey, s.hostSigner = generate(t)

	if opts.InProcess {
		s.impl = &goServer{s: s}
	} else {
		sd, err := newSSHD(s)
		if err != nil {
			t.Fatalf("sftptest: %v", err)
		}
		s.impl = sd
	}
	// A free port is found by listening on :0 and closing; another process can take it
	// before the server binds it, so try a few.
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		err := s.impl.start(s.port)
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("sftptest: start: %v\n%s", err, s.impl.log())
		}
	}
	s.running = true
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if l := s.impl.log(); l != "" {
				t.Logf("sftptest server log:\n%s", l)
			}
		}
	})
	return s
}

// Stop takes the server down: it stops listening and every open connection is cut (the
// client sees the TCP connection close). Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.impl.stop()
	s.running = false
}

// Restart stops the server if it runs and starts it again on the same port with the same
// keys and files. It fails the test if the port was taken meanwhile.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		s.impl.stop()
		s.running = false
	}
	if err := s.impl.start(s.port); err != nil {
		s.t.Fatalf("sftptest: restart on port %d: %v\n%s", s.port, err, s.impl.log())
	}
	s.running = true
}

// Host returns "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port returns the TCP port, the same across restarts.
func (s *Server) Port() int { return s.port }

// Addr returns "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.port)) }

// User returns the login name: the user running the tests.
func (s *Server) User() string { return s.user }

// Password returns the password the in-process server accepts (sshd accepts none).
func (s *Server) Password() string { return s.password }

// ClientKey returns the client's private key in OpenSSH PEM format; the server accepts it.
func (s *Server) ClientKey() []byte { return s.clientKey }

// ClientKeyFile returns the path of ClientKey written with mode 0600, for ssh/sftp -i.
func (s *Server) ClientKeyFile() string { return s.clientKeyFile }

// HostKey returns the server's public host key in authorized_keys format
// ("ssh-ed25519 AAAA...").
func (s *Server) HostKey() string { return s.hostKey }

// Root returns a directory of the server's file system, empty at start and owned by the
// test user, to use as the storage's remote path. It is an absolute path with symlinks
// resolved, the same on the server and in the test.
func (s *Server) Root() string { return s.root }

// GenerateKey returns a new ed25519 key pair: the private key in OpenSSH PEM format and
// the public key in authorized_keys format.
func GenerateKey(t testing.TB) (privatePEM []byte, authorized string) {
	t.Helper()
	priv, pub, _ := generate(t)
	return priv, pub
}

func generate(t testing.TB) ([]byte, string, ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sftptest")
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	return pem.EncodeToMemory(block), line, signer
}

func currentUser(t testing.TB) string {
	t.Helper()
	u, err := user.Current()
	if err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	t.Fatalf("sftptest: cannot tell the current user name: %v", err)
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sftptest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
