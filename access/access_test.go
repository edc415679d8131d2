package access

import (
	"context"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
)

// TestAccess is the access table: every kind of caller against every rule,
// on a licensed product ("app"), another licensed product ("other") and an
// open product ("free"). A cell is "" for allowed, else the refusal code.
func TestAccess(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	past, future := now.Add(-time.Hour), now.Add(time.Hour)
	lic := func(mod func(*licenses.License)) Caller {
		l := licenses.License{ID: "lic1", Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke}
		if mod != nil {
			mod(&l)
		}
		return ForLicense(l)
	}
	app := releases.Product{Slug: "app", Distribution: releases.Licensed}
	other := releases.Product{Slug: "other", Distribution: releases.Licensed}
	free := releases.Product{Slug: "free", Distribution: releases.Open}

	type row struct {
		name   string
		c      Caller
		role   Role
		view   [3]string // app, other, free
		update string    // MayView(app) as a public update check
		drafts bool      // SeesDrafts(app)
		pub    string    // MayPublish(app)
		admin  string
		share  string
		owner  string // LinkOwner's owner, or its refusal code
		bound  bool   // Entitlement(app) != nil
	}
	const (
		ok       = ""
		unauth   = portal.EUnauthorized
		forbid   = portal.EForbidden
		notEnt   = portal.ENotEntitled
		revoked  = portal.ELicenseRevoked
		suspend  = portal.ELicenseSuspended
		expired  = portal.ELicenseExpired
		anyOwner = "(any)"
	)
	rows := []row{
		{name: "anonymous", c: Caller{}, role: Anonymous, view: [3]string{unauth, unauth, ok}, update: ok,
			pub: unauth, admin: unauth, share: unauth, owner: unauth},
		{name: "admin", c: ForToken(tokens.Token{ID: "t1", Role: tokens.Admin}), role: Admin, view: [3]string{ok, ok, ok}, update: ok,
			drafts: true, pub: ok, admin: ok, share: forbid, owner: anyOwner},
		{name: "publisher of app", c: ForToken(tokens.Token{ID: "t2", Role: tokens.Publisher, Products: []string{"app"}}), role: Publisher,
			view: [3]string{ok, forbid, ok}, update: ok, drafts: true, pub: ok, admin: forbid, share: forbid, owner: forbid},
		{name: "publisher of other", c: ForToken(tokens.Token{ID: "t3", Role: tokens.Publisher, Products: []string{"other"}}), role: Publisher,
			view: [3]string{forbid, ok, ok}, update: forbid, pub: forbid, admin: forbid, share: forbid, owner: forbid},
		{name: "license", c: lic(nil), role: Customer, view: [3]string{ok, notEnt, ok}, update: ok,
			pub: forbid, admin: unauth, share: ok, owner: "lic1", bound: true},
		{name: "license with rules", c: lic(func(l *licenses.License) { l.Constraint = "< 2"; l.Platforms = []string{"linux"} }), role: Customer,
			view: [3]string{ok, notEnt, ok}, update: ok, pub: forbid, admin: unauth, share: ok, owner: "lic1", bound: true},
		{name: "license not yet expired", c: lic(func(l *licenses.License) { l.ExpiresAt = &future }), role: Customer,
			view: [3]string{ok, notEnt, ok}, update: ok, pub: forbid, admin: unauth, share: ok, owner: "lic1", bound: true},
		{name: "expired, maintain", c: lic(func(l *licenses.License) { l.ExpiresAt = &past; l.OnExpiry = licenses.OnExpiryMaintain }), role: Customer,
			view: [3]string{ok, notEnt, ok}, update: ok, pub: forbid, admin: unauth, share: ok, owner: "lic1", bound: true},
		{name: "expired, revoke", c: lic(func(l *licenses.License) { l.ExpiresAt = &past }), role: Customer,
			view: [3]string{expired, notEnt, ok}, update: expired, pub: forbid, admin: unauth, share: expired, owner: "lic1", bound: true},
		{name: "suspended", c: lic(func(l *licenses.License) { l.Status = licenses.Suspended }), role: Customer,
			view: [3]string{suspend, suspend, ok}, update: suspend, pub: forbid, admin: unauth, share: suspend, owner: "lic1", bound: true},
		{name: "revoked", c: lic(func(l *licenses.License) { l.Status = licenses.Revoked }), role: Customer,
			view: [3]string{revoked, revoked, ok}, update: revoked, pub: forbid, admin: unauth, share: revoked, owner: "lic1", bound: true},
		{name: "license of other", c: lic(func(l *licenses.License) { l.Product = "other" }), role: Customer,
			view: [3]string{notEnt, ok, ok}, update: notEnt, pub: forbid, admin: unauth, share: ok, owner: "lic1"},
		{name: "license of other (products)", c: lic(func(l *licenses.License) { l.Product = ""; l.Products = []string{"other"} }), role: Customer,
			view: [3]string{notEnt, ok, ok}, update: notEnt, pub: forbid, admin: unauth, share: ok, owner: "lic1"},
		{name: "license of app and other", c: lic(func(l *licenses.License) { l.Product = ""; l.Products = []string{"other", "app"} }), role: Customer,
			view: [3]string{ok, ok, ok}, update: ok, pub: forbid, admin: unauth, share: ok, owner: "lic1", bound: true},
		{name: "license of app and other, suspended", c: lic(func(l *licenses.License) {
			l.Product = ""
			l.Products = []string{"other", "app"}
			l.Status = licenses.Suspended
		}), role: Customer, view: [3]string{suspend, suspend, ok}, update: suspend, pub: forbid, admin: unauth, share: suspend, owner: "lic1", bound: true},
		{name: "license of app and other, expired", c: lic(func(l *licenses.License) {
			l.Product = ""
			l.Products = []string{"other", "app"}
			l.ExpiresAt = &past
		}), role: Customer, view: [3]string{expired, expired, ok}, update: expired, pub: forbid, admin: unauth, share: expired, owner: "lic1", bound: true},
	}
	code := func(err error) string { return portal.ErrorCode(err) }
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			c := r.c
			if c.Role() != r.role {
				t.Errorf("Role = %v, want %v", c.Role(), r.role)
			}
			for i, p := range []releases.Product{app, other, free} {
				if got := code(c.MayView(p, now, false, false)); got != r.view[i] {
					t.Errorf("MayView(%s) = %q, want %q", p.Slug, got, r.view[i])
				}
				// An update check without public update checks is a view.
				if got := code(c.MayView(p, now, true, false)); got != r.view[i] {
					t.Errorf("MayView(%s, update check) = %q, want %q", p.Slug, got, r.view[i])
				}
			}
			if got := code(c.MayView(app, now, true, true)); got != r.update {
				t.Errorf("MayView(app, public update check) = %q, want %q", got, r.update)
			}
			// Public update checks widen nothing but update checks.
			if got := code(c.MayView(app, now, false, true)); got != r.view[0] {
				t.Errorf("MayView(app, public, not an update check) = %q, want %q", got, r.view[0])
			}
			if c.SeesDrafts("app") != r.drafts || c.Manages("app") != r.drafts {
				t.Errorf("SeesDrafts/Manages(app) = %v/%v, want %v", c.SeesDrafts("app"), c.Manages("app"), r.drafts)
			}
			if got := code(c.MayPublish("app")); got != r.pub {
				t.Errorf("MayPublish(app) = %q, want %q", got, r.pub)
			}
			if got := code(c.MayAdminister()); got != r.admin {
				t.Errorf("MayAdminister = %q, want %q", got, r.admin)
			}
			if got := code(c.MayShare(now)); got != r.share {
				t.Errorf("MayShare = %q, want %q", got, r.share)
			}
			owner, err := c.LinkOwner()
			gotOwner := owner
			if err != nil {
				gotOwner = code(err)
			} else if owner == "" {
				gotOwner = anyOwner
			}
			if gotOwner != r.owner {
				t.Errorf("LinkOwner = %q, want %q", gotOwner, r.owner)
			}
			wantOwns := r.owner == anyOwner || r.owner == "lic1"
			if c.OwnsLink("lic1") != wantOwns || c.OwnsLink("lic2") != (r.owner == anyOwner) {
				t.Errorf("OwnsLink(lic1, lic2) = %v, %v", c.OwnsLink("lic1"), c.OwnsLink("lic2"))
			}
			if got := c.Entitlement(app) != nil; got != r.bound {
				t.Errorf("Entitlement(app) bound = %v, want %v", got, r.bound)
			}
			// No license binds anyone on an open product.
			if c.Entitlement(free) != nil {
				t.Error("Entitlement(free) is a license")
			}
			// Rollout cohorts: the license of the product, else the client's id.
			wantCohort := "install-1"
			if r.bound {
				wantCohort = "lic1"
			}
			if got := c.CohortID(app, "install-1"); got != wantCohort {
				t.Errorf("CohortID(app) = %q, want %q", got, wantCohort)
			}
			if got := c.CohortID(free, "install-1"); got != "install-1" {
				t.Errorf("CohortID(free) = %q", got)
			}
		})
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if c := FromContext(ctx); c.Role() != Anonymous || c.Token() != nil || c.License() != nil {
		t.Fatalf("empty context: %+v", c)
	}
	admin := ForToken(tokens.Token{ID: "t1", Role: tokens.Admin})
	if FromContext(NewContext(ctx, admin)).Role() != Admin {
		t.Fatal("caller lost in the context")
	}
	// A caller holds its own copy: changing the source changes nothing.
	l := licenses.License{ID: "lic1", Product: "app", Status: licenses.Active}
	c := ForLicense(l)
	l.Status = licenses.Revoked
	if c.License().Status != licenses.Active {
		t.Fatal("caller shares the license it was made from")
	}
}
