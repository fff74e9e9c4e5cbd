package sftptest

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// goServer is an SSH server in the test process that serves only the "sftp" subsystem,
// with pkg/sftp's server. pkg/sftp serves the whole file system (it is no chroot): relative
// paths, and the login directory, are Root().
type goServer struct {
	s   *Server
	cfg *ssh.ServerConfig

	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup // the accept loop and every connection's goroutines

	logMu  sync.Mutex
	logBuf bytes.Buffer
}

func (g *goServer) start(port int) error {
	if g.cfg == nil {
		s := g.s
		g.cfg = &ssh.ServerConfig{
			PasswordCallback: func(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
				if meta.User() == s.user && subtle.ConstantTimeCompare(pw, []byte(s.password)) == 1 {
					return nil, nil
				}
				return nil, errors.New("wrong password")
			},
			PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
				if meta.User() == s.user && bytes.Equal(key.Marshal(), s.clientPub.Marshal()) {
					return nil, nil
				}
				return nil, errors.New("unknown key")
			},
		}
		g.cfg.AddHostKey(s.hostSigner)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	g.ln = ln
	g.conns = map[net.Conn]struct{}{}
	g.wg.Add(1)
	go g.accept(ln)
	return nil
}

func (g *goServer) accept(ln net.Listener) {
	defer g.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return // the listener was closed by stop
		}
		g.mu.Lock()
		if g.conns == nil { // stopping
			g.mu.Unlock()
			nc.Close()
			return
		}
		g.conns[nc] = struct{}{}
		g.mu.Unlock()
		g.wg.Add(1)
		go g.serve(nc)
	}
}

func (g *goServer) serve(nc net.Conn) {
	defer g.wg.Done()
	defer func() {
		nc.Close()
		g.mu.Lock()
		delete(g.conns, nc)
		g.mu.Unlock()
	}()
	sc, chans, reqs, err := ssh.NewServerConn(nc, g.cfg)
	if err != nil {
		g.logf("handshake from %s: %v", nc.RemoteAddr(), err)
		return
	}
	defer sc.Close()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ssh.DiscardRequests(reqs) // keepalives get a "no", which is an answer
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		g.wg.Add(1)
		go g.session(ch, chReqs)
	}
}

// session serves one session channel: the "sftp" subsystem and nothing else.
func (g *goServer) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer g.wg.Done()
	var served sync.WaitGroup
	defer served.Wait()
	started := false
	for req := range reqs {
		var sub struct{ Name string }
		ok := !started && req.Type == "subsystem" && ssh.Unmarshal(req.Payload, &sub) == nil && sub.Name == "sftp"
		if req.WantReply {
			_ = req.Reply(ok, nil)
		}
		if !ok {
			continue
		}
		started = true
		srv, err := sftp.NewServer(ch, sftp.WithServerWorkingDirectory(g.s.root))
		if err != nil {
			g.logf("sftp server: %v", err)
			ch.Close()
			continue
		}
		served.Add(1)
		go func() {
			defer served.Done()
			if err := srv.Serve(); err != nil {
				g.logf("sftp serve: %v", err)
			}
			srv.Close()
			ch.Close()
		}()
	}
}

func (g *goServer) stop() {
	g.mu.Lock()
	g.ln.Close()
	for nc := range g.conns {
		nc.Close()
	}
	g.conns = nil
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *goServer) logf(format string, args ...any) {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	fmt.Fprintf(&g.logBuf, format+"\n", args...)
}

func (g *goServer) log() string {
	g.logMu.Lock()
	defer g.logMu.Unlock()
	return g.logBuf.String()
}
