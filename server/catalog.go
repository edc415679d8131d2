package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/updates"
)

func (s *Server) createProduct(c *gin.Context) {
	var in struct {
		Slug         string `json:"slug"`
		Name         string `json:"name"`
		Distribution string `json:"distribution"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	p := releases.Product{Slug: in.Slug, Name: in.Name, Distribution: in.Distribution}
	if err := releases.ValidateSlug(p.Slug); err != nil {
		s.fail(c, err)
		return
	}
	sealed, err := s.Keys.New(p.Slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	p.SigningKey = sealed
	p, err = s.Catalog.CreateProduct(c, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, p.Public())
}

func (s *Server) listProducts(c *gin.Context) {
	all, err := s.Catalog.Products(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := []releases.Product{}
	who, now := caller(c), s.now()
	for _, p := range all {
		if who.MayView(p, now, false, false) == nil {
			out = append(out, p.Public())
		}
	}
	c.PureJSON(http.StatusOK, gin.H{"products": out})
}

// product loads the path's product and checks that the caller may see it.
func (s *Server) product(c *gin.Context) (releases.Product, bool, error) {
	p, err := s.Catalog.Product(c, c.Param("product"))
	if err != nil {
		return p, false, err
	}
	who := caller(c)
	if err := who.MayView(p, s.now(), false, false); err != nil {
		return p, false, err
	}
	return p, who.SeesDrafts(p.Slug), nil
}

func (s *Server) getProduct(c *gin.Context) {
	p, _, err := s.product(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, p.Public())
}

func (s *Server) createRelease(c *gin.Context) {
	slug := c.Param("product")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	var in struct {
		Version  string            `json:"version"`
		Channel  string            `json:"channel"`
		Notes    string            `json:"notes"`
		Metadata map[string]string `json:"metadata"`
		Rollout  int               `json:"rollout"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	r, err := s.Catalog.CreateRelease(c, slug, releases.NewRelease{
		Version: in.Version, Channel: in.Channel, Notes: in.Notes, Metadata: in.Metadata, Rollout: in.Rollout,
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, r.Public())
}

func (s *Server) listReleases(c *gin.Context) {
	p, manager, err := s.product(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	opt := releases.ListOptions{Channel: c.Query("channel"), Status: c.Query("status"), Cursor: c.Query("cursor")}
	if l := c.Query("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			s.fail(c, portal.Errorf(portal.EInvalid, "limit must be a positive number"))
			return
		}
		opt.Limit = n
	}
	if !manager {
		// Customers and the public see published releases only.
		if opt.Status != "" && opt.Status != releases.Published {
			s.fail(c, portal.Errorf(portal.EForbidden, "only publishers see %s releases", opt.Status))
			return
		}
		opt.Status = releases.Published
	}
	page, err := s.Catalog.Releases(c, p.Slug, opt)
	if err != nil {
		s.fail(c, err)
		return
	}
	for i, r := range page.Releases {
		page.Releases[i] = r.Public()
	}
	c.PureJSON(http.StatusOK, page)
}

func (s *Server) getRelease(c *gin.Context) {
	p, manager, err := s.product(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var r releases.Release
	if ver := c.Param("version"); ver == "latest" {
		// The newest release with a build the caller may have: on any
		// platform, or on ?platform= (and ?arch=) when given.
		var res updates.Resolution
		res, err = s.Resolver.Resolve(c, updates.Request{Product: p.Slug, Channel: c.Query("channel"),
			Platform: c.Query("platform"), Arch: c.Query("arch"), AnyBuild: true})
		r = res.Release
	} else {
		r, err = s.Catalog.Release(c, p.Slug, ver)
		if err == nil && !manager && r.Status != releases.Published {
			err = portal.Errorf(portal.ENotFound, "%s has no version %s", p.Slug, ver)
		}
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, r.Public())
}

func (s *Server) publish(c *gin.Context) { s.transition(c, (*releases.Service).Publish) }
func (s *Server) yank(c *gin.Context)    { s.transition(c, (*releases.Service).Yank) }

func (s *Server) transition(c *gin.Context, fn func(*releases.Service, context.Context, string, string) (releases.Release, error)) {
	slug := c.Param("product")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	r, err := fn(s.Catalog, c, slug, c.Param("version"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// Update checks must see a publish or yank as soon as it is answered.
	if s.Index != nil {
		if err := s.Index.Refresh(c, slug); err != nil {
			s.log.Warn("index refresh after publish/yank", "product", slug, "err", err)
		}
	}
	c.PureJSON(http.StatusOK, r.Public())
}
