package licenses

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// Patch is an edit of a license: every field a vendor sets at creation. A
// nil field is left as it is.
type Patch struct {
	Customer        *string
	Products        *[]string
	Constraint      *string
	Channels        *[]string
	Platforms       *[]string
	OnExpiry        *string
	DownloadsPerDay *int
	Metadata        *map[string]string
	// ExpiresAt sets the expiry when SetExpiry is true; nil then clears it
	// (the license no longer expires).
	SetExpiry bool
	ExpiresAt *time.Time
}

// apply returns l with p applied, validated. l itself is not modified.
func (p Patch) apply(l License) (License, error) {
	out := l
	out.Channels = slices.Clone(l.Channels)
	out.Platforms = slices.Clone(l.Platforms)
	out.Products = slices.Clone(l.Products)
	out.Metadata = maps.Clone(l.Metadata)
	out.constraint = nil
	if p.Customer != nil {
		out.Customer = *p.Customer
	}
	if p.Products != nil {
		out.Products = slices.Clone(*p.Products)
	}
	if p.Constraint != nil {
		out.Constraint = *p.Constraint
	}
	if p.Channels != nil {
		out.Channels = slices.Clone(*p.Channels)
	}
	if p.Platforms != nil {
		out.Platforms = slices.Clone(*p.Platforms)
	}
	if p.OnExpiry != nil {
		if *p.OnExpiry == "" {
			return l, portal.Errorf(portal.EInvalid, "on_expiry must be %q or %q", OnExpiryRevoke, OnExpiryMaintain)
		}
		out.OnExpiry = *p.OnExpiry
	}
	if p.DownloadsPerDay != nil {
		out.DownloadsPerDay = *p.DownloadsPerDay
	}
	if p.Metadata != nil {
		out.Metadata = maps.Clone(*p.Metadata)
	}
	if p.SetExpiry {
		out.ExpiresAt = p.ExpiresAt
	}
	if len(out.Channels) == 0 {
		out.Channels = nil
	}
	if len(out.Platforms) == 0 {
		out.Platforms = nil
	}
	if err := out.Validate(); err != nil {
		return l, err
	}
	return out, nil
}

// Update edits license id: the fields p sets, validated as on creation
// (products must exist). The status is not among them (Suspend, Reinstate,
// Revoke); an expiry in the past is allowed, and then StatusAt says
// expired. An edit that changes nothing writes nothing. The change and its
// license.update record are written in one transaction.
func (s *Service) Update(ctx context.Context, id string, p Patch) (License, error) {
	if p.Products != nil {
		probe := License{Products: slices.Clone(*p.Products)}
		if err := probe.validateProducts(); err != nil {
			return License{}, err
		}
		if err := s.checkProducts(ctx, probe.Products); err != nil {
			return License{}, err
		}
	}
	var l License
	err := s.db.Update(ctx, func(tx store.Tx) error {
		var old License
		if err := getLicense(tx, id, &old); err != nil {
			return err
		}
		next, err := p.apply(old)
		if err != nil {
			return err
		}
		l = old
		if same(old, next) {
			return nil
		}
		next.UpdatedAt = s.now().UTC().Truncate(time.Second)
		if err := store.PutJSON(tx, []byte(licensePrefix+id), next); err != nil {
			return err
		}
		l = next
		return audit.Write(ctx, tx, ActionUpdate, target(id), old.Public(), next.Public())
	})
	s.forget(l)
	if err != nil {
		return License{}, fmt.Errorf("licenses: update %s: %w", truncate(id, 64), err)
	}
	l.prime()
	return l, nil
}

// same reports whether a and b declare the same entitlements.
func same(a, b License) bool {
	return a.Customer == b.Customer && slices.Equal(a.Products, b.Products) && a.Constraint == b.Constraint &&
		slices.Equal(a.Channels, b.Channels) && slices.Equal(a.Platforms, b.Platforms) &&
		a.OnExpiry == b.OnExpiry && a.DownloadsPerDay == b.DownloadsPerDay && maps.Equal(a.Metadata, b.Metadata) &&
		(a.ExpiresAt == nil) == (b.ExpiresAt == nil) && (a.ExpiresAt == nil || a.ExpiresAt.Equal(*b.ExpiresAt))
}

