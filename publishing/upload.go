package publishing

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// Upload tells a publisher how to send an artifact's bytes, straight to
// object storage.
//
// Single PUT (Multipart false): send Method to URL with exactly Headers and
// the whole file as the body, before ExpiresAt. Headers holds the exact
// Content-Length (a Go client sets http.Request.ContentLength from it) and
// the file's SHA-256; the store refuses any other body.
//
// Multipart (Multipart true): split the file into parts of PartSize bytes
// (the last one shorter) and PUT part i (1-based, Parts[i-1]) with exactly
// its URL and headers, in any order and in parallel. A part may be PUT again
// to replace it. Then call complete. The store binds each part's length but
// not its content: the whole file is verified on complete.
type Upload struct {
	Method    string                  `json:"method,omitempty"`
	URL       string                  `json:"url,omitempty"`
	Headers   map[string]string       `json:"headers,omitempty"`
	ExpiresAt time.Time               `json:"expires_at"`
	Multipart bool                    `json:"multipart,omitempty"`
	PartSize  int64                   `json:"part_size,omitempty"`
	Parts     []objects.SignedRequest `json:"parts,omitempty"`
}

// AddArtifact declares a file on a draft release (releases.Service.AddArtifact
// validates the declaration) and returns the artifact, status waiting, with
// the instructions to upload it before it can be completed.
//
// Declaring a filename again replaces a waiting or failed artifact (a
// retried upload): the replaced artifact's object is deleted and its
// multipart upload aborted. A URL minted for the replaced artifact may still
// be used until it expires; whatever it stores is never part of the catalog.
//
// sparkleSignature is optional: a publisher-supplied Sparkle EdDSA signature
// (standard base64 of 64 bytes), checked for form only (the portal may not
// hold the key that made it, and it cannot verify a file it has not read).
// It is the artifact's "ed25519" signature only for a file larger than
// Options.SparkleMaxSize; smaller files are signed by the portal on
// complete, and the portal's signature replaces the supplied one. A larger
// file declared without one has no "ed25519" signature, so Sparkle feeds
// cannot offer it.
//
// An error after the artifact was recorded (minting the URLs) leaves it
// waiting; declaring it again retries, and the sweeper fails it otherwise.
func (s *Service) AddArtifact(ctx context.Context, product, version string, in releases.NewArtifact, sparkleSignature string) (releases.Artifact, Upload, error) {
	fail := func(err error) (releases.Artifact, Upload, error) {
		return releases.Artifact{}, Upload{}, fmt.Errorf("publishing: add %s to %s %s: %w", in.Filename, product, version, err)
	}
	var sparkle string
	if sparkleSignature != "" {
		sig, err := signing.ParseSparkleSignature(sparkleSignature)
		if err != nil {
			return fail(err)
		}
		sparkle = base64.StdEncoding.EncodeToString(sig)
	}
	ttl, err := objects.CapTTL(s.opts.UploadTTL, s.objects.MaxTTL())
	if err != nil {
		return fail(err)
	}
	mp, multipart := s.multipart()
	multipart = multipart && in.Size > s.opts.MultipartThreshold

	a, old, err := s.catalog.AddArtifact(ctx, product, version, in, s.now().Add(ttl))
	if err != nil {
		return fail(err)
	}
	if old == nil || old.Status != releases.Waiting {
		s.openUploads.Add(1)
	}
	if old != nil {
		s.cleanup(ctx, product, version, *old)
	}

	var uploadID string
	if multipart {
		if uploadID, err = mp.CreateMultipart(ctx, a.ObjectKey); err != nil {
			return fail(fmt.Errorf("start multipart upload: %w", err))
		}
	}
	if uploadID != "" || sparkle != "" {
		upd, err := s.updateArtifact(ctx, "artifact.update", product, version, a.Filename, a.ObjectKey, func(cur *releases.Artifact) error {
			cur.UploadID = uploadID
			if sparkle != "" {
				cur.Signatures = map[string]string{"ed25519": sparkle}
			}
			return nil
		})
		if err != nil {
			if uploadID != "" {
				// The artifact is gone or replaced: nobody will complete this upload.
				if aerr := mp.AbortMultipart(ctx, a.ObjectKey, uploadID); aerr != nil {
					s.opts.Log.Warn("publishing: abort multipart upload", "product", product, "version", version,
						"filename", in.Filename, "err", aerr)
				}
			}
			return fail(err)
		}
		a = upd
	}

	if !multipart {
		sr, err := s.objects.PresignPut(ctx, a.ObjectKey, a.Size, a.SHA256, ttl)
		if err != nil {
			return fail(fmt.Errorf("presign upload: %w", err))
		}
		return a, Upload{Method: sr.Method, URL: sr.URL, Headers: sr.Headers, ExpiresAt: sr.ExpiresAt}, nil
	}

	partSize := s.partSize(a.Size)
	n := (a.Size + partSize - 1) / partSize
	up := Upload{Multipart: true, PartSize: partSize, Parts: make([]objects.SignedRequest, 0, n)}
	for i := int64(0); i < n; i++ {
		size := min(partSize, a.Size-i*partSize)
		sr, err := mp.PresignPart(ctx, a.ObjectKey, uploadID, int32(i+1), size, ttl)
		if err != nil {
			return fail(fmt.Errorf("presign part %d: %w", i+1, err))
		}
		if i == 0 || sr.ExpiresAt.Before(up.ExpiresAt) {
			up.ExpiresAt = sr.ExpiresAt
		}
		up.Parts = append(up.Parts, sr)
	}
	return a, up, nil
}

// partSize is Options.PartSize, raised in whole MiB when size would need
// more than maxParts parts.
func (s *Service) partSize(size int64) int64 {
	ps := s.opts.PartSize
	if (size+ps-1)/ps > maxParts {
		const mib = 1 << 20
		ps = (size + maxParts - 1) / maxParts
		ps = (ps + mib - 1) / mib * mib
	}
	return ps
}

// errNotDeclared is the refusal for an unknown artifact.
func errNotDeclared(product, version, filename string) error {
	return portal.Errorf(portal.ENotFound, "%s %s has no artifact %q: declare it first", product, version, filename)
}
