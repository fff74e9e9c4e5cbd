package control

import (
	"sync"
	"time"
)

// rateLimiter is a fixed-window counter per key (client IP): at most limit requests per
// window. Small and exact enough for login and setup, which are rare.
type rateLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*rateBucket
}

type rateBucket struct {
	start time.Time
	n     int
}

// maxBuckets bounds the limiter's memory; past it, finished windows are pruned at once.
const maxBuckets = 100_000

func newRateLimiter(limit int, window time.Duration, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: limit, window: window, now: now, buckets: make(map[string]*rateBucket)}
}

// allow counts one request of key and reports whether it is within the limit, how many
// remain in the window and when the window resets.
func (l *rateLimiter) allow(key string) (ok bool, remaining int, reset time.Time) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil || !now.Before(b.start.Add(l.window)) {
		if b == nil && len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &rateBucket{start: now}
		l.buckets[key] = b
	}
	reset = b.start.Add(l.window)
	if b.n >= l.limit {
		return false, 0, reset
	}
	b.n++
	return true, l.limit - b.n, reset
}

// prune forgets finished windows.
func (l *rateLimiter) prune() {
	l.mu.Lock()
	l.pruneLocked(l.now())
	l.mu.Unlock()
}

func (l *rateLimiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if !now.Before(b.start.Add(l.window)) {
			delete(l.buckets, k)
		}
	}
}
