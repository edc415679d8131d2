package updates

import (
	"context"
	"errors"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// Resolver answers the central question of the portal for every door (the
// HTTP API, the feeds, the web pages, the CLI): which release and which
// build may this caller have. It combines who the caller is (package
// access, from the context) with the catalog, the index and the license
// decision, so no door walks releases or decides entitlement itself.
//
// It is safe for concurrent use.
type Resolver struct {
	index   *Index
	catalog *releases.Service
	// updatesPublic answers update checks of licensed products without a
	// license (downloads still need one).
	updatesPublic bool
	now           func() time.Time
}

// NewResolver returns a resolver over the catalog and its index. now nil
// means time.Now.
func NewResolver(index *Index, catalog *releases.Service, updatesPublic bool, now func() time.Time) *Resolver {
	if now == nil {
		now = time.Now
	}
	return &Resolver{index: index, catalog: catalog, updatesPublic: updatesPublic, now: now}
}

// Index returns the index the resolver reads.
func (rs *Resolver) Index() *Index { return rs.index }

// Request is one question to the resolver.
type Request struct {
	Product string
	// Version is "latest" (or "") for the newest release the caller may
	// have, or an exact version.
	Version string
	// Filename names the artifact; otherwise Platform and Arch choose it
	// (required unless AnyBuild; "" then means any).
	Filename       string
	Platform, Arch string
	AnyBuild       bool
	// Channel for "latest" ("" = stable). An exact version is found on any
	// channel.
	Channel string
	// Current and Constraint narrow update checks (see Query).
	Current, Constraint string
	// UpdateCheck admits anonymous callers to licensed products when the
	// portal answers update checks publicly.
	UpdateCheck bool
	// Rollout applies staged rollouts (clients that cannot stage updates
	// themselves); ClientID is an anonymous caller's install id for it.
	Rollout  bool
	ClientID string
	// Pick is a feed's file-type preference (see Query.Pick).
	Pick func(r *releases.Release) (releases.Artifact, bool)
}

// Resolution is what a request resolved to.
type Resolution struct {
	Match
	Product releases.Product
	// License is the license whose rules applied, and whose quota a
	// download counts against; nil when none binds the caller (open
	// products, managers).
	License *licenses.License
}

// admit prepares a request: it loads the product and decides whether the
// caller may view it (access.Caller.MayView). It returns the product and
// the license whose rules apply.
func (rs *Resolver) admit(ctx context.Context, req *Request) (releases.Product, access.Caller, error) {
	c := access.FromContext(ctx)
	p, err := rs.catalog.Product(ctx, req.Product)
	if err != nil {
		return p, c, err
	}
	if err := c.MayView(p, rs.now(), req.UpdateCheck, rs.updatesPublic); err != nil {
		return p, c, err
	}
	return p, c, nil
}

func (rs *Resolver) query(req *Request, p releases.Product, c access.Caller) Query {
	return Query{
		Product: p.Slug, Current: req.Current, Platform: req.Platform, Arch: req.Arch, AnyBuild: req.AnyBuild,
		Filename: req.Filename, Channel: req.Channel, Constraint: req.Constraint, License: c.Entitlement(p),
		ClientID: req.ClientID, IgnoreRollout: !req.Rollout, Pick: req.Pick, Now: rs.now(), KnownProduct: true,
	}
}

// Resolve answers the request for the caller in ctx. For "latest" the
// answer is the newest published release on the channel with a build the
// caller may have; when there is none the error is a *NotAvailable (see
// Index.Resolve). For an exact version it takes a published release from the
// index (which follows the store's watch, and which this replica's own
// lifecycle changes refresh before they answer) and reads the catalog
// only when the index has none, for the precise refusal; managers may
// have drafts and yanked releases. Every refusal is a *portal.Error with
// its precise code.
func (rs *Resolver) Resolve(ctx context.Context, req Request) (Resolution, error) {
	p, c, err := rs.admit(ctx, &req)
	if err != nil {
		return Resolution{}, err
	}
	q := rs.query(&req, p, c)
	res := Resolution{Product: p, License: q.License}
	if req.Version == "" || req.Version == "latest" {
		res.Match, err = rs.index.Resolve(q)
		return res, err
	}
	// A published release is taken from the index: it follows every
	// replica's writes through the store's watch (milliseconds), and this
	// replica's own lifecycle changes refresh it before they answer. Only
	// a miss (draft, yanked, unknown, or a manager's request) reads the
	// catalog, for the precise refusal or the draft.
	if !c.SeesDrafts(p.Slug) {
		if r, ok := rs.index.Published(p.Slug, req.Version); ok {
			res.Match, err = rs.index.One(q, r)
			return res, err
		}
	}
	r, err := rs.catalog.Release(ctx, p.Slug, req.Version)
	if err != nil {
		return res, err
	}
	if !c.SeesDrafts(p.Slug) && r.Status != releases.Published {
		if r.Status == releases.Yanked {
			return res, portal.Errorf(portal.ENotFound, "%s %s was withdrawn and is no longer available", p.Slug, r.Version)
		}
		return res, portal.Errorf(portal.ENotFound, "%s has no version %s", p.Slug, req.Version)
	}
	res.Match, err = rs.index.One(q, r)
	return res, err
}

// Update answers an update check for the caller in ctx: the newest release
// newer than req.Current it may have (Index.Latest), or ok false with a nil
// error when there is none (the API answers 204). It allocates nothing
// beyond Resolve's admission on the way to "no update".
func (rs *Resolver) Update(ctx context.Context, req Request) (res Resolution, ok bool, err error) {
	p, c, err := rs.admit(ctx, &req)
	if err != nil {
		return res, false, err
	}
	q := rs.query(&req, p, c)
	res.Product, res.License = p, q.License
	res.Release, res.Artifact, ok, err = rs.index.Latest(q)
	return res, ok, err
}

// Product returns the product when the caller in ctx may view it (the
// admission of Resolve and Walk), for a door that found nothing to offer
// but still describes the product (an empty package repository).
func (rs *Resolver) Product(ctx context.Context, product string) (releases.Product, error) {
	p, _, err := rs.admit(ctx, &Request{Product: product})
	return p, err
}

// Walk calls fn with each release Resolve would offer for "latest", newest
// first, until fn returns false; a feed that lists several releases uses
// it. Nothing found is a *NotAvailable error, as for Resolve.
func (rs *Resolver) Walk(ctx context.Context, req Request, fn func(Resolution) bool) error {
	p, c, err := rs.admit(ctx, &req)
	if err != nil {
		return err
	}
	q := rs.query(&req, p, c)
	return rs.index.Walk(q, func(m Match) bool {
		return fn(Resolution{Match: m, Product: p, License: q.License})
	})
}

// Available lists the releases the caller may download from the product on
// any channel, newest first, at most limit, each with exactly the builds
// the caller may have (in Release.Artifacts; Artifact is the first).
func (rs *Resolver) Available(ctx context.Context, product string, limit int) ([]Resolution, error) {
	var out []Resolution
	err := rs.Walk(ctx, Request{Product: product, AnyBuild: true, Channel: releases.Channels[len(releases.Channels)-1]},
		func(r Resolution) bool {
			arts := make([]releases.Artifact, 0, len(r.Release.Artifacts))
			for _, a := range r.Release.Artifacts {
				if a.Status == releases.Uploaded {
					arts = append(arts, a)
				}
			}
			r.Release.Artifacts = arts
			out = append(out, r)
			return len(out) < limit
		})
	var na *NotAvailable
	if errors.As(err, &na) {
		err = nil
	}
	return out, err
}

// One applies the query's build choice and license to release r read from
// the catalog (an exact version): the match, or the precise refusal.
// Channel, Current, Constraint and rollouts do not apply to an exact
// version.
func (x *Index) One(q Query, r releases.Release) (Match, error) {
	var w walk
	q.Channel, q.Current, q.Constraint, q.IgnoreRollout = "", "", "", true
	if err := x.prepareFor(&q, &w); err != nil {
		return Match{}, err
	}
	ver, err := releases.ParseVersion(r.Version)
	if err != nil {
		return Match{}, err
	}
	if art, ok := w.choose(&r, ver); ok {
		return Match{Release: w.view(&r, ver), Artifact: art}, nil
	}
	if w.refusedRel != nil {
		return Match{}, w.lic.Decide(target(w.refusedRel, w.refusedVer, w.refusedPlatform), w.now)
	}
	if q.Filename != "" {
		return Match{}, portal.Errorf(portal.ENotFound, "%s %s has no artifact %q", r.Product, r.Version, q.Filename)
	}
	return Match{}, portal.Errorf(portal.ENotFound, "%s %s has no build for %s/%s", r.Product, r.Version, q.Platform, q.Arch)
}
