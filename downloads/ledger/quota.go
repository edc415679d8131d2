package ledger

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// quotaKey names one license's count on one UTC day (days since the epoch).
type quotaKey struct {
	license string
	day     int64
}

// quotaEntry is the in-memory count of one quotaKey. count is what Reserve
// compares with the limit: the stored count when loaded plus this process's
// reservations since. pending is the part of count not yet persisted.
type quotaEntry struct {
	mu      sync.Mutex
	loaded  bool
	evicted bool // removed from the map: look the key up again
	count   uint64
	pending uint64
}

type quotaDelta struct {
	key   quotaKey
	entry *quotaEntry
	n     uint64
}

// quotas holds the entries. Lock order: quotas.mu before quotaEntry.mu, and
// eviction only TryLocks an entry, so a Reserve loading from the store never
// holds up the others.
type quotas struct {
	mu      sync.Mutex
	entries map[quotaKey]*quotaEntry
	today   int64 // the latest day asked for; older entries are evicted
}

func dayOf(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s < 0 && s%86400 != 0 {
		d-- // floor, not truncation, before 1970
	}
	return d
}

func dayStart(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// Reserve counts one download against the license's daily quota, limit
// downloads per UTC day, and returns nil; or, when the limit is reached,
// counts nothing and returns a *portal.Error with code quota_exceeded and
// details {"limit": limit, "reset_at": next UTC midnight, RFC 3339}.
//
// limit <= 0 means unlimited: the download is counted (Used reports it)
// but never refused. An empty licenseID (open products) is neither counted
// nor limited. The count is in memory, so it is exact under
// any concurrency within this process; it is persisted by the next flush.
// Call Reserve after every other check has passed, just before minting the
// download, so that a refused request does not use up quota.
func (l *Ledger) Reserve(ctx context.Context, licenseID string, limit int, now time.Time) error {
	if licenseID == "" {
		return nil
	}
	if len(licenseID) > MaxKeyField {
		return portal.Errorf(portal.EInvalid, "license ID is longer than %d bytes", MaxKeyField)
	}
	k := quotaKey{license: licenseID, day: dayOf(now)}
	for {
		e := l.quota.entry(k)
		e.mu.Lock()
		if e.evicted {
			e.mu.Unlock()
			continue
		}
		if err := l.load(ctx, k, e); err != nil {
			e.mu.Unlock()
			return err
		}
		if limit > 0 && e.count >= uint64(limit) {
			e.mu.Unlock()
			resetAt := dayStart(k.day + 1)
			reset := resetAt.Format(time.RFC3339)
			return &portal.Error{
				Code:    portal.EQuotaExceeded,
				Message: fmt.Sprintf("this license allows %d downloads per day; the quota resets at %s", limit, reset),
				Details: map[string]any{"limit": limit, "reset_at": reset},
				RetryAt: resetAt,
			}
		}
		e.count++
		e.pending++
		e.mu.Unlock()
		return nil
	}
}

// load reads e's stored count once. The caller holds e.mu.
func (l *Ledger) load(ctx context.Context, k quotaKey, e *quotaEntry) error {
	if e.loaded {
		return nil
	}
	var stored uint64
	err := l.db.View(ctx, func(tx store.Tx) error {
		var err error
		stored, err = getUint64(tx, []byte(quotaKeyOf(k)))
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: load quota of license %s: %w", k.license, err)
	}
	e.count, e.loaded = stored, true
	return nil
}

// Used returns how many downloads license licenseID has had on now's UTC
// day (those Reserve counted, here and, as of the last load, on other
// replicas), and when that day's count resets (the next UTC midnight).
func (l *Ledger) Used(ctx context.Context, licenseID string, now time.Time) (used uint64, resetAt time.Time, err error) {
	day := dayOf(now)
	resetAt = dayStart(day + 1)
	if licenseID == "" || len(licenseID) > MaxKeyField {
		return 0, resetAt, nil
	}
	k := quotaKey{license: licenseID, day: day}
	for {
		e := l.quota.entry(k)
		e.mu.Lock()
		if e.evicted {
			e.mu.Unlock()
			continue
		}
		err := l.load(ctx, k, e)
		used = e.count
		e.mu.Unlock()
		return used, resetAt, err
	}
}

// entry returns the entry of k, creating it (not loaded) when missing.
func (q *quotas) entry(k quotaKey) *quotaEntry {
	q.mu.Lock()
	defer q.mu.Unlock()
	if k.day > q.today {
		q.today = k.day
		q.evictLocked()
	}
	e := q.entries[k]
	if e == nil {
		e = &quotaEntry{}
		q.entries[k] = e
	}
	return e
}

// evictLocked drops the entries of days before today that have nothing
// left to persist. An entry still pending is dropped after the flush that
// persists it; a busy one (being loaded or counted) on a later pass.
func (q *quotas) evictLocked() {
	for k, e := range q.entries {
		if k.day >= q.today || !e.mu.TryLock() {
			continue
		}
		if e.pending == 0 {
			e.evicted = true
			delete(q.entries, k)
		}
		e.mu.Unlock()
	}
}

// pending returns the counts to persist. The caller holds flushMu, so no
// other flush takes the same counts.
func (q *quotas) pending() []quotaDelta {
	q.mu.Lock()
	all := make([]quotaDelta, 0, len(q.entries))
	for k, e := range q.entries {
		all = append(all, quotaDelta{key: k, entry: e})
	}
	q.mu.Unlock()
	// Entries are locked outside q.mu: one may be busy loading from the
	// store, and that must not stall every other Reserve.
	out := all[:0]
	for _, d := range all {
		d.entry.mu.Lock()
		d.n = d.entry.pending
		d.entry.mu.Unlock()
		if d.n > 0 {
			out = append(out, d)
		}
	}
	return out
}

// committed removes persisted counts from pending and evicts old days.
func (q *quotas) committed(ds []quotaDelta) {
	for _, d := range ds {
		d.entry.mu.Lock()
		d.entry.pending -= d.n
		d.entry.mu.Unlock()
	}
	q.mu.Lock()
	q.evictLocked()
	q.mu.Unlock()
}

// Watch batching: the watcher reloads after gathering what is queued, at
// most this many keys at a time.
const maxReloadBatch = 1024

// startWatch follows the stored quota counts (led/q/), so that a count this
// ledger holds learns what other replicas flushed (see Quota in the package
// documentation). On a store that cannot watch, the ledger works as before:
// it sees other replicas' counts when it loads them.
func (l *Ledger) startWatch() {
	ctx, cancel := context.WithCancel(context.Background())
	l.stopWatch = cancel
	l.watchDone = make(chan struct{})
	ch, err := l.db.Watch(ctx, []byte(quotaPrefix))
	if err != nil {
		l.log.Warn("ledger: cannot watch quota counts; other replicas' downloads are seen only when a count is loaded", "err", err)
		close(l.watchDone)
		return
	}
	go func() {
		defer close(l.watchDone)
		for ev := range ch {
			keys := map[quotaKey]bool{}
			all := false
			add := func(ev store.Event) {
				if ev.Type == store.EventReset {
					all = true
					return
				}
				if k, ok := parseQuotaKey(ev.Key); ok {
					keys[k] = true
				}
			}
			add(ev)
		drain:
			for len(keys) < maxReloadBatch {
				select {
				case ev, ok := <-ch:
					if !ok {
						break drain
					}
					add(ev)
				default:
					break drain
				}
			}
			if err := l.reload(ctx, keys, all); err != nil && ctx.Err() == nil {
				l.log.Warn("ledger: reload quota counts changed in the store", "err", err)
			}
		}
	}()
}

// reload sets the in-memory counts of keys (of every loaded entry when
// all) to the stored count plus this ledger's unflushed reservations. It
// holds flushMu, so no flush of this ledger is between its commit and
// taking its deltas out of pending: stored and pending never both hold the
// same reservations.
func (l *Ledger) reload(ctx context.Context, keys map[quotaKey]bool, all bool) error {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	type loaded struct {
		k quotaKey
		e *quotaEntry
	}
	var es []loaded
	l.quota.mu.Lock()
	for k, e := range l.quota.entries {
		if all || keys[k] {
			es = append(es, loaded{k, e})
		}
	}
	l.quota.mu.Unlock()
	if len(es) == 0 {
		return nil
	}
	stored := make([]uint64, len(es))
	err := l.db.View(ctx, func(tx store.Tx) error {
		for i, le := range es {
			var err error
			if stored[i], err = getUint64(tx, []byte(quotaKeyOf(le.k))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, le := range es {
		le.e.mu.Lock()
		// An entry not loaded yet reads the store when it is; an evicted one
		// is gone.
		if le.e.loaded && !le.e.evicted {
			le.e.count = stored[i] + le.e.pending
			l.reloads.Add(1)
		}
		le.e.mu.Unlock()
	}
	return nil
}

// parseQuotaKey reads a led/q/<license>/<yyyymmdd> key.
func parseQuotaKey(k []byte) (quotaKey, bool) {
	s := string(k)
	if !strings.HasPrefix(s, quotaPrefix) {
		return quotaKey{}, false
	}
	s = s[len(quotaPrefix):]
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return quotaKey{}, false
	}
	d, err := time.Parse("20060102", s[i+1:])
	if err != nil {
		return quotaKey{}, false
	}
	return quotaKey{license: unseg(s[:i]), day: dayOf(d)}, true
}
