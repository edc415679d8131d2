// Package memo is a small bounded cache with expiry for read-mostly records
// (licenses, products, rendered responses) that are read on every request
// and written rarely.
//
// A cache learns of writes in three ways, and its owner documents which
// it uses:
//
//   - The owner deletes an entry whenever it writes the record, before the
//     write's call returns, so this process never serves a stale copy after
//     its own write (read-your-write).
//   - Follow drops the entries named by a store watch (store.DB.Watch), so
//     a write made elsewhere (another service on the same store, another
//     replica on a shared one) is seen as soon as the watch delivers it,
//     and a store.EventReset clears the cache.
//   - The TTL bounds how long any write can go unseen, whatever the watch
//     does: before it started, while it lags, or when it failed.
//
// A generation counter closes the race in which a reader loads a record
// just before a write, and would otherwise cache the old copy after the
// delete: see Gen and PutIf.
package memo

import (
	"sync"
	"time"

	"github.com/portaldist/portal/store"
)

// Cache maps K to V. The zero value is not usable; call New. It is safe for
// concurrent use. Values are returned as stored: callers must treat them as
// read-only.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	max int

	mu  sync.RWMutex
	m   map[K]entry[V]
	gen uint64
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// New returns a cache whose entries live ttl (ttl <= 0 caches nothing) and
// which holds at most max entries; when full, it starts over empty (the
// records are cheap to load again, and a cache that large is mostly cold
// anyway).
func New[K comparable, V any](ttl time.Duration, max int) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, max: max, m: make(map[K]entry[V])}
}

// Get returns the live entry for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Gen returns the current generation; take it before loading a record from
// the store and pass it to PutIf.
func (c *Cache[K, V]) Gen() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// PutIf stores v for k unless an entry was deleted or the cache cleared
// since gen was taken (the loaded copy may then be older than that write).
func (c *Cache[K, V]) PutIf(k K, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen || c.ttl <= 0 {
		return
	}
	if len(c.m) >= c.max {
		c.m = make(map[K]entry[V])
	}
	c.m[k] = entry[V]{v: v, expires: time.Now().Add(c.ttl)}
}

// Delete drops k; callers delete after every write of the record.
func (c *Cache[K, V]) Delete(k K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
	c.gen++
}

// Clear drops everything.
func (c *Cache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = make(map[K]entry[V])
	c.gen++
}

// SetTTL changes the lifetime of entries stored from now on and drops the
// current ones; ttl <= 0 turns the cache off.
func (c *Cache[K, V]) SetTTL(ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ttl = ttl
	c.m = make(map[K]entry[V])
	c.gen++
}

// Follow drops the entry of each key the watch events reports, as keyOf
// maps it (keys for which keyOf returns false are ignored), and everything
// on a store.EventReset. It returns when events is closed; run it on its
// own goroutine. An entry is dropped after the write's commit, as soon as
// the event is received: how late that is depends on the store's watch.
func (c *Cache[K, V]) Follow(events <-chan store.Event, keyOf func(key []byte) (K, bool)) {
	for ev := range events {
		if ev.Type == store.EventReset {
			c.Clear()
			continue
		}
		if k, ok := keyOf(ev.Key); ok {
			c.Delete(k)
		}
	}
}
