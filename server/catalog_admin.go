package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/releases"
)

// catalogAdminRoutes registers the catalog's day-two administration:
// editing and deleting products, editing, deleting and unyanking releases.
// Who may do what is package access; the rules of each change (what a
// published release may still change, what a delete refuses) are in
// package releases, and the object clean-up after a delete in package
// publishing. Every change is audited by the service that makes it.
func (s *Server) catalogAdminRoutes(v1 *gin.RouterGroup) {
	v1.PATCH("/products/:product", s.requireAdmin, s.editProduct)
	v1.DELETE("/products/:product", s.requireAdmin, s.deleteProduct)
	v1.PATCH("/products/:product/releases/:version", s.editRelease)
	v1.DELETE("/products/:product/releases/:version", s.deleteRelease)
	v1.POST("/products/:product/releases/:version/unyank", s.unyank)
}

func (s *Server) editProduct(c *gin.Context) {
	var in struct {
		Name         *string `json:"name"`
		Distribution *string `json:"distribution"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	slug := c.Param("product")
	_, p, err := s.Catalog.EditProduct(c, slug, releases.ProductEdit{Name: in.Name, Distribution: in.Distribution})
	if err != nil {
		s.fail(c, err)
		return
	}
	// A change of distribution changes who may have the product's
	// updates: answer with it at once.
	s.refreshIndex(c, p.Slug)
	c.PureJSON(http.StatusOK, p.Public())
}

func (s *Server) deleteProduct(c *gin.Context) {
	if _, err := s.Publishing.DeleteProduct(c, c.Param("product")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) editRelease(c *gin.Context) {
	slug := c.Param("product")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	var in struct {
		Notes    *string            `json:"notes"`
		Metadata *map[string]string `json:"metadata"`
		Rollout  *int               `json:"rollout"`
		Channel  *string            `json:"channel"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	_, r, err := s.Catalog.EditRelease(c, slug, c.Param("version"), releases.ReleaseEdit{
		Notes: in.Notes, Metadata: in.Metadata, Rollout: in.Rollout, Channel: in.Channel,
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	// A rollout or notes change reaches update checks and feeds (and their
	// ETags) as soon as it is answered.
	s.refreshIndex(c, slug)
	c.PureJSON(http.StatusOK, r.Public())
}

func (s *Server) deleteRelease(c *gin.Context) {
	slug := c.Param("product")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.Publishing.DeleteDraft(c, slug, c.Param("version")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) unyank(c *gin.Context) { s.transition(c, (*releases.Service).Unyank) }

// refreshIndex reloads the product in the update index, so that the
// caller's next update check sees its own change; other replicas learn of
// it through the store watch.
func (s *Server) refreshIndex(c *gin.Context, slug string) {
	if s.Index == nil {
		return
	}
	if err := s.Index.Refresh(c, slug); err != nil {
		s.log.Warn("index refresh after a catalog change", "product", slug, "err", err)
	}
}
