package releases

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/memo"
	"github.com/portaldist/portal/store"
)

// Key layout in the store, all under KeyPrefix ("rel/"):
//
//	rel/p/<slug>                    product
//	rel/r/<slug>/<VersionKey>       release, with its artifacts
//
// Slugs contain no "/", so one product's prefix never covers another's.
const (
	productPrefix = "rel/p/"
	releasePrefix = "rel/r/"
)

// KeyPrefix is the prefix of every key the catalog writes. Code that keeps
// a copy of the catalog in memory watches it (see Service.Watch) and maps
// each changed key to its product with ProductOfKey.
const KeyPrefix = "rel/"

// ProductOfKey returns the slug of the product that a catalog key belongs
// to: the product record itself or one of its releases. ok is false for a
// key outside the catalog's layout.
func ProductOfKey(key []byte) (slug string, ok bool) {
	k := string(key)
	switch {
	case strings.HasPrefix(k, productPrefix):
		slug = k[len(productPrefix):]
		ok = slug != "" && !strings.Contains(slug, "/")
	case strings.HasPrefix(k, releasePrefix):
		slug, _, ok = strings.Cut(k[len(releasePrefix):], "/")
		ok = ok && slug != ""
	}
	if !ok {
		return "", false
	}
	return slug, true
}

func productKey(slug string) []byte { return []byte(productPrefix + slug) }

func releaseKeyPrefix(slug string) []byte { return []byte(releasePrefix + slug + "/") }

func releaseKey(slug string, vkey []byte) []byte {
	return append(releaseKeyPrefix(slug), vkey...)
}

// Limits on release fields.
const (
	MaxNotes         = 64 << 10
	MaxMetadataKeys  = 32
	MaxMetadataKey   = 64
	MaxMetadataValue = 1024
	MaxArtifacts     = 64
	MaxListLimit     = 200
	DefaultListLimit = 50
)

// Service is the catalog. It is safe for concurrent use; each method is one
// store transaction.
type Service struct {
	db  store.DB
	now func() time.Time

	// products keeps decoded products in memory: every download and update
	// check reads one. A write through this Service drops the entry before
	// the call returns (read-your-write). Every other write, by another
	// Service on the same store or by another replica, reaches the cache
	// through a store watch of the product keys that New starts: the entry
	// is dropped when the watch delivers the change (bbolt: just after the
	// commit; etcd: the watch's latency), and everything is dropped on a
	// store.EventReset. ProductCacheTTL bounds the staleness whatever the
	// watch does: while it is not running (Watch failed in New) or lags.
	products *memo.Cache[string, Product]
}

// ProductCacheTTL bounds how long Product may serve a cached copy.
const ProductCacheTTL = 2 * time.Second

// New returns a catalog on db. now may be nil (time.Now).
//
// New starts a watch of db for the product cache, with a goroutine that
// runs until db is closed. If db refuses the watch, the cache relies on
// ProductCacheTTL alone.
func New(db store.DB, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{db: db, now: now, products: memo.New[string, Product](ProductCacheTTL, 10_000)}
	if ch, err := db.Watch(context.Background(), []byte(productPrefix)); err == nil {
		go s.products.Follow(ch, ProductOfKey)
	}
	return s
}

// Watch reports every committed change to the catalog's records, as
// db.Watch(ctx, KeyPrefix) does (see store.DB.Watch for ordering, resets
// and the channel's lifetime). Map an event's key to its product with
// ProductOfKey. The update index follows the catalog this way, so it sees
// changes made by any Service and any replica on the same store.
func (s *Service) Watch(ctx context.Context) (<-chan store.Event, error) {
	return s.db.Watch(ctx, []byte(KeyPrefix))
}

func (s *Service) nowUTC() time.Time { return s.now().UTC().Truncate(time.Second) }

