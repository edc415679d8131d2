package ledger

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// MaxDays is the longest window DailyByRelease reads.
const MaxDays = 366

// ReleaseDays is one release's downloads per UTC day of a window.
type ReleaseDays struct {
	Version string
	// Days[i] is the downloads of the window's day i (its first day is 0).
	Days []uint64
	// Total is the sum of Days.
	Total uint64
}

// DailyByRelease returns the daily rollups (led/d) of every release of
// product that has downloads in the days UTC days ending with the day of
// last (so days 1 is that day alone), ordered by version key, with the
// window's first day. days must be from 1 to MaxDays.
//
// It reads one key per release and day since the rollups were introduced,
// in one read transaction; like every read of the ledger it does not see
// grants still queued (see Flush).
func (l *Ledger) DailyByRelease(ctx context.Context, product string, last time.Time, days int) (first time.Time, out []ReleaseDays, err error) {
	if days < 1 || days > MaxDays {
		return time.Time{}, nil, portal.Errorf(portal.EInvalid, "days must be from 1 to %d", MaxDays)
	}
	last = last.UTC()
	end := time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, time.UTC)
	first = end.AddDate(0, 0, -(days - 1))
	prefix := []byte("led/d/" + seg(product) + "/")
	idx := map[string]int{}
	err = l.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan(prefix, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			rest := string(k[len(prefix):])
			i := strings.LastIndexByte(rest, '/')
			if i < 0 || len(v) != 8 {
				return true, nil // not a rollup key
			}
			d, perr := time.Parse("20060102", rest[i+1:])
			if perr != nil || d.Before(first) || d.After(end) {
				return true, nil
			}
			ver := unseg(rest[:i])
			j, ok := idx[ver]
			if !ok {
				j = len(out)
				idx[ver] = j
				out = append(out, ReleaseDays{Version: ver, Days: make([]uint64, days)})
			}
			n := binary.BigEndian.Uint64(v)
			out[j].Days[int(d.Sub(first)/(24*time.Hour))] += n
			out[j].Total += n
			return true, nil
		})
	})
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("ledger: daily downloads of %s: %w", product, err)
	}
	return first, out, nil
}

// Total returns the flushed downloads of every release of product
// together (the sum of Counts).
func (l *Ledger) Total(ctx context.Context, product string) (uint64, error) {
	counts, err := l.Counts(ctx, product)
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n, nil
}
