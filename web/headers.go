package web

import (
	"github.com/gin-gonic/gin"
)

// headers sets the security headers of every page and asset: a strict
// Content-Security-Policy (no inline script or style, no framing, forms
// post only to the portal), nosniff, a same-origin referrer, and no-store:
// pages carry customer data, and a page served from the back/forward cache
// after sign-out must not show it. Static assets override Cache-Control.
// A handler that redirects to a minted storage URL sets
// Referrer-Policy: no-referrer itself (see noReferrer).
func (h *Handler) headers(c *gin.Context) {
	hd := c.Writer.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	c.Next()
}

// noReferrer marks a response that carries a signed URL (a 303 to a minted
// storage URL): no Referer leaves with it, and nothing caches it.
func noReferrer(c *gin.Context) {
	c.Header("Referrer-Policy", "no-referrer")
	c.Header("Cache-Control", "no-store")
}