// CreateProduct adds a product. The slug must be new.
func (s *Service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	if err := ValidateSlug(p.Slug); err != nil {
		return Product{}, err
	}
	if p.Name == "" {
		p.Name = p.Slug
	}
	if err := ValidateText("name", p.Name, 200, false); err != nil {
		return Product{}, err
	}
	switch p.Distribution {
	case "":
		p.Distribution = Licensed
	case Licensed, Open:
	default:
		return Product{}, portal.Errorf(portal.EInvalid, "distribution must be %q or %q", Licensed, Open)
	}
	p.CreatedAt = s.nowUTC()
	err := s.db.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(productKey(p.Slug)); err == nil {
			return portal.Errorf(portal.EConflict, "product %q already exists", p.Slug)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := store.PutJSON(tx, productKey(p.Slug), p); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "product.create", ProductTarget(p.Slug), nil, p.Public())
	})
	s.products.Delete(p.Slug)
	if err != nil {
		return Product{}, fmt.Errorf("releases: create product %s: %w", p.Slug, err)
	}
	return p, nil
}

// Product returns the product with the slug.
// The returned Product shares its SigningKey bytes with the cache: read
// them, never modify them.
func (s *Service) Product(ctx context.Context, slug string) (Product, error) {
	if p, ok := s.products.Get(slug); ok {
		return p, nil
	}
	gen := s.products.Gen()
	var p Product
	err := s.db.View(ctx, func(tx store.Tx) error { return getProduct(tx, slug, &p) })
	if err != nil {
		return p, err
	}
	s.products.PutIf(slug, p, gen)
	return p, nil
}

func getProduct(tx store.Tx, slug string, p *Product) error {
	if ValidateSlug(slug) != nil {
		return portal.Errorf(portal.ENotFound, "no product %q", truncate(slug, 80))
	}
	err := store.GetJSON(tx, productKey(slug), p)
	if errors.Is(err, store.ErrNotFound) {
		return portal.Errorf(portal.ENotFound, "no product %q", slug)
	}
	return err
}

// SetSigningKey stores the product's sealed signing key.
func (s *Service) SetSigningKey(ctx context.Context, slug string, sealed []byte) error {
	defer s.products.Delete(slug)
	return s.db.Update(ctx, func(tx store.Tx) error {
		var p Product
		if err := getProduct(tx, slug, &p); err != nil {
			return err
		}
		p.SigningKey = sealed
		if err := store.PutJSON(tx, productKey(slug), p); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "product.update_keys", ProductTarget(slug), nil, p.Public())
	})
}

// ReplaceSigningKey stores the product's sealed signing keys new, provided
// they are still old; otherwise (a concurrent change) it is an EConflict
// error and nothing changes.
func (s *Service) ReplaceSigningKey(ctx context.Context, slug string, old, new []byte) error {
	defer s.products.Delete(slug)
	return s.db.Update(ctx, func(tx store.Tx) error {
		var p Product
		if err := getProduct(tx, slug, &p); err != nil {
			return err
		}
		if !bytes.Equal(p.SigningKey, old) {
			return portal.Errorf(portal.EConflict, "the signing keys of %s changed meanwhile", slug)
		}
		p.SigningKey = new
		if err := store.PutJSON(tx, productKey(slug), p); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "product.update_keys", ProductTarget(slug), nil, p.Public())
	})
}

// Products returns every product, by slug.
func (s *Service) Products(ctx context.Context) ([]Product, error) {
	var out []Product
	err := s.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte(productPrefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			var p Product
			if err := json.Unmarshal(v, &p); err != nil {
				return false, fmt.Errorf("releases: decode %s: %w", k, err)
			}
			out = append(out, p)
			return true, nil
		})
	})
	return out, err
}

// NewRelease is what a publisher declares when creating a release.
type NewRelease struct {
	Version  string
	Channel  string
	Notes    string
	Metadata map[string]string
	Rollout  int
}

// ValidateMetadata checks release metadata limits.
func ValidateMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return portal.Errorf(portal.EInvalid, "metadata has more than %d keys", MaxMetadataKeys)
	}
	for k, v := range m {
		if k == "" || len(k) > MaxMetadataKey {
			return portal.Errorf(portal.EInvalid, "metadata keys must be 1 to %d bytes", MaxMetadataKey)
		}
		if err := ValidateText("metadata key", k, MaxMetadataKey, false); err != nil {
			return err
		}
		if err := ValidateText("metadata "+k, v, MaxMetadataValue, false); err != nil {
			return err
		}
	}
	return nil
}

