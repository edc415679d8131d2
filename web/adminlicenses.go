package web

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// The console's license pages (admins only, see adminOnly): search and
// filter, create, edit, renew, suspend, reinstate, revoke, reissue, and a
// license's downloads, share links and quota. Each action is the
// licenses.Service (or downloads.Service) method the API's handler calls.

// licensesPerPage is the licenses of one page of the list.
const licensesPerPage = 50

type licensesView struct {
	adminView
	Licenses []licenses.View
	Products []releases.Product
	// The filter, as the form shows it, and the URL of the next page.
	Customer, Status, Product, ExpiresBefore string
	Next                                     string
}

func (h *Handler) adminLicenses(c *gin.Context) {
	f := licenses.Filter{Customer: c.Query("customer"), Status: c.Query("status"), Product: c.Query("product"),
		Cursor: c.Query("cursor"), Limit: licensesPerPage}
	// expires_before: a UTC date or an RFC 3339 time, as on the forms.
	before, err := formTime(c.Request.URL.Query(), "expires_before")
	if err != nil {
		h.Fail(c, err)
		return
	}
	if before != nil {
		f.ExpiresBefore = *before
	}
	ls, next, err := h.Licenses.List(c, f)
	if err != nil {
		h.Fail(c, err)
		return
	}
	ps, err := h.managedProducts(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := licensesView{adminView: h.adminView(c, "licenses"), Products: ps, Customer: f.Customer, Status: f.Status, Product: f.Product,
		ExpiresBefore: c.Query("expires_before")}
	now := h.now()
	for _, l := range ls {
		v.Licenses = append(v.Licenses, l.ViewAt(now))
	}
	if next != "" {
		q := url.Values{"cursor": {next}}
		for k, val := range map[string]string{"customer": f.Customer, "status": f.Status, "product": f.Product, "expires_before": v.ExpiresBefore} {
			if val != "" {
				q.Set(k, val)
			}
		}
		v.Next = AdminPath + "/licenses?" + q.Encode()
	}
	h.Render(c, http.StatusOK, "admin_licenses", "Licenses", v)
}

// licenseFormView is the create and edit form: the products to choose
// from and the channels.
type licenseFormView struct {
	adminView
	Products []releases.Product
	Channels []string
	License  licenses.View // the license edited; zero on create
}

func (h *Handler) adminNewLicense(c *gin.Context) {
	ps, err := h.managedProducts(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.Render(c, http.StatusOK, "admin_license_new", "New license",
		licenseFormView{adminView: h.adminView(c, "licenses"), Products: ps, Channels: releases.Channels})
}

// secretView is the page that shows a secret once: a new or reissued
// license key, a new token.
type secretView struct {
	adminView
	What   string // "license key" or "token"
	Secret string
	// Next is where to go from here (the license's or the tokens' page).
	Next, NextLabel string
	Notice          string
	// Kept says how the portal keeps the secret, when not as a digest.
	Kept string
}

// showSecret renders the one answer that carries a secret: the POST's own
// page (no redirect, so the secret is in no URL), never stored by the
// browser (no-store, set by headers).
func (h *Handler) showSecret(c *gin.Context, status int, v secretView) {
	if v.adminView.Role == "" {
		v.adminView = h.adminView(c, v.adminView.Section)
	}
	h.Render(c, status, "admin_secret", "Copy the "+v.What+" now", v)
}

func (h *Handler) adminCreateLicense(c *gin.Context) {
	l, err := newLicenseFromForm(c.Request.PostForm)
	if err != nil {
		h.Fail(c, err)
		return
	}
	l, key, err := h.Licenses.Create(c, l)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.showSecret(c, http.StatusCreated, secretView{adminView: adminView{Section: "licenses"}, What: "license key", Secret: key,
		Next: licensePath(l.ID), NextLabel: "Go to the license of " + l.Customer,
		Notice: "License " + l.ID + " created for " + l.Customer + "."})
}

type licenseView struct {
	adminView
	License  licenses.View
	Products []releases.Product
	Channels []string
	// Renew is the expiry the renew form proposes.
	Renew     string
	Quota     downloads.Quota
	Downloads []ledger.Grant
	// MoreDownloads is the URL of the next page of downloads, or "".
	MoreDownloads string
	Links         []links.Link
	Now           time.Time
	// Builds and TTLs are the choices of the share link form.
	Builds []linkBuild
	TTLs   []linkTTL
}

// linkBuild is a build the share link form offers: the uploaded
// artifacts of the newest published releases of the license's products
// (whether the license may have one is decided when the link is made).
type linkBuild struct{ Value, Label string }

type linkTTL struct {
	Value, Label string
	Selected     bool
}

// buildsPerProduct is the newest published releases per product whose
// builds the share link form offers.
const buildsPerProduct = 5

func (h *Handler) linkChoices(c *gin.Context, l licenses.License, v *licenseView) error {
	for _, slug := range l.ProductList() {
		page, err := h.Catalog.Releases(c, slug, releases.ListOptions{Status: releases.Published, Limit: buildsPerProduct})
		if portal.ErrorCode(err) == portal.ENotFound {
			continue // a product deleted since the license was made
		}
		if err != nil {
			return err
		}
		for _, r := range page.Releases {
			for _, a := range r.Artifacts {
				if a.Status == releases.Uploaded {
					v.Builds = append(v.Builds, linkBuild{Value: slug + "|" + r.Version + "|" + a.Filename,
						Label: slug + " " + r.Version + " · " + a.Filename})
				}
			}
		}
	}
	for i, d := range h.opts.LinkTTLs {
		v.TTLs = append(v.TTLs, linkTTL{Value: ttlValue(d), Label: ttlLabel(d), Selected: i == 1 || len(h.opts.LinkTTLs) == 1})
	}
	return nil
}

func (h *Handler) adminLicense(c *gin.Context) {
	id := c.Param("id")
	l, err := h.Licenses.Get(c, id)
	if err != nil {
		h.Fail(c, err)
		return
	}
	ps, err := h.managedProducts(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	now := h.now()
	v := licenseView{adminView: h.adminView(c, "licenses"), License: l.ViewAt(now), Products: ps, Channels: releases.Channels,
		Renew: renewDefault(l, now), Now: now}
	if led := h.ledger(); led != nil {
		gs, next, err := led.ByLicense(c, l.ID, c.Query("cursor"), 50)
		if err != nil {
			h.Fail(c, err)
			return
		}
		v.Downloads = gs
		if next != "" {
			v.MoreDownloads = licensePath(l.ID) + "?" + url.Values{"cursor": {next}}.Encode() + "#downloads"
		}
	}
	if h.Downloads != nil {
		if v.Quota, err = h.Downloads.Quota(c, &l); err != nil {
			h.Fail(c, err)
			return
		}
		if v.Links, err = h.Downloads.ListLinks(c, l.ID); err != nil {
			h.Fail(c, err)
			return
		}
		if err := h.linkChoices(c, l, &v); err != nil {
			h.Fail(c, err)
			return
		}
	}
	h.Render(c, http.StatusOK, "admin_license", l.Customer, v)
}

func (h *Handler) adminEditLicense(c *gin.Context) {
	p, err := licensePatchFromForm(c.Request.PostForm)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.updateLicense(c, p, "License saved.")
}

func (h *Handler) adminRenewLicense(c *gin.Context) {
	p, err := renewPatchFromForm(c.Request.PostForm)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.updateLicense(c, p, "License renewed until "+p.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC")+".")
}

// updateLicense applies p with licenses.Service.Update, as PATCH
// /v1/licenses/{id} does.
func (h *Handler) updateLicense(c *gin.Context, p licenses.Patch, notice string) {
	l, err := h.Licenses.Update(c, c.Param("id"), p)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, notice, licensePath(l.ID))
}

// adminLicenseStatus is suspend, reinstate or revoke, the licenses.Service
// methods of POST /v1/licenses/{id}/suspend, /reinstate and /revoke. A
// revocation is final, so its form asks for a confirmation.
func (h *Handler) adminLicenseStatus(did string) gin.HandlerFunc {
	fns := map[string]func(*licenses.Service, context.Context, string) (licenses.License, error){
		"suspended": (*licenses.Service).Suspend, "reinstated": (*licenses.Service).Reinstate, "revoked": (*licenses.Service).Revoke,
	}
	fn := fns[did]
	return func(c *gin.Context) {
		if did == "revoked" && c.PostForm("confirm") != "yes" {
			e := portal.Errorf(portal.EInvalid, "a revocation is final: tick the confirmation to revoke the license")
			e.Details = map[string]any{"field": "confirm"}
			h.Fail(c, e)
			return
		}
		l, err := fn(h.Licenses, c, c.Param("id"))
		if err != nil {
			h.Fail(c, err)
			return
		}
		h.done(c, "License of "+l.Customer+" "+did+".", licensePath(l.ID))
	}
}

func (h *Handler) adminReissueLicense(c *gin.Context) {
	l, key, err := h.Licenses.Reissue(c, c.Param("id"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.showSecret(c, http.StatusOK, secretView{adminView: adminView{Section: "licenses"}, What: "license key", Secret: key,
		Next: licensePath(l.ID), NextLabel: "Back to the license of " + l.Customer,
		Notice: "License " + l.ID + " has a new key; the old one is refused from now on."})
}

// adminCreateLink makes a share link on the license's behalf, as POST
// /v1/links with "license" does for an admin: downloads.Service.ActAs
// makes the license the caller (the audit actor stays the admin), the
// build is resolved with the license's whole decision (h.resolve), and
// downloads.Service.CreateLink makes it. The link's URL carries its token,
// so it is shown once, on this POST's own page.
func (h *Handler) adminCreateLink(c *gin.Context) {
	id := c.Param("id")
	av := h.adminView(c, "licenses")
	form, err := h.readLinkForm(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	ctx, err := h.Downloads.ActAs(c.Request.Context(), id)
	if err != nil {
		h.Fail(c, err)
		return
	}
	c.Request = c.Request.WithContext(ctx)
	if err := who(c).MayShare(h.now()); err != nil {
		h.Fail(c, err)
		return
	}
	linkURL, label, err := h.shareLink(c, form)
	if err != nil {
		h.Fail(c, err)
		return
	}
	noReferrer(c)
	h.showSecret(c, http.StatusCreated, secretView{adminView: av, What: "share link", Secret: linkURL,
		Next: licensePath(id) + "#links", NextLabel: "Back to the license",
		Notice: "Share link for " + label + "."})
}

// adminRevokeLink ends one of the license's share links
// (downloads.Service.RevokeLink, as DELETE /v1/links/{id}).
func (h *Handler) adminRevokeLink(c *gin.Context) {
	id := c.Param("id")
	if _, err := h.Licenses.Get(c, id); err != nil {
		h.Fail(c, err)
		return
	}
	if err := h.Downloads.RevokeLink(c, c.Param("link")); err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Share link revoked.", licensePath(id)+"#links")
}

// ledger is the download ledger, or nil when the pages run without one.
func (h *Handler) ledger() *ledger.Ledger {
	if h.Downloads == nil {
		return nil
	}
	return h.Downloads.Ledger()
}
