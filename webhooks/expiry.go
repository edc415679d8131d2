package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/store"
)

// ExpiryLookback bounds how far back CheckExpiry looks: a license that
// expired longer ago than this (before webhooks existed, or while the
// portal was down that long) makes no license.expired event.
const ExpiryLookback = 7 * 24 * time.Hour

// RunExpiry runs CheckExpiry every Options.ExpiryInterval until ctx ends.
// It does nothing without Options.Licenses.
func (s *Service) RunExpiry(ctx context.Context) {
	if s.opts.Licenses == nil {
		return
	}
	t := time.NewTicker(s.opts.ExpiryInterval)
	defer t.Stop()
	for {
		if _, err := s.CheckExpiry(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("webhooks: expiry check", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckExpiry writes, for each license whose expires_at has passed on the
// licenses' clock (within ExpiryLookback, and not before the first webhook
// subscribed to license.expired was created) and that is not revoked, one
// license.expire audit record (actor from ctx), once per license and
// expiry time: a marker in the same transaction remembers it, so a renewed
// license that expires again makes a new event. The dispatcher turns the
// record into a license.expired event. It returns how many it wrote.
func (s *Service) CheckExpiry(ctx context.Context) (int, error) {
	ls := s.opts.Licenses
	if ls == nil {
		return 0, nil
	}
	now := ls.Now()
	// Only while some webhook wants the event, and only for expiries
	// since the first such webhook was created: the check writes nothing
	// for nobody, and a new webhook is not told of older expiries.
	var since time.Time
	err := s.db.View(ctx, func(tx store.Tx) error {
		since = time.Time{}
		return tx.Scan([]byte(hookPrefix), store.ScanOptions{}, func(_, v []byte) (bool, error) {
			var h stored
			if err := json.Unmarshal(v, &h); err != nil {
				return false, err
			}
			if slices.Contains(h.Events, LicenseExpired) && (since.IsZero() || h.CreatedAt.Before(since)) {
				since = h.CreatedAt
			}
			return true, nil
		})
	})
	if err != nil || since.IsZero() {
		return 0, err
	}
	if floor := now.Add(-ExpiryLookback); since.Before(floor) {
		since = floor
	}
	n := 0
	cursor := ""
	for {
		page, next, err := ls.List(ctx, licenses.Filter{ExpiresBefore: now.Add(time.Nanosecond), Limit: licenses.MaxListLimit, Cursor: cursor})
		if err != nil {
			return n, fmt.Errorf("webhooks: expiry check: %w", err)
		}
		for _, l := range page {
			if l.ExpiresAt == nil || l.Status == licenses.Revoked || l.ExpiresAt.Before(since) {
				continue
			}
			wrote, err := s.markExpired(ctx, l)
			if err != nil {
				return n, fmt.Errorf("webhooks: expiry check: %w", err)
			}
			if wrote {
				n++
			}
		}
		if next == "" {
			return n, nil
		}
		cursor = next
	}
}

func (s *Service) markExpired(ctx context.Context, l licenses.License) (bool, error) {
	key := []byte(expiredPrefix + l.ID + "/" + strconv.FormatInt(l.ExpiresAt.UnixNano(), 16))
	var wrote bool
	err := s.db.Update(ctx, func(tx store.Tx) error {
		wrote = false
		_, err := tx.Get(key)
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := tx.Put(key, nil); err != nil {
			return err
		}
		wrote = true
		return audit.Write(ctx, tx, ActionExpire, "license/"+l.ID, nil, l.Public())
	})
	return wrote, err
}