// ValidateRollout checks a rollout percentage (0 = everyone).
func ValidateRollout(p int) error {
	if p < 0 || p > 100 {
		return portal.Errorf(portal.EInvalid, "rollout must be a percentage from 1 to 100 (0 or 100 = everyone)")
	}
	return nil
}

// CreateRelease adds a draft release. A prerelease version on stable is
// refused, and so is a version the product already has (1.2.3 and v1.2.3+b
// are the same version).
func (s *Service) CreateRelease(ctx context.Context, slug string, in NewRelease) (Release, error) {
	v, err := ParseVersion(in.Version)
	if err != nil {
		return Release{}, err
	}
	ch, err := ParseChannel(in.Channel)
	if err != nil {
		return Release{}, err
	}
	if ch == "stable" && v.Prerelease() != "" {
		return Release{}, portal.Errorf(portal.EInvalid, "version %s is a prerelease and cannot be on the stable channel: choose rc, beta, alpha or dev", in.Version)
	}
	if err := ValidateText("notes", in.Notes, MaxNotes, true); err != nil {
		return Release{}, err
	}
	if err := ValidateMetadata(in.Metadata); err != nil {
		return Release{}, err
	}
	if err := ValidateRollout(in.Rollout); err != nil {
		return Release{}, err
	}
	if in.Rollout == 100 {
		in.Rollout = 0
	}
	r := Release{
		Product: slug, Version: in.Version, Channel: ch, Status: Draft,
		Notes: in.Notes, Metadata: in.Metadata, Rollout: in.Rollout,
		CreatedAt: s.nowUTC(), Artifacts: []Artifact{},
	}
	key := releaseKey(slug, VersionKey(v))
	err = s.db.Update(ctx, func(tx store.Tx) error {
		var p Product
		if err := getProduct(tx, slug, &p); err != nil {
			return err
		}
		var old Release
		if err := store.GetJSON(tx, key, &old); err == nil {
			return portal.Errorf(portal.EConflict, "%s already has version %s", slug, old.Version)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := store.PutJSON(tx, key, r); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "release.create", ReleaseTarget(slug, r.Version), nil, r.Public())
	})
	if err != nil {
		return Release{}, fmt.Errorf("releases: create %s %s: %w", slug, in.Version, err)
	}
	return r, nil
}

// Release returns one release. ver may be any spelling of the version
// (v1.2.3, 1.2.3+build).
func (s *Service) Release(ctx context.Context, slug, ver string) (Release, error) {
	var r Release
	err := s.db.View(ctx, func(tx store.Tx) error { return getRelease(tx, slug, ver, &r) })
	return r, err
}

func getRelease(tx store.Tx, slug, ver string, r *Release) error {
	var p Product
	if err := getProduct(tx, slug, &p); err != nil {
		return err
	}
	v, err := ParseVersion(ver)
	if err != nil {
		return portal.Errorf(portal.ENotFound, "%s has no version %q", slug, truncate(ver, 80))
	}
	err = store.GetJSON(tx, releaseKey(slug, VersionKey(v)), r)
	if errors.Is(err, store.ErrNotFound) {
		return portal.Errorf(portal.ENotFound, "%s has no version %s", slug, ver)
	}
	return err
}

// ListOptions filter and page a release listing.
type ListOptions struct {
	// Channel, when set, lists the releases visible on it (beta lists beta,
	// rc and stable).
	Channel string
	Status  string
	Limit   int
	Cursor  string // NextCursor of the previous page
}

