package server

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	auditcaller "github.com/portaldist/portal/audit/caller"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/tokens"
)

// authenticate resolves the Authorization header: "Bearer <token>",
// "License <key>" or Basic with user "license" and the key as password. A
// request without one is anonymous; a request with a bad one is refused
// (401) and counted against its address and key hint.
//
// Once an address or a hint is over the limit, a credential that the
// services' in-memory key sets call certainly unknown (Tokens.MayExist,
// Licenses.MayExist) is refused with 429 and Retry-After without a store
// read; one that may be valid is looked up as usual. Keys and tokens carry
// 160 random bits, so the limit cannot help or hinder guessing: it sheds
// floods of bad credentials cheaply, and never refuses a valid credential
// because someone else failed from the same address (NAT) or with the same
// public hint.
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
	caller, err := s.check(c, strings.ToLower(scheme) == "bearer", cred)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The caller travels in the request's context, where every domain
	// service below reads it (access.FromContext), with the audit actor it
	// makes (replacing requestContext's anonymous one).
	c.Request = c.Request.WithContext(auditcaller.NewContext(c.Request.Context(), caller))
	c.Next()
}

// mayExist asks the token or license service, from memory only, whether
// cred may be valid.
func (s *Server) mayExist(bearer bool, cred string) bool {
	if bearer {
		return s.Tokens.MayExist(cred)
	}
	return s.Licenses.MayExist(cred)
}

// check authenticates a token (bearer) or a license key with the
// failed-authentication limiter: while the client's address or the
// credential's hint is over its limit, a credential the in-memory key sets
// call certainly unknown is refused with rate_limited (RetryAt set) without
// a store read; an unauthorized credential counts one failure against both.
func (s *Server) check(c *gin.Context, bearer bool, cred string) (access.Caller, error) {
	// The limiter is consulted only while some address or hint is over
	// its limit; the keys are built only then, or on a failure.
	if s.limiter.maybeBlocked() {
		ip, hint := limiterKeys(c, cred)
		if wait := s.limiter.blocked(ip, hint); wait > 0 && !s.mayExist(bearer, cred) {
			return access.Caller{}, &portal.Error{Code: portal.ERateLimited, Message: "too many failed authentication attempts: try again later",
				Details: map[string]any{"retry_after": int(wait.Seconds()) + 1}, RetryAt: s.now().Add(wait)}
		}
	}
	var caller access.Caller
	var err error
	if bearer {
		var t tokens.Token
		if t, err = s.Tokens.Authenticate(c, cred); err == nil {
			caller = access.ForToken(t)
		}
	} else {
		var l licenses.License
		if l, err = s.Licenses.ByKey(c, cred); err == nil {
			caller = access.ForLicense(l)
		}
	}
	if err != nil {
		if portal.ErrorCode(err) == portal.EUnauthorized {
			s.limiter.fail(limiterKeys(c, cred))
		}
		return access.Caller{}, err
	}
	return caller, nil
}

// CheckLicenseKey returns the license whose key is key, for a door other
// than the Authorization header (the web pages' sign-in form). It applies
// the API's failed-authentication limiter, counting a wrong key against the
// client's address and the key's hint exactly as the API does, and returns
// the API's errors (unauthorized, rate_limited with RetryAt).
func (s *Server) CheckLicenseKey(c *gin.Context, key string) (licenses.License, error) {
	caller, err := s.check(c, false, key)
	if err != nil {
		return licenses.License{}, err
	}
	return *caller.License(), nil
}

// CheckToken is CheckLicenseKey for an API token (the admin console's
// sign-in form).
func (s *Server) CheckToken(c *gin.Context, raw string) (tokens.Token, error) {
	caller, err := s.check(c, true, raw)
	if err != nil {
		return tokens.Token{}, err
	}
	return *caller.Token(), nil
}

// Now is the server's clock.
func (s *Server) Now() time.Time { return s.now() }

// limiterKeys are the limiter's keys of a credential: the client address
// and the credential's public hint.
func limiterKeys(c *gin.Context, cred string) (ip, hint string) {
	return "ip:" + c.ClientIP(), "key:" + secret.Hint(cred)
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
