package publishing

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// Failure texts stored on failed artifacts.
const (
	FailureExpired = "upload URL expired before the upload was completed"
)

// Complete verifies an uploaded artifact and makes it "uploaded".
//
// For a multipart upload it first asks the store to assemble the parts
// (nothing uploaded yet, or the store refusing the parts, is a conflict and
// the artifact stays waiting). The store assembles whatever parts it has, so
// completing before every part is uploaded produces a short object that
// fails verification. Then it reads the object back once, never trusting
// the store's own size or hash, and checks size and SHA-256 against the
// declaration.
//
// On a match the artifact gets its SHA-512 (base64) and signatures:
// "ed25519" (Sparkle, by the product's Sparkle key: the portal's own for
// files up to Options.SparkleMaxSize, otherwise the publisher-supplied one,
// if any; a product that still has one shared key for both schemes gets no
// portal Sparkle signature for files of at most
// signing.SharedKeyMaxMessage bytes, see signing.KeySet) and "minisign" (the
// .minisig text of a prehashed signature, by the product's minisign key,
// whose trusted comment names the file).
//
// A system package (.deb; .rpm where a reader is registered, see package
// pkgmeta) is read in the same pass: its metadata goes on the artifact
// (Artifact.Package, for the package repositories). A file that is no valid
// package of its kind, or whose version (after epoch and revision rules)
// or architecture is not the release's and the declared one, fails like a
// mismatch: 422 (EUnprocessable) saying why, with both values in Details.
//
// On a mismatch the artifact becomes failed, its object is deleted, and the
// error is a *portal.Error with code portal.EUnprocessable whose Details hold
// "expected" and "actual" ({"size", "sha256"}) and "artifact" (public
// fields). The publisher must declare the file again to retry.
//
// Errors: nothing uploaded yet, or an unfinished multipart upload, is
// portal.EConflict and the artifact stays waiting; so is an artifact that was
// declared again or deleted while it was being read. Completing an uploaded
// artifact returns it unchanged without reading it again; completing a
// failed one is a conflict.
//
// Resources: the object is read in two streaming passes (hashes, then the
// second half of the Sparkle signature; see signing.SparkleStream), in
// about 1 MiB of memory whatever its size. At most
// Options.MaxConcurrentCompletes calls read objects at once; the others
// wait for a slot or until ctx ends. Concurrent calls for the same artifact
// share one verification: the later ones wait for the first one's result,
// which they all return; it is abandoned only when every caller's ctx has
// ended.
func (s *Service) Complete(ctx context.Context, product, version, filename string) (releases.Artifact, error) {
	key := product + "\x00" + version + "\x00" + filename
	a, err := s.flights.do(ctx, key, func(ctx context.Context) (releases.Artifact, error) {
		return s.complete(ctx, product, version, filename)
	})
	if err != nil {
		return releases.Artifact{}, fmt.Errorf("publishing: complete %s of %s %s: %w", filename, product, version, err)
	}
	return a, nil
}