// Page is one page of a listing, newest version first.
type Page struct {
	Releases   []Release `json:"releases"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

// Releases lists a product's releases, newest version first.
func (s *Service) Releases(ctx context.Context, slug string, opt ListOptions) (Page, error) {
	if opt.Channel != "" && ChannelRank(opt.Channel) < 0 {
		return Page{}, portal.Errorf(portal.EInvalid, "unknown channel %q", opt.Channel)
	}
	switch opt.Status {
	case "", Draft, Published, Yanked:
	default:
		return Page{}, portal.Errorf(portal.EInvalid, "unknown status %q", opt.Status)
	}
	if opt.Limit <= 0 {
		opt.Limit = DefaultListLimit
	}
	if opt.Limit > MaxListLimit {
		opt.Limit = MaxListLimit
	}
	prefix := releaseKeyPrefix(slug)
	var after []byte
	if opt.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(opt.Cursor)
		if err != nil || len(c) == 0 || len(c) > 512 {
			return Page{}, portal.Errorf(portal.EInvalid, "invalid cursor")
		}
		after = append(append([]byte(nil), prefix...), c...)
	}
	page := Page{Releases: []Release{}}
	err := s.db.View(ctx, func(tx store.Tx) error {
		var p Product
		if err := getProduct(tx, slug, &p); err != nil {
			return err
		}
		return tx.Scan(prefix, store.ScanOptions{After: after, Reverse: true}, func(k, v []byte) (bool, error) {
			var r Release
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("releases: decode %s: %w", k, err)
			}
			if (opt.Channel == "" || Visible(opt.Channel, r.Channel)) && (opt.Status == "" || r.Status == opt.Status) {
				if len(page.Releases) == opt.Limit {
					page.NextCursor = base64.RawURLEncoding.EncodeToString(bytes.TrimPrefix(lastKey(page.Releases), prefix))
					return false, nil
				}
				page.Releases = append(page.Releases, r)
			}
			return true, nil
		})
	})
	return page, err
}

func lastKey(rs []Release) []byte {
	r := rs[len(rs)-1]
	v, _ := ParseVersion(r.Version)
	return releaseKey(r.Product, VersionKey(v))
}

// Each calls fn for every release of the product, oldest version first,
// in one read transaction; fn must not call back into the Service.
func (s *Service) Each(ctx context.Context, slug string, fn func(Release) error) error {
	return s.db.View(ctx, func(tx store.Tx) error {
		return tx.Scan(releaseKeyPrefix(slug), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			var r Release
			if err := json.Unmarshal(v, &r); err != nil {
				return false, fmt.Errorf("releases: decode %s: %w", k, err)
			}
			return true, fn(r)
		})
	})
}

// Update applies fn to a release in one transaction and stores the result
// when fn returns nil, with the audit record ch names (see Change). fn sees
// a copy and must not do I/O. Like the store's Update, it may run fn more
// than once, each time on a fresh copy: fn must have no effect outside the
// release but setting the caller's variables, all of them on every run.
// When fn leaves the release as it was, nothing is written and no record
// either. It returns the release as stored.
func (s *Service) Update(ctx context.Context, slug, ver string, ch Change, fn func(*Release) error) (Release, error) {
	_, after, err := s.updateRelease(ctx, slug, ver, ch, fn)
	if err != nil {
		return Release{}, err
	}
	return after, nil
}

// NewArtifact is what a publisher declares for one file.
type NewArtifact struct {
	Filename string
	Platform string
	Arch     string
	Size     int64
	SHA256   string
}

// MaxArtifactSize is the largest file the catalog accepts (S3's object limit).
const MaxArtifactSize = 5 << 40

// AddArtifact declares a file on a draft release and returns it with status
// waiting and a fresh object key. Declaring a filename again replaces a
// waiting or failed artifact (a retried upload) but never an uploaded one;
// the caller must delete the replaced artifact's object (returned as old).
func (s *Service) AddArtifact(ctx context.Context, slug, ver string, in NewArtifact, uploadExpires time.Time) (a Artifact, old *Artifact, err error) {
	if err := ValidateFilename(in.Filename); err != nil {
		return Artifact{}, nil, err
	}
	plat, err := ParsePlatform(in.Platform)
	if err != nil {
		return Artifact{}, nil, err
	}
	arch, err := ParseArch(in.Arch)
	if err != nil {
		return Artifact{}, nil, err
	}
	if in.Size <= 0 || in.Size > MaxArtifactSize {
		return Artifact{}, nil, portal.Errorf(portal.EInvalid, "size must be from 1 byte to 5 TiB")
	}
	if err := ValidateSHA256(in.SHA256); err != nil {
		return Artifact{}, nil, err
	}
	now := s.nowUTC()
	exp := uploadExpires.UTC()
	a = Artifact{
		Filename: in.Filename, Platform: plat, Arch: arch, Size: in.Size, SHA256: in.SHA256,
		Status: Waiting, CreatedAt: now, UploadExpiresAt: &exp,
		ObjectKey: fmt.Sprintf("p/%s/%s", slug, randomHex(16)),
	}
	_, err = s.Update(ctx, slug, ver, Change{Action: "artifact.create", Filename: in.Filename}, func(r *Release) error {
		old = nil
		if r.Status != Draft {
			return portal.Errorf(portal.EConflict, "%s %s is %s: artifacts can be added only to a draft release", slug, r.Version, r.Status)
		}
		if cur, ok := r.Artifact(in.Filename); ok {
			if cur.Status == Uploaded {
				return portal.Errorf(portal.EConflict, "%s is already uploaded to %s %s: delete it first to replace it", in.Filename, slug, r.Version)
			}
			o := *cur
			old = &o
			*cur = a
			return nil
		}
		if len(r.Artifacts) >= MaxArtifacts {
			return portal.Errorf(portal.EInvalid, "a release has at most %d artifacts", MaxArtifacts)
		}
		r.Artifacts = append(r.Artifacts, a)
		return nil
	})
	if err != nil {
		return Artifact{}, nil, fmt.Errorf("releases: add artifact: %w", err)
	}
	return a, old, nil
}

// DeleteArtifact removes an artifact from a draft release and returns it, so
// the caller can delete its object.
func (s *Service) DeleteArtifact(ctx context.Context, slug, ver, filename string) (Artifact, error) {
	var gone Artifact
	_, err := s.Update(ctx, slug, ver, Change{Action: "artifact.delete", Filename: filename}, func(r *Release) error {
		gone = Artifact{}
		if r.Status != Draft {
			return portal.Errorf(portal.EConflict, "%s %s is %s: its artifacts can no longer change", slug, r.Version, r.Status)
		}
		for i, a := range r.Artifacts {
			if a.Filename == filename {
				gone = a
				r.Artifacts = append(r.Artifacts[:i], r.Artifacts[i+1:]...)
				return nil
			}
		}
		return portal.Errorf(portal.ENotFound, "%s %s has no artifact %q", slug, r.Version, truncate(filename, 80))
	})
	return gone, err
}

// Publish makes a draft release available. It needs at least one artifact
// and every artifact uploaded; publishing a published release is a no-op.
func (s *Service) Publish(ctx context.Context, slug, ver string) (Release, error) {
	return s.Update(ctx, slug, ver, Change{Action: "release.publish"}, func(r *Release) error {
		switch r.Status {
		case Published:
			return nil
		case Yanked:
			return portal.Errorf(portal.EConflict, "%s %s was yanked and cannot be published again: publish a new version", slug, r.Version)
		}
		if len(r.Artifacts) == 0 {
			return portal.Errorf(portal.EConflict, "%s %s has no artifacts: add and upload at least one before publishing", slug, r.Version)
		}
		for _, a := range r.Artifacts {
			if a.Status != Uploaded {
				return portal.Errorf(portal.EConflict, "artifact %s is %s: complete its upload (or delete it) before publishing", a.Filename, a.Status)
			}
		}
		now := s.nowUTC()
		r.Status, r.PublishedAt = Published, &now
		return nil
	})
}

// Yank withdraws a published release: never offered as an update again and
// never downloadable by customers. Yanking twice is a no-op.
func (s *Service) Yank(ctx context.Context, slug, ver string) (Release, error) {
	return s.Update(ctx, slug, ver, Change{Action: "release.yank"}, func(r *Release) error {
		switch r.Status {
		case Yanked:
			return nil
		case Draft:
			return portal.Errorf(portal.EConflict, "%s %s is a draft: nothing to yank", slug, r.Version)
		}
		now := s.nowUTC()
		r.Status, r.YankedAt = Yanked, &now
		return nil
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
