// Package updates answers "what should this client upgrade to": an
// in-memory index of every product's published releases, kept current from
// the catalog through a store watch, and the resolver the upgrade API and
// the update feeds share.
//
// The index is a copy-on-write snapshot per product: readers load it with
// one atomic pointer read and never wait for a reload; a reload builds a new
// snapshot off to the side and swaps it in.
package updates

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
)

// entry is one published release with what the resolver compares,
// precomputed at load time so a lookup parses nothing.
type entry struct {
	rel  releases.Release
	ver  *version.Version
	key  string // releases.VersionKey: bytewise order is version order
	rank int    // releases.ChannelRank of rel.Channel
}

// productIndex is an immutable snapshot of one product's published
// releases. Nothing in it is modified after it is stored.
type productIndex struct {
	entries []entry            // ascending version
	newest  []releases.Release // the same releases, newest first (for feeds)
	byVer   map[string]int     // exact version string -> position in entries
	etag    string
	seq     uint64 // buildSeq when its read began (see Refresh)
}

// Index is the in-memory upgrade index. It is safe for concurrent use.
//
// It holds only published releases. A release that is yanked, or whose
// artifacts change, leaves or changes in the index when its product is
// reloaded: explicitly with Refresh, or automatically after Watch.
type Index struct {
	catalog *releases.Service

	// products maps slug -> *productIndex. Writers hold mu and replace the
	// whole map (copy-on-write); readers only Load it.
	products atomic.Pointer[map[string]*productIndex]
	mu       sync.Mutex

	// instance makes ETags unique across processes and restarts; gen makes
	// them unique across reloads within this process.
	instance string
	gen      atomic.Uint64
	buildSeq atomic.Uint64

	versions   cache[versionKeyed]
	constraint cache[version.Constraints]

	// Watch state: products changed since their last reload (with when
	// the first change not yet applied was seen), or all of them after a
	// store.EventReset; and the reload under way, if any, with the time of
	// the oldest change it applies (see WatchStats).
	dirtyMu      sync.Mutex
	dirty        map[string]time.Time
	dirtyAll     bool
	dirtyAllAt   time.Time
	loading      bool
	loadingSince time.Time
	wake         chan struct{}
	watched      atomic.Bool
	// watchers counts the goroutines Watch started, for Wait.
	watchers sync.WaitGroup
}

type versionKeyed struct {
	v   *version.Version
	key string
}

// NewIndex returns an empty index over catalog; call Load before serving.
func NewIndex(catalog *releases.Service) *Index {
	var b [6]byte
	rand.Read(b[:])
	x := &Index{
		catalog:    catalog,
		instance:   hex.EncodeToString(b[:]),
		versions:   newCache[versionKeyed](4096),
		constraint: newCache[version.Constraints](1024),
		dirty:      map[string]time.Time{},
		wake:       make(chan struct{}, 1),
	}
	empty := map[string]*productIndex{}
	x.products.Store(&empty)
	return x
}

// Load (re)builds the index for every product in the catalog.
func (x *Index) Load(ctx context.Context) error {
	ps, err := x.catalog.Products(ctx)
	if err != nil {
		return fmt.Errorf("updates: load: %w", err)
	}
	for _, p := range ps {
		if err := x.Refresh(ctx, p.Slug); err != nil {
			return err
		}
	}
	return nil
}

