package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal/store"
)

// UsageInterval is how often, at most, FlushUsage writes one token's
// last_used_at from one process. It makes the stored time coarse on
// purpose: an API request never waits for a store write, and a token used
// a thousand times a second costs one write a minute.
//
// Precision of Token.LastUsedAt:
//   - List on the process that authenticated the token merges its
//     in-memory time: exact to the second.
//   - Everywhere else (another replica, after a restart) it is what the
//     store holds, which is at most UsageInterval plus the caller's flush
//     period behind the last use, provided FlushUsage is called
//     periodically and once more before the process exits; uses noted
//     since the last flush of a process that dies are lost.
const UsageInterval = time.Minute

// idleUsage is how long a token's in-memory entry stays after its last use
// once its time is stored: FlushUsage then drops it, bounding the memory to
// the tokens used recently.
const idleUsage = time.Hour

// usage is one token's last-use record in memory. Times are Unix seconds.
type usage struct {
	seen   atomic.Int64 // latest authentication noted
	stored atomic.Int64 // latest time the store is known to hold
	wrote  atomic.Int64 // when this process last wrote it (its clock)
}

// noteUse records that the token id, whose stored last use is stored,
// authenticated at now. It is on Authenticate's hot
// path: one map lookup and, at most once a second per token, an atomic
// store; it allocates only on a token's first use in this process.
func (s *Service) noteUse(id string, stored *time.Time, now time.Time) {
	sec := now.Unix()
	v, ok := s.usage.Load(id)
	if !ok {
		u := &usage{}
		if stored != nil {
			u.stored.Store(stored.Unix())
		}
		v, _ = s.usage.LoadOrStore(id, u)
	}
	u := v.(*usage)
	for {
		cur := u.seen.Load()
		if cur >= sec || u.seen.CompareAndSwap(cur, sec) {
			return
		}
	}
}

// lastUse returns the time noted in memory for id, if it is later than
// stored.
func (s *Service) lastUse(id string, stored *time.Time) *time.Time {
	v, ok := s.usage.Load(id)
	if !ok {
		return stored
	}
	seen := v.(*usage).seen.Load()
	if seen == 0 || (stored != nil && stored.Unix() >= seen) {
		return stored
	}
	t := time.Unix(seen, 0).UTC()
	return &t
}

// FlushUsage writes to the store the last-use times that Authenticate noted
// in memory, for each token whose time changed and that this process has
// not written within UsageInterval. Call it periodically (every
// UsageInterval or so, from the scheduler) and when shutting down; calling
// it more often costs nothing but the scan of the in-memory entries. It
// writes in transactions of at most store.MaxTxnOps tokens; a stored time
// is never moved backwards (another replica may have written a later one),
// and a token deleted meanwhile is not written back. On an error the
// unwritten times stay in memory for the next call. It returns how many
// tokens it wrote.
func (s *Service) FlushUsage(ctx context.Context) (int, error) {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	now := s.now().Unix()
	type due struct {
		id string
		u  *usage
		at int64
	}
	var todo []due
	s.usage.Range(func(k, v any) bool {
		id, u := k.(string), v.(*usage)
		seen := u.seen.Load()
		switch {
		case seen > u.stored.Load() && now-u.wrote.Load() >= int64(UsageInterval/time.Second):
			todo = append(todo, due{id, u, seen})
		case seen <= u.stored.Load() && now-seen > int64(idleUsage/time.Second):
			s.usage.CompareAndDelete(id, u)
			if u.seen.Load() != seen { // used while being dropped: keep it
				s.usage.LoadOrStore(id, u)
			}
		}
		return true
	})
	slices.SortFunc(todo, func(a, b due) int { return strings.Compare(a.id, b.id) })
	written := 0
	for len(todo) > 0 {
		batch := todo[:min(len(todo), store.MaxTxnOps)]
		todo = todo[len(batch):]
		// What the store holds for each token after the transaction: the
		// time written, a later one found there, or -1 for a deleted token.
		held := make([]int64, len(batch))
		n := 0
		err := s.db.Update(ctx, func(tx store.Tx) error {
			n = 0
			for i, d := range batch {
				key := []byte(tokenPrefix + d.id)
				b, err := tx.Get(key)
				if errors.Is(err, store.ErrNotFound) {
					held[i] = -1
					continue
				}
				if err != nil {
					return err
				}
				var t Token
				if err := json.Unmarshal(b, &t); err != nil {
					return fmt.Errorf("tokens: decode %s: %w", key, err)
				}
				if t.LastUsedAt != nil && t.LastUsedAt.Unix() >= d.at {
					held[i] = t.LastUsedAt.Unix()
					continue
				}
				at := time.Unix(d.at, 0).UTC()
				t.LastUsedAt = &at
				if err := store.PutJSON(tx, key, t); err != nil {
					return err
				}
				held[i] = d.at
				n++
			}
			return nil
		})
		if err != nil {
			return written, fmt.Errorf("tokens: flush usage: %w", err)
		}
		written += n
		for i, d := range batch {
			if held[i] < 0 {
				s.usage.CompareAndDelete(d.id, d.u)
				continue
			}
			d.u.stored.Store(held[i])
			d.u.wrote.Store(now)
		}
	}
	return written, nil
}

// List returns every token, oldest first, without its digest. LastUsedAt
// merges the store's time with the uses this process noted since its last
// FlushUsage (see UsageInterval for the precision).
func (s *Service) List(ctx context.Context) ([]Token, error) {
	out := []Token{}
	err := s.db.View(ctx, func(tx store.Tx) error {
		out = out[:0]
		return tx.Scan([]byte(tokenPrefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return false, fmt.Errorf("tokens: decode %s: %w", k, err)
			}
			out = append(out, t.Public())
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("tokens: list: %w", err)
	}
	for i := range out {
		out[i].LastUsedAt = s.lastUse(out[i].ID, out[i].LastUsedAt)
	}
	slices.SortFunc(out, func(a, b Token) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}
