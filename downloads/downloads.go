// Package downloads is the download domain: it turns a resolved release and
// build into a grant (a freshly minted storage URL, counted against the
// license's daily quota and recorded in the ledger), and it makes and opens
// the revocable share links that lead to grants.
//
// Which release and build a caller may have is decided before, by
// updates.Resolver; this package decides nothing about entitlement. Its
// subpackages keep the state: ledger (grants and quotas) and links (share
// links). Object storage is package objects.
package downloads

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/updates"
)

// Options tune the service.
type Options struct {
	// LinkMaxTTL caps share links (at most 7 days); LinkDefaultTTL is a
	// share link's life when the caller names none (24 hours, or the cap
	// if lower).
	LinkMaxTTL, LinkDefaultTTL time.Duration
	// AnonymousGrantsPerMinute is how many grants of open products one
	// client address may get per minute without a license (0: no limit).
	AnonymousGrantsPerMinute int
	// LedgerRetention is how long the ledger keeps each grant (0: for
	// ever); LinkRetention how long an expired share link stays listed
	// before it is deleted. See RunRetention.
	LedgerRetention, LinkRetention time.Duration
	Now                            func() time.Time
	// Logger receives the retention runs' results (default slog.Default()).
	Logger *slog.Logger
}

// Service mints grants and share links. It is safe for concurrent use.
type Service struct {
	objects  objects.ObjectStore
	ledger   *ledger.Ledger
	links    *links.Service
	licenses *licenses.Service
	opts     Options
	anon     *grantLimit
	recent   *recentGrants
}

// New returns the download service.
func New(objs objects.ObjectStore, led *ledger.Ledger, ls *links.Service, lics *licenses.Service, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LinkMaxTTL <= 0 || opts.LinkMaxTTL > links.MaxTTL {
		opts.LinkMaxTTL = links.MaxTTL
	}
	if opts.LinkDefaultTTL <= 0 {
		opts.LinkDefaultTTL = 24 * time.Hour
	}
	opts.LinkDefaultTTL = min(opts.LinkDefaultTTL, opts.LinkMaxTTL)
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{objects: objs, ledger: led, links: ls, licenses: lics, opts: opts,
		anon:   &grantLimit{perMinute: opts.AnonymousGrantsPerMinute, seen: map[string]*grantWindow{}},
		recent: newRecentGrants(maxRecentGrants)}
}

// Ledger returns the ledger grants are recorded in.
func (s *Service) Ledger() *ledger.Ledger { return s.ledger }

// Links returns the share links.
func (s *Service) Links() *links.Service { return s.links }

