package control

import (
	"context"
	"crypto/sha256"
	"errors"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/relaycast/relaycast/vod/storage"
)

// vodIdleTTL is how long an unused connection to a user's storage is kept for the next
// request (a file browser lists, then opens, then lists again: each would otherwise pay an
// SSH handshake).
const vodIdleTTL = time.Minute

// vodConns keeps at most one idle storage client per user. A request takes the user's
// idle client (checking first, with one round trip, that it still answers) or dials a new
// one, and gives it back when done; a client whose request failed at the connection level
// is closed instead, as is a client dialed with a configuration that has changed since
// (the key covers every field, secrets and pinned host key included). Idle clients are
// closed after vodIdleTTL by prune and all at once by closeAll. Safe for concurrent use.
type vodConns struct {
	mu     sync.Mutex
	idle   map[int64]vodIdle
	closed bool
}

type vodIdle struct {
	c     *storage.Client
	key   [32]byte
	since time.Time
}

// vodConfigKey identifies a configuration: a client made with another one is not reused.
// It is a hash kept in memory only.
func vodConfigKey(c vodConfig) [32]byte {
	h := sha256.New()
	for _, f := range []string{c.row.Host, strconv.Itoa(c.row.Port), c.row.Username, c.row.AuthMethod, c.password,
		c.privateKey, c.passphrase, c.row.RemotePath, c.row.HostKey} {
		h.Write([]byte(strconv.Itoa(len(f)) + ":" + f))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// take returns userID's idle client made with key, or nil. An idle client made with
// another key is closed.
func (p *vodConns) take(userID int64, key [32]byte) *storage.Client {
	p.mu.Lock()
	idle, ok := p.idle[userID]
	if ok {
		delete(p.idle, userID)
	}
	p.mu.Unlock()
	switch {
	case !ok:
		return nil
	case idle.key != key:
		idle.c.Close()
		return nil
	}
	return idle.c
}

// put gives c back after a request: kept as userID's idle client when healthy and the slot
// is free, else closed.
func (p *vodConns) put(userID int64, key [32]byte, c *storage.Client, healthy bool, now time.Time) {
	p.mu.Lock()
	if _, taken := p.idle[userID]; healthy && !taken && !p.closed {
		if p.idle == nil {
			p.idle = map[int64]vodIdle{}
		}
		p.idle[userID] = vodIdle{c: c, key: key, since: now}
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// drop closes userID's idle client (its configuration changed or was removed).
func (p *vodConns) drop(userID int64) {
	p.mu.Lock()
	idle, ok := p.idle[userID]
	delete(p.idle, userID)
	p.mu.Unlock()
	if ok {
		idle.c.Close()
	}
}

// prune closes the clients idle since before now-vodIdleTTL.
func (p *vodConns) prune(now time.Time) {
	var old []*storage.Client
	p.mu.Lock()
	for id, idle := range p.idle {
		if now.Sub(idle.since) >= vodIdleTTL {
			old = append(old, idle.c)
			delete(p.idle, id)
		}
	}
	p.mu.Unlock()
	for _, c := range old {
		c.Close()
	}
}

// closeAll closes every idle client; clients given back later are closed too.
func (p *vodConns) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, i := range idle {
		i.c.Close()
	}
}

// count returns how many clients are idle.
func (p *vodConns) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// reusable reports whether a client may serve another request after one that ended with
// err: yes unless err may come from the connection itself.
func reusable(err error) bool {
	var ae *apiError
	switch {
	case err == nil, errors.As(err, &ae):
		return true
	case errors.Is(err, storage.ErrBadPath), errors.Is(err, storage.ErrNotDir), errors.Is(err, storage.ErrIsDir),
		errors.Is(err, storage.ErrNotEmpty), errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrExist),
		errors.Is(err, fs.ErrPermission):
		return true
	}
	return false
}

// alive checks, with one round trip, that an idle client still answers.
func alive(ctx context.Context, c *storage.Client) bool {
	if ctx.Err() != nil {
		return false
	}
	_, err := c.Stat(".")
	return err == nil || errors.Is(err, fs.ErrNotExist) // remote_path may not exist yet
}

// runVODPrune closes idle storage clients as they expire, until Close.
func (s *Server) runVODPrune() {
	defer s.wg.Done()
	t := time.NewTicker(vodIdleTTL / 4)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.vodConns.closeAll()
			return
		case <-t.C:
			s.vodConns.prune(s.now())
		}
	}
}
