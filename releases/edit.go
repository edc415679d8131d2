package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
)

// This file holds the catalog's day-two administration: editing and
// deleting products, editing, deleting and unyanking releases. Each call is
// one store transaction (DeleteProduct one per batch of drafts), validates
// its whole input before writing anything, and leaves the store unchanged
// when it refuses. None touches object storage: a deletion returns the
// artifacts whose objects the caller must delete once the call has
// returned. Every change is audited in its own transaction (see audit.go). The update index and the product cache learn of
// every change through the store watch; nothing here notifies them.

// ProductEdit is a partial change of a product: a nil field is left as it
// is.
type ProductEdit struct {
	// Name is the display name: 1 to 200 bytes of text without control
	// characters. Unlike on create, an empty name is refused rather than
	// defaulted to the slug, so a client that sends "" by mistake is told.
	Name *string
	// Distribution is Licensed or Open. Changing it takes effect on every
	// release of the product at once: Open lets anyone download every
	// published release, Licensed puts them all behind licenses again.
	Distribution *string
}

func (e ProductEdit) validate() error {
	if e.Name != nil {
		if *e.Name == "" {
			return portal.Errorf(portal.EInvalid, "name must not be empty")
		}
		if err := ValidateText("name", *e.Name, 200, false); err != nil {
			return err
		}
	}
	if e.Distribution != nil {
		switch *e.Distribution {
		case Licensed, Open:
		default:
			return portal.Errorf(portal.EInvalid, "distribution must be %q or %q", Licensed, Open)
		}
	}
	return nil
}

// EditProduct applies e to the product slug and returns the product before
// and after the change. Both carry the sealed signing key: pass them
// through Product.Public before they leave the server (the audit record
// holds the public form only). An edit that changes nothing writes nothing and returns
// before == after. Errors: EInvalid naming the field, ENotFound for an
// unknown product.
func (s *Service) EditProduct(ctx context.Context, slug string, e ProductEdit) (before, after Product, err error) {
	if err := e.validate(); err != nil {
		return Product{}, Product{}, fmt.Errorf("releases: edit product %s: %w", truncate(slug, 80), err)
	}
	defer s.products.Delete(slug)
	err = s.db.Update(ctx, func(tx store.Tx) error {
		before, after = Product{}, Product{}
		if err := getProduct(tx, slug, &before); err != nil {
			return err
		}
		after = before
		after.SigningKey = bytes.Clone(before.SigningKey)
		if e.Name != nil {
			after.Name = *e.Name
		}
		if e.Distribution != nil {
			after.Distribution = *e.Distribution
		}
		if after.Name == before.Name && after.Distribution == before.Distribution {
			return nil
		}
		if err := store.PutJSON(tx, productKey(slug), after); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "product.update", ProductTarget(slug), before.Public(), after.Public())
	})
	if err != nil {
		return Product{}, Product{}, fmt.Errorf("releases: edit product %s: %w", truncate(slug, 80), err)
	}
	return before, after, nil
}

