package chat

import (
	"sync"
	"time"
)

// rateLimiter allows each user at most n events in any window (a sliding log of the last
// n event times per user): exactly "5 messages per 5 seconds", with no burst at a window
// edge.
type rateLimiter struct {
	n      int
	window time.Duration

	mu    sync.Mutex
	users map[int64]*rateLog
}

// rateLog is a ring of a user's last n event times.
type rateLog struct {
	times []time.Time
	next  int
}

func newRateLimiter(n int, window time.Duration) *rateLimiter {
	return &rateLimiter{n: n, window: window, users: make(map[int64]*rateLog)}
}

// allow records an event of user at now if fewer than n happened in the window before.
// With n < 0 everything is allowed.
func (l *rateLimiter) allow(user int64, now time.Time) bool {
	if l.n < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lg := l.users[user]
	if lg == nil {
		lg = &rateLog{times: make([]time.Time, l.n)}
		l.users[user] = lg
	}
	oldest := lg.times[lg.next]
	if !oldest.IsZero() && now.Sub(oldest) < l.window {
		return false
	}
	lg.times[lg.next] = now
	lg.next = (lg.next + 1) % l.n
	return true
}

// prune forgets users whose last event is older than the window.
func (l *rateLimiter) prune(now time.Time) {
	if l.n < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for u, lg := range l.users {
		last := lg.times[(lg.next+l.n-1)%l.n]
		if now.Sub(last) >= l.window {
			delete(l.users, u)
		}
	}
}
