package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
)

func (s *Server) createToken(c *gin.Context) {
	var in struct {
		Name     string   `json:"name"`
		Role     string   `json:"role"`
		Products []string `json:"products"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	t, raw, err := s.Tokens.Create(c, in.Name, in.Role, in.Products)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusCreated, gin.H{"id": t.ID, "token": raw, "name": t.Name, "role": t.Role, "products": t.Products, "created_at": t.CreatedAt})
}

func (s *Server) deleteToken(c *gin.Context) {
	if err := s.Tokens.Delete(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) createLicense(c *gin.Context) {
	var in struct {
		Customer        string     `json:"customer"`
		Product         string     `json:"product"`
		Constraint      string     `json:"constraint"`
		Channels        []string   `json:"channels"`
		Platforms       []string   `json:"platforms"`
		ExpiresAt       *time.Time `json:"expires_at"`
		OnExpiry        string     `json:"on_expiry"`
		DownloadsPerDay int        `json:"downloads_per_day"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	l, key, err := s.Licenses.Create(c, licenses.License{
		Customer: in.Customer, Product: in.Product, Constraint: in.Constraint, Channels: in.Channels,
		Platforms: in.Platforms, ExpiresAt: in.ExpiresAt, OnExpiry: in.OnExpiry, DownloadsPerDay: in.DownloadsPerDay,
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.PureJSON(http.StatusCreated, gin.H{"license": l.Public(), "key": key})
}

func (s *Server) getLicense(c *gin.Context) {
	l, err := s.Licenses.Get(c, c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, l.Public())
}

func (s *Server) listLicenses(c *gin.Context) {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(c, portal.Errorf(portal.EInvalid, "limit must be from 1 to 1000"))
			return
		}
		limit = n
	}
	ls, err := s.Licenses.List(c, c.Query("product"), c.Query("cursor"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{}
	pub := make([]licenses.License, len(ls))
	for i, l := range ls {
		pub[i] = l.Public()
	}
	out["licenses"] = pub
	if len(ls) == limit {
		out["next_cursor"] = ls[len(ls)-1].ID
	}
	c.PureJSON(http.StatusOK, out)
}

func (s *Server) licenseStatus(fn func(*licenses.Service, context.Context, string) (licenses.License, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		l, err := fn(s.Licenses, c, c.Param("id"))
		if err != nil {
			s.fail(c, err)
			return
		}
		c.PureJSON(http.StatusOK, l.Public())
	}
}
