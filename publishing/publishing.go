// Package publishing is the publisher's side of the portal, without HTTP:
// declaring an artifact mints upload instructions (one presigned PUT, or
// presigned parts of a multipart upload); completing it reads the object
// back once, checks its size and SHA-256 against the declaration, and signs
// it with the product's key; a sweeper fails uploads that were never
// completed.
//
// The catalog (package releases) is the source of truth. The service never
// holds a store transaction during object-storage I/O or signing: it reads
// the release, does the I/O, and then updates the catalog only if the
// artifact is still the one it started with (same object key). Where the
// catalog and object storage must both change, the catalog changes first,
// so an artifact is never "uploaded" without its object; a failed storage
// clean-up leaves at worst an orphaned object, which is logged.
package publishing

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// KeySource gives a product's signing keys (its current KeySet). The server
// implements it by opening the sealed keys stored on the product. It is
// called once per verification, before the object is read back.
type KeySource interface {
	SigningKeys(ctx context.Context, product string) (*signing.KeySet, error)
}

// Defaults for Options.
const (
	DefaultUploadTTL          = time.Hour
	DefaultMultipartThreshold = 64 << 20
	DefaultPartSize           = 64 << 20
	DefaultSparkleMaxSize     = objects.MaxObjectSize
	DefaultUploadGrace        = 5 * time.Minute
	// DefaultMaxConcurrentCompletes is how many Completes read objects
	// back at once by default.
	DefaultMaxConcurrentCompletes = 2
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10000
)

// Options tune a Service. Zero values take the defaults.
type Options struct {
	// UploadTTL is the life of presigned upload URLs (default 1h), capped by
	// the object store's MaxTTL.
	UploadTTL time.Duration
	// MultipartThreshold: files larger than this use a multipart upload on
	// backends implementing objects.Multipart (default 64 MiB). Other
	// backends always get a single PUT.
	MultipartThreshold int64
	// PartSize of multipart uploads (default 64 MiB, at least 5 MiB). It is
	// raised, in whole MiB, when a file would need more than 10000 parts.
	PartSize int64
	// SparkleMaxSize: files up to this size get a Sparkle (Ed25519)
	// signature made by the portal (default objects.MaxObjectSize, every
	// file). The signature streams, so memory does not depend on it; it
	// costs a second read of the object. Larger files carry only the
	// signature the publisher supplied at declaration, or none.
	SparkleMaxSize int64
	// MaxConcurrentCompletes bounds the Completes that read objects back
	// at the same time (default 2); the others wait for a slot, or until
	// their context ends. Each holds about 1 MiB of buffers.
	MaxConcurrentCompletes int
	// UploadGrace is how long after an artifact's UploadExpiresAt the
	// sweeper waits before failing it (default 5 min): a PUT that started
	// just before its URL expired may still be running, and the store signs
	// the URL with its own clock a moment after the catalog records the
	// expiry.
	UploadGrace time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Log receives storage clean-up failures (default slog.Default()).
	Log *slog.Logger
}

// Service is the publisher side. It is safe for concurrent use.
type Service struct {
	catalog *releases.Service
	objects objects.ObjectStore
	keys    KeySource
	opts    Options
	flights flights // one verification per artifact at a time
	slots   *slots  // at most MaxConcurrentCompletes reading objects
	// openUploads is OpenUploads: set by each Sweep from the catalog,
	// moved in between by this Service's own declarations, completes,
	// failures and deletions.
	openUploads atomic.Int64
}

// OpenUploads is the number of artifacts waiting for their upload (status
// waiting), for metrics. It is cheap: no store access. It is recounted
// from the catalog by every Sweep (so it includes other replicas' uploads
// and those that ended in ways this Service did not see), and between
// sweeps it follows this Service's own declarations, completes, failures
// and deletions at once. Another replica's changes show at the next sweep;
// a change made while a sweep reads the catalog may be off by one until
// the next. Without a sweep it counts only this Service's changes since
// New.
func (s *Service) OpenUploads() int {
	return int(max(s.openUploads.Load(), 0))
}

// uploadClosed notes that n waiting artifacts left the waiting state.
func (s *Service) uploadClosed(n int) {
	if n > 0 {
		s.openUploads.Add(-int64(n))
	}
}

// waiting counts the waiting artifacts of rs.
func waiting(rs ...releases.Release) int {
	n := 0
	for _, r := range rs {
		for _, a := range r.Artifacts {
			if a.Status == releases.Waiting {
				n++
			}
		}
	}
	return n
}

// New returns a Service. It panics on a PartSize below objects.MinPartSize,
// a configuration error.
func New(catalog *releases.Service, objs objects.ObjectStore, keys KeySource, opts Options) *Service {
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = DefaultUploadTTL
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = DefaultMultipartThreshold
	}
	if opts.PartSize == 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < objects.MinPartSize {
		panic(fmt.Sprintf("publishing: PartSize %d is below the 5 MiB minimum", opts.PartSize))
	}
	if opts.SparkleMaxSize == 0 {
		opts.SparkleMaxSize = DefaultSparkleMaxSize
	}
	if opts.MaxConcurrentCompletes <= 0 {
		opts.MaxConcurrentCompletes = DefaultMaxConcurrentCompletes
	}
	if opts.UploadGrace <= 0 {
		opts.UploadGrace = DefaultUploadGrace
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Service{catalog: catalog, objects: objs, keys: keys, opts: opts, slots: newSlots(opts.MaxConcurrentCompletes)}
}

