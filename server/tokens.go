package server

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/tokens"
)

// tokenRoutes registers the API token administration (admin only).
func (s *Server) tokenRoutes(v1 *gin.RouterGroup) {
	v1.POST("/tokens", s.requireAdmin, s.createToken)
	v1.GET("/tokens", s.requireAdmin, s.listTokens)
	v1.DELETE("/tokens/:id", s.requireAdmin, s.deleteToken)
}

// tokenView is a token as the API shows it: never its secret, hint or
// digest.
type tokenView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	Products   []string   `json:"products"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
}

func viewToken(t tokens.Token) tokenView {
	ps := t.Products
	if ps == nil {
		ps = []string{}
	}
	return tokenView{ID: t.ID, Name: t.Name, Role: t.Role, Products: ps, CreatedAt: t.CreatedAt,
		LastUsedAt: t.LastUsedAt, ExpiresAt: t.ExpiresAt}
}

func (s *Server) createToken(c *gin.Context) {
	var in struct {
		Name     string   `json:"name"`
		Role     string   `json:"role"`
		Products []string `json:"products"`
		// ExpiresAt is read as text so that a malformed time is refused
		// naming the field.
		ExpiresAt *string `json:"expires_at"`
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	nt := tokens.NewToken{Name: in.Name, Role: in.Role, Products: in.Products}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			e := portal.Errorf(portal.EInvalid, "expires_at must be an RFC 3339 time such as 2030-01-02T15:04:05Z")
			e.Details = map[string]any{"field": "expires_at"}
			s.fail(c, e)
			return
		}
		nt.ExpiresAt = t
	}
	t, raw, err := s.Tokens.CreateWith(c, nt)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	v := viewToken(t)
	c.PureJSON(http.StatusCreated, gin.H{"id": v.ID, "token": raw, "name": v.Name, "role": v.Role, "products": v.Products,
		"created_at": v.CreatedAt, "expires_at": v.ExpiresAt})
}

// listTokens answers GET /v1/tokens, oldest first. last_used_at is this
// replica's knowledge (see tokens.UsageInterval for how late it may be).
func (s *Server) listTokens(c *gin.Context) {
	ts, err := s.Tokens.List(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]tokenView, len(ts))
	for i, t := range ts {
		out[i] = viewToken(t)
	}
	c.PureJSON(http.StatusOK, gin.H{"tokens": out})
}

func (s *Server) deleteToken(c *gin.Context) {
	if err := s.Tokens.Delete(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