func (s *Service) complete(ctx context.Context, product, version, filename string) (releases.Artifact, error) {
	r, err := s.catalog.Release(ctx, product, version)
	if err != nil {
		return releases.Artifact{}, err
	}
	ap, ok := r.Artifact(filename)
	if !ok {
		return releases.Artifact{}, errNotDeclared(product, version, filename)
	}
	a := *ap
	switch a.Status {
	case releases.Uploaded:
		return a, nil
	case releases.Failed:
		return releases.Artifact{}, portal.Errorf(portal.EConflict, "%s failed (%s): declare it again to get a new upload URL", filename, a.Failure)
	}

	if a.UploadID != "" {
		if a, err = s.completeMultipart(ctx, product, version, a); err != nil {
			return releases.Artifact{}, err
		}
	}

	info, err := s.objects.Stat(ctx, a.ObjectKey)
	if portal.IsCode(err, portal.ENotFound) {
		return releases.Artifact{}, portal.Errorf(portal.EConflict, "nothing uploaded yet for %s: PUT the file to the upload URL first", filename)
	}
	if err != nil {
		return releases.Artifact{}, fmt.Errorf("stat object: %w", err)
	}
	if info.Size != a.Size {
		// It can never match; reading an object of arbitrary size would be
		// wasted work. The store's hash, when it keeps one, is reported as is.
		return s.mismatch(ctx, product, version, a, info.Size, info.SHA256)
	}

	keys, err := s.keys.SigningKeys(ctx, product)
	if err != nil {
		// Whatever the key source says (not found, cannot unseal), it is the
		// server's problem, not the publisher's.
		return releases.Artifact{}, &portal.Error{Code: portal.EInternal, Message: "the product's signing key is unavailable", Err: err}
	}

	if err := s.slots.acquire(ctx); err != nil {
		return releases.Artifact{}, err
	}
	var sparkle *signing.SparkleStream
	if a.Size <= s.opts.SparkleMaxSize && keys.SparkleSigns(a.Size) {
		if sparkle, err = keys.Sparkle.SparkleStream(); err != nil {
			s.slots.release()
			return releases.Artifact{}, &portal.Error{Code: portal.EInternal, Message: "the product's signing key is unavailable", Err: err}
		}
	}
	// A system package (.deb, .rpm) is read in the same pass: its first
	// bytes (where the metadata lives) are kept, and MD5 and SHA-1 computed.
	capture := pkgmeta.NewCapture(a.Filename, a.Size)
	sum, sparkleSig, err := s.readBack(ctx, a, sparkle, capture)
	s.slots.release()
	if err != nil {
		return releases.Artifact{}, err
	}
	if sum.Size != a.Size || sum.SHA256Hex() != a.SHA256 {
		return s.mismatch(ctx, product, version, a, sum.Size, sum.SHA256Hex())
	}
	var pkg *releases.Package
	if capture != nil {
		p, err := capture.Package(sum.Size)
		if err == nil {
			err = pkgmeta.CheckRelease(p, r.Version, a.Platform, a.Arch)
		}
		if err != nil {
			return s.refusePackage(ctx, product, version, a, err)
		}
		pkg = &p
	}

	now := s.now()
	sigs := map[string]string{}
	if sparkleSig != "" {
		sigs["ed25519"] = sparkleSig
	} else if sig := a.Signatures["ed25519"]; sig != "" {
		sigs["ed25519"] = sig
	}
	minisig, err := keys.Minisign.MinisignSign(sum.BLAKE2b512, signing.TrustedComment(now, filename))
	if err != nil {
		return releases.Artifact{}, fmt.Errorf("minisign: %w", err)
	}
	sigs["minisign"] = string(minisig)

	opened := false
	out, err := s.updateArtifactIn(ctx, "artifact.uploaded", product, version, filename, a.ObjectKey, func(rel *releases.Release, cur *releases.Artifact) error {
		opened = cur.Status == releases.Waiting
		switch cur.Status {
		case releases.Uploaded:
			return nil // a concurrent Complete verified the same object
		case releases.Failed:
			return portal.Errorf(portal.EConflict, "%s failed meanwhile (%s): declare it again to get a new upload URL", filename, cur.Failure)
		}
		if pkg != nil {
			if err := packageBudget(rel, filename, pkg); err != nil {
				return err
			}
		}
		cur.Status = releases.Uploaded
		cur.UploadedAt = &now
		cur.UploadExpiresAt = nil
		cur.UploadID = ""
		cur.Failure = ""
		cur.SHA512 = sum.SHA512Base64()
		cur.Signatures = sigs
		cur.Package = pkg
		return nil
	})
	if err == nil && opened {
		s.uploadClosed(1)
	}
	return out, err
}