// Reissue gives license id a new key and returns it, shown this once. The
// old key is refused from the moment Reissue returns: its index entry is
// replaced in the transaction that stores the new digest (with the
// license.reissue record), and this Service's caches drop it before
// returning; other Services on the store drop it when their watch delivers
// the change (CacheTTL at the latest). A revoked license is a conflict.
func (s *Service) Reissue(ctx context.Context, id string) (License, string, error) {
	key := secret.New(KeyPrefix)
	var l, old License
	err := s.db.Update(ctx, func(tx store.Tx) error {
		old = License{}
		if err := getLicense(tx, id, &old); err != nil {
			return err
		}
		if old.Status == Revoked {
			return portal.Errorf(portal.EConflict, "license %s is revoked; revocation is final, so it gets no new key", id)
		}
		l = old
		l.KeyHint = secret.Hint(key)
		l.KeyDigest = secret.Digest(key)
		l.UpdatedAt = s.now().UTC().Truncate(time.Second)
		if err := tx.Delete([]byte(keyPrefix + old.KeyDigest)); err != nil {
			return err
		}
		if err := tx.Put([]byte(keyPrefix+l.KeyDigest), []byte(l.ID)); err != nil {
			return err
		}
		if err := store.PutJSON(tx, []byte(licensePrefix+id), l); err != nil {
			return err
		}
		return audit.Write(ctx, tx, ActionReissue, target(id), old.Public(), l.Public())
	})
	s.forget(old)
	s.forget(l)
	if err != nil {
		return License{}, "", fmt.Errorf("licenses: reissue %s: %w", truncate(id, 64), err)
	}
	s.keys.Add(l.KeyDigest)
	l.prime()
	return l, key, nil
}

// Filter selects licenses for List. Zero fields select everything.
type Filter struct {
	// Product selects licenses that cover it.
	Product string
	// Customer selects licenses whose customer contains it, ignoring case.
	Customer string
	// Status selects by computed status (StatusAt): active, expired,
	// suspended or revoked.
	Status string
	// ExpiresBefore selects licenses that expire before it (never-expiring
	// licenses are not selected).
	ExpiresBefore time.Time
	// Limit is the most licenses of a page: 1 to MaxListLimit, 0 means
	// DefaultListLimit.
	Limit int
	// Cursor is the NextCursor of the previous page, or "".
	Cursor string
}

// Page sizes of List.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// Validate checks f and says which field is wrong.
func (f *Filter) Validate() error {
	switch f.Status {
	case "", Active, Expired, Suspended, Revoked:
	default:
		return portal.Errorf(portal.EInvalid, "status must be active, expired, suspended or revoked, not %q", truncate(f.Status, 40))
	}
	if f.Limit == 0 {
		f.Limit = DefaultListLimit
	}
	if f.Limit < 1 || f.Limit > MaxListLimit {
		return portal.Errorf(portal.EInvalid, "limit must be from 1 to %d", MaxListLimit)
	}
	if len(f.Customer) > 200 || !utf8.ValidString(f.Customer) {
		return portal.Errorf(portal.EInvalid, "customer must be at most 200 bytes of UTF-8")
	}
	if len(f.Cursor) > 64 || len(f.Product) > 64 {
		return portal.Errorf(portal.EInvalid, "cursor and product must be at most 64 bytes")
	}
	return nil
}

// List returns a page of the licenses f selects, in id order, and the
// cursor of the next page ("" after the last). Status is computed at the
// service's now. It reads every license after the cursor until the page is
// full: about a second's tenth per 100,000 licenses on a laptop (see
// BenchmarkListByCustomer).
func (s *Service) List(ctx context.Context, f Filter) ([]License, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	needle := strings.ToLower(f.Customer)
	// The raw record is searched before it is decoded, when the needle is
	// written the same way in JSON (no quote, backslash, HTML-escaped or
	// control character), which skips decoding most records.
	rawNeedle := needle != "" && !strings.ContainsAny(needle, "\"\\<>&\u2028\u2029") && !hasControl(needle)
	now := s.now()
	var buf []byte
	out := []License{}
	next := ""
	var start []byte
	if f.Cursor != "" {
		start = []byte(licensePrefix + f.Cursor)
	}
	err := s.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte(licensePrefix), store.ScanOptions{After: start}, func(k, v []byte) (bool, error) {
			if rawNeedle {
				var found bool
				if found, buf = containsFold(v, needle, buf); !found {
					return true, nil
				}
			}
			var l License
			if err := decode(v, &l); err != nil {
				return false, fmt.Errorf("license %s: %w", k, err)
			}
			if f.Product != "" && !l.Covers(f.Product) ||
				needle != "" && !strings.Contains(strings.ToLower(l.Customer), needle) ||
				f.Status != "" && l.StatusAt(now) != f.Status ||
				!f.ExpiresBefore.IsZero() && (l.ExpiresAt == nil || !l.ExpiresAt.Before(f.ExpiresBefore)) {
				return true, nil
			}
			if len(out) == f.Limit {
				next = out[len(out)-1].ID
				return false, nil
			}
			out = append(out, l)
			return true, nil
		})
	})
	if err != nil {
		return nil, "", fmt.Errorf("licenses: list: %w", err)
	}
	return out, next, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// containsFold reports whether b, lower-cased, contains lower (already
// lower case). buf is scratch space, returned for the next call.
func containsFold(b []byte, lower string, buf []byte) (bool, []byte) {
	buf = buf[:0]
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 0x80 {
			return strings.Contains(strings.ToLower(string(b)), lower), buf
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return bytes.Contains(buf, []byte(lower)), buf
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
