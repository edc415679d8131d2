package web

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"math"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/server"
)

//go:embed templates/*.html
var templateFS embed.FS

// Page is what every template gets as its dot. A page's own values are in
// Data; the rest is the layout's.
type Page struct {
	Title string
	Brand Brand
	// Session is the browser's session, nil when signed out.
	Session *Session
	// CSRF is the token every form must carry: {{template "csrf" .}}
	// writes the hidden field.
	CSRF string
	// Flash is a one-time notice set by the previous request (SetFlash).
	Flash string
	// Area is "customer" or "admin": which navigation the layout shows.
	Area string
	Data any
}

// parsePages parses the embedded templates. layout.html and every
// *.part.html are shared by every page; each other *.html is a page,
// named by its file name without ".html", and must define "content" (and
// may define "title"). Template functions: see funcs.
func parsePages() (map[string]*template.Template, error) {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	shared := []string{"templates/layout.html"}
	var pageFiles []string
	for _, f := range files {
		switch {
		case f == "templates/layout.html":
		case strings.HasSuffix(f, ".part.html"):
			shared = append(shared, f)
		default:
			pageFiles = append(pageFiles, f)
		}
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, shared...)
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, f := range pageFiles {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, f)
		if err != nil {
			return nil, fmt.Errorf("web: templates: %w", err)
		}
		pages[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return pages, nil
}

// funcs are the template functions every page may use.
var funcs = template.FuncMap{
	"size":     humanSize,
	"date":     func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"datetime": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"markdown": Markdown,
	"join":     strings.Join,
	"deref": func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	},
}

// humanSize writes a byte count for people: 1.5 MiB, 812 bytes.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB"}
	v := float64(n)
	u := -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%s %s", trimFloat(v), units[u])
}

func trimFloat(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// Render writes page (a template name) with status inside the layout.
// data is the page's own Data; title goes into <title>. A page that fails
// to render is logged and answered with a plain 500, never half a page.
func (h *Handler) Render(c *gin.Context, status int, page, title string, data any) {
	t, ok := h.pages[page]
	if !ok {
		h.log.Error("web: no such template", "page", page)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	area := "customer"
	if areaKind(c.Request.URL.Path) == KindToken {
		area = "admin"
	}
	p := Page{Title: title, Brand: h.brand, Session: SessionOf(c), CSRF: h.CSRFToken(c),
		Flash: h.takeFlash(c), Area: area, Data: data}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		h.log.Error("web: render", "page", page, "err", err)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// ErrorView is the error page's Data.
type ErrorView struct {
	Status  int
	Code    string
	Message string
	// Explain is a longer word on what the code means and what to do.
	Explain string
	// RetryAt is when a temporary refusal ends (quota, rate limit), or zero.
	RetryAt time.Time
}

// Fail answers err as the error page, with the status the API gives its
// code (server.StatusOf) and the API's code and message; internal errors
// are logged and shown as "internal error". It aborts the handler chain.
func (h *Handler) Fail(c *gin.Context, err error) {
	code := portal.ErrorCode(err)
	status := server.StatusOf(code)
	v := ErrorView{Status: status, Code: code, Message: portal.ErrorMessage(err)}
	var e *portal.Error
	if errors.As(err, &e) {
		v.RetryAt = e.RetryAt
	}
	if status >= 500 {
		h.log.Error("web: request failed", "method", c.Request.Method, "route", c.FullPath(), "err", err)
		v.Code, v.Message = portal.EInternal, "internal error"
	}
	v.Explain = explain[v.Code]
	if !v.RetryAt.IsZero() {
		secs := int(math.Ceil(v.RetryAt.Sub(h.now()).Seconds()))
		c.Header("Retry-After", fmt.Sprint(max(1, secs)))
	}
	c.Abort()
	h.Render(c, status, "error", "Refused: "+v.Code, v)
}

// explain says, per code, what a refusal means to a person.
var explain = map[string]string{
	portal.ELicenseExpired: "The license has passed its expiry date. A license that ends with on_expiry \"maintain\" keeps " +
		"the releases published before that date; one that ends with \"revoke\" gives no downloads any more. Ask your vendor to renew it.",
	portal.ELicenseSuspended: "The vendor has suspended this license for now. Nothing can be downloaded with it, and its share links do not work, until it is reinstated.",
	portal.ELicenseRevoked:   "The vendor has revoked this license for good. Nothing can be downloaded with it, and its share links no longer work.",
	portal.ENotEntitled:      "The license does not cover this product, release, channel or platform.",
	portal.EQuotaExceeded:    "The license has used all of today's downloads. The quota resets at the time shown.",
	portal.ELinkExpired:      "This share link has passed its expiry time. Ask whoever shared it for a new one.",
	portal.ELinkRevoked:      "This share link was revoked by whoever made it, or its license no longer allows downloads.",
	portal.ERateLimited:      "Too many attempts came from here. Wait until the time shown, then try again.",
	portal.EUnauthorized:     "Sign in again to continue.",
	portal.EForbidden:        "This action is not allowed.",
	portal.ENotFound:         "There is nothing here, or it is no longer available.",
}

const cookieFlash = "portal_flash"

// SetFlash keeps a one-time notice for the next page the browser renders
// (after a POST and its 303): a short cookie, never a secret.
func (h *Handler) SetFlash(c *gin.Context, msg string) {
	if len(msg) > 300 {
		msg = msg[:300]
	}
	_, path := cookieOf(areaKind(c.Request.URL.Path))
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieFlash, Value: encodeFlash(msg), Path: path,
		MaxAge: 60, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(c)})
}

func (h *Handler) takeFlash(c *gin.Context) string {
	v, err := c.Cookie(cookieFlash)
	if err != nil || v == "" {
		return ""
	}
	_, path := cookieOf(areaKind(c.Request.URL.Path))
	http.SetCookie(c.Writer, &http.Cookie{Name: cookieFlash, Path: path, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: h.secure(c)})
	return decodeFlash(v)
}

//go:embed static
var staticFS embed.FS

// static serves the embedded assets (/static/...), the accent colour's
// theme.css and the logo file. Assets are public and may be cached for an
// hour.
func (h *Handler) static(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("file"), "/")
	switch name {
	case "theme.css":
		c.Header("Cache-Control", "public, max-age=3600")
		c.Data(http.StatusOK, "text/css; charset=utf-8", []byte(":root{--accent:"+h.brand.Accent+";}\n"))
		return
	case "brand/logo":
		if h.logo == nil {
			break
		}
		c.Header("Cache-Control", "public, max-age=3600")
		c.Data(http.StatusOK, h.logoType, h.logo)
		return
	}
	if name == "" || strings.Contains(name, "..") || strings.HasPrefix(name, "/") {
		c.AbortWithStatus(http.StatusNotFound)
		return
	}
	f, err := staticFS.Open("static/" + name)
	if err != nil {
		c.AbortWithStatus(http.StatusNotFound)
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.IsDir() {
		c.AbortWithStatus(http.StatusNotFound)
		return
	}
	b, err := io.ReadAll(f)
	if err != nil {
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	ct := "application/octet-stream"
	switch path.Ext(name) {
	case ".css":
		ct = "text/css; charset=utf-8"
	case ".js":
		ct = "text/javascript; charset=utf-8"
	case ".svg":
		ct = "image/svg+xml"
	case ".png":
		ct = "image/png"
	}
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, ct, b)
}
