// Package keyset keeps in memory which secret digests exist in the store, so
// that a flood of bad credentials can be refused without a store read while
// a valid credential is never refused.
//
// A Set follows the keys "<prefix><hex SHA-256 digest>" (licenses' lic/k/,
// tokens' tok/d/) and remembers the first 64 bits of each digest. MayHave
// answers "certainly absent" (false) or "maybe present" (true): a credential
// it calls absent has no key in the store; one it calls present must still
// be checked there. Guessing a 64-bit prefix of an unknown SHA-256 takes
// about 2^64/N tries for N stored keys, so bad credentials pass it only by
// astronomically rare chance. Memory: about 8 bytes per stored key (a
// sorted array of the 64-bit prefixes, plus small maps of the changes since
// it was built, merged into it once they grow past a sixteenth of it: a
// map of every key took about 40 bytes a key, and with serve's GOGC=400
// every live byte costs up to five of resident memory).
//
// How the Set learns of writes:
//   - the owner calls Add after committing a new key, before returning it to
//     its caller (read-your-write in this process);
//   - a store watch of the prefix, started by Follow, adds and removes keys as
//     their commits are delivered (bbolt: just after the commit; etcd: the
//     watch's latency); a store.EventReset reloads the whole prefix.
//
// While a reload runs, when a load failed (until the next reset), and for
// good when the store refuses the watch, MayHave answers true for every well-formed
// digest: the Set then sheds nothing, but never refuses a valid key.
package keyset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/portaldist/portal/store"
)

// Set is a follower of one prefix. It is safe for concurrent use.
type Set struct {
	db     store.DB
	prefix string

	mu    sync.RWMutex
	base  []uint64            // sorted; never modified, only replaced
	added map[uint64]struct{} // present, not in base
	gone  map[uint64]struct{} // in base, deleted since
	ready bool
}

// compactAt is how many changes since base trigger a merge.
func (s *Set) compactAt() int { return max(4096, len(s.base)/16) }

// has reports whether k is present; s.mu must be held.
func (s *Set) has(k uint64) bool {
	if _, ok := s.added[k]; ok {
		return true
	}
	if _, ok := slices.BinarySearch(s.base, k); !ok {
		return false
	}
	_, deleted := s.gone[k]
	return !deleted
}

// put records k as present; s.mu must be held for writing.
func (s *Set) put(k uint64) {
	if _, ok := s.gone[k]; ok {
		delete(s.gone, k)
		return
	}
	if _, ok := slices.BinarySearch(s.base, k); !ok {
		s.added[k] = struct{}{}
		s.maybeCompact()
	}
}

// remove records k as absent; s.mu must be held for writing.
func (s *Set) remove(k uint64) {
	if _, ok := s.added[k]; ok {
		delete(s.added, k)
		return
	}
	if _, ok := slices.BinarySearch(s.base, k); ok {
		s.gone[k] = struct{}{}
		s.maybeCompact()
	}
}

// maybeCompact merges the changes into a new base once they are many
// (amortized O(1) per change); s.mu must be held for writing.
func (s *Set) maybeCompact() {
	if len(s.added)+len(s.gone) < s.compactAt() {
		return
	}
	next := make([]uint64, 0, len(s.base)+len(s.added)-len(s.gone))
	for _, k := range s.base {
		if _, deleted := s.gone[k]; !deleted {
			next = append(next, k)
		}
	}
	for k := range s.added {
		next = append(next, k)
	}
	slices.Sort(next)
	s.base, s.added, s.gone = next, map[uint64]struct{}{}, map[uint64]struct{}{}
}

// Follow loads the keys with prefix (one View; about a second per million
// keys on bbolt) and returns a Set over them, with a goroutine that follows
// the store's changes until db is closed.
func Follow(db store.DB, prefix string) *Set {
	s := &Set{db: db, prefix: prefix, added: map[uint64]struct{}{}, gone: map[uint64]struct{}{}}
	// The watch starts before the load, so no commit falls between them:
	// replaying, in commit order, events the load already saw converges on
	// the store's state.
	events, err := db.Watch(context.Background(), []byte(prefix))
	if err != nil {
		return s // never ready: MayHave says "maybe" to everything
	}
	s.reload()
	go s.follow(events)
	return s
}

func (s *Set) follow(events <-chan store.Event) {
	for ev := range events {
		switch ev.Type {
		case store.EventReset:
			s.reload()
		case store.EventPut, store.EventDelete:
			k, ok := s.short(string(ev.Key))
			if !ok {
				continue
			}
			s.mu.Lock()
			if ev.Type == store.EventPut {
				s.put(k)
			} else {
				s.remove(k)
			}
			s.mu.Unlock()
		}
	}
}

// reload reads every key under the prefix. While it runs the Set answers
// "maybe" to everything; when it fails, the Set stays that way until the
// next reset.
func (s *Set) reload() {
	s.mu.Lock()
	s.ready = false
	s.mu.Unlock()
	var base []uint64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.db.View(ctx, func(tx store.Tx) error {
		base = base[:0]
		return tx.Scan([]byte(s.prefix), store.ScanOptions{}, func(k, _ []byte) (bool, error) {
			if d, ok := s.short(string(k)); ok {
				base = append(base, d)
			}
			return true, nil
		})
	})
	if err != nil {
		slog.Warn("keyset: load failed; every well-formed key is looked up", "prefix", s.prefix, "err", err)
		return
	}
	slices.Sort(base)
	base = slices.Compact(base)
	s.mu.Lock()
	s.base, s.added, s.gone, s.ready = slices.Clip(base), map[uint64]struct{}{}, map[uint64]struct{}{}, true
	s.mu.Unlock()
}

// short returns the first 64 bits of the digest named by a store key.
func (s *Set) short(key string) (uint64, bool) {
	if len(key) != len(s.prefix)+2*sha256.Size || key[:len(s.prefix)] != s.prefix {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], []byte(key[len(s.prefix):len(s.prefix)+16])); err != nil {
		return 0, false
	}
	return binary.BigEndian.Uint64(b[:]), true
}

// Add records the key with hex digest d; call it after the commit that
// stored the key and before handing the secret to anyone.
func (s *Set) Add(d string) {
	if k, ok := s.short(s.prefix + d); ok {
		s.mu.Lock()
		s.put(k)
		s.mu.Unlock()
	}
}

// MayHave reports whether a key with the raw SHA-256 digest d may be
// stored: false means it certainly is not (see the package documentation
// for when it is conservative).
func (s *Set) MayHave(d [sha256.Size]byte) bool {
	k := binary.BigEndian.Uint64(d[:8])
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.ready {
		return true
	}
	return s.has(k)
}