func (s *Service) now() time.Time { return s.opts.Now().UTC() }

// multipart returns the store's multipart side, if it has one.
func (s *Service) multipart() (objects.Multipart, bool) {
	mp, ok := s.objects.(objects.Multipart)
	return mp, ok
}

// cleanup removes what storage holds for an artifact that the catalog no
// longer wants: it aborts a multipart upload in progress and deletes the
// object. Failures are logged, not returned: the catalog change that made
// the object unwanted has already committed, and the caller's request
// succeeded.
func (s *Service) cleanup(ctx context.Context, product, version string, a releases.Artifact) {
	if a.ObjectKey == "" {
		return
	}
	if a.UploadID != "" {
		if mp, ok := s.multipart(); ok {
			if err := mp.AbortMultipart(ctx, a.ObjectKey, a.UploadID); err != nil {
				s.opts.Log.Warn("publishing: abort multipart upload", "product", product, "version", version,
					"filename", a.Filename, "key", a.ObjectKey, "err", err)
			}
		}
	}
	if err := s.objects.Delete(ctx, a.ObjectKey); err != nil {
		s.opts.Log.Warn("publishing: delete object", "product", product, "version", version,
			"filename", a.Filename, "key", a.ObjectKey, "err", err)
	}
}

// updateArtifact applies fn to the artifact filename of a release in one
// catalog transaction, provided it still has object key key; otherwise the
// artifact was deleted or declared again meanwhile, which is a conflict.
// The change is audited as action (artifact.uploaded, artifact.failed, or
// artifact.update for the steps between), in the same transaction.
func (s *Service) updateArtifact(ctx context.Context, action, product, version, filename, key string, fn func(*releases.Artifact) error) (releases.Artifact, error) {
	return s.updateArtifactIn(ctx, action, product, version, filename, key, func(_ *releases.Release, a *releases.Artifact) error { return fn(a) })
}

// updateArtifactIn is updateArtifact for a change that also reads the rest
// of the release (fn must change only the artifact).
func (s *Service) updateArtifactIn(ctx context.Context, action, product, version, filename, key string, fn func(*releases.Release, *releases.Artifact) error) (releases.Artifact, error) {
	var out releases.Artifact
	_, err := s.catalog.Update(ctx, product, version, releases.Change{Action: action, Filename: filename}, func(r *releases.Release) error {
		a, ok := r.Artifact(filename)
		if !ok || a.ObjectKey != key {
			return portal.Errorf(portal.EConflict, "%s of %s %s was deleted or declared again meanwhile: look at the release and retry", filename, product, version)
		}
		if err := fn(r, a); err != nil {
			return err
		}
		out = *a
		return nil
	})
	return out, err
}

// DeleteArtifact removes an artifact from a draft release, then its object
// (aborting a multipart upload in progress). A storage failure after the
// catalog change is logged, not returned.
func (s *Service) DeleteArtifact(ctx context.Context, product, version, filename string) error {
	a, err := s.catalog.DeleteArtifact(ctx, product, version, filename)
	if err != nil {
		return fmt.Errorf("publishing: delete %s of %s %s: %w", filename, product, version, err)
	}
	if a.Status == releases.Waiting {
		s.uploadClosed(1)
	}
	s.cleanup(ctx, product, version, a)
	return nil
}

// DeleteDraft deletes a draft release (releases.Service.DeleteDraft, which
// refuses any other), then the objects of its artifacts, aborting their
// multipart uploads in progress. It returns the release as it was. The
// objects are deleted even when ctx ends after the catalog change (the
// request that asked for it may be gone): a failure is logged, not
// returned, and leaves at worst an orphaned object.
func (s *Service) DeleteDraft(ctx context.Context, product, version string) (releases.Release, error) {
	r, err := s.catalog.DeleteDraft(ctx, product, version)
	if err != nil {
		return releases.Release{}, fmt.Errorf("publishing: %w", err)
	}
	s.uploadClosed(waiting(r))
	s.cleanupRelease(context.WithoutCancel(ctx), r)
	return r, nil
}

// DeleteProduct deletes a product that has nothing but drafts
// (releases.Service.DeleteProduct), then the objects of every draft it
// deleted, aborting their multipart uploads. It returns the product as it
// was. When the catalog change fails part way, the drafts already deleted
// still have their objects deleted, and the error is returned.
func (s *Service) DeleteProduct(ctx context.Context, product string) (releases.Product, error) {
	p, gone, err := s.catalog.DeleteProduct(ctx, product)
	s.uploadClosed(waiting(gone...))
	bg := context.WithoutCancel(ctx)
	for _, r := range gone {
		s.cleanupRelease(bg, r)
	}
	if err != nil {
		return releases.Product{}, fmt.Errorf("publishing: %w", err)
	}
	return p, nil
}

func (s *Service) cleanupRelease(ctx context.Context, r releases.Release) {
	for _, a := range r.Artifacts {
		s.cleanup(ctx, r.Product, r.Version, a)
	}
}
