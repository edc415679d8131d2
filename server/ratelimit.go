package server

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// failureLimiter counts failed authentication attempts per client address
// and per key hint in fixed one-minute windows. A key over its limit makes
// the server refuse (429), without a store read, the credentials that its
// in-memory key sets call certainly unknown; a credential that may be valid
// is still looked up, so the limiter sheds floods of bad keys but never
// locks out a valid one, whoever shares its address or hint (see
// Server.authenticate).
//
// It holds at most maxLimiterEntries windows: when full, stale windows are
// dropped, and failures of new addresses or hints beyond that are not
// counted (they are still refused with 401 after their lookup).
type failureLimiter struct {
	limit  int
	window time.Duration
	now    func() time.Time

	mu   sync.Mutex
	seen map[string]*failWindow
	last time.Time // last sweep of stale entries

	// hot is set once some window reaches the limit, and cleared by a
	// sweep that finds none: while it is clear, nothing can be blocked and
	// the request path skips the limiter entirely (no lock, no keys).
	hot atomic.Bool
}

// maybeBlocked reports whether blocked could return more than 0.
func (l *failureLimiter) maybeBlocked() bool { return l.hot.Load() }

const maxLimiterEntries = 100_000

type failWindow struct {
	start time.Time
	count int
}

func newFailureLimiter(limit int, now func() time.Time) *failureLimiter {
	return &failureLimiter{limit: limit, window: time.Minute, now: now, seen: map[string]*failWindow{}}
}

// blocked returns how long the caller must wait when any of keys is over
// its limit, or 0.
func (l *failureLimiter) blocked(keys ...string) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if w, ok := l.seen[k]; ok && w.count >= l.limit {
			if left := w.start.Add(l.window).Sub(now); left > wait {
				wait = left
			}
		}
	}
	return wait
}

// fail records one failure for each key.
func (l *failureLimiter) fail(keys ...string) {
	if l.limit <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.last) > l.window || len(l.seen) >= maxLimiterEntries {
		hot := false
		for k, w := range l.seen {
			if now.Sub(w.start) >= l.window {
				delete(l.seen, k)
			} else if w.count >= l.limit {
				hot = true
			}
		}
		l.hot.Store(hot)
		l.last = now
	}
	for _, k := range keys {
		w, ok := l.seen[k]
		if !ok || now.Sub(w.start) >= l.window {
			if !ok && len(l.seen) >= maxLimiterEntries {
				continue
			}
			w = &failWindow{start: now}
			l.seen[k] = w
		}
		if w.count < math.MaxInt32 {
			w.count++
		}
		if w.count >= l.limit {
			l.hot.Store(true)
		}
	}
}
