// Package access is who is asking and what they may do: the one place that
// decides whether a caller may view a product, check it for updates,
// download from it, publish to it, administer the portal or revoke a share
// link.
//
// A Caller is a domain value. Whichever door authenticated the request (the
// HTTP API's middleware today; web sessions and the CLI's local socket
// later) puts it in the request's context with NewContext, and everything
// below reads it back with FromContext. A context without a Caller is an
// anonymous one.
package access

import (
	"context"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
)

// Role is the kind of caller.
type Role uint8

const (
	Anonymous Role = iota
	Admin          // an admin API token: everything
	Publisher      // a publisher API token: releases of its products
	Customer       // a license key: what the license entitles
)

func (r Role) String() string {
	switch r {
	case Admin:
		return "admin"
	case Publisher:
		return "publisher"
	case Customer:
		return "customer"
	}
	return "anonymous"
}

// Caller is who makes a request. The zero value is an anonymous caller.
//
// A Caller holds its own copies of the token and license it was made from
// (see ForToken and ForLicense); it is read-only after that and safe to
// share between goroutines.
type Caller struct {
	token   *tokens.Token
	license *licenses.License
}

// ForToken returns the caller authenticated by API token t.
func ForToken(t tokens.Token) Caller { return Caller{token: &t} }

// ForLicense returns the caller authenticated by license l. l should come
// from licenses.Service (ByKey or Get), whose copies have their constraint
// parsed already, so the caller's decisions write nothing.
func ForLicense(l licenses.License) Caller { return Caller{license: &l} }

// Role returns the kind of caller.
func (c Caller) Role() Role {
	switch {
	case c.token != nil && c.token.Role == tokens.Admin:
		return Admin
	case c.token != nil:
		return Publisher
	case c.license != nil:
		return Customer
	}
	return Anonymous
}

// Token returns the caller's API token, or nil. Read it, never modify it.
func (c Caller) Token() *tokens.Token { return c.token }

// License returns the caller's license, or nil. Read it, never modify it.
func (c Caller) License() *licenses.License { return c.license }

type contextKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, contextKey{}, c)
}

// FromContext returns the caller in ctx, or an anonymous caller.
func FromContext(ctx context.Context) Caller {
	c, _ := ctx.Value(contextKey{}).(Caller)
	return c
}

// Manages reports whether the caller manages the product's releases: an
// admin, or a publisher of the product. Managers see drafts and yanked
// releases, download them, and are not bound by any license.
func (c Caller) Manages(product string) bool {
	return c.token != nil && c.token.MayPublish(product)
}

// SeesDrafts reports whether the caller may see and download the product's
// draft and yanked releases.
func (c Caller) SeesDrafts(product string) bool { return c.Manages(product) }

// MayView decides whether the caller may read the product's catalog
// (releases, notes, hashes) and download from it: managers; anyone for an
// open product; a license of the product that does not refuse every
// release (a revoked, suspended or expired license is refused with its own
// reason). updateCheck widens it for update checks when the portal answers
// them publicly (updates.public): then anonymous callers may ask about
// licensed products too.
func (c Caller) MayView(p releases.Product, now time.Time, updateCheck, updatesPublic bool) error {
	switch {
	case c.token != nil:
		if c.token.MayPublish(p.Slug) || p.Distribution == releases.Open {
			return nil
		}
		return portal.Errorf(portal.EForbidden, "this token may not see %s", p.Slug)
	case p.Distribution == releases.Open:
		return nil // a license adds nothing to an open product, and takes nothing away
	case c.license != nil:
		return c.license.RefusesAll(p.Slug, now)
	case updateCheck && updatesPublic:
		return nil
	}
	return portal.Errorf(portal.EUnauthorized, "%s is licensed: send Authorization: License <key>", p.Slug)
}

// Entitlement returns the license whose rules bind the caller on p, or nil
// when none does: managers, and everyone on an open product, have no
// license rules. Read it, never modify it.
func (c Caller) Entitlement(p releases.Product) *licenses.License {
	if c.license == nil || p.Distribution == releases.Open || !c.license.Covers(p.Slug) {
		return nil
	}
	return c.license
}

// MayPublish decides whether the caller may create, upload, publish and
// yank releases of the product.
func (c Caller) MayPublish(product string) error {
	switch {
	case c.license != nil:
		return portal.Errorf(portal.EForbidden, "a license may not manage releases: this needs an admin or publisher token")
	case c.token == nil:
		return portal.Errorf(portal.EUnauthorized, "this needs an admin or publisher token: Authorization: Bearer <token>")
	case !c.token.MayPublish(product):
		return portal.Errorf(portal.EForbidden, "this token may not publish %s", product)
	}
	return nil
}

// MayAdminister decides whether the caller may manage products, licenses
// and tokens: admins only.
func (c Caller) MayAdminister() error {
	switch {
	case c.token == nil:
		return portal.Errorf(portal.EUnauthorized, "this needs an admin token: Authorization: Bearer <token>")
	case c.token.Role != tokens.Admin:
		return portal.Errorf(portal.EForbidden, "this needs an admin token")
	}
	return nil
}

// MayShare decides whether the caller may create share links, and whether
// the links it made still work: only a license, which the link then
// shares, and only while the license is alive. A revoked, suspended or
// expired (on_expiry revoke) license shares nothing, on any of its
// products, and its links stop at once.
func (c Caller) MayShare(now time.Time) error {
	switch {
	case c.token != nil:
		return portal.Errorf(portal.EForbidden, "share links are made with the license they share, not an API token")
	case c.license == nil:
		return portal.Errorf(portal.EUnauthorized, "share links are made with a license: send Authorization: License <key>")
	}
	return c.license.RefusesAll(firstProduct(c.license), now)
}

// firstProduct is a product l covers: the refusals RefusesAll gives for it
// (revoked, suspended, expired) hold for every product of l.
func firstProduct(l *licenses.License) string {
	if ps := l.ProductList(); len(ps) > 0 {
		return ps[0]
	}
	return ""
}

// LinkOwner says whose share links the caller may revoke: its own license's
// (owner is the license ID), or, for an admin, every link (owner "").
// Publishers and anonymous callers may revoke none.
func (c Caller) LinkOwner() (owner string, err error) {
	switch {
	case c.license != nil:
		return c.license.ID, nil
	case c.token != nil && c.token.Role == tokens.Admin:
		return "", nil
	case c.token != nil:
		return "", portal.Errorf(portal.EForbidden, "only the license that made a link, or an admin, may delete it")
	}
	return "", portal.Errorf(portal.EUnauthorized, "send the license that made the link, or an admin token")
}

// OwnsLink reports whether the caller may revoke a link made by the license
// with ID licenseID.
func (c Caller) OwnsLink(licenseID string) bool {
	owner, err := c.LinkOwner()
	return err == nil && (owner == "" || owner == licenseID)
}

// CohortID is the identity that places the caller in a staged rollout's
// cohort on p: the license ID for a license of p, so every install of one
// customer moves together, else the install id the client sent.
func (c Caller) CohortID(p releases.Product, clientID string) string {
	if l := c.Entitlement(p); l != nil {
		return l.ID
	}
	return clientID
}
