package downloads

import (
	"sync"
	"time"
)

// maxRecentGrants bounds the grants recentGrants remembers.
const maxRecentGrants = 100_000

// grantKey is one artifact for one license.
type grantKey struct {
	license, product, version, filename string
}

// recentGrants remembers, per license and artifact, until when the last
// URL minted for it is valid, so that asking again within that time is not
// counted as another download. It lives in this process and holds at most
// max entries: when full it first forgets the expired ones, then arbitrary
// ones down to nine tenths of max, so a flood sweeps once per max/10 new
// grants (a forgotten grant's repeat is counted again: the error is always
// towards counting).
type recentGrants struct {
	mu   sync.Mutex
	max  int
	seen map[grantKey]time.Time
}

func newRecentGrants(max int) *recentGrants {
	return &recentGrants{max: max, seen: make(map[grantKey]time.Time)}
}

// repeat reports whether a URL minted earlier for k is still valid at now.
func (r *recentGrants) repeat(k grantKey, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	exp, ok := r.seen[k]
	return ok && now.Before(exp)
}

// note remembers that a URL for k is valid until expires.
func (r *recentGrants) note(k grantKey, expires, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if exp, ok := r.seen[k]; ok {
		if expires.After(exp) {
			r.seen[k] = expires
		}
		return
	}
	if len(r.seen) >= r.max {
		for k, exp := range r.seen {
			if !now.Before(exp) {
				delete(r.seen, k)
			}
		}
		for k := range r.seen {
			if len(r.seen) < r.max-r.max/10 {
				break
			}
			delete(r.seen, k)
		}
	}
	r.seen[k] = expires
}

// len returns how many grants are remembered.
func (r *recentGrants) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
