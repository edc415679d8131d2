package web

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	auditcaller "github.com/portaldist/portal/audit/caller"
	"github.com/portaldist/portal/licenses"
)

// maxCredential bounds a posted key or token; real ones are far shorter.
const maxCredential = 200

// SignIn checks the credential a sign-in form posted (a license key for
// KindLicense, an API token for KindToken) with the API's
// failed-authentication limiter (server.Server.CheckLicenseKey and
// CheckToken), and on success ends any session the browser had in that
// area and starts a new one (a fresh cookie: no session fixation). A
// suspended or revoked license is refused with its reason and gets no
// session. The credential is never logged, echoed or put in a URL. The
// caller redirects (303) on success and renders Fail(err) otherwise.
func (h *Handler) SignIn(c *gin.Context, kind Kind, credential string) error {
	credential = strings.TrimSpace(credential)
	if credential == "" {
		return portal.Errorf(portal.EInvalid, "enter your %s", credentialName(kind))
	}
	if len(credential) > maxCredential {
		return portal.Errorf(portal.EUnauthorized, "unknown %s", credentialName(kind))
	}
	var caller access.Caller
	switch kind {
	case KindLicense:
		l, err := h.Server.CheckLicenseKey(c, credential)
		if err != nil {
			return err
		}
		if l.Status == licenses.Suspended || l.Status == licenses.Revoked {
			if err := l.RefusesAll(firstProduct(&l), h.now()); err != nil {
				return err
			}
		}
		caller = access.ForLicense(l)
	case KindToken:
		t, err := h.Server.CheckToken(c, credential)
		if err != nil {
			return err
		}
		caller = access.ForToken(t)
	default:
		return ErrNoSession
	}
	if SessionOf(c) != nil {
		h.EndSession(c)
	}
	return h.StartSession(c, caller)
}

func credentialName(kind Kind) string {
	if kind == KindToken {
		return "admin or publisher token"
	}
	return "license key"
}

func firstProduct(l *licenses.License) string {
	if ps := l.ProductList(); len(ps) > 0 {
		return ps[0]
	}
	return ""
}

// SignOut is the handler of an area's sign-out form: it ends the session
// and clears its cookie, then sends the browser (303) to the area's
// sign-in page.
func (h *Handler) SignOut(c *gin.Context) {
	kind := areaKind(c.Request.URL.Path)
	// The session.delete record names who signed out, when the session
	// still stands for someone.
	if s := SessionOf(c); s != nil {
		if caller, err := h.Sessions.Check(c, *s); err == nil {
			c.Request = c.Request.WithContext(auditcaller.NewContext(c.Request.Context(), caller))
		}
	}
	h.EndSession(c)
	h.SetFlash(c, "You are signed out.")
	c.Redirect(http.StatusSeeOther, signInPath(kind))
}
