package server

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/tokens"
)

// identity is who made a request: an API token, a license, or nobody.
type identity struct {
	token   *tokens.Token
	license *licenses.License
}

const identityKey = "portal.identity"

func who(c *gin.Context) identity {
	if v, ok := c.Get(identityKey); ok {
		return v.(identity)
	}
	return identity{}
}

// authenticate resolves the Authorization header: "Bearer <token>",
// "License <key>" or Basic with user "license" and the key as password. A
// request without one is anonymous; a request with a bad one is refused
// (401), counted against its address and key hint, and after too many
// failures refused with 429 before the store is consulted.
func (s *Server) authenticate(c *gin.Context) {
	h := c.GetHeader("Authorization")
	if h == "" {
		c.Next()
		return
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		user, pass, ok := strings.Cut(string(raw), ":")
		if err != nil || !ok || user != "license" {
			s.fail(c, portal.Errorf(portal.EUnauthorized, `Basic credentials must be user "license" with the license key as password`))
			return
		}
		scheme, cred = "license", pass
	case "bearer", "license":
	default:
		s.fail(c, portal.Errorf(portal.EUnauthorized, `use "Authorization: Bearer <token>" or "Authorization: License <key>"`))
		return
	}
	ip, hint := "ip:"+c.ClientIP(), "key:"+secret.Hint(cred)
	if wait := s.limiter.blocked(ip, hint); wait > 0 {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		s.fail(c, &portal.Error{Code: portal.ERateLimited, Message: "too many failed authentication attempts: try again later",
			Details: map[string]any{"retry_after": int(wait.Seconds()) + 1}})
		return
	}
	var id identity
	var err error
	if strings.ToLower(scheme) == "bearer" {
		var t tokens.Token
		t, err = s.tokens.Authenticate(c, cred)
		id.token = &t
	} else {
		var l licenses.License
		l, err = s.licenses.ByKey(c, cred)
		id.license = &l
	}
	if err != nil {
		if portal.ErrorCode(err) == portal.EUnauthorized {
			s.limiter.fail(ip, hint)
		}
		s.fail(c, err)
		return
	}
	c.Set(identityKey, id)
	c.Next()
}

// requireAdmin refuses anyone but an admin token.
func (s *Server) requireAdmin(c *gin.Context) {
	id := who(c)
	if id.token == nil {
		s.fail(c, portal.Errorf(portal.EUnauthorized, "this needs an admin token: Authorization: Bearer <token>"))
		return
	}
	if id.token.Role != tokens.Admin {
		s.fail(c, portal.Errorf(portal.EForbidden, "this needs an admin token"))
		return
	}
	c.Next()
}

// mayPublish checks that the caller may manage the product's releases.
func mayPublish(c *gin.Context, product string) error {
	id := who(c)
	if id.license != nil {
		return portal.Errorf(portal.EForbidden, "a license may not manage releases: this needs an admin or publisher token")
	}
	if id.token == nil {
		return portal.Errorf(portal.EUnauthorized, "this needs an admin or publisher token: Authorization: Bearer <token>")
	}
	if !id.token.MayPublish(product) {
		return portal.Errorf(portal.EForbidden, "this token may not publish %s", product)
	}
	return nil
}

// maySee checks that the caller may see the product at all: API tokens of
// the product, licenses for it, anyone for open products. It returns whether
// the caller manages the product (and so sees drafts).
func mayView(c *gin.Context, p releases.Product) (manager bool, err error) {
	id := who(c)
	switch {
	case id.token != nil:
		if id.token.Role == tokens.Admin || id.token.MayPublish(p.Slug) {
			return true, nil
		}
		if p.Distribution == releases.Open {
			return false, nil // as anyone may
		}
		return false, portal.Errorf(portal.EForbidden, "this token may not see %s", p.Slug)
	case id.license != nil:
		if id.license.Product == p.Slug || p.Distribution == releases.Open {
			return false, nil
		}
		return false, portal.Errorf(portal.ENotEntitled, "this license is for %s, not %s", id.license.Product, p.Slug)
	case p.Distribution == releases.Open:
		return false, nil
	}
	return false, portal.Errorf(portal.EUnauthorized, "%s is licensed: send Authorization: License <key>", p.Slug)
}