// Grant is a minted download.
type Grant struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Filename  string    `json:"filename"`
	Version   string    `json:"version"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
}

// Origin says where a grant request came from, for the ledger.
type Origin struct {
	Client, UserAgent string
	// ShareLink is the ID of the share link that led here, if any.
	ShareLink string
}

// Grant mints a storage URL valid ttl for the resolved build, counts it
// against the license's daily quota (quota_exceeded, with RetryAt, when
// used up) and records it in the ledger.
//
// One download is one artifact for one license: a grant of an artifact
// that the same license was granted while an earlier URL for it is still
// valid (a JSON probe before the redirect, curl -i, a retry after a
// network failure) is a repeat. A repeat is minted and recorded in the
// ledger like any grant, but not counted against the quota, and so never
// refused by it. What was granted is remembered in memory, per replica and
// bounded (see recentGrants): a repeat on another replica, or after the
// record was dropped, counts once more, never less. The URL is minted first: minting
// is offline and cheap, and a request that fails must not use up quota (a
// reservation cannot be given back).
//
// An anonymous grant (an open product, for a caller who named no
// credential) is first counted against its client address: past
// AnonymousGrantsPerMinute it is refused with rate_limited and RetryAt,
// before anything is minted or recorded, so an anonymous flood cannot grow
// the ledger faster than that. Callers with a license or a token are
// bounded by who they are (quota, revocation) instead.
func (s *Service) Grant(ctx context.Context, res updates.Resolution, ttl time.Duration, from Origin) (Grant, error) {
	r, a := res.Release, res.Artifact
	if res.License == nil && access.FromContext(ctx).Role() == access.Anonymous {
		if err := s.anon.take(from.Client, s.opts.Now()); err != nil {
			return Grant{}, err
		}
	}
	signed, err := s.objects.PresignGet(ctx, a.ObjectKey, ttl, a.Filename)
	if err != nil {
		return Grant{}, err
	}
	now := s.opts.Now()
	lic := res.License
	if lic != nil {
		key := grantKey{license: lic.ID, product: r.Product, version: r.Version, filename: a.Filename}
		if !s.recent.repeat(key, now) {
			if err := s.ledger.Reserve(ctx, lic.ID, lic.DownloadsPerDay, now); err != nil {
				return Grant{}, err
			}
		}
		s.recent.note(key, signed.ExpiresAt, now)
	}
	g := ledger.Grant{
		Time: now.UTC(), Product: r.Product, Version: r.Version, Filename: a.Filename,
		Platform: a.Platform, Arch: a.Arch, Client: from.Client, UserAgent: from.UserAgent, ShareLink: from.ShareLink,
	}
	if lic != nil {
		g.License = lic.ID
	}
	s.ledger.Record(g)
	return Grant{URL: signed.URL, ExpiresAt: signed.ExpiresAt, Filename: a.Filename, Version: r.Version, Size: a.Size, SHA256: a.SHA256}, nil
}

// ParseLinkTTL reads a share link's requested life: JSON seconds (a
// number) or a Go duration string ("24h"); absent or null means the
// default. It must be from one second to the configured maximum.
func (s *Service) ParseLinkTTL(raw json.RawMessage) (time.Duration, error) {
	bad := portal.Errorf(portal.EInvalid, "ttl must be seconds or a duration such as 24h, from 1s to %s", s.opts.LinkMaxTTL)
	ttl := s.opts.LinkDefaultTTL
	if text := strings.TrimSpace(string(raw)); text != "" && text != "null" {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, bad
		}
		switch v := v.(type) {
		case float64:
			if v < 1 || v > math.MaxInt64/float64(time.Second) {
				return 0, bad
			}
			ttl = time.Duration(v * float64(time.Second))
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return 0, bad
			}
			ttl = d
		default:
			return 0, bad
		}
	}
	if ttl < time.Second {
		return 0, portal.Errorf(portal.EInvalid, "ttl must be at least one second")
	}
	if ttl > s.opts.LinkMaxTTL {
		return 0, portal.Errorf(portal.EInvalid, "ttl %s is above the maximum of %s", ttl, s.opts.LinkMaxTTL)
	}
	return ttl, nil
}

// CreateLink makes a share link for the resolved build, owned by the
// caller's license (access.Caller.MayShare), living ttl. It returns the link
// and its token, which is shown once. For a link an admin makes on behalf
// of a license, ctx comes from ActAs.
func (s *Service) CreateLink(ctx context.Context, res updates.Resolution, ttl time.Duration) (links.Link, string, error) {
	c := access.FromContext(ctx)
	if err := c.MayShare(s.opts.Now()); err != nil {
		return links.Link{}, "", err
	}
	l := links.Link{License: c.License().ID, Product: res.Product.Slug, Version: res.Release.Version, Filename: res.Artifact.Filename,
		CreatedBy: "license " + c.License().KeyHint}
	if by, ok := ctx.Value(onBehalfKey{}).(string); ok {
		l.CreatedBy = by
	}
	return s.links.Create(ctx, l, ttl, s.opts.LinkMaxTTL)
}

type onBehalfKey struct{}

// ActAs returns ctx in which the caller is license licenseID, read afresh,
// for an admin making a share link on its behalf (customer support): the
// link is then resolved, checked and owned as if the license had asked, and
// its created_by names the admin token. The audit actor stays the admin's.
// licenseID "" returns ctx as it is. Only an admin may name a license
// (forbidden otherwise, unless it is the caller's own); an unknown license
// is not_found.
func (s *Service) ActAs(ctx context.Context, licenseID string) (context.Context, error) {
	if licenseID == "" {
		return ctx, nil
	}
	c := access.FromContext(ctx)
	if own := c.License(); own != nil && own.ID == licenseID {
		return ctx, nil
	}
	if err := c.MayAdminister(); err != nil {
		if c.Role() == access.Anonymous {
			return ctx, err
		}
		return ctx, portal.Errorf(portal.EForbidden, "only an admin may make a link on behalf of another license")
	}
	l, err := s.licenses.Get(ctx, licenseID)
	if err != nil {
		return ctx, err
	}
	ctx = access.NewContext(ctx, access.ForLicense(l))
	return context.WithValue(ctx, onBehalfKey{}, "admin token "+c.Token().Name), nil
}

// ListLinks returns share links, newest first, with expired and revoked
// ones until retention purges them: a license's own links (licenseID must
// be "" or its own), or, for an admin, the links of license licenseID
// (required). Publishers are refused (access.Caller.LinkOwner).
func (s *Service) ListLinks(ctx context.Context, licenseID string) ([]links.Link, error) {
	owner, err := access.FromContext(ctx).LinkOwner()
	if err != nil {
		return nil, err
	}
	switch {
	case owner != "" && licenseID != "" && licenseID != owner:
		return nil, portal.Errorf(portal.EForbidden, "a license lists only its own links")
	case owner != "":
		licenseID = owner
	case licenseID == "":
		return nil, portal.Errorf(portal.EInvalid, "license: name the license whose links to list (?license=ID)")
	}
	ls, err := s.links.List(ctx, licenseID)
	if ls == nil {
		ls = []links.Link{}
	}
	return ls, err
}

// Quota is a license's downloads today (UTC).
type Quota struct {
	// Limit is downloads_per_day, 0 for unlimited.
	Limit int `json:"limit"`
	// Used is how many downloads the license had today (see Grant for
	// what one download is).
	Used uint64 `json:"used"`
	// Remaining is what is left today; nil when unlimited.
	Remaining *uint64 `json:"remaining"`
	// ResetAt is the next UTC midnight, when Used starts again from 0.
	ResetAt time.Time `json:"reset_at"`
}

// Quota returns license l's quota now.
func (s *Service) Quota(ctx context.Context, l *licenses.License) (Quota, error) {
	used, reset, err := s.ledger.Used(ctx, l.ID, s.opts.Now())
	if err != nil {
		return Quota{}, err
	}
	q := Quota{Limit: l.DownloadsPerDay, Used: used, ResetAt: reset}
	if l.DownloadsPerDay > 0 {
		left := uint64(0)
		if used < uint64(l.DownloadsPerDay) {
			left = uint64(l.DownloadsPerDay) - used
		}
		q.Remaining = &left
	}
	return q, nil
}

// OpenLink checks a share link's token now and returns the link and the
// caller it acts as: the license that made it, as licenses.Service has it
// now, so a license suspended, revoked or deleted since stops its links.
// Neither the link record nor the license is read from the store when the
// memory that follows the store's watch holds it (see package links and
// licenses.Service): a change made on another replica takes effect here
// within the watch's lag, and at worst within links.CacheTTL and
// licenses.CacheTTL.
func (s *Service) OpenLink(ctx context.Context, token string) (links.Link, access.Caller, error) {
	link, err := s.links.Verify(ctx, token)
	if err != nil {
		return link, access.Caller{}, err
	}
	l, err := s.licenses.Get(ctx, link.License)
	if portal.IsCode(err, portal.ENotFound) {
		err = portal.Errorf(portal.ELinkRevoked, "this link's license no longer exists")
	}
	if err != nil {
		return link, access.Caller{}, err
	}
	owner := access.ForLicense(l)
	if err := owner.MayShare(s.opts.Now()); err != nil {
		return link, access.Caller{}, err
	}
	return link, owner, nil
}

// RevokeLink ends a link now, if the caller owns it
// (access.Caller.LinkOwner); another license's link is reported as not
// found.
func (s *Service) RevokeLink(ctx context.Context, id string) error {
	owner, err := access.FromContext(ctx).LinkOwner()
	if err != nil {
		return err
	}
	return s.links.Revoke(ctx, id, owner)
}

// RetentionInterval is how often RunRetention purges.
const RetentionInterval = time.Hour

// RunRetention purges, at once and then every interval until ctx ends, the
// ledger's grants older than LedgerRetention (keeping release totals and
// daily rollups; not when LedgerRetention is 0) and the share links that
// expired more than LinkRetention ago. Each purge works in transactions of
// at most store.MaxTxnOps keys; a failed one is logged and retried at the
// next tick. With several replicas on one store each may run it: purges
// are idempotent, so the cost is only repeated scans.
func (s *Service) RunRetention(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = RetentionInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.Purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Purge runs one retention pass (see RunRetention) and returns the first
// error; what it deleted is logged.
func (s *Service) Purge(ctx context.Context) error {
	now := s.opts.Now()
	var first error
	if s.ledger != nil && s.opts.LedgerRetention > 0 {
		n, err := s.ledger.Purge(ctx, now.Add(-s.opts.LedgerRetention))
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("retention: ledger purge failed", "deleted", n, "err", err)
			first = err
		} else if n > 0 {
			s.opts.Logger.Info("retention: ledger purged", "deleted", n, "retention", s.opts.LedgerRetention)
		}
	}
	if s.links != nil {
		n, err := s.links.Purge(ctx, now.Add(-s.opts.LinkRetention))
		if err != nil && ctx.Err() == nil {
			s.opts.Logger.Error("retention: share link purge failed", "deleted", n, "err", err)
			if first == nil {
				first = err
			}
		} else if n > 0 {
			s.opts.Logger.Info("retention: expired share links purged", "deleted", n, "grace", s.opts.LinkRetention)
		}
	}
	return first
}
