package web

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/access"
)

// customerRoutes are the customer's pages: "/" is the sign-in form or,
// signed in, the license's downloads.
func (h *Handler) customerRoutes(r *gin.RouterGroup) {
	r.GET("/", h.home)
	r.POST("/signin", h.signIn)
	// A reload or a bookmark of the sign-in's address (the error page of
	// a wrong key is the POST's answer) goes back to the form.
	r.GET("/signin", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/") })
	r.POST("/signout", h.SignOut)
	lic := r.Group("", h.RequireSession(KindLicense))
	h.downloadRoutes(lic)
}

// home shows the sign-in form, or the signed-in license's page.
func (h *Handler) home(c *gin.Context) {
	if SessionOf(c) == nil {
		h.Render(c, http.StatusOK, "signin", "Sign in", nil)
		return
	}
	h.RequireSession(KindLicense)(c)
	if c.IsAborted() {
		return
	}
	h.dashboard(c, access.FromContext(c.Request.Context()))
}

func (h *Handler) signIn(c *gin.Context) {
	if err := h.SignIn(c, KindLicense, c.PostForm("key")); err != nil {
		h.Fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, "/")
}