// DeleteProduct deletes the product slug and every one of its releases,
// provided all of them are drafts: a product that has ever shipped (a
// published or yanked release) stays on record, and the refusal is an
// EConflict naming the release and its status. It returns the product as it
// was and the draft releases it deleted, with their artifacts' ObjectKey and
// UploadID: once DeleteProduct has returned, the caller aborts each
// multipart upload and deletes each object (object storage is never touched
// inside a transaction).
//
// Each deleted draft is audited as release.delete and the product as
// product.delete, in the transaction that deletes it. The drafts are
// deleted in transactions of at most db.MaxTxnOps() keys (a draft costs two:
// its record and its audit record), the last of which also deletes the
// product, so on etcd a product with more than about 62 drafts takes
// several transactions. Each one checks again
// that no release of the product is published or yanked. If one fails (a
// draft was published meanwhile, the store failed, ctx ended), the product
// and its remaining drafts are still there, and the error comes with the
// drafts already deleted: the caller must delete their objects just the
// same. A refusal found by the first transaction deletes nothing.
func (s *Service) DeleteProduct(ctx context.Context, slug string) (Product, []Release, error) {
	defer s.products.Delete(slug)
	// Each draft writes two keys (its deletion and its audit record); three
	// are kept for the product's deletion, its audit record and the audit
	// sequence.
	limit := (s.db.MaxTxnOps() - 3) / 2
	var gone []Release
	for {
		var (
			p     Product
			batch []Release
			done  bool
		)
		err := s.db.Update(ctx, func(tx store.Tx) error {
			p, batch, done = Product{}, nil, false
			if err := getProduct(tx, slug, &p); err != nil {
				return err
			}
			var keys [][]byte
			more := false
			err := tx.Scan(releaseKeyPrefix(slug), store.ScanOptions{}, func(k, v []byte) (bool, error) {
				var r Release
				if err := json.Unmarshal(v, &r); err != nil {
					return false, fmt.Errorf("releases: decode %s: %w", k, err)
				}
				if r.Status != Draft {
					return false, portal.Errorf(portal.EConflict,
						"product %s cannot be deleted: release %s is %s, and a product that has published or yanked releases stays on record (only a product with nothing but drafts can be deleted)",
						slug, r.Version, r.Status)
				}
				if len(keys) < limit {
					keys = append(keys, bytes.Clone(k))
					batch = append(batch, r)
				} else {
					more = true // keep scanning: a later release may be published
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for i, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
				r := batch[i]
				if err := audit.Write(ctx, tx, "release.delete", ReleaseTarget(slug, r.Version), r.Public(), nil); err != nil {
					return err
				}
			}
			if more {
				return nil
			}
			done = true
			if err := tx.Delete(productKey(slug)); err != nil {
				return err
			}
			return audit.Write(ctx, tx, "product.delete", ProductTarget(slug), p.Public(), nil)
		})
		if err != nil {
			return Product{}, gone, fmt.Errorf("releases: delete product %s: %w", truncate(slug, 80), err)
		}
		gone = append(gone, batch...)
		if done {
			if gone == nil {
				gone = []Release{}
			}
			return p, gone, nil
		}
	}
}

// ReleaseEdit is a partial change of a release: a nil field is left as it
// is.
type ReleaseEdit struct {
	// Notes replaces the release notes (multi-line text, at most MaxNotes
	// bytes); "" removes them.
	Notes *string
	// Metadata replaces the whole metadata map (see ValidateMetadata); an
	// empty map removes it.
	Metadata *map[string]string
	// Rollout is the percentage of licenses offered the release by update
	// checks, 1 to 100; 0 and 100 both mean everyone (stored as 0). A
	// change reaches the update index and the feeds through its store watch.
	Rollout *int
	// Channel moves a draft to another channel; the release must still be
	// a draft (a published release's channel is what clients were
	// offered), and a prerelease version cannot go to stable.
	Channel *string
}

// EditRelease applies e to the release ver of product slug (any spelling of
// the version) and returns the release before and after. Notes, metadata
// and rollout may change at any status; the channel only while the release
// is a draft. An edit that changes nothing writes nothing. Errors:
// EInvalid naming the field, ENotFound for an unknown product or version,
// EConflict for a channel change of a published or yanked release; on any
// error nothing is written.
func (s *Service) EditRelease(ctx context.Context, slug, ver string, e ReleaseEdit) (before, after Release, err error) {
	if e.Notes != nil {
		if err := ValidateText("notes", *e.Notes, MaxNotes, true); err != nil {
			return Release{}, Release{}, fmt.Errorf("releases: edit %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
		}
	}
	if e.Metadata != nil {
		if err := ValidateMetadata(*e.Metadata); err != nil {
			return Release{}, Release{}, fmt.Errorf("releases: edit %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
		}
	}
	if e.Rollout != nil {
		if err := ValidateRollout(*e.Rollout); err != nil {
			return Release{}, Release{}, fmt.Errorf("releases: edit %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
		}
	}
	var channel string
	if e.Channel != nil {
		ch, err := ParseChannel(*e.Channel)
		if err != nil {
			return Release{}, Release{}, fmt.Errorf("releases: edit %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
		}
		channel = ch
	}
	before, after, err = s.updateRelease(ctx, slug, ver, Change{Action: "release.update"}, func(r *Release) error {
		if e.Channel != nil && channel != r.Channel {
			if r.Status != Draft {
				return portal.Errorf(portal.EConflict, "channel of %s %s cannot change: the release is %s, and only a draft may move to another channel (publish a new version on %s instead)", slug, r.Version, r.Status, channel)
			}
			v, err := ParseVersion(r.Version)
			if err != nil {
				return err
			}
			if channel == "stable" && v.Prerelease() != "" {
				return portal.Errorf(portal.EInvalid, "channel: version %s is a prerelease and cannot be on the stable channel: choose rc, beta, alpha or dev", r.Version)
			}
			r.Channel = channel
		}
		if e.Notes != nil {
			r.Notes = *e.Notes
		}
		if e.Metadata != nil {
			r.Metadata = nil
			if len(*e.Metadata) > 0 {
				r.Metadata = make(map[string]string, len(*e.Metadata))
				for k, v := range *e.Metadata {
					r.Metadata[k] = v
				}
			}
		}
		if e.Rollout != nil {
			r.Rollout = *e.Rollout
			if r.Rollout == 100 {
				r.Rollout = 0
			}
		}
		return nil
	})
	if err != nil {
		return Release{}, Release{}, fmt.Errorf("releases: edit %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
	}
	return before, after, nil
}

// DeleteDraft deletes a draft release and returns it as it was, with its
// artifacts' ObjectKey and UploadID: once DeleteDraft has returned, the
// caller aborts each multipart upload and deletes each object. A published
// or yanked release is never deleted (EConflict naming its status): yank
// it instead.
func (s *Service) DeleteDraft(ctx context.Context, slug, ver string) (Release, error) {
	var r Release
	err := s.db.Update(ctx, func(tx store.Tx) error {
		r = Release{}
		key, raw, err := releaseRecord(tx, slug, ver)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("releases: decode %s: %w", key, err)
		}
		if r.Status != Draft {
			return portal.Errorf(portal.EConflict, "%s %s is %s: only a draft can be deleted (yank a published release instead)", slug, r.Version, r.Status)
		}
		if err := tx.Delete(key); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "release.delete", ReleaseTarget(slug, r.Version), r.Public(), nil)
	})
	if err != nil {
		return Release{}, fmt.Errorf("releases: delete %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
	}
	return r, nil
}

// Unyank publishes a yanked release again: it keeps its first PublishedAt
// and loses its YankedAt, and update checks offer it again once the update
// index has reloaded the product (its store watch does that). A release
// that is not yanked is an EConflict saying it was never yanked (a draft is
// published with Publish). It returns the release as stored.
func (s *Service) Unyank(ctx context.Context, slug, ver string) (Release, error) {
	_, after, err := s.updateRelease(ctx, slug, ver, Change{Action: "release.unyank"}, func(r *Release) error {
		if r.Status != Yanked {
			return portal.Errorf(portal.EConflict, "%s %s was never yanked: it is %s", slug, r.Version, r.Status)
		}
		r.Status, r.YankedAt = Published, nil
		if r.PublishedAt == nil {
			// Only a yanked release that was never published could lack
			// it, which Yank does not make; keep the invariant anyway.
			t := s.nowUTC()
			r.PublishedAt = &t
		}
		return nil
	})
	if err != nil {
		return Release{}, fmt.Errorf("releases: unyank %s %s: %w", truncate(slug, 80), truncate(ver, 80), err)
	}
	return after, nil
}

// releaseRecord returns the key and stored bytes of a release, with the
// errors getRelease gives.
func releaseRecord(tx store.Tx, slug, ver string) (key, raw []byte, err error) {
	var p Product
	if err := getProduct(tx, slug, &p); err != nil {
		return nil, nil, err
	}
	v, err := ParseVersion(ver)
	if err != nil {
		return nil, nil, portal.Errorf(portal.ENotFound, "%s has no version %q", slug, truncate(ver, 80))
	}
	key = releaseKey(slug, VersionKey(v))
	raw, err = tx.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, portal.Errorf(portal.ENotFound, "%s has no version %s", slug, truncate(ver, 80))
	}
	return key, raw, err
}

// updateRelease is Update that also returns the release as it was, and
// writes nothing, not even an audit record, when fn leaves the stored
// encoding unchanged (so a no-op edit wakes no watcher and changes no
// feed's ETag). fn follows Update's rules: it may run more than once, each
// time on a fresh copy.
func (s *Service) updateRelease(ctx context.Context, slug, ver string, ch Change, fn func(*Release) error) (before, after Release, err error) {
	err = s.db.Update(ctx, func(tx store.Tx) error {
		before, after = Release{}, Release{}
		key, raw, err := releaseRecord(tx, slug, ver)
		if err != nil {
			return err
		}
		// Two decodes make after a deep copy that fn may change freely.
		if err := json.Unmarshal(raw, &before); err != nil {
			return fmt.Errorf("releases: decode %s: %w", key, err)
		}
		if err := json.Unmarshal(raw, &after); err != nil {
			return fmt.Errorf("releases: decode %s: %w", key, err)
		}
		if err := fn(&after); err != nil {
			return err
		}
		if after.Version != before.Version || after.Product != before.Product {
			return fmt.Errorf("releases: an update may not change the product or version of %s %s", slug, before.Version)
		}
		b, err := json.Marshal(after)
		if err != nil {
			return fmt.Errorf("releases: encode %s: %w", key, err)
		}
		if bytes.Equal(b, raw) {
			return nil
		}
		if err := tx.Put(key, b); err != nil {
			return err
		}
		return writeChange(ctx, tx, slug, ch, &before, &after)
	})
	return before, after, err
}

// writeChange records ch, a change of a release from before to after, in
// the audit log.
func writeChange(ctx context.Context, tx store.Tx, slug string, ch Change, before, after *Release) error {
	if ch.Filename == "" {
		return audit.Write(ctx, tx, ch.Action, ReleaseTarget(slug, after.Version), before.Public(), after.Public())
	}
	// An untyped nil says "no artifact" (created or deleted).
	var b, a any
	if x, ok := before.Artifact(ch.Filename); ok {
		b = x.Public()
	}
	if x, ok := after.Artifact(ch.Filename); ok {
		a = x.Public()
	}
	return audit.Write(ctx, tx, ch.Action, ArtifactTarget(slug, after.Version, ch.Filename), b, a)
}
