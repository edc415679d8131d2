package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
)

// Listing limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// ScanBudget is the most records one List call examines. A selective
	// filter over a long log therefore returns a short (even empty) page
	// with a cursor rather than reading the whole log in one transaction.
	ScanBudget = 10000
)

// Log reads the audit records in a store. It is safe for concurrent use.
// Records are written with Write, inside the transactions of the services
// that make the changes.
type Log struct {
	db store.DB
}

// New returns the audit log kept in db.
func New(db store.DB) *Log { return &Log{db: db} }

// Filter selects records. The zero Filter selects every record, in pages
// of DefaultLimit.
type Filter struct {
	// Actor matches an actor's id, its kind (admin, publisher, license,
	// cli, system, anonymous) or "kind:id".
	Actor string
	// Action matches an action exactly ("license.suspend"), or every verb
	// of an object when it has no dot ("license").
	Action string
	// TargetPrefix matches targets that start with it ("license/",
	// "release/app/").
	TargetPrefix string
	// Since (inclusive) and Until (exclusive) bound the records' times;
	// zero means unbounded.
	Since, Until time.Time
	// Limit is the most records of a page, 1 to MaxLimit; 0 means
	// DefaultLimit.
	Limit int
	// Cursor is the nextCursor of the previous page, or "".
	Cursor string
}

// ParseFilter reads a filter from query parameters (actor, action, target,
// since, until, limit, cursor), as every door takes them. Times are RFC
// 3339. Errors are *portal.Error EInvalid naming the parameter; parameters
// it does not know are left to the caller.
func ParseFilter(q url.Values) (Filter, error) {
	var f Filter
	for _, name := range []string{"actor", "action", "target", "since", "until", "limit", "cursor"} {
		vs := q[name]
		if len(vs) == 0 {
			continue
		}
		if len(vs) > 1 {
			return Filter{}, invalid(name, "%s is given more than once", name)
		}
		v := vs[0]
		switch name {
		case "actor":
			f.Actor = v
		case "action":
			f.Action = v
		case "target":
			f.TargetPrefix = v
		case "since", "until":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return Filter{}, invalid(name, "%s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", name, shorten(v))
			}
			if name == "since" {
				f.Since = t
			} else {
				f.Until = t
			}
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				return Filter{}, invalid(name, "limit must be a whole number from 1 to %d, not %q", MaxLimit, shorten(v))
			}
			f.Limit = n
		case "cursor":
			f.Cursor = v
		}
	}
	if err := f.validate(); err != nil {
		return Filter{}, err
	}
	return f, nil
}

func invalid(field, format string, args ...any) *portal.Error {
	e := portal.Errorf(portal.EInvalid, format, args...)
	e.Details = map[string]any{"field": field}
	return e
}

// shorten keeps an echoed bad value short and free of secrets.
func shorten(s string) string {
	if secretLike(s) {
		return redacted
	}
	if len(s) > 64 {
		return clean(s[:64]) + "..."
	}
	return clean(s)
}

func (f Filter) validate() error {
	switch {
	case len(f.Actor) > 256:
		return invalid("actor", "actor is longer than 256 bytes")
	case len(f.Action) > MaxAction:
		return invalid("action", "action is longer than %d bytes", MaxAction)
	case len(f.TargetPrefix) > MaxTarget:
		return invalid("target", "target is longer than %d bytes", MaxTarget)
	case f.Limit < 0 || f.Limit > MaxLimit:
		return invalid("limit", "limit must be from 1 to %d", MaxLimit)
	case !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until):
		return invalid("until", "until must be after since")
	}
	if _, err := decodeCursor(f.Cursor); err != nil {
		return err
	}
	return nil
}

func decodeCursor(c string) ([]byte, error) {
	if c == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(c)
	if err != nil || len(b) != suffixLen {
		return nil, invalid("cursor", "cursor is not one this server returned")
	}
	return append([]byte(recordPrefix), b...), nil
}

func encodeCursor(key []byte) string {
	return base64.RawURLEncoding.EncodeToString(key[len(recordPrefix):])
}