// completeMultipart assembles a multipart upload and clears the artifact's
// UploadID. An upload the store no longer knows, with the object present,
// was assembled by an earlier call that failed before updating the catalog.
func (s *Service) completeMultipart(ctx context.Context, product, version string, a releases.Artifact) (releases.Artifact, error) {
	mp, ok := s.multipart()
	if !ok {
		return a, fmt.Errorf("artifact has a multipart upload but the object store has no multipart support")
	}
	if err := mp.CompleteMultipart(ctx, a.ObjectKey, a.UploadID); err != nil {
		done := false
		if portal.IsCode(err, portal.ENotFound) {
			_, serr := s.objects.Stat(ctx, a.ObjectKey)
			done = serr == nil
		}
		if !done {
			msg := "the object store could not assemble the parts (is a part other than the last shorter than the part size?): PUT every part to its URL, then complete again"
			if portal.IsCode(err, portal.EInvalid) {
				msg = "no part has been uploaded yet: PUT every part to its URL, then complete again"
			}
			return a, &portal.Error{Code: portal.EConflict, Message: "upload not complete: " + msg, Err: err}
		}
	}
	return s.updateArtifact(ctx, "artifact.update", product, version, a.Filename, a.ObjectKey, func(cur *releases.Artifact) error {
		cur.UploadID = ""
		return nil
	})
}

// readBack reads the object: pass 1 through a Digester (and the first pass
// of sparkle, and capture, when not nil); then, if the size and SHA-256 match the
// declaration and sparkle is not nil, pass 2 for the Sparkle signature,
// which it returns in base64. Each pass reads at most one byte more than
// declared, so a store serving more than it claims is caught without
// reading all of it. An object that changes between the passes is a
// conflict (the artifact stays waiting; completing again retries).
func (s *Service) readBack(ctx context.Context, a releases.Artifact, sparkle *signing.SparkleStream, capture *pkgmeta.Capture) (signing.Digests, string, error) {
	d := signing.NewDigester(-1)
	if sparkle != nil {
		d.Also(sparkle.Pass1())
	}
	var w io.Writer = d
	if capture != nil {
		w = io.MultiWriter(d, capture)
	}
	if _, err := s.readObject(ctx, a, w); err != nil {
		return signing.Digests{}, "", err
	}
	sum := d.Sum()
	if sparkle == nil || sum.Size != a.Size || sum.SHA256Hex() != a.SHA256 {
		return sum, "", nil
	}
	n, err := s.readObject(ctx, a, sparkle.Pass2())
	if err != nil {
		return signing.Digests{}, "", err
	}
	sig, err := sparkle.SumBase64()
	if n != a.Size || err != nil {
		return signing.Digests{}, "", &portal.Error{Code: portal.EConflict,
			Message: "the uploaded file changed while it was being verified: complete again", Err: err}
	}
	return sum, sig, nil
}

// readObject copies the object, at most one byte more than declared, to w.
func (s *Service) readObject(ctx context.Context, a releases.Artifact, w io.Writer) (int64, error) {
	rc, err := s.objects.Open(ctx, a.ObjectKey)
	if portal.IsCode(err, portal.ENotFound) {
		return 0, portal.Errorf(portal.EConflict, "nothing uploaded yet for %s: PUT the file to the upload URL first", a.Filename)
	}
	if err != nil {
		return 0, fmt.Errorf("open object: %w", err)
	}
	defer rc.Close()
	// A larger buffer than io.Copy's 32 KiB: fewer reads and, on S3, fewer
	// round trips of the response body.
	buf := make([]byte, 256<<10)
	n, err := io.CopyBuffer(onlyWriter{w}, io.LimitReader(ctxReader{ctx, rc}, a.Size+1), buf)
	if err != nil {
		return n, fmt.Errorf("read object back: %w", err)
	}
	return n, nil
}

// onlyWriter hides a ReaderFrom, so CopyBuffer uses the buffer.
type onlyWriter struct{ io.Writer }

