// Package web is the portal's web pages: server-rendered html/template
// pages with embedded assets, served by the API's router (server.Pages) and
// built on the same domain services, so a page decides nothing the API does
// not decide the same way (who may download what is updates.Resolver and
// package access; grants, quotas and share links are package downloads).
//
// The customer pages are at "/" (sign in with a license key, then the
// license's products, releases, downloads, share links and quota); the
// admin console is at "/admin". Both share what this file and its siblings
// provide:
//
//   - sessions (session.go): a server-side record in the store under
//     "web/", referenced by a random cookie whose SHA-256 is the record's
//     key; one kind for licenses, one for admin tokens. Every request
//     re-checks the license or token the session stands for.
//   - CSRF (csrf.go): every POST under the pages carries a "csrf" form
//     field, the session's synchronizer token or, before a session exists,
//     a token bound to a pre-session cookie; without it the request is
//     refused with 403 before its handler runs.
//   - rendering (render.go): one layout, the vendor's brand from the
//     config, pages by template name, domain refusals as an error page with
//     the API's code and message.
//   - headers (headers.go): a strict Content-Security-Policy and the other
//     security headers on every page and asset.
package web

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
	"github.com/portaldist/portal/web/brand"
	"github.com/portaldist/portal/webhooks"
)

// Defaults of Options.
const (
	DefaultSessionTTL         = 12 * time.Hour
	DefaultSessionsPerSubject = 20
	DefaultBrandName          = "portal"
	DefaultAccentColor        = "#2f5fd0"
	// MaxLogoSize bounds Options.LogoFile.
	MaxLogoSize = 1 << 20
)

// Options tune the pages.
type Options struct {
	// BrandName is the vendor's product name, shown in every page's header
	// and title (default DefaultBrandName).
	BrandName string
	// LogoURL is an absolute http(s) URL of the vendor's logo, or "". Its
	// origin is added to the Content-Security-Policy's img-src.
	LogoURL string
	// LogoFile is a PNG, JPEG, GIF, WebP or SVG file (at most MaxLogoSize
	// bytes), read once by New and served at /static/brand/logo; it wins
	// over LogoURL.
	LogoFile string
	// AccentColor is "#rgb" or "#rrggbb" (default DefaultAccentColor).
	AccentColor string
	// SessionTTL is a session's life from sign-in (default 12h).
	SessionTTL time.Duration
	// SessionsPerSubject caps the live sessions of one license or token:
	// signing in beyond it ends the oldest (default 20).
	SessionsPerSubject int
	// Secret keys the pre-session CSRF tokens of the sign-in forms: at
	// least 32 random bytes, the same on every replica for a form to
	// post to another replica than the one that served it.
	Secret []byte
	// PublicURL is the base URL clients reach the portal at: share links
	// start with it ("" takes the request's scheme and host).
	PublicURL string
	// URLTTL is the life of a minted download URL (default 5m).
	URLTTL time.Duration
	// LinkTTLs are the lifetimes offered for a new share link (default
	// 1h, 1 day, 7 days); downloads.Service caps them.
	LinkTTLs []time.Duration
	// SecureCookies marks every cookie Secure, as requests over TLS always
	// are: for a portal behind a proxy that ends TLS (an https public URL).
	SecureCookies bool
	Now           func() time.Time
	Logger        *slog.Logger
}

// Deps are the services the pages use: the same ones the API serves.
type Deps struct {
	Store      store.DB
	Catalog    *releases.Service
	Licenses   *licenses.Service
	Tokens     *tokens.Service
	Keys       server.ProductKeys
	Publishing *publishing.Service
	Index      *updates.Index
	Downloads  *downloads.Service
	Webhooks   *webhooks.Service
}

// Handler serves the web pages. Build it with New and give it to
// server.New as Deps.Pages, which calls Register.
type Handler struct {
	Deps
	// Resolver and Server are the API server's, set by Register: the
	// pages resolve releases and check credentials exactly as the API.
	Resolver *updates.Resolver
	Server   *server.Server

	opts     Options
	log      *slog.Logger
	now      func() time.Time
	brand    Brand
	csp      string
	logo     []byte // LogoFile's bytes, or nil
	logoType string
	pages    map[string]*template.Template
	Sessions *Sessions
}

// Brand is what the layout shows of the vendor.
type Brand struct {
	Name string
	// Logo is the logo's URL ("" for none): /static/brand/logo, or LogoURL.
	Logo   string
	Accent string
}

// New builds the pages: it parses the embedded templates, reads LogoFile
// and checks the options.
func New(d Deps, opts Options) (*Handler, error) {
	if opts.BrandName == "" {
		opts.BrandName = DefaultBrandName
	}
	if opts.AccentColor == "" {
		opts.AccentColor = DefaultAccentColor
	}
	if err := brand.CheckAccentColor(opts.AccentColor); err != nil {
		return nil, fmt.Errorf("web: accent colour: %w", err)
	}
	if err := brand.CheckLogoURL(opts.LogoURL); err != nil {
		return nil, fmt.Errorf("web: logo URL: %w", err)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.SessionsPerSubject <= 0 {
		opts.SessionsPerSubject = DefaultSessionsPerSubject
	}
	if len(opts.Secret) < 32 {
		return nil, errors.New("web: Options.Secret must hold at least 32 bytes")
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = 5 * time.Minute
	}
	if len(opts.LinkTTLs) == 0 {
		opts.LinkTTLs = []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}
	}
	opts.PublicURL = strings.TrimSuffix(opts.PublicURL, "/")
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{Deps: d, opts: opts, log: opts.Logger, now: opts.Now}
	h.brand = Brand{Name: opts.BrandName, Accent: opts.AccentColor}
	imgSrc := "'self' data:"
	switch {
	case opts.LogoFile != "":
		b, ct, err := readLogo(opts.LogoFile)
		if err != nil {
			return nil, err
		}
		h.logo, h.logoType, h.brand.Logo = b, ct, "/static/brand/logo"
	case opts.LogoURL != "":
		u, _ := url.Parse(opts.LogoURL)
		imgSrc += " " + u.Scheme + "://" + u.Host
		h.brand.Logo = opts.LogoURL
	}
	h.csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src " + imgSrc +
		"; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'"
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	h.pages = pages
	h.Sessions = &Sessions{db: d.Store, licenses: d.Licenses, tokens: d.Tokens, ttl: opts.SessionTTL,
		perSubject: opts.SessionsPerSubject, now: opts.Now, log: opts.Logger}
	return h, nil
}

// readLogo reads a logo file and names its content type, refusing
// anything but an image.
func readLogo(path string) ([]byte, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("web: logo file: %w", err)
	}
	defer f.Close()
	b := make([]byte, MaxLogoSize+1)
	n, _ := readFull(f, b)
	if n > MaxLogoSize {
		return nil, "", fmt.Errorf("web: logo file %s is larger than %d bytes", path, MaxLogoSize)
	}
	b = b[:n]
	ct := logoType(path, b)
	if ct == "" {
		return nil, "", fmt.Errorf("web: logo file %s is not a PNG, JPEG, GIF, WebP or SVG image", path)
	}
	return b, ct, nil
}

// Register adds the pages' routes to e (server.Pages). See routes.go.
func (h *Handler) Register(e *gin.Engine, s *server.Server) {
	h.Server = s
	h.Resolver = s.Resolver
	if h.Downloads == nil {
		h.Downloads = s.Downloads
	}
	h.routes(e)
}
