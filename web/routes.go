package web

import (
	"github.com/gin-gonic/gin"
)

// routes registers every page. All of them run behind h.headers (security
// headers), h.loadSession (the session cookie of the area the path is in,
// not yet re-checked) and h.checkCSRF (every method but GET and HEAD needs
// the form's csrf field). Pages that need a signed-in caller add
// h.RequireSession(kind), which re-checks the license or token and puts
// the caller in the request's context.
//
// A page area adds its routes with one line here, calling its own
// registration function on pages.
func (h *Handler) routes(e *gin.Engine) {
	e.GET("/static/*file", h.headers, h.static)
	e.HEAD("/static/*file", h.headers, h.static)

	pages := e.Group("", h.headers, h.loadSession, h.checkCSRF)
	h.customerRoutes(pages)
	h.adminRoutes(pages)
}
