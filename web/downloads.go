package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/updates"
)

// downloadRoutes are the signed-in customer's actions. Every one resolves
// the build through updates.Resolver for the session's caller and acts
// through package downloads, exactly as the API's routes do.
func (h *Handler) downloadRoutes(r *gin.RouterGroup) {
	r.POST("/download", h.download)
	r.GET("/signature/:product/:version/:filename", h.signature)
	r.GET("/keys/:product/minisign.pub", h.minisignKey)
	r.POST("/share", h.createLink)
	r.POST("/share/revoke", h.revokeLink)
}

// buildValue names a build in a form field: product, version and file
// name, the file name last (it is the only part that may hold a "|").
func buildValue(product, version, filename string) string {
	return product + "|" + version + "|" + filename
}

func parseBuild(v string) (product, version, filename string, err error) {
	parts := strings.SplitN(v, "|", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", portal.Errorf(portal.EInvalid, "choose a build")
	}
	return parts[0], parts[1], parts[2], nil
}

// resolve is the one way the pages find a build: the caller in the
// request's context asks updates.Resolver for an exact version and file
// name, which applies the license's whole decision (status, expiry,
// constraint, channels, platforms) and refuses yanked releases.
func (h *Handler) resolve(c *gin.Context, product, version, filename string) (updates.Resolution, error) {
	if len(product) > 200 || len(version) > 200 || len(filename) > 1024 {
		return updates.Resolution{}, portal.Errorf(portal.EInvalid, "that build name is too long")
	}
	return h.Resolver.Resolve(c, updates.Request{Product: product, Version: version, Filename: filename})
}

// download mints the chosen build (downloads.Service.Grant: the API's
// quota and ledger) and sends the browser (303) to the storage URL. The
// answer carries a signed URL: no referrer, no caching.
func (h *Handler) download(c *gin.Context) {
	product, version, filename := c.PostForm("product"), c.PostForm("version"), c.PostForm("filename")
	res, err := h.resolve(c, product, version, filename)
	if err != nil {
		h.Fail(c, err)
		return
	}
	g, err := h.Downloads.Grant(c, res, h.opts.URLTTL, downloads.Origin{Client: c.ClientIP(), UserAgent: c.GetHeader("User-Agent")})
	if err != nil {
		h.Fail(c, err)
		return
	}
	noReferrer(c)
	c.Redirect(http.StatusSeeOther, g.URL)
}

// signature serves a build's minisign signature as the .minisig file
// minisign -V reads, for a build the caller may have.
func (h *Handler) signature(c *gin.Context) {
	name, ok := strings.CutSuffix(c.Param("filename"), ".minisig")
	if !ok {
		h.Fail(c, portal.Errorf(portal.ENotFound, "no such signature file"))
		return
	}
	res, err := h.resolve(c, c.Param("product"), c.Param("version"), name)
	if err != nil {
		h.Fail(c, err)
		return
	}
	sig := res.Artifact.Signatures["minisign"]
	if sig == "" {
		h.Fail(c, portal.Errorf(portal.ENotFound, "%s has no minisign signature", name))
		return
	}
	attachment(c, name+".minisig")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(sig))
}

// minisignKey serves a product's minisign public key file (minisign.pub)
// to a caller who may view the product.
func (h *Handler) minisignKey(c *gin.Context) {
	p, err := h.Catalog.Product(c, c.Param("product"))
	if err != nil {
		h.Fail(c, err)
		return
	}
	if err := access.FromContext(c).MayView(p, h.now(), false, false); err != nil {
		h.Fail(c, err)
		return
	}
	keys, err := h.Keys.Describe(c, p.Slug)
	if err != nil {
		h.Fail(c, err)
		return
	}
	attachment(c, p.Slug+"-minisign.pub")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(keys.Current.MinisignPub))
}

// attachment names the file a response is saved as.
func attachment(c *gin.Context, name string) {
	c.Header("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(name))
}

// createLink makes a share link for a build the license may have, with
// one of the offered lifetimes (downloads.Service caps it), and shows the
// page with the link's URL, once: the token is not stored and never goes
// into a redirect or a cookie.
func (h *Handler) createLink(c *gin.Context) {
	who := access.FromContext(c)
	if err := who.MayShare(h.now()); err != nil {
		h.Fail(c, err)
		return
	}
	form, err := h.readLinkForm(c)
	if err != nil {
		h.Fail(c, err)
		return
	}
	linkURL, label, err := h.shareLink(c, form)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v, err := h.dashboardView(c, who)
	if err != nil {
		h.Fail(c, err)
		return
	}
	v.NewLink = linkURL
	v.NewLinkOf = label
	noReferrer(c)
	h.Render(c, http.StatusCreated, "customer", "Share link created", v)
}

// linkForm is what a share link form asks for: a build and a lifetime.
type linkForm struct {
	product, version, filename string
	ttl                        time.Duration
}

// readLinkForm reads the share link form (fields build and ttl).
func (h *Handler) readLinkForm(c *gin.Context) (linkForm, error) {
	var f linkForm
	var err error
	if f.product, f.version, f.filename, err = parseBuild(c.PostForm("build")); err != nil {
		return linkForm{}, err
	}
	if f.ttl, err = h.linkTTL(c.PostForm("ttl")); err != nil {
		return linkForm{}, err
	}
	return f, nil
}

// shareLink makes the share link f asks for, its build resolved with the
// license's whole decision (h.resolve), for the license of c's identity.
// It returns the link's URL, which carries its token and so is shown once,
// and a line naming the build and the link's end.
func (h *Handler) shareLink(c *gin.Context, f linkForm) (linkURL, label string, err error) {
	res, err := h.resolve(c, f.product, f.version, f.filename)
	if err != nil {
		return "", "", err
	}
	link, token, err := h.Downloads.CreateLink(c, res, f.ttl)
	if err != nil {
		return "", "", err
	}
	return h.publicURL(c) + "/d/" + token,
		link.Product + " " + link.Version + " · " + link.Filename + ", until " + link.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC"), nil
}

// linkTTL accepts only the lifetimes the page offers.
func (h *Handler) linkTTL(v string) (time.Duration, error) {
	for _, d := range h.opts.LinkTTLs {
		if v == ttlValue(d) {
			return d, nil
		}
	}
	return 0, portal.Errorf(portal.EInvalid, "choose one of the offered lifetimes")
}

func (h *Handler) revokeLink(c *gin.Context) {
	id := c.PostForm("id")
	if id == "" || len(id) > 100 {
		h.Fail(c, portal.Errorf(portal.EInvalid, "say which link to revoke"))
		return
	}
	if err := h.Downloads.RevokeLink(c, id); err != nil {
		h.Fail(c, err)
		return
	}
	h.SetFlash(c, "The share link is revoked: it no longer works.")
	c.Redirect(http.StatusSeeOther, "/")
}

// publicURL is where clients reach the portal: Options.PublicURL, or this
// request's scheme and host.
func (h *Handler) publicURL(c *gin.Context) string {
	if h.opts.PublicURL != "" {
		return h.opts.PublicURL
	}
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host
}
