package ledger

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// ByLicense returns the license's grants, newest first, at most limit of
// them (DefaultPageSize when limit <= 0, MaxPageSize at most), and the
// cursor of the next page, "" on the last one. cursor is "" for the first
// page, else a next value returned earlier. Grants still queued are not
// included (see Flush). licenseID "" lists the open products' grants.
func (l *Ledger) ByLicense(ctx context.Context, licenseID, cursor string, limit int) ([]Grant, string, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	limit = min(limit, MaxPageSize)
	prefix := []byte(grantPrefix(licenseID))
	opts := store.ScanOptions{Reverse: true}
	if cursor != "" {
		seq, err := hex.DecodeString(cursor)
		if err != nil || len(seq) != 8 || len(cursor) != 16 {
			return nil, "", portal.Errorf(portal.EInvalid, "invalid cursor: pass the next value of the previous page")
		}
		opts.After = append(append([]byte(nil), prefix...), seq...)
	}
	var (
		out  []Grant
		last []byte
		more bool
	)
	err := l.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan(prefix, opts, func(k, v []byte) (bool, error) {
			if len(k) != len(prefix)+8 {
				return true, nil // not a grant key of this license
			}
			if len(out) == limit {
				more = true
				return false, nil
			}
			var g Grant
			if err := json.Unmarshal(v, &g); err != nil {
				return false, fmt.Errorf("ledger: grant %x: %w", k, err)
			}
			out = append(out, g)
			last = append(last[:0], k[len(prefix):]...)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("ledger: list grants of license %s: %w", licenseID, err)
	}
	next := ""
	if more {
		next = hex.EncodeToString(last)
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
