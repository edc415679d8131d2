package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/portaldist/portal/store"
)

// Purge deletes the grants recorded before cutoff, the index keys that
// name only deleted grants, and the daily quota counts of days that ended
// before it, and returns how many keys it deleted. Release totals and daily
// rollups are kept (see Retention in the package documentation).
//
// It reads in View transactions and deletes in Updates of at most
// store.MaxTxnOps keys, so it never holds the store long and a failure
// between pages leaves only fewer rows deleted (the next Purge goes on). The
// log is in sequence order, which is time order give or take the moments
// between concurrent Records (and the clocks of replicas), so Purge reads
// only the old grants and the first newer one; the index is read key by key
// (and deleted) range by range. Grants still queued are not touched.
func (l *Ledger) Purge(ctx context.Context, cutoff time.Time) (int, error) {
	cutoff = cutoff.UTC()
	isOld := func(v []byte) bool {
		var g struct {
			Time time.Time `json:"time"`
		}
		return json.Unmarshal(v, &g) == nil && g.Time.Before(cutoff)
	}
	total := 0
	// The log, from its oldest grant to the first one kept.
	var first uint64 // the oldest grant kept (0: none)
	n, err := l.purge(ctx, logPrefix, func(k, v []byte) (bool, []byte) {
		if len(k) == len(logPrefix)+8 && isOld(v) {
			return true, nil
		}
		if len(k) == len(logPrefix)+8 {
			first = binary.BigEndian.Uint64(k[len(logPrefix):])
		}
		return false, nil
	})
	total += n
	if err != nil {
		return total, err
	}
	// Rollup ranges that end before the oldest grant kept (all of them
	// when the log is empty): their index keys, then the range itself, so
	// that a failure in between leaves the range to the next Purge.
	for {
		var ends []uint64
		err := l.db.View(ctx, func(tx store.Tx) error {
			ends = ends[:0]
			return tx.Scan([]byte(rangePrefix), store.ScanOptions{}, func(k, _ []byte) (bool, error) {
				if len(k) != len(rangePrefix)+8 {
					return true, nil
				}
				end := binary.BigEndian.Uint64(k[len(rangePrefix):])
				if first != 0 && end >= first {
					return false, nil
				}
				ends = append(ends, end)
				return len(ends) < 64, nil
			})
		})
		if err != nil {
			return total, fmt.Errorf("ledger: purge %s: %w", rangePrefix, err)
		}
		if len(ends) == 0 {
			break
		}
		for _, end := range ends {
			prefix := string(indexKey(end, "")) // led/i/<end>/
			n, err := l.purge(ctx, prefix, func(_, _ []byte) (bool, []byte) { return true, nil })
			total += n
			if err != nil {
				return total, err
			}
			err = l.db.Update(ctx, func(tx store.Tx) error { return tx.Delete(rangeKey(end)) })
			if err != nil {
				return total, fmt.Errorf("ledger: purge %s: %w", rangePrefix, err)
			}
			total++
		}
	}
	// Grants of the layout before the log, license by license.
	n, err = l.purge(ctx, oldPrefix, func(k, v []byte) (bool, []byte) {
		if len(k) < 8 || !isOld(v) {
			// This license's later grants are newer: go on after them.
			return false, append(bytes.Clone(k[:len(k)-min(8, len(k))]), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		}
		return true, nil
	})
	total += n
	if err != nil {
		return total, err
	}
	day := dayStart(dayOf(cutoff)).Format("20060102")
	n, err = l.purge(ctx, quotaPrefix, func(k, _ []byte) (bool, []byte) {
		i := bytes.LastIndexByte(k, '/')
		if string(k[i+1:]) >= day {
			// Later days of this license are newer: go on after them.
			return false, append(bytes.Clone(k[:i+1]), 0xff)
		}
		return true, nil
	})
	return total + n, err
}

// purge deletes the keys under prefix that old calls old; when old says a
// key is not, it names the key to resume the scan after.
func (l *Ledger) purge(ctx context.Context, prefix string, old func(k, v []byte) (bool, []byte)) (int, error) {
	total := 0
	var after []byte
	for {
		var dead [][]byte
		var next []byte
		err := l.db.View(ctx, func(tx store.Tx) error {
			dead, next = nil, nil
			return tx.Scan([]byte(prefix), store.ScanOptions{After: after}, func(k, v []byte) (bool, error) {
				if ok, skip := old(k, v); !ok {
					// The keys collected so far sort before skip.
					next = skip
					return false, nil
				}
				dead = append(dead, bytes.Clone(k))
				if len(dead) == store.MaxTxnOps {
					next = bytes.Clone(k)
					return false, nil
				}
				return true, nil
			})
		})
		if err != nil {
			return total, fmt.Errorf("ledger: purge %s: %w", prefix, err)
		}
		if len(dead) > 0 {
			err = l.db.Update(ctx, func(tx store.Tx) error {
				for _, k := range dead {
					if err := tx.Delete(k); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return total, fmt.Errorf("ledger: purge %s: %w", prefix, err)
			}
			total += len(dead)
		}
		if next == nil {
			return total, nil
		}
		after = next
	}
}

// Daily returns the daily rollup of one release: downloads per UTC day
// ("2006-01-02"), kept after Purge deletes the grants.
func (l *Ledger) Daily(ctx context.Context, product, version string) (map[string]uint64, error) {
	prefix := []byte(dailyPrefix(product, version))
	out := map[string]uint64{}
	err := l.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			d, err := time.Parse("20060102", string(k[len(prefix):]))
			if err != nil || len(v) != 8 {
				return true, nil
			}
			out[d.Format(time.DateOnly)] = binary.BigEndian.Uint64(v)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ledger: daily %s %s: %w", product, version, err)
	}
	return out, nil
}
