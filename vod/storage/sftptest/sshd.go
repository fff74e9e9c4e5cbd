package sftptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// startTimeout bounds how long sshd may take to report that it listens.
const startTimeout = 10 * time.Second

// sshd runs /usr/sbin/sshd -D -e with a private configuration. Unprivileged it can only
// log in the user it runs as, and only with a key (checking passwords needs root); as
// root it works the same way, with privilege separation in /run/sshd.
type sshd struct {
	s       *Server
	config  string
	logMu   sync.Mutex
	logBuf  bytes.Buffer
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process was waited for
	waitErr error
}

func newSSHD(s *Server) (*sshd, error) {
	if fi, err := os.Stat(SSHD); err != nil || fi.IsDir() {
		return nil, fmt.Errorf("%s not found: install Debian's openssh-server "+
			"(apt-get install openssh-server; deploy/test.sh does it)", SSHD)
	}
	if os.Geteuid() == 0 {
		// As root, sshd's pre-auth child chroots into this directory; the Debian service
		// creates it at boot (RuntimeDirectory=sshd), which a container may never have done.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("privilege separation directory: %w", err)
		}
	}
	d := &sshd{s: s, config: filepath.Join(s.dir, "sshd_config")}
	files := map[string][]byte{
		"host_ed25519":    s.hostKeyPEM,
		"authorized_keys": ssh.MarshalAuthorizedKey(s.clientPub),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(s.dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func (d *sshd) writeConfig(port int) error {
	dir := d.s.dir
	conf := fmt.Sprintf(`# sftptest: a throw-away sshd for one test
ListenAddress 127.0.0.1:%d
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
AllowUsers %s
Subsystem sftp internal-sftp
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTTY no
PrintMotd no
UseDNS no
MaxStartups 100
MaxSessions 100
LoginGraceTime 30
LogLevel INFO
`, port, filepath.Join(dir, "host_ed25519"), filepath.Join(dir, "sshd.pid"),
		filepath.Join(dir, "authorized_keys"), d.s.user)
	return os.WriteFile(d.config, []byte(conf), 0o600)
}

func (d *sshd) start(port int) error {
	if err := d.writeConfig(port); err != nil {
		return err
	}
	// Check the configuration first: its errors are clearer than a daemon that exits.
	if out, err := exec.Command(SSHD, "-t", "-f", d.config).CombinedOutput(); err != nil {
		return fmt.Errorf("%s -t: %v: %s", SSHD, err, out)
	}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", d.config)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", SSHD, err)
	}
	listening := make(chan struct{})
	exited := make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		announced := false
		for sc.Scan() {
			line := sc.Text()
			d.logMu.Lock()
			d.logBuf.WriteString(line + "\n")
			d.logMu.Unlock()
			if !announced && strings.Contains(line, "Server listening on") {
				announced = true
				close(listening)
			}
		}
	}()
	go func() {
		// Wait only after every read of the pipe (os/exec's rule). The pipe closes when
		// sshd and all its connection processes are gone.
		<-logDone
		d.waitErr = cmd.Wait()
		close(exited)
	}()
	d.cmd, d.exited = cmd, exited

	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-listening:
		return nil
	case <-exited:
		return fmt.Errorf("%s exited: %v", SSHD, d.waitErr)
	case <-timer.C:
		d.stop()
		return fmt.Errorf("%s did not listen within %v", SSHD, startTimeout)
	}
}

// stop kills sshd and every connection process it forked. Those call setsid(), so they
// are not in sshd's process group and survive sshd: they are found through /proc.
// sshd is stopped first so that it forks no new ones meanwhile.
func (d *sshd) stop() {
	if d.cmd == nil {
		return
	}
	pid := d.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	frozen := map[int]bool{}
	for {
		fresh := 0
		for _, p := range descendants(pid) {
			if !frozen[p] {
				frozen[p] = true
				fresh++
				_ = syscall.Kill(p, syscall.SIGSTOP)
			}
		}
		if fresh == 0 {
			break
		}
	}
	for p := range frozen {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	_ = d.cmd.Process.Kill()
	<-d.exited
	d.cmd = nil
	_ = os.Remove(filepath.Join(d.s.dir, "sshd.pid"))
}

func (d *sshd) log() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.logBuf.String()
}

// descendants lists the processes below pid, read from /proc/*/stat.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, err := parentOf(p)
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// "pid (comm) state ppid ...": comm may contain spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, errors.New("malformed stat")
	}
	return strconv.Atoi(fields[1])
}
