package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/releases"
)

// This file is the admin console's frame: its routes, sign-in, and the
// checks every page makes. The console is a door like the API: each
// action calls the same domain service method the API's handler calls,
// with the signed-in token's caller in the context (so the audit record is
// written by the service, in the change's transaction, naming that
// token), after the same access check (access.Caller.MayPublish for a
// product's releases, MayAdminister for licenses, tokens and the audit
// log). Nothing here decides what a change may do.
//
// Every action is a POST carrying the session's CSRF token (checkCSRF
// refuses it otherwise before any handler runs) and answers 303 to the
// page it came from (POST-redirect-GET), with a one-time notice; a refusal
// is the error page with the API's code and message, and nothing changes.
// The two answers that show a secret once (a new or reissued license key,
// a new token) are the POST's own page, never a redirect: the secret is in
// no URL, no cookie and no log.

// adminRoutes registers the console under AdminPath.
func (h *Handler) adminRoutes(r *gin.RouterGroup) {
	a := r.Group(AdminPath)
	a.GET("", h.adminHome)
	a.POST("/signin", h.adminSignIn)
	// The address of a sign-in's answer (a wrong token's error page) or of
	// a sign-out, opened again, leads back to the console.
	a.GET("/signin", h.adminBack)
	a.GET("/signout", h.adminBack)
	a.POST("/signout", h.SignOut)

	in := a.Group("", h.RequireSession(KindToken))
	// Products and releases: admins and the publishers of each product.
	in.GET("/products", h.adminProducts)
	in.GET("/products/:product", h.adminProduct)
	in.GET("/products/:product/releases/:version", h.adminRelease)
	in.POST("/products/:product/releases/:version/publish", h.adminTransition((*releases.Service).Publish, "published"))
	in.POST("/products/:product/releases/:version/yank", h.adminTransition((*releases.Service).Yank, "yanked"))
	in.POST("/products/:product/releases/:version/unyank", h.adminTransition((*releases.Service).Unyank, "unyanked"))
	in.POST("/products/:product/releases/:version/notes", h.adminReleaseNotes)
	in.POST("/products/:product/releases/:version/rollout", h.adminReleaseRollout)
	in.POST("/products/:product/releases/:version/channel", h.adminReleaseChannel)
	in.POST("/products/:product/releases/:version/metadata", h.adminReleaseMetadata)
	in.POST("/products/:product/releases", h.adminCreateRelease)
	in.POST("/products/:product/releases/:version/delete", h.adminDeleteRelease)
	in.POST("/products/:product/releases/:version/artifacts/:filename/delete", h.adminDeleteArtifact)
	in.GET("/downloads", h.adminDownloads)

	// Products themselves, licenses, tokens, webhooks and the audit log:
	// admins only.
	ad := in.Group("", h.adminOnly)
	ad.POST("/products", h.adminCreateProduct)
	ad.POST("/products/:product/edit", h.adminEditProduct)
	ad.POST("/products/:product/delete", h.adminDeleteProduct)
	ad.GET("/licenses", h.adminLicenses)
	ad.GET("/licenses/new", h.adminNewLicense)
	ad.POST("/licenses", h.adminCreateLicense)
	ad.GET("/licenses/:id", h.adminLicense)
	ad.POST("/licenses/:id/edit", h.adminEditLicense)
	ad.POST("/licenses/:id/renew", h.adminRenewLicense)
	ad.POST("/licenses/:id/suspend", h.adminLicenseStatus("suspended"))
	ad.POST("/licenses/:id/reinstate", h.adminLicenseStatus("reinstated"))
	ad.POST("/licenses/:id/revoke", h.adminLicenseStatus("revoked"))
	ad.POST("/licenses/:id/reissue", h.adminReissueLicense)
	ad.POST("/licenses/:id/links", h.adminCreateLink)
	ad.POST("/licenses/:id/links/:link/revoke", h.adminRevokeLink)
	ad.GET("/tokens", h.adminTokens)
	ad.POST("/tokens", h.adminCreateToken)
	ad.POST("/tokens/:id/revoke", h.adminRevokeToken)
	ad.GET("/audit", h.adminAudit)
	wh := ad.Group("/webhooks", h.requireWebhooks)
	wh.GET("", h.adminWebhooks)
	wh.POST("", h.adminCreateWebhook)
	wh.GET("/:id", h.adminWebhook)
	wh.POST("/:id/delete", h.adminDeleteWebhook)
}

