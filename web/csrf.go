package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/secret"
)

// CSRFField is the form field every POST under the pages carries.
const CSRFField = "csrf"

// cookiePre is the pre-session cookie: a random value the sign-in forms'
// token is bound to (HMAC with Options.Secret), so that a sign-in form too
// carries a token only this browser's page could hold.
const cookiePre = "portal_pre"

// maxFormBody bounds a page's form body: the server's limit applies too,
// but forms are small.
const maxFormBody = 64 << 10

// largeForms are the routes (gin full paths) whose forms carry a long text
// and may be larger than maxFormBody, with their bound. Set from init
// functions only.
var largeForms = map[string]int64{}

// CSRFToken returns the token the forms of this request's page must carry:
// the session's when it has one, else the pre-session token (setting the
// pre-session cookie when the browser has none). Render calls it; a
// handler needs it only to build a form outside Render.
func (h *Handler) CSRFToken(c *gin.Context) string {
	if s := SessionOf(c); s != nil {
		return s.CSRF
	}
	if v, ok := c.Get("web.pre"); ok {
		return v.(string)
	}
	pre, err := c.Cookie(cookiePre)
	if err != nil || len(pre) < 16 || len(pre) > 128 {
		pre = randomString(32)
		_, path := cookieOf(areaKind(c.Request.URL.Path))
		http.SetCookie(c.Writer, &http.Cookie{Name: cookiePre, Value: pre, Path: path,
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(c)})
	}
	t := h.preToken(pre)
	c.Set("web.pre", t)
	return t
}

func (h *Handler) preToken(pre string) string {
	m := hmac.New(sha256.New, h.opts.Secret)
	m.Write([]byte("portal web pre-session csrf\x00"))
	m.Write([]byte(pre))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ErrCSRF is the refusal of a form post without the right token.
var ErrCSRF = portal.Errorf(portal.EForbidden, "this form has expired or did not come from this portal: go back, reload the page and try again")

// checkCSRF refuses (403, before any handler runs, so nothing changes)
// every request but GET, HEAD and OPTIONS whose csrf form field is not the
// session's token or, without a session, the pre-session cookie's. Tokens
// are compared in constant time after a length check.
func (h *Handler) checkCSRF(c *gin.Context) {
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		c.Next()
		return
	}
	limit := int64(maxFormBody)
	if n := largeForms[c.FullPath()]; n > 0 {
		limit = n
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	// A form over the bound is refused as too large, not as a form
	// without its token (which it would look like, unread).
	var mbe *http.MaxBytesError
	if err := c.Request.ParseForm(); errors.As(err, &mbe) {
		h.Fail(c, &portal.Error{Code: portal.ETooLarge, Message: fmt.Sprintf("this form is larger than the %d KiB this page takes", limit>>10),
			Details: map[string]any{"limit": limit}})
		return
	}
	got := c.PostForm(CSRFField)
	ok := false
	if got != "" {
		if s := SessionOf(c); s != nil && secret.Equal(got, s.CSRF) {
			ok = true
		} else if pre, err := c.Cookie(cookiePre); err == nil && pre != "" && secret.Equal(got, h.preToken(pre)) {
			ok = true
		}
	}
	if !ok {
		h.Fail(c, ErrCSRF)
		return
	}
	c.Next()
}
