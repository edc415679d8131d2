// Package repos holds what the portal's package repositories (APT in
// repos/apt, YUM/DNF in repos/rpm) share: which packages a caller may
// install from a product's channel (Permitted, decided by the same resolver
// and license rules as every download), and a cache of rendered, signed
// repository metadata keyed by that set's digest (Cache), so metadata is
// rendered and signed once per catalog change and per distinct entitlement
// view, not per request.
//
// The package knows no HTTP; server/apt.go and server/rpm.go are its doors.
package repos

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"sync"
	"time"

	"github.com/portaldist/portal/internal/memo"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/updates"
)

// MaxReleases bounds the releases one repository view lists (newest first);
// older ones stay downloadable through the API.
const MaxReleases = 500

// Entry is one package a caller may install: the release (the caller's
// view of it) and the artifact. Both share memory with the update index:
// read them, never modify them.
type Entry struct {
	Release  *releases.Release
	Artifact *releases.Artifact
}

// Set is the packages of one format that the caller in ctx may install
// from a product's channel.
type Set struct {
	Product releases.Product
	// Channel is the canonical channel name (the APT suite).
	Channel string
	// Entries: newest release first, then in the release's artifact order.
	Entries []Entry
	// Digest identifies the set's content (product, channel, format and
	// each entry's release version, file name, size and SHA-256): two
	// callers with the same Digest see byte-identical metadata, so rendered
	// documents are cached under it (hex SHA-256).
	Digest string
}

// Permitted returns the packages of format ("deb", "rpm") that the caller
// in ctx may install from product's channel: each published release the
// resolver offers on that channel ("latest" semantics: channel visibility,
// the license's constraint, channels, platforms, expiry with
// maintain/revoke, staged rollouts by license), with each of its uploaded
// Linux artifacts whose package metadata is of that format and that the
// license permits. Yanked releases are never in it.
//
// Errors are the resolver's: the product unknown or not visible to the
// caller (ENotFound, EUnauthorized), the license refusing everything
// (license_suspended, license_revoked, license_expired: EForbidden). A
// license that permits nothing on the channel is an empty Set, not an
// error.
func Permitted(ctx context.Context, rs *updates.Resolver, product, channel, format string) (Set, error) {
	ch, err := releases.ParseChannel(channel)
	if err != nil {
		return Set{}, err
	}
	set := Set{Channel: ch}
	n := 0
	pick := func(r *releases.Release) (releases.Artifact, bool) {
		for _, a := range r.Artifacts {
			if ofFormat(a, format) {
				return a, true
			}
		}
		return releases.Artifact{}, false
	}
	err = rs.Walk(ctx, updates.Request{
		Product: product, Channel: ch, AnyBuild: true, Platform: "linux", Rollout: true, Pick: pick,
	}, func(res updates.Resolution) bool {
		set.Product = res.Product
		r := res.Release // one copy of the release header per release
		rel := &r
		for i := range rel.Artifacts {
			if ofFormat(rel.Artifacts[i], format) {
				if set.Entries == nil {
					set.Entries = make([]Entry, 0, 16)
				}
				set.Entries = append(set.Entries, Entry{Release: rel, Artifact: &rel.Artifacts[i]})
			}
		}
		n++
		return n < MaxReleases
	})
	var na *updates.NotAvailable
	if errors.As(err, &na) {
		err = nil
	}
	if err != nil {
		return Set{}, err
	}
	if set.Product.Slug == "" {
		// Nothing offered: the product is still needed for the metadata.
		// The caller was admitted by Walk already; Product admits it the
		// same way.
		if set.Product, err = rs.Product(ctx, product); err != nil {
			return Set{}, err
		}
	}
	set.Digest = digest(set, format)
	return set, nil
}

func ofFormat(a releases.Artifact, format string) bool {
	return a.Status == releases.Uploaded && a.Package != nil && a.Package.Format == format && a.Platform == "linux"
}

func digest(s Set, format string) string {
	h := sha256.New()
	str := func(v string) { writeLen(h, len(v)); h.Write([]byte(v)) }
	str(s.Product.Slug)
	str(s.Channel)
	str(format)
	for _, e := range s.Entries {
		str(e.Release.Version)
		str(e.Artifact.Filename)
		str(e.Artifact.SHA256)
		writeLen(h, int(e.Artifact.Size))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeLen(h hash.Hash, n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	h.Write(b[:])
}

// Cache holds rendered repository metadata under a key that names its
// whole content (format, product, channel, Set.Digest and the signing key's
// fingerprint): an entry never goes stale, so the cache needs no
// invalidation, only bounds. A catalog change (seen by the update index
// through its store watch) or a license change gives the affected callers a
// new Set.Digest and so a new entry; unused ones age out (TTL) or are
// dropped when the cache is full. Concurrent misses of one key render once;
// at most a few renders (which sign) run at a time.
//
// It is safe for concurrent use.
type Cache[V any] struct {
	m       *memo.Cache[string, V]
	mu      sync.Mutex
	flights map[string]*flight[V]
	slots   chan struct{}

	// With LimitBytes: the bytes of the entries added since the cache
	// last started over (entries that expired meanwhile still count, so
	// it starts over early rather than late).
	maxBytes int64
	weigh    func(V) int64
	bytes    int64 // guarded by mu
}

type flight[V any] struct {
	done chan struct{}
	v    V
	err  error
}

// NewCache returns a cache of at most size entries, each kept ttl after it
// was rendered, rendering at most concurrency at a time.
func NewCache[V any](size int, ttl time.Duration, concurrency int) *Cache[V] {
	return &Cache[V]{m: memo.New[string, V](ttl, size), flights: map[string]*flight[V]{}, slots: make(chan struct{}, max(concurrency, 1))}
}

// LimitBytes bounds the cache's memory as well as its entries: when an
// entry would take the total past max bytes (as weigh counts them), the
// cache starts over empty. Call it before the first Get.
func (c *Cache[V]) LimitBytes(max int64, weigh func(V) int64) *Cache[V] {
	c.maxBytes, c.weigh = max, weigh
	return c
}

// Peek returns the entry for key if it is cached, without rendering.
func (c *Cache[V]) Peek(key string) (V, bool) { return c.m.Get(key) }

// Get returns the entry for key, rendering it with render on a miss.
// render runs without the caller's cancellation (its result serves other
// callers too); a caller whose ctx ends stops waiting.
func (c *Cache[V]) Get(ctx context.Context, key string, render func(context.Context) (V, error)) (V, error) {
	if v, ok := c.m.Get(key); ok {
		return v, nil
	}
	c.mu.Lock()
	f, ok := c.flights[key]
	if !ok {
		f = &flight[V]{done: make(chan struct{})}
		c.flights[key] = f
		gen := c.m.Gen()
		go func() {
			bg := context.WithoutCancel(ctx)
			c.slots <- struct{}{}
			f.v, f.err = render(bg)
			<-c.slots
			c.mu.Lock()
			if f.err == nil {
				if c.weigh != nil {
					w := c.weigh(f.v)
					if c.bytes+w > c.maxBytes {
						c.m.Clear()
						c.bytes = 0
						gen = c.m.Gen()
					}
					c.bytes += w
				}
				c.m.PutIf(key, f.v, gen)
			}
			delete(c.flights, key)
			c.mu.Unlock()
			close(f.done)
		}()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
