package web

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
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
	// Channels are those a new draft may be on.
	Channels []string
	// Keys are the product's public signing keys (as GET
	// /v1/products/{product}/keys), nil when they cannot be read.
	Keys *signing.Keys
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
	v := productView{adminView: h.adminView(c, "products"),
		Product: p.Public(), Releases: page.Releases, NextCursor: page.NextCursor, Channels: releases.Channels}
	// The keys a vendor builds into its app; the page still serves its
	// other purposes when they cannot be read.
	if keys, err := h.Keys.Describe(c, slug); err == nil {
		v.Keys = &keys
	} else {
		h.log.Warn("web: product keys", "product", slug, "err", err)
	}
	h.Render(c, http.StatusOK, "admin_product", p.Name, v)
}

type releaseView struct {
	adminView
	Product  releases.Product
	Release  releases.Release
	Download uint64 // downloads of the release so far
	// Channels are those a draft may move to.
	Channels []string
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
	v := releaseView{adminView: h.adminView(c, "products"), Product: p.Public(), Release: r.Public(), Channels: releases.Channels}
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
	notes := formText(c.PostForm("notes"))
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

// notesFormBody bounds the forms that carry release notes: notes of
// releases.MaxNotes bytes as a browser sends them (a byte is at most three
// characters percent-encoded, a line break six: the browser sends CRLF),
// and the rest of the form.
const notesFormBody = 6*releases.MaxNotes + maxFormBody

func init() {
	largeForms[AdminPath+"/products/:product/releases/:version/notes"] = notesFormBody
	largeForms[AdminPath+"/products/:product/releases"] = notesFormBody
	funcs["rollout"] = rolloutOf
	funcs["metadataText"] = metadataText
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

// Product administration (admins only, as POST, PATCH and DELETE
// /v1/products are): create, edit, delete. The steps are those of the API's
// handlers; releases.Service decides what a product may be, and
// publishing.Service what a delete refuses.

// adminCreateProduct is POST /v1/products: the slug checked, a signing key
// made for it, then releases.Service.CreateProduct.
func (h *Handler) adminCreateProduct(c *gin.Context) {
	p := releases.Product{Slug: strings.TrimSpace(c.PostForm("slug")), Name: strings.TrimSpace(c.PostForm("name")),
		Distribution: c.PostForm("distribution")}
	if err := releases.ValidateSlug(p.Slug); err != nil {
		h.Fail(c, err)
		return
	}
	sealed, err := h.Keys.New(p.Slug)
	if err != nil {
		h.Fail(c, err)
		return
	}
	p.SigningKey = sealed
	if p, err = h.Catalog.CreateProduct(c, p); err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Product "+p.Slug+" created.", productPath(p.Slug))
}

// adminEditProduct is PATCH /v1/products/{product} with the form's name
// and distribution.
func (h *Handler) adminEditProduct(c *gin.Context) {
	slug := c.Param("product")
	name, dist := strings.TrimSpace(c.PostForm("name")), c.PostForm("distribution")
	_, p, err := h.Catalog.EditProduct(c, slug, releases.ProductEdit{Name: &name, Distribution: &dist})
	if err != nil {
		h.Fail(c, err)
		return
	}
	// A change of distribution changes who may have the product's
	// updates: the index answers with it at once.
	h.refreshIndex(c, p.Slug)
	h.done(c, "Product saved.", productPath(p.Slug))
}

// adminDeleteProduct is DELETE /v1/products/{product}: refused (409)
// while the product has published or yanked releases.
// Its drafts' files go with it, so the form asks for a confirmation.
func (h *Handler) adminDeleteProduct(c *gin.Context) {
	if c.PostForm("confirm") != "yes" {
		h.Fail(c, formError("confirm", "deleting a product is final: tick the confirmation to delete it"))
		return
	}
	p, err := h.Publishing.DeleteProduct(c, c.Param("product"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Product "+p.Slug+" deleted.", AdminPath+"/products")
}

// adminCreateRelease is POST /v1/products/{product}/releases: a draft,
// to which artifacts are then added with the CLI or the API.
func (h *Handler) adminCreateRelease(c *gin.Context) {
	slug := c.Param("product")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	r, err := h.Catalog.CreateRelease(c, slug, releases.NewRelease{
		Version: strings.TrimSpace(c.PostForm("version")), Channel: c.PostForm("channel"), Notes: formText(c.PostForm("notes")),
	})
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Draft "+r.Version+" created: add its artifacts with portal publish or the API, then publish it.", releasePath(slug, r.Version))
}

// adminDeleteRelease is DELETE /v1/products/{product}/releases/{version}:
// drafts only (releases.Service refuses any other), with their objects.
func (h *Handler) adminDeleteRelease(c *gin.Context) {
	slug := c.Param("product")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	r, err := h.Publishing.DeleteDraft(c, slug, c.Param("version"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Draft "+r.Version+" deleted.", productPath(slug))
}

// adminDeleteArtifact is DELETE
// /v1/products/{product}/releases/{version}/artifacts/{filename}: from a
// draft only (publishing.Service refuses it otherwise), with its object.
func (h *Handler) adminDeleteArtifact(c *gin.Context) {
	slug, ver, name := c.Param("product"), c.Param("version"), c.Param("filename")
	if err := who(c).MayPublish(slug); err != nil {
		h.Fail(c, err)
		return
	}
	if err := h.Publishing.DeleteArtifact(c, slug, ver, name); err != nil {
		h.Fail(c, err)
		return
	}
	h.done(c, "Artifact "+name+" deleted.", releasePath(slug, ver))
}

// adminReleaseMetadata replaces a release's metadata (the whole map, as
// PATCH does; an empty field removes it).
func (h *Handler) adminReleaseMetadata(c *gin.Context) {
	m, err := formMetadata(c.Request.PostForm, "metadata")
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.editRelease(c, releases.ReleaseEdit{Metadata: &m}, "Metadata saved.")
}

// adminReleaseChannel moves a draft to another channel (EditRelease
// refuses it for a release that is not a draft).
func (h *Handler) adminReleaseChannel(c *gin.Context) {
	ch := c.PostForm("channel")
	h.editRelease(c, releases.ReleaseEdit{Channel: &ch}, "Channel set.")
}
