package web

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/releases"
)

// The console's catalog pages: products, their releases and artifacts,
// and the release actions (publish, yank, unyank, notes, rollout). Each
// action checks access.Caller.MayPublish and calls the releases.Service
// method the API calls, which validates and audits it.

type productsView struct {
	adminView
	Products []releases.Product
}

func (h *Handler) adminProducts(c *gin.Context) {
	ps, err := h.managedProducts(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.Render(c, http.StatusOK, "admin_products", "Products", productsView{adminView: h.adminView(c, "products"), Products: ps})
}

type productView struct {
	adminView
	Product    releases.Product
	Releases   []releases.Release
	NextCursor string
}

// releasesPerPage is the releases of one page of a product.
const releasesPerPage = 50

func (h *Handler) adminProduct(c *gin.Context) {
	slug := c.Param("product")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	p, err := h.Catalog.Product(c, slug)
	if err != nil {
		h.Fail(c, err)
		return
	}
	page, err := h.Catalog.Releases(c, slug, releases.ListOptions{Limit: releasesPerPage, Cursor: c.Query("cursor")})
	if err != nil {
		h.Fail(c, err)
		return
	}
	for i, r := range page.Releases {
		page.Releases[i] = r.Public()
	}
	h.Render(c, http.StatusOK, "admin_product", p.Name, productView{adminView: h.adminView(c, "products"),
		Product: p.Public(), Releases: page.Releases, NextCursor: page.NextCursor})
}

type releaseView struct {
	adminView
	Product  releases.Product
	Release  releases.Release
	Download uint64 // downloads of the release so far
}

func (h *Handler) adminRelease(c *gin.Context) {
	slug, ver := c.Param("product"), c.Param("version")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	p, err := h.Catalog.Product(c, slug)
	if err != nil {
		h.Fail(c, err)
		return
	}
	r, err := h.Catalog.Release(c, slug, ver)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v := releaseView{adminView: h.adminView(c, "products"), Product: p.Public(), Release: r.Public()}
	if led := h.ledger(); led != nil {
		if v.Download, err = led.Count(c, slug, r.Version); err != nil {
			h.Fail(c, err)
			return
		}
	}
	h.Render(c, http.StatusOK, "admin_release", p.Name+" "+r.Version, v)
}

// adminTransition is publish, yank or unyank: the releases.Service method
// the API's routes call.
func (h *Handler) adminTransition(fn func(*releases.Service, context.Context, string, string) (releases.Release, error), did string) gin.HandlerFunc {
	return func(c *gin.Context) {
		slug := c.Param("product")
		if err := who(c).MayPublish(slug); err != nil {
			h.Fail(c, err)
			return
		}
		r, err := fn(h.Catalog, c, slug, c.Param("version"))
		if err != nil {
			h.Fail(c, err)
			return
		}
		h.refreshIndex(c, slug)
		h.done(c, slug+" "+r.Version+" "+did+".", releasePath(slug, r.Version))
	}
}

func (h *Handler) adminReleaseNotes(c *gin.Context) {
	notes := c.PostForm("notes")
	h.editRelease(c, releases.ReleaseEdit{Notes: &notes}, "Release notes saved.")
}

func (h *Handler) adminReleaseRollout(c *gin.Context) {
	n, err := rolloutFromForm(c.Request.PostForm)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.editRelease(c, releases.ReleaseEdit{Rollout: &n}, "Rollout set.")
}

// editRelease applies e with releases.Service.EditRelease, as PATCH
// /v1/products/{product}/releases/{version} does.
func (h *Handler) editRelease(c *gin.Context, e releases.ReleaseEdit, notice string) {
	slug := c.Param("product")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	_, r, err := h.Catalog.EditRelease(c, slug, c.Param("version"), e)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.refreshIndex(c, slug)
	h.done(c, notice, releasePath(slug, r.Version))
}

// rolloutOf is the rollout a release shows: 0 (stored for everyone) is
// 100%.
func rolloutOf(r releases.Release) int {
	if r.Rollout <= 0 {
		return 100
	}
	return r.Rollout
}

func init() {
	funcs["rollout"] = rolloutOf
	funcs["pathEscape"] = pathEscape
	funcs["list"] = func(s ...string) []string { return s }
	funcs["has"] = func(list []string, s string) bool { return slices.Contains(list, s) }
	funcs["timeOrNever"] = func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
}
