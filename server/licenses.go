package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
)

// licenseRoutes registers the license administration routes beyond create,
// show, list and the status changes (registered in routes), and the share
// link listing.
func (s *Server) licenseRoutes(v1 *gin.RouterGroup) {
	v1.PATCH("/licenses/:id", s.requireAdmin, s.patchLicense)
	v1.POST("/licenses/:id/reissue", s.requireAdmin, s.reissueLicense)
	v1.GET("/links", s.listLinks)
	v1.POST("/licenses/import", s.requireAdmin, s.importLicenses)
}

// newLicense is the body of a license creation, alone or in an import.
type newLicense struct {
	Customer        string            `json:"customer"`
	Product         string            `json:"product"`
	Products        []string          `json:"products"`
	Constraint      string            `json:"constraint"`
	Channels        []string          `json:"channels"`
	Platforms       []string          `json:"platforms"`
	ExpiresAt       *time.Time        `json:"expires_at"`
	OnExpiry        string            `json:"on_expiry"`
	DownloadsPerDay int               `json:"downloads_per_day"`
	Metadata        map[string]string `json:"metadata"`
}

func (in newLicense) license() licenses.License {
	return licenses.License{
		Customer: in.Customer, Product: in.Product, Products: in.Products, Constraint: in.Constraint, Channels: in.Channels,
		Platforms: in.Platforms, ExpiresAt: in.ExpiresAt, OnExpiry: in.OnExpiry, DownloadsPerDay: in.DownloadsPerDay,
		Metadata: in.Metadata,
	}
}

// importLicenses creates every license of the body or none
// (licenses.Service.Import); with dry_run it only checks them.
func (s *Server) importLicenses(c *gin.Context) {
	var in struct {
		Licenses []newLicense `json:"licenses"`
		DryRun   bool         `json:"dry_run"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	ls := make([]licenses.License, len(in.Licenses))
	for i, nl := range in.Licenses {
		ls[i] = nl.license()
	}
	created, err := s.Licenses.Import(c, ls, in.DryRun)
	if err != nil {
		s.fail(c, err)
		return
	}
	if in.DryRun {
		c.PureJSON(http.StatusOK, gin.H{"checked": len(ls), "dry_run": true})
		return
	}
	out := make([]gin.H, len(created))
	for i, im := range created {
		out[i] = gin.H{"license": s.licenseView(im.License), "key": im.Key}
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusCreated, gin.H{"licenses": out})
}

// licenseView is how every answer shows a license: status computed now.
func (s *Server) licenseView(l licenses.License) licenses.View { return l.ViewAt(s.now()) }

func (s *Server) createLicense(c *gin.Context) {
	var in newLicense
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	l, key, err := s.Licenses.Create(c, in.license())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusCreated, gin.H{"license": s.licenseView(l), "key": key})
}

func (s *Server) getLicense(c *gin.Context) {
	l, err := s.Licenses.Get(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, s.licenseView(l))
}

// listLicenses answers GET /v1/licenses?product=&customer=&status=
// &expires_before=&limit=&cursor=.
func (s *Server) listLicenses(c *gin.Context) {
	f := licenses.Filter{Product: c.Query("product"), Customer: c.Query("customer"), Status: c.Query("status"), Cursor: c.Query("cursor")}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > licenses.MaxListLimit {
			s.fail(c, portal.Errorf(portal.EInvalid, "limit must be from 1 to %d", licenses.MaxListLimit))
			return
		}
		f.Limit = n
	}
	if v := c.Query("expires_before"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			s.fail(c, portal.Errorf(portal.EInvalid, "expires_before must be an RFC 3339 time such as 2026-01-31T00:00:00Z"))
			return
		}
		f.ExpiresBefore = t
	}
	ls, next, err := s.Licenses.List(c, f)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]licenses.View, len(ls))
	for i, l := range ls {
		out[i] = s.licenseView(l)
	}
	body := gin.H{"licenses": out}
	if next != "" {
		body["next_cursor"] = next
	}
	c.PureJSON(http.StatusOK, body)
}

func (s *Server) licenseStatus(fn func(*licenses.Service, context.Context, string) (licenses.License, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		l, err := fn(s.Licenses, c, c.Param("id"))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.PureJSON(http.StatusOK, s.licenseView(l))
	}
}

// patchLicense edits any field set at creation. Absent fields (and null,
// except for expires_at, where null clears the expiry) are left as they are.
func (s *Server) patchLicense(c *gin.Context) {
	var in struct {
		Customer        *string            `json:"customer"`
		Products        *[]string          `json:"products"`
		Constraint      *string            `json:"constraint"`
		Channels        *[]string          `json:"channels"`
		Platforms       *[]string          `json:"platforms"`
		ExpiresAt       json.RawMessage    `json:"expires_at"`
		OnExpiry        *string            `json:"on_expiry"`
		DownloadsPerDay *int               `json:"downloads_per_day"`
		Metadata        *map[string]string `json:"metadata"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	p := licenses.Patch{Customer: in.Customer, Products: in.Products, Constraint: in.Constraint, Channels: in.Channels,
		Platforms: in.Platforms, OnExpiry: in.OnExpiry, DownloadsPerDay: in.DownloadsPerDay, Metadata: in.Metadata}
	if len(in.ExpiresAt) > 0 {
		p.SetExpiry = true
		if !bytes.Equal(in.ExpiresAt, []byte("null")) {
			var t time.Time
			if err := json.Unmarshal(in.ExpiresAt, &t); err != nil {
				s.fail(c, portal.Errorf(portal.EInvalid, "expires_at must be an RFC 3339 time such as 2027-01-31T00:00:00Z, or null to never expire"))
				return
			}
			p.ExpiresAt = &t
		}
	}
	l, err := s.Licenses.Update(c, c.Param("id"), p)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, s.licenseView(l))
}

// reissueLicense gives a license a new key, shown once; the old key is
// refused from then on.
func (s *Server) reissueLicense(c *gin.Context) {
	l, key, err := s.Licenses.Reissue(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusOK, gin.H{"license": s.licenseView(l), "key": key})
}

// listLinks answers GET /v1/links: the caller license's share links, or
// for an admin those of ?license=.
func (s *Server) listLinks(c *gin.Context) {
	ls, err := s.Downloads.ListLinks(c, c.Query("license"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"links": ls})
}
