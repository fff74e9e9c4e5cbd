package hls

import (
	"hash/maphash"
	"net"
	"net/http"
	"sync"
)

// maxSessions caps the sessions remembered per stream, so that clients inventing
// User-Agents cannot grow the table without bound.
const maxSessions = 100_000

// sessions counts the distinct viewers of one stream. HLS has no connection per viewer, so a
// viewer is a session key (remote IP + User-Agent, hashed) that requested something within
// the viewer window. Behind a reverse proxy every viewer has the proxy's IP and only the
// User-Agent tells them apart: the count is then a lower bound.
type sessions struct {
	mu   sync.Mutex
	seen map[uint64]int64 // session key -> last request, Unix ns
}

// touch records a request of session k at now (Unix ns).
func (s *sessions) touch(k uint64, now int64) {
	s.mu.Lock()
	if s.seen == nil {
		s.seen = make(map[uint64]int64)
	}
	if _, ok := s.seen[k]; ok || len(s.seen) < maxSessions {
		s.seen[k] = now
	}
	s.mu.Unlock()
}

// count forgets the sessions idle since before cutoff (Unix ns) and returns how many remain.
func (s *sessions) count(cutoff int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.seen {
		if t < cutoff {
			delete(s.seen, k)
		}
	}
	return len(s.seen)
}

// sessionKey hashes the viewer's IP and User-Agent without allocating.
func sessionKey(seed maphash.Seed, r *http.Request) uint64 {
	ip := r.RemoteAddr
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteString(ip)
	h.WriteByte(0)
	h.WriteString(r.UserAgent())
	return h.Sum64()
}