// NotFound answers an unknown path under AdminPath with the console's
// error page (404), in its layout (server.PagesNotFound); other paths are
// left to the API's JSON answer. The router's not-found chain has the
// API's middleware only, so the pages' own (security headers, the session
// for the layout) run here first: at the end of the chain their c.Next
// runs nothing.
func (h *Handler) NotFound(c *gin.Context) bool {
	p := c.Request.URL.Path
	if p != AdminPath && !strings.HasPrefix(p, AdminPath+"/") {
		return false
	}
	for _, m := range []gin.HandlerFunc{h.headers, h.loadSession} {
		if m(c); c.IsAborted() {
			return true
		}
	}
	h.Fail(c, portal.Errorf(portal.ENotFound, "the console has no such page"))
	return true
}

// adminHome is the console's sign-in form, or, signed in, its first page.
func (h *Handler) adminHome(c *gin.Context) {
	if s := SessionOf(c); s == nil || s.Kind != KindToken {
		h.Render(c, http.StatusOK, "admin_signin", "Console sign-in", nil)
		return
	}
	c.Redirect(http.StatusSeeOther, AdminPath+"/products")
}

func (h *Handler) adminBack(c *gin.Context) { c.Redirect(http.StatusSeeOther, AdminPath) }

// adminSignIn checks the posted token with the API's limiter (SignIn) and
// starts the console's session.
func (h *Handler) adminSignIn(c *gin.Context) {
	if err := h.SignIn(c, KindToken, c.PostForm("token")); err != nil {
		h.Fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, AdminPath+"/products")
}

// who is the signed-in caller (RequireSession put it in the context).
func who(c *gin.Context) access.Caller { return access.FromContext(c.Request.Context()) }

// adminOnly refuses publishers (403) the pages of licenses, tokens and
// the audit log, as the API does.
func (h *Handler) adminOnly(c *gin.Context) {
	if err := who(c).MayAdminister(); err != nil {
		h.Fail(c, err)
		return
	}
	c.Next()
}

// adminView is what every console page's Data carries besides its own
// values: the caller's role, for the navigation.
type adminView struct {
	Admin bool
	Role  string
	Name  string
	// Section names the navigation entry of the page.
	Section string
}

func (h *Handler) adminView(c *gin.Context, section string) adminView {
	w := who(c)
	v := adminView{Admin: w.Role() == access.Admin, Role: w.Role().String(), Section: section}
	if t := w.Token(); t != nil {
		v.Name = t.Name
	}
	return v
}

// done ends an action: the notice for the next page and a 303 to it.
func (h *Handler) done(c *gin.Context, notice, to string) {
	h.SetFlash(c, notice)
	c.Redirect(http.StatusSeeOther, to)
}

// managedProducts returns the products the caller manages (an admin:
// every one; a publisher: those of its token), in slug order.
func (h *Handler) managedProducts(ctx context.Context) ([]releases.Product, error) {
	all, err := h.Catalog.Products(ctx)
	if err != nil {
		return nil, err
	}
	w := access.FromContext(ctx)
	out := make([]releases.Product, 0, len(all))
	for _, p := range all {
		if w.Manages(p.Slug) {
			out = append(out, p.Public())
		}
	}
	slices.SortFunc(out, func(a, b releases.Product) int {
		switch {
		case a.Slug < b.Slug:
			return -1
		case a.Slug > b.Slug:
			return 1
		}
		return 0
	})
	return out, nil
}

// refreshIndex reloads the product in the update index after a catalog
// change, so update checks answer with it at once (as the API does);
// other replicas learn of it through the store watch.
func (h *Handler) refreshIndex(c *gin.Context, slug string) {
	if h.Index == nil {
		return
	}
	if err := h.Index.Refresh(c, slug); err != nil {
		h.log.Warn("web: index refresh after a catalog change", "product", slug, "err", err)
	}
}

// releasePath is the console's page of a release.
func releasePath(product, version string) string {
	return AdminPath + "/products/" + url.PathEscape(product) + "/releases/" + url.PathEscape(version)
}

func productPath(product string) string { return AdminPath + "/products/" + url.PathEscape(product) }

func pathEscape(s string) string { return url.PathEscape(s) }

func licensePath(id string) string { return AdminPath + "/licenses/" + url.PathEscape(id) }

// invalidParam is the refusal of a query parameter the console does not
// take (a hand-made URL).
func invalidParam(name string) error {
	e := portal.Errorf(portal.EInvalid, "%s is not valid here", name)
	e.Details = map[string]any{"field": name}
	return e
}
