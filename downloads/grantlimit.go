package downloads

import (
	"strconv"
	"sync"
	"time"

	"github.com/portaldist/portal"
)

// maxGrantLimitEntries bounds the addresses the anonymous grant limit
// tracks at once. When that many addresses are inside their window, a new
// address is refused until windows end: the limit then sheds the flood
// rather than letting the map (and the ledger) grow.
const maxGrantLimitEntries = 100_000

// grantLimit counts anonymous grants (open products, no license) per client
// address in fixed one-minute windows. Licensed grants are bounded by the
// license's quota instead. It lives in this process: with N replicas an
// address may get N times the limit.
type grantLimit struct {
	perMinute int
	mu        sync.Mutex
	seen      map[string]*grantWindow
	swept     time.Time
}

type grantWindow struct {
	start time.Time
	n     int
}

// take counts one grant for client at now, or refuses with rate_limited
// and RetryAt when client has had perMinute in its current window.
func (g *grantLimit) take(client string, now time.Time) error {
	if g == nil || g.perMinute <= 0 {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if now.Sub(g.swept) >= time.Minute || len(g.seen) >= maxGrantLimitEntries {
		for k, w := range g.seen {
			if now.Sub(w.start) >= time.Minute {
				delete(g.seen, k)
			}
		}
		g.swept = now
	}
	w, ok := g.seen[client]
	if !ok || now.Sub(w.start) >= time.Minute {
		if !ok && len(g.seen) >= maxGrantLimitEntries {
			return &portal.Error{Code: portal.ERateLimited, Message: "too many anonymous downloads right now: try again in a minute",
				RetryAt: now.Add(time.Minute)}
		}
		w = &grantWindow{start: now}
		g.seen[client] = w
	}
	if w.n >= g.perMinute {
		retry := w.start.Add(time.Minute)
		return &portal.Error{Code: portal.ERateLimited,
			Message: "too many anonymous downloads from this address: at most " + strconv.Itoa(g.perMinute) + " a minute",
			Details: map[string]any{"limit": g.perMinute, "retry_after": int(retry.Sub(now).Seconds()) + 1},
			RetryAt: retry}
	}
	w.n++
	return nil
}