func (f Filter) match(r *Record) bool {
	if f.Actor != "" && f.Actor != r.Actor.ID && f.Actor != r.Actor.Kind && f.Actor != r.Actor.String() {
		return false
	}
	if f.Action != "" {
		if strings.Contains(f.Action, ".") {
			if r.Action != f.Action {
				return false
			}
		} else if !strings.HasPrefix(r.Action, f.Action+".") {
			return false
		}
	}
	return strings.HasPrefix(r.Target, f.TargetPrefix)
}

// List returns the records f selects, newest first, and the cursor of the
// next page ("" when there is none). A page may hold fewer than f.Limit
// records, even none, while the cursor is set (the scan examines at most
// ScanBudget records per call): read on until the cursor is "". Errors in
// f are *portal.Error EInvalid naming the field.
func (l *Log) List(ctx context.Context, f Filter) ([]Record, string, error) {
	if err := f.validate(); err != nil {
		return nil, "", err
	}
	limit := f.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	after, _ := decodeCursor(f.Cursor)
	if !f.Until.IsZero() {
		if u := timeKey(f.Until); after == nil || bytes.Compare(u, after) < 0 {
			after = u // reverse scans start strictly before After
		}
	}
	var since []byte
	if !f.Since.IsZero() {
		since = timeKey(f.Since)
	}
	var (
		out  []Record
		next string
	)
	err := l.db.View(ctx, func(tx store.Tx) error {
		out, next = []Record{}, ""
		examined := 0
		var lastKey []byte
		return tx.Scan([]byte(recordPrefix), store.ScanOptions{After: after, Reverse: true}, func(k, v []byte) (bool, error) {
			if since != nil && bytes.Compare(k, since) < 0 {
				return false, nil
			}
			if len(out) == limit || examined == ScanBudget {
				// There is at least one more record in range: the next
				// page starts after the last one examined.
				next = encodeCursor(lastKey)
				return false, nil
			}
			examined++
			lastKey = append(lastKey[:0], k...)
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("audit: decode %x: %w", k, err)
			}
			if f.match(&r) {
				out = append(out, r)
			}
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("audit: list: %w", err)
	}
	return out, next, nil
}

// Purge deletes the records written before cutoff (or before now, when
// cutoff is later), oldest first, for the retention of the log, and returns
// how many it deleted. It works in transactions of at most the store's
// MaxTxnOps keys; each also writes one "audit.purge" record (target
// "audit", actor from ctx) saying how many records it deleted and up to
// when, so the trail shows its own trimming. A failure between
// transactions leaves the oldest records deleted and the rest kept, with
// the records of the transactions that committed: running Purge again
// finishes the work.
func (l *Log) Purge(ctx context.Context, cutoff time.Time) (int, error) {
	if t := now(); cutoff.After(t) {
		cutoff = t
	}
	end := timeKey(cutoff)
	batch := l.db.MaxTxnOps() - 2 // the purge record and the sequence
	own := map[string]bool{}      // this Purge's records, should the clock step back
	total := 0
	for {
		var (
			deleted int
			mine    []byte
		)
		err := l.db.Update(ctx, func(tx store.Tx) error {
			deleted, mine = 0, nil
			var keys [][]byte
			err := tx.Scan([]byte(recordPrefix), store.ScanOptions{}, func(k, _ []byte) (bool, error) {
				if bytes.Compare(k, end) >= 0 || len(keys) == batch {
					return false, nil
				}
				if !own[string(k)] {
					keys = append(keys, bytes.Clone(k))
				}
				return true, nil
			})
			if err != nil || len(keys) == 0 {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			deleted = len(keys)
			mine, err = write(ctx, tx, "audit.purge", "audit", nil, map[string]any{
				"deleted": deleted, "before": cutoff.UTC().Format(time.RFC3339Nano)})
			return err
		})
		if err != nil {
			return total, fmt.Errorf("audit: purge: %w", err)
		}
		if deleted == 0 {
			return total, nil
		}
		total += deleted
		own[string(mine)] = true
	}
}
