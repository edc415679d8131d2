package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// ByLicense returns the license's grants, newest first, at most limit of
// them (DefaultPageSize when limit <= 0, MaxPageSize at most), and the
// cursor of the next page, "" on the last one. cursor is "" for the first
// page, else a next value returned earlier. Grants still queued are not
// included (see Flush). licenseID "" lists the open products' grants.
//
// It reads, in one snapshot, the log beyond the index (at most about
// Options.RollupGrants grants a replica, filtered by license), then, range
// by range from the newest, the license's index key of each rollup range
// (one Get a range: a license with few grants costs a Get for each range
// kept) and the grants it names, then the license's grants in the layout
// before the log (see "Key layout"); sequences only grow, so this is newest
// first throughout.
func (l *Ledger) ByLicense(ctx context.Context, licenseID, cursor string, limit int) ([]Grant, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	before := uint64(math.MaxUint64) // list sequences below this one
	if cursor != "" {
		seq, err := hex.DecodeString(cursor)
		if err != nil || len(seq) != 8 || len(cursor) != 16 {
			return nil, "", portal.Errorf(portal.EInvalid, "invalid cursor: pass the next value of the previous page")
		}
		before = binary.BigEndian.Uint64(seq)
	}
	var (
		out  []Grant
		last uint64
		more bool
	)
	err := l.db.View(ctx, func(tx store.Tx) error {
		out, last, more = nil, 0, false
		// add appends the grant of seq, or says there is one more.
		add := func(seq uint64, v []byte) (bool, error) {
			if len(out) == limit {
				more = true
				return false, nil
			}
			var g Grant
			if err := json.Unmarshal(v, &g); err != nil {
				return false, fmt.Errorf("ledger: grant %d: %w", seq, err)
			}
			out = append(out, g)
			last = seq
			return true, nil
		}
		full := func() bool { return more }

		// 1. The log beyond the index.
		w, err := getUint64(tx, []byte(watermarkKey))
		if err != nil {
			return err
		}
		if before > w+1 {
			opts := store.ScanOptions{Reverse: true}
			if before != math.MaxUint64 {
				opts.After = logKey(before)
			}
			err := tx.Scan([]byte(logPrefix), opts, func(k, v []byte) (bool, error) {
				if len(k) != len(logPrefix)+8 {
					return true, nil
				}
				seq := binary.BigEndian.Uint64(k[len(logPrefix):])
				if seq <= w {
					return false, nil
				}
				lic, err := licenseOf(v)
				if err != nil {
					return false, fmt.Errorf("ledger: grant %d: %w", seq, err)
				}
				if lic != licenseID {
					return true, nil
				}
				return add(seq, v)
			})
			if err != nil || full() {
				return err
			}
		}

		// 2. The index, range by range, newest first: each range's key of
		// this license lists its sequences in ascending order. The range
		// that ends at or after before may still hold older grants; the
		// ranges ending before it are all older.
		listRange := func(end uint64) (bool, error) {
			v, err := tx.Get(indexKey(end, licenseID))
			if errors.Is(err, store.ErrNotFound) {
				return true, nil // no grant of this license in the range
			}
			if err != nil {
				return false, err
			}
			if len(v)%8 != 0 || len(v) == 0 {
				return false, fmt.Errorf("ledger: index of range %d is %d bytes, not a multiple of 8", end, len(v))
			}
			for i := len(v)/8 - 1; i >= 0; i-- {
				seq := binary.BigEndian.Uint64(v[8*i:])
				if seq >= before {
					continue
				}
				gv, err := tx.Get(logKey(seq))
				if errors.Is(err, store.ErrNotFound) {
					continue // purged
				}
				if err != nil {
					return false, err
				}
				if ok, err := add(seq, gv); !ok || err != nil {
					return false, err
				}
			}
			return true, nil
		}
		rangeEnd := func(k []byte) (uint64, bool) {
			if len(k) != len(rangePrefix)+8 {
				return 0, false
			}
			return binary.BigEndian.Uint64(k[len(rangePrefix):]), true
		}
		opts := store.ScanOptions{Reverse: true}
		if before != math.MaxUint64 {
			// The first range ending at or after before, then the older ones.
			var stop bool
			err := tx.Scan([]byte(rangePrefix), store.ScanOptions{After: rangeKey(before - 1)}, func(k, _ []byte) (bool, error) {
				end, ok := rangeEnd(k)
				if !ok {
					return true, nil
				}
				more, err := listRange(end)
				stop = !more
				return false, err
			})
			if err != nil || stop || full() {
				return err
			}
			opts.After = rangeKey(before)
		}
		stop := false
		err = tx.Scan([]byte(rangePrefix), opts, func(k, _ []byte) (bool, error) {
			end, ok := rangeEnd(k)
			if !ok {
				return true, nil
			}
			more, err := listRange(end)
			stop = !more
			return more, err
		})
		if err != nil || stop || full() {
			return err
		}

		// 3. Grants stored before the log.
		prefix := []byte(oldLicensePrefix(licenseID))
		opts = store.ScanOptions{Reverse: true}
		if before != math.MaxUint64 {
			opts.After = binary.BigEndian.AppendUint64(bytes.Clone(prefix), before)
		}
		return tx.Scan(prefix, opts, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+8 {
				return true, nil // not a grant key of this license
			}
			return add(binary.BigEndian.Uint64(k[len(prefix):]), v)
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("ledger: list grants of license %s: %w", licenseID, err)
	}
	next := ""
	if more {
		next = hex.EncodeToString(binary.BigEndian.AppendUint64(nil, last))
	}
	return out, next, nil
}

// Count returns how many downloads of product's version were flushed.
func (l *Ledger) Count(ctx context.Context, product, version string) (uint64, error) {
	var n uint64
	err := l.db.View(ctx, func(tx store.Tx) error {
		var err error
		n, err = getUint64(tx, []byte(countKey(product, version)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: count %s %s: %w", product, version, err)
	}
	return n, nil
}

// Counts returns the flushed download counts of every version of product
// that has any.
func (l *Ledger) Counts(ctx context.Context, product string) (map[string]uint64, error) {
	prefix := []byte(countPrefix(product))
	out := make(map[string]uint64)
	err := l.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			if len(v) != 8 {
				return false, fmt.Errorf("ledger: counter %q is %d bytes, not 8", k, len(v))
			}
			out[unseg(string(k[len(prefix):]))] = binary.BigEndian.Uint64(v)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: counts of %s: %w", product, err)
	}
	return out, nil
}