// Refresh reloads one product from the catalog and swaps in the new
// snapshot; readers keep using the old one until then. It reads and decodes
// every release of the product (about 10 ms per 1,000 releases), so it is
// not meant for a request path: Watch calls it from a background goroutine.
// Call it directly when the caller needs the change visible before it
// returns (tests, or an API that must read its own write).
//
// Concurrent refreshes of one product are safe: each takes a sequence
// number before it reads, and a snapshot never replaces one whose read
// began later, so a slow reload cannot overwrite a newer one.
func (x *Index) Refresh(ctx context.Context, product string) error {
	seq := x.buildSeq.Add(1)
	pi, err := x.build(ctx, product)
	if err != nil {
		return fmt.Errorf("updates: refresh %s: %w", product, err)
	}
	pi.seq = seq
	x.mu.Lock()
	defer x.mu.Unlock()
	old := *x.products.Load()
	if cur, ok := old[product]; ok && cur.seq > seq {
		return nil
	}
	next := make(map[string]*productIndex, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[product] = pi
	x.products.Store(&next)
	return nil
}

func (x *Index) build(ctx context.Context, product string) (*productIndex, error) {
	var es []entry
	err := x.catalog.Each(ctx, product, func(r releases.Release) error {
		if r.Status != releases.Published {
			return nil
		}
		v, err := releases.ParseVersion(r.Version)
		if err != nil {
			// A stored release always has a valid version; skip rather
			// than fail the whole product if one does not.
			return nil
		}
		es = append(es, entry{rel: r, ver: v, key: string(releases.VersionKey(v)), rank: releases.ChannelRank(r.Channel)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The catalog lists releases in VersionKey order already; sort only if
	// that ever stops being true.
	if !sort.SliceIsSorted(es, func(i, j int) bool { return es[i].key < es[j].key }) {
		sort.SliceStable(es, func(i, j int) bool { return es[i].key < es[j].key })
	}
	pi := &productIndex{
		entries: es,
		newest:  make([]releases.Release, len(es)),
		byVer:   make(map[string]int, len(es)),
		etag:    `"` + x.instance + "-" + strconv.FormatUint(x.gen.Add(1), 10) + `"`,
	}
	for i := range es {
		pi.newest[len(es)-1-i] = es[i].rel
		pi.byVer[es[i].rel.Version] = i
	}
	return pi, nil
}

func (x *Index) product(slug string) (*productIndex, bool) {
	pi, ok := (*x.products.Load())[slug]
	return pi, ok
}

// Releases returns the product's published releases, newest version first,
// or nil for a product the index does not know. The slice and the releases
// in it are shared with the index and every other caller: read them, never
// modify them.
func (x *Index) Releases(product string) []releases.Release {
	pi, ok := x.product(product)
	if !ok {
		return nil
	}
	return pi.newest
}

// Published returns the published release of the product with exactly
// this version string, from the index's snapshot, or false when the index
// holds none (not published, yanked, a draft, unknown, or the version
// spelled another way). The release is shared with the index: read it,
// never modify it. A caller that needs a certain answer for a miss reads
// the catalog; a hit costs no store read, which keeps the download path
// off the store on every replica (an etcd cluster above all).
func (x *Index) Published(product, ver string) (releases.Release, bool) {
	pi, ok := x.product(product)
	if !ok {
		return releases.Release{}, false
	}
	i, ok := pi.byVer[ver]
	if !ok {
		return releases.Release{}, false
	}
	return pi.entries[i].rel, true
}

// ETag returns a quoted HTTP entity tag that changes whenever the product's
// snapshot is rebuilt, and differs between processes, so a cached feed is
// never mistaken for a current one after a restart. It is "" for a product
// the index does not know.
func (x *Index) ETag(product string) string {
	pi, ok := x.product(product)
	if !ok {
		return ""
	}
	return pi.etag
}

// Watch keeps the index current from the store: it watches the catalog's
// keys (releases.Service.Watch), so it sees every write to the catalog,
// made by this process or by another replica on the same store. Each
// change marks its product (releases.ProductOfKey) stale and wakes one
// background goroutine, which reloads stale products one at a time until
// none is left, so a burst of changes (an import of thousands of releases)
// costs a few reloads, not one per change, and the publisher's request
// never waits for a reload. A store.EventReset (the watch fell behind, or
// the store lost track) marks every product stale: the next reload is a
// full Load, which also picks up products the index does not know yet.
//
// How late the index may be: the watch's delivery (bbolt: just after the
// commit; etcd: the watch's latency) plus one reload. In that window update
// checks still see the previous state; downloads re-check release status
// and license on their own, so a just-yanked release offered in that window
// cannot be downloaded.
//
// Call Watch before Load, so that no change falls between them: a product
// already loaded when Watch starts is reloaded once in the background.
// Watch starts once per Index (later calls return nil and do nothing); the
// goroutines run until ctx ends or the store is closed, after which changes
// are no longer applied. A reload that fails is retried on the product's
// next change. Watch returns the store's error when it refuses the watch.
func (x *Index) Watch(ctx context.Context) error {
	if !x.watched.CompareAndSwap(false, true) {
		return nil
	}
	events, err := x.catalog.Watch(ctx)
	if err != nil {
		x.watched.Store(false)
		return fmt.Errorf("updates: watch the catalog: %w", err)
	}
	for p := range *x.products.Load() {
		x.markDirty(p)
	}
	x.watchers.Add(2)
	go func() {
		defer x.watchers.Done()
		for ev := range events {
			if ev.Type == store.EventReset {
				x.markAllDirty()
				continue
			}
			if p, ok := releases.ProductOfKey(ev.Key); ok {
				x.markDirty(p)
			}
		}
	}()
	go func() {
		defer x.watchers.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-x.wake:
			}
			for ctx.Err() == nil {
				product, all, ok := x.nextDirty()
				if !ok {
					break
				}
				// A failed reload leaves the previous snapshot in place.
				if all {
					_ = x.Load(ctx)
				} else {
					_ = x.Refresh(ctx, product)
				}
				x.loaded()
			}
		}
	}()
	return nil
}

// Wait blocks until the goroutines Watch started have returned: after
// Watch's ctx has ended (or the store has closed) and any reload under way
// has finished. Call it before closing the store. Without a Watch it
// returns at once.
func (x *Index) Wait() { x.watchers.Wait() }

// WatchStats say how far the index is behind the store, as far as its
// watch knows: changes the watch has delivered but no reload has applied
// yet. Changes the store has committed but not yet delivered (etcd: the
// watch's latency) are not seen, nor is a watch that has stopped.
type WatchStats struct {
	// Pending is the number of products waiting for a reload, counting
	// the one being reloaded; after a store.EventReset every product the
	// index knows counts (at least 1).
	Pending int
	// Lag is the age of the oldest change not yet applied: how long ago
	// the watch delivered it. 0 when nothing is pending.
	Lag time.Duration
}

// WatchStats returns the watch's backlog now. It is cheap (one lock, no
// store access) and safe to call at any time; without Watch it is zero.
func (x *Index) WatchStats() WatchStats {
	now := time.Now()
	x.dirtyMu.Lock()
	defer x.dirtyMu.Unlock()
	var st WatchStats
	var oldest time.Time
	older := func(t time.Time) {
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
	}
	if x.dirtyAll {
		st.Pending = max(len(*x.products.Load()), 1)
		older(x.dirtyAllAt)
	} else {
		st.Pending = len(x.dirty)
		for _, t := range x.dirty {
			older(t)
		}
		if x.loading {
			st.Pending++
		}
	}
	if x.loading {
		older(x.loadingSince)
	}
	if !oldest.IsZero() {
		st.Lag = max(now.Sub(oldest), 0)
	}
	return st
}

// markDirty notes a change of product; a product already waiting keeps the
// time of its first change.
func (x *Index) markDirty(product string) {
	now := time.Now()
	x.dirtyMu.Lock()
	if _, ok := x.dirty[product]; !ok && !x.dirtyAll {
		x.dirty[product] = now
	}
	x.dirtyMu.Unlock()
	x.kick()
}

func (x *Index) markAllDirty() {
	now := time.Now()
	x.dirtyMu.Lock()
	if !x.dirtyAll {
		x.dirtyAll, x.dirtyAllAt = true, now
		for _, t := range x.dirty {
			if t.Before(x.dirtyAllAt) {
				x.dirtyAllAt = t
			}
		}
	}
	clear(x.dirty)
	x.dirtyMu.Unlock()
	x.kick()
}

// loaded notes that the reload nextDirty handed out is over.
func (x *Index) loaded() {
	x.dirtyMu.Lock()
	x.loading = false
	x.dirtyMu.Unlock()
}

func (x *Index) kick() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// nextDirty returns a stale product to reload, or all when every product
// is stale.
func (x *Index) nextDirty() (product string, all, ok bool) {
	x.dirtyMu.Lock()
	defer x.dirtyMu.Unlock()
	if x.dirtyAll {
		x.dirtyAll = false
		x.loading, x.loadingSince = true, x.dirtyAllAt
		return "", true, true
	}
	for p, t := range x.dirty {
		delete(x.dirty, p)
		x.loading, x.loadingSince = true, t
		return p, false, true
	}
	return "", false, false
}

// parseVersion returns v parsed and its VersionKey, from the product's
// known versions when it is one of them (no allocation), else from a small
// bounded cache.
func (x *Index) parseVersion(pi *productIndex, s string) (*version.Version, string, error) {
	if i, ok := pi.byVer[s]; ok {
		return pi.entries[i].ver, pi.entries[i].key, nil
	}
	if vk, ok := x.versions.get(s); ok {
		return vk.v, vk.key, nil
	}
	v, err := releases.ParseVersion(s)
	if err != nil {
		return nil, "", err
	}
	vk := versionKeyed{v: v, key: string(releases.VersionKey(v))}
	x.versions.put(s, vk)
	return vk.v, vk.key, nil
}

func (x *Index) parseConstraint(s string) (version.Constraints, error) {
	if cs, ok := x.constraint.get(s); ok {
		return cs, nil
	}
	if len(s) > 256 {
		return nil, portal.Errorf(portal.EInvalid, "constraint is longer than 256 bytes")
	}
	cs, err := version.NewConstraint(s)
	if err != nil {
		return nil, portal.Errorf(portal.EInvalid, "invalid constraint %q: use go-version syntax such as \">= 2.0, < 3.0\"", s)
	}
	x.constraint.put(s, cs)
	return cs, nil
}

// cache is a bounded concurrent map of parsed strings. When it grows past
// max entries it is emptied: clients send few distinct versions and
// constraints, so in normal use it never fills, and a flood of distinct
// garbage costs memory bounded by max.
type cache[T any] struct {
	m   *sync.Map
	n   *atomic.Int64
	max int64
}

func newCache[T any](max int64) cache[T] {
	return cache[T]{m: new(sync.Map), n: new(atomic.Int64), max: max}
}

func (c cache[T]) get(k string) (T, bool) {
	v, ok := c.m.Load(k)
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}

func (c cache[T]) put(k string, v T) {
	if c.n.Add(1) > c.max {
		c.m.Clear()
		c.n.Store(1)
	}
	c.m.Store(k, v)
}
