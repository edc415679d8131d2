package server

import (
	"context"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
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
	p, err = s.catalog.CreateProduct(c, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusCreated, p.Public())
}

func (s *Server) listProducts(c *gin.Context) {
	all, err := s.catalog.Products(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := []releases.Product{}
	for _, p := range all {
		if _, err := mayView(c, p); err == nil {
			out = append(out, p.Public())
		}
	}
	c.PureJSON(http.StatusOK, gin.H{"products": out})
}

// product loads the path's product and checks that the caller may see it.
func (s *Server) product(c *gin.Context) (releases.Product, bool, error) {
	p, err := s.catalog.Product(c, c.Param("product"))
	if err != nil {
		return p, false, err
	}
	manager, err := mayView(c, p)
	if err != nil {
		return p, false, err
	}
	return p, manager, nil
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
	if err := mayPublish(c, slug); err != nil {
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
	r, err := s.catalog.CreateRelease(c, slug, releases.NewRelease{
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
	page, err := s.catalog.Releases(c, p.Slug, opt)
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
		r, err = s.latestRelease(c, p, c.Query("channel"))
	} else {
		r, err = s.catalog.Release(c, p.Slug, ver)
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

// latestRelease is the newest published release on the channel that the
// caller's license (if any) may have, on any platform.
func (s *Server) latestRelease(c *gin.Context, p releases.Product, channel string) (releases.Release, error) {
	ch, err := releases.ParseChannel(channel)
	if err != nil {
		return releases.Release{}, err
	}
	var lic *licenses.License
	if id := who(c); id.license != nil && id.license.Product == p.Slug {
		l := *id.license
		lic = &l
	}
	now := s.now()
	if lic != nil {
		if err := lic.RefusesAll(p.Slug, now); err != nil {
			return releases.Release{}, err
		}
	}
	for _, r := range s.Index.Releases(p.Slug) {
		if !releases.Visible(ch, r.Channel) {
			continue
		}
		if lic != nil && lic.Decide(licenses.TargetOf(r, ""), now) != nil {
			continue
		}
		return r, nil
	}
	return releases.Release{}, portal.Errorf(portal.ENotFound, "%s has no published %s release this caller may have", p.Slug, ch)
}

func (s *Server) publish(c *gin.Context) { s.transition(c, (*releases.Service).Publish) }
func (s *Server) yank(c *gin.Context)    { s.transition(c, (*releases.Service).Yank) }

func (s *Server) transition(c *gin.Context, fn func(*releases.Service, context.Context, string, string) (releases.Release, error)) {
	slug := c.Param("product")
	if err := mayPublish(c, slug); err != nil {
		s.fail(c, err)
		return
	}
	r, err := fn(s.catalog, c, slug, c.Param("version"))
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
