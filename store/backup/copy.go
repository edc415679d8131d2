package backup

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/portaldist/portal/store"
)

// CopyOptions tune Copy.
type CopyOptions struct {
	// Prune deletes the keys the target holds and the source does not.
	// Without it they are left alone and counted in the result (and Verify
	// reports them).
	Prune bool
	// Progress, when set, is called after each page with the source keys
	// seen so far.
	Progress func(seen uint64)
}

// CopyResult says what Copy did.
type CopyResult struct {
	// Keys is how many keys the source holds (at the snapshot copied).
	Keys uint64
	// Written is how many keys were written: missing in the target or
	// holding another value. A rerun after a complete copy writes none.
	Written uint64
	// Extra is how many keys only the target holds; Pruned how many of
	// them were deleted (with CopyOptions.Prune).
	Extra, Pruned uint64
	// Sequences is how many counters were raised to the source's.
	Sequences int
}

// pageSize bounds the keys Copy and Compare hold at once.
func pageSize(src, dst store.DB) int { return min(src.MaxTxnOps(), dst.MaxTxnOps()) }

// kv is one copied-out key and value.
type kv struct{ k, v []byte }

// pages calls fn with the keys of db in order, at most n at a time (and
// about MaxTxnBytes bytes), all from one View, so they are one snapshot;
// last is true for the final call (which may be empty). seqs receives the
// snapshot's counters first. fn runs inside the View: it may use other
// stores, never db.
func pages(ctx context.Context, db store.DB, n int, seqs func(map[string]uint64) error, fn func(page []kv, last bool) error) error {
	return db.View(ctx, func(tx store.Tx) error {
		m := map[string]uint64{}
		if err := store.Sequences(tx, func(name string, last uint64) error { m[name] = last; return nil }); err != nil {
			return err
		}
		if err := seqs(m); err != nil {
			return err
		}
		var page []kv
		size := 0
		err := tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			if len(page) > 0 && (len(page) >= n || size+len(k)+len(v) > MaxTxnBytes) {
				if err := fn(page, false); err != nil {
					return false, err
				}
				page, size = page[:0], 0
			}
			page = append(page, kv{bytes.Clone(k), bytes.Clone(v)})
			size += len(k) + len(v)
			return true, ctx.Err()
		})
		if err != nil {
			return err
		}
		return fn(page, true)
	})
}

// targetRange reads dst's keys strictly after after (nil: from the start)
// up to and including upTo (nil: to the end), at most limit of them; more
// tells whether the range holds more.
func targetRange(ctx context.Context, dst store.DB, after, upTo []byte, limit int) (out []kv, more bool, err error) {
	err = dst.View(ctx, func(tx store.Tx) error {
		out, more = out[:0], false
		return tx.Scan(nil, store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
			if upTo != nil && bytes.Compare(k, upTo) > 0 {
				return false, nil
			}
			if len(out) >= limit {
				more = true
				return false, nil
			}
			out = append(out, kv{bytes.Clone(k), bytes.Clone(v)})
			return true, nil
		})
	})
	return out, more, err
}