// ctxReader stops a long read once ctx ends (every caller gave up).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// mismatch fails the artifact (catalog first, then the object) and returns
// the 422 error describing the difference.
func (s *Service) mismatch(ctx context.Context, product, version string, a releases.Artifact, size int64, sha256 string) (releases.Artifact, error) {
	failure := fmt.Sprintf("uploaded file does not match the declaration: %d bytes, sha256 %s; declared %d bytes, sha256 %s",
		size, orUnknown(sha256), a.Size, a.SHA256)
	failed, err := s.fail(ctx, product, version, a, failure)
	if err != nil {
		return releases.Artifact{}, err
	}
	actual := map[string]any{"size": size}
	if sha256 != "" {
		actual["sha256"] = sha256
	}
	return releases.Artifact{}, &portal.Error{
		Code:    portal.EUnprocessable,
		Message: fmt.Sprintf("%s does not match its declaration (size or SHA-256 differ); the upload was deleted: declare the file again and upload the right bytes", a.Filename),
		Details: map[string]any{
			"expected": map[string]any{"size": a.Size, "sha256": a.SHA256},
			"actual":   actual,
			"artifact": failed.Public(),
		},
	}
}

// fail marks the artifact failed with failure in the catalog (unless it
// was verified meanwhile: EConflict), then deletes its object; it returns
// the failed artifact.
func (s *Service) fail(ctx context.Context, product, version string, a releases.Artifact, failure string) (releases.Artifact, error) {
	opened := false
	failed, err := s.updateArtifact(ctx, "artifact.failed", product, version, a.Filename, a.ObjectKey, func(cur *releases.Artifact) error {
		opened = cur.Status == releases.Waiting
		if cur.Status == releases.Uploaded {
			return portal.Errorf(portal.EConflict, "%s was verified meanwhile", a.Filename)
		}
		cur.Status = releases.Failed
		cur.Failure = failure
		cur.UploadID = ""
		cur.Signatures = nil // a supplied signature goes with the declaration
		return nil
	})
	if err != nil {
		return releases.Artifact{}, err
	}
	if opened {
		s.uploadClosed(1)
	}
	s.cleanup(ctx, product, version, a)
	return failed, nil
}

// refusePackage fails an artifact whose bytes are the declared ones but
// which is no valid package of its kind, or a package that does not belong
// to the release (another version, another architecture): like mismatch,
// the catalog first, then the object; the error is why (EUnprocessable,
// with its Details and the failed artifact).
func (s *Service) refusePackage(ctx context.Context, product, version string, a releases.Artifact, why error) (releases.Artifact, error) {
	var pe *portal.Error
	if !errors.As(why, &pe) || pe.Code != portal.EUnprocessable {
		return releases.Artifact{}, why
	}
	failure := truncateFailure(pe.Message)
	failed, err := s.fail(ctx, product, version, a, failure)
	if err != nil {
		return releases.Artifact{}, err
	}
	details := map[string]any{"artifact": failed.Public()}
	for k, v := range pe.Details {
		details[k] = v
	}
	return releases.Artifact{}, &portal.Error{Code: portal.EUnprocessable,
		Message: a.Filename + ": " + pe.Message + "; the upload was deleted: declare the file again and upload a fixed package",
		Details: details}
}

// MaxReleasePackageMetadata bounds the package metadata (control fields,
// RPM headers) the artifacts of one release hold together: it lives on the
// release record, which the store keeps within store.MaxValueSize (1 MiB)
// along with everything else.
const MaxReleasePackageMetadata = 640 << 10

func packageSize(p *releases.Package) int {
	if p == nil {
		return 0
	}
	return len(p.Control) + len(p.Meta) + len(p.Name) + len(p.Version) + len(p.Arch) + len(p.MD5) + len(p.SHA1) + 64
}

// packageBudget refuses (422) a package whose metadata would take the
// release's past MaxReleasePackageMetadata. The artifact stays waiting: the
// file is fine, the release is full.
func packageBudget(r *releases.Release, filename string, p *releases.Package) error {
	total := packageSize(p)
	for i := range r.Artifacts {
		if r.Artifacts[i].Filename != filename {
			total += packageSize(r.Artifacts[i].Package)
		}
	}
	if total > MaxReleasePackageMetadata {
		return portal.Errorf(portal.EUnprocessable, "the packages of %s %s would hold %d bytes of metadata, more than the %d a release keeps: publish some of them in another release", r.Product, r.Version, total, MaxReleasePackageMetadata)
	}
	return nil
}

func truncateFailure(s string) string {
	if len(s) > 500 {
		return s[:500] + "..."
	}
	return s
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
