package publishing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// expired is a waiting artifact found by Sweep, copied out of the read
// transaction.
type expired struct {
	product, version string
	artifact         releases.Artifact
}

// Sweep fails every waiting artifact whose upload URL expired more than
// Options.UploadGrace ago (Failure FailureExpired) and deletes its object or
// aborts its multipart upload. It returns how many artifacts it failed.
// Artifacts completed, deleted or declared again while it runs are left
// alone. It goes on after an error and returns all errors joined.
//
// Several replicas may sweep at once: each artifact is failed by one
// catalog transaction, and deleting storage twice is harmless.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.opts.UploadGrace)
	products, err := s.catalog.Products(ctx)
	if err != nil {
		return 0, fmt.Errorf("publishing: sweep: %w", err)
	}
	var found []expired
	var errs []error
	open := 0
	for _, p := range products {
		err := s.catalog.Each(ctx, p.Slug, func(r releases.Release) error {
			open += waiting(r)
			for _, a := range r.Artifacts {
				if isExpired(a, cutoff) {
					found = append(found, expired{p.Slug, r.Version, a})
				}
			}
			return nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("publishing: sweep %s: %w", p.Slug, err))
		}
	}

	// The count read; the failures below are then taken off as they
	// commit, like any other. A partial read leaves the count as it was.
	if len(errs) == 0 {
		s.openUploads.Store(int64(open))
	}
	n := 0
	for _, e := range found {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		changed := false
		_, err := s.updateArtifact(ctx, "artifact.failed", e.product, e.version, e.artifact.Filename, e.artifact.ObjectKey, func(cur *releases.Artifact) error {
			// The function may run again (a store may retry a
			// transaction): only its last run's verdict counts.
			changed = false
			if !isExpired(*cur, cutoff) {
				return nil
			}
			cur.Status = releases.Failed
			cur.Failure = FailureExpired
			cur.UploadID = ""
			cur.Signatures = nil
			changed = true
			return nil
		})
		if portal.IsCode(err, portal.EConflict) || portal.IsCode(err, portal.ENotFound) {
			// Deleted or declared again meanwhile: the caller that did it
			// cleaned up.
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("publishing: sweep %s %s %s: %w", e.product, e.version, e.artifact.Filename, err))
			continue
		}
		if changed {
			n++
			s.uploadClosed(1)
			s.cleanup(ctx, e.product, e.version, e.artifact)
		}
	}
	return n, errors.Join(errs...)
}

func isExpired(a releases.Artifact, cutoff time.Time) bool {
	return a.Status == releases.Waiting && a.UploadExpiresAt != nil && a.UploadExpiresAt.Before(cutoff)
}

// DefaultSweepInterval is Run's interval when given none.
const DefaultSweepInterval = time.Minute

// Run sweeps every interval (DefaultSweepInterval when not positive) until
// ctx is done, starting at once. Errors are logged; the next round tries
// again.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSweepInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.opts.Log.Error("publishing: sweep", "failed", n, "err", err)
		} else if n > 0 {
			s.opts.Log.Info("publishing: expired uploads failed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