// Copy copies every key and counter of src into dst from one snapshot of
// src, writing only keys that dst lacks or holds with another value, so a
// rerun is safe and cheap. Counters are raised, never lowered. Keys only
// dst holds are counted, and deleted with Prune. Writes to src during the
// copy are not in it: stop the servers first. Check the result with
// Compare.
func Copy(ctx context.Context, src, dst store.DB, opts CopyOptions) (CopyResult, error) {
	var res CopyResult
	var seqs map[string]uint64
	n := pageSize(src, dst)
	var after []byte // the last source key handled
	var pending [][]byte
	del := func(keys [][]byte) error {
		return dst.Update(ctx, func(tx store.Tx) error {
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// extras handles the target keys in (after, upTo] that are not in
	// want (sorted).
	extras := func(upTo []byte, want []kv) (map[string][]byte, error) {
		have := map[string][]byte{}
		from := after
		for {
			got, more, err := targetRange(ctx, dst, from, upTo, n)
			if err != nil {
				return nil, err
			}
			pending = pending[:0]
			for _, e := range got {
				if _, found := slices.BinarySearchFunc(want, e.k, func(a kv, k []byte) int { return bytes.Compare(a.k, k) }); found {
					have[string(e.k)] = e.v
					continue
				}
				res.Extra++
				if opts.Prune {
					pending = append(pending, e.k)
				}
			}
			if len(pending) > 0 {
				if err := del(pending); err != nil {
					return nil, err
				}
				res.Pruned += uint64(len(pending))
			}
			if !more {
				return have, nil
			}
			from = got[len(got)-1].k
		}
	}
	err := pages(ctx, src, n, func(m map[string]uint64) error { seqs = m; return nil }, func(page []kv, last bool) error {
		// The target's keys up to this page's last key; after the last
		// page, every one left.
		var upTo []byte
		if !last {
			upTo = page[len(page)-1].k
		}
		have, err := extras(upTo, page)
		if err != nil {
			return err
		}
		var write []kv
		for _, e := range page {
			if v, ok := have[string(e.k)]; !ok || !bytes.Equal(v, e.v) {
				write = append(write, e)
			}
		}
		if len(write) > 0 {
			err := dst.Update(ctx, func(tx store.Tx) error {
				for _, e := range write {
					if err := tx.Put(e.k, e.v); err != nil {
						return fmt.Errorf("put %q: %w", e.k, err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		res.Keys += uint64(len(page))
		res.Written += uint64(len(write))
		if len(page) > 0 {
			after = page[len(page)-1].k
		}
		if opts.Progress != nil {
			opts.Progress(res.Keys)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("backup: copy: %w", err)
	}
	if err := raiseSequences(ctx, dst, seqs); err != nil {
		return res, fmt.Errorf("backup: copy: counters: %w", err)
	}
	res.Sequences = len(seqs)
	return res, nil
}

// Diff is what Compare found.
type Diff struct {
	Keys uint64 // keys of the source compared
	// Missing are source keys the target lacks, Changed those it holds
	// with another value, Extra keys only the target holds, and Counters
	// the counters the target has below the source's. Each list keeps at
	// most MaxDiffListed entries; the counts are exact.
	Missing, Changed, Extra, Counters []string
	NMissing, NChanged, NExtra        uint64
}

// MaxDiffListed is how many keys of each kind a Diff names.
const MaxDiffListed = 20

// Equal reports whether the target holds exactly the source's keys and
// values, and counters at least the source's.
func (d Diff) Equal() bool {
	return d.NMissing == 0 && d.NChanged == 0 && d.NExtra == 0 && len(d.Counters) == 0
}

func (d Diff) String() string {
	if d.Equal() {
		return fmt.Sprintf("%d keys identical", d.Keys)
	}
	return fmt.Sprintf("%d keys compared: %d missing %q, %d changed %q, %d only in the target %q, counters behind %q",
		d.Keys, d.NMissing, d.Missing, d.NChanged, d.Changed, d.NExtra, d.Extra, d.Counters)
}

func note(list *[]string, n *uint64, k []byte) {
	*n++
	if len(*list) < MaxDiffListed {
		*list = append(*list, fmt.Sprintf("%q", k))
	}
}

// Compare reads src (one snapshot) and dst key by key and reports every
// difference. dst is read page by page, so it must not change meanwhile.
func Compare(ctx context.Context, src, dst store.DB) (Diff, error) {
	var d Diff
	var srcSeqs map[string]uint64
	n := pageSize(src, dst)
	var after []byte
	err := pages(ctx, src, n, func(m map[string]uint64) error { srcSeqs = m; return nil }, func(page []kv, last bool) error {
		if !last && len(page) == 0 {
			return nil
		}
		var upTo []byte
		if !last {
			upTo = page[len(page)-1].k
		}
		from := after
		i := 0
		for {
			got, more, err := targetRange(ctx, dst, from, upTo, n)
			if err != nil {
				return err
			}
			for _, e := range got {
				for i < len(page) && bytes.Compare(page[i].k, e.k) < 0 {
					note(&d.Missing, &d.NMissing, page[i].k)
					i++
				}
				if i < len(page) && bytes.Equal(page[i].k, e.k) {
					if !bytes.Equal(page[i].v, e.v) {
						note(&d.Changed, &d.NChanged, e.k)
					}
					i++
					continue
				}
				note(&d.Extra, &d.NExtra, e.k)
			}
			if !more {
				break
			}
			from = got[len(got)-1].k
		}
		for ; i < len(page); i++ {
			note(&d.Missing, &d.NMissing, page[i].k)
		}
		d.Keys += uint64(len(page))
		if len(page) > 0 {
			after = page[len(page)-1].k
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("backup: compare: %w", err)
	}
	err = dst.View(ctx, func(tx store.Tx) error {
		d.Counters = nil
		have := map[string]uint64{}
		if err := store.Sequences(tx, func(name string, last uint64) error { have[name] = last; return nil }); err != nil {
			return err
		}
		for _, name := range sortedNames(srcSeqs) {
			if have[name] < srcSeqs[name] {
				d.Counters = append(d.Counters, fmt.Sprintf("%s: %d < %d", name, have[name], srcSeqs[name]))
			}
		}
		return nil
	})
	if err != nil {
		return d, fmt.Errorf("backup: compare counters: %w", err)
	}
	return d, nil
}

func sortedNames(m map[string]uint64) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
