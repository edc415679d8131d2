package server

import (
	"encoding/base64"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/secret"
)

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
		s.fail(c, &portal.Error{Code: portal.ERateLimited, Message: "too many failed authentication attempts: try again later",
			Details: map[string]any{"retry_after": int(wait.Seconds()) + 1}, RetryAt: s.now().Add(wait)})
		return
	}
	var caller access.Caller
	if strings.ToLower(scheme) == "bearer" {
		t, err := s.Tokens.Authenticate(c, cred)
		if err != nil {
			s.authFailed(c, err, ip, hint)
			return
		}
		caller = access.ForToken(t)
	} else {
		l, err := s.Licenses.ByKey(c, cred)
		if err != nil {
			s.authFailed(c, err, ip, hint)
			return
		}
		caller = access.ForLicense(l)
	}
	// The caller travels in the request's context, where every domain
	// service below reads it (access.FromContext).
	c.Request = c.Request.WithContext(access.NewContext(c.Request.Context(), caller))
	c.Next()
}

func (s *Server) authFailed(c *gin.Context, err error, ip, hint string) {
	if portal.ErrorCode(err) == portal.EUnauthorized {
		s.limiter.fail(ip, hint)
	}
	s.fail(c, err)
}

// caller returns who made the request (anonymous when nobody said).
func caller(c *gin.Context) access.Caller { return access.FromContext(c.Request.Context()) }

// requireAdmin refuses anyone but an admin token.
func (s *Server) requireAdmin(c *gin.Context) {
	if err := caller(c).MayAdminister(); err != nil {
		s.fail(c, err)
		return
	}
	c.Next()
}
