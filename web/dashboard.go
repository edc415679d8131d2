package web

import (
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// maxReleasesShown bounds the releases listed per product.
const maxReleasesShown = 50

// recentShown is how many of the license's downloads the page lists.
const recentShown = 20

type custView struct {
	License  licenses.View
	Standing string
	Products []custProduct
	Quota    downloads.Quota
	Links    []custLink
	Recent   []ledger.Grant
	Builds   []custBuild
	TTLs     []custTTL
	// NewLink is the URL of the share link just made: shown once.
	NewLink   string
	NewLinkOf string
}

type custProduct struct {
	Slug, Name string
	Keys       *signing.PublicKeys
	// Refusal is why the license gets nothing of the product now (an
	// expired license, ...), shown instead of releases.
	Refusal  *ErrorView
	Channels []custChannel
	// Install is how to install its packages with apt and dnf (nil: the
	// license may install none).
	Install *custInstall
}

type custChannel struct {
	Name     string
	Releases []custRelease
}

type custRelease struct {
	Product, Version, Channel string
	Notes                     template.HTML
	PublishedAt               time.Time
	Builds                    []releases.Artifact
}

type custLink struct {
	links.Link
	State string // active, expired, revoked
}

type custBuild struct{ Value, Label string }

type custTTL struct {
	Value, Label string
	Selected     bool
}

// dashboard is the signed-in customer's page: the products the license
// covers, the releases and builds it may download (updates.Resolver, as
// GET /v1/me), its share links, recent downloads and today's quota.
func (h *Handler) dashboard(c *gin.Context, who access.Caller) {
	v, err := h.dashboardView(c, who)
	if err != nil {
		h.Fail(c, err)
		return
	}
	h.Render(c, http.StatusOK, "customer", "Your downloads", v)
}

func (h *Handler) dashboardView(c *gin.Context, who access.Caller) (*custView, error) {
	l := who.License()
	if l == nil {
		return nil, ErrNoSession
	}
	now := h.now()
	v := &custView{License: l.ViewAt(now), Standing: l.Standing(now)}
	for _, slug := range l.ProductList() {
		p, err := h.Catalog.Product(c, slug)
		if portal.IsCode(err, portal.ENotFound) {
			continue // deleted since the license was written
		}
		if err != nil {
			return nil, err
		}
		pv := custProduct{Slug: p.Slug, Name: p.Name}
		if err := l.RefusesAll(p.Slug, now); err != nil && p.Distribution != releases.Open {
			ev := errorView(err)
			pv.Refusal = &ev
			v.Products = append(v.Products, pv)
			continue
		}
		var fingerprint string
		if keys, err := h.Keys.Describe(c, p.Slug); err == nil {
			pv.Keys = &keys.Current
			if keys.OpenPGP != nil {
				fingerprint = keys.OpenPGP.Fingerprint
			}
		} else if !portal.IsCode(err, portal.ENotFound) {
			h.log.Warn("web: product keys", "product", p.Slug, "err", err)
		}
		rs, err := h.Resolver.Available(c, p.Slug, maxReleasesShown)
		if err != nil {
			return nil, err
		}
		offered := map[string]bool{} // "channel/format" of the packages listed
		for _, ch := range releases.Channels {
			cv := custChannel{Name: ch}
			for _, r := range rs {
				if r.Release.Channel != ch || len(r.Release.Artifacts) == 0 {
					continue
				}
				rv := custRelease{Product: p.Slug, Version: r.Release.Version, Channel: ch,
					Notes: Markdown(r.Release.Notes), Builds: r.Release.Artifacts}
				if r.Release.PublishedAt != nil {
					rv.PublishedAt = *r.Release.PublishedAt
				}
				cv.Releases = append(cv.Releases, rv)
				for _, a := range r.Release.Artifacts {
					if a.Package != nil {
						offered[ch+"/"+a.Package.Format] = true
					}
					v.Builds = append(v.Builds, custBuild{
						Value: buildValue(p.Slug, r.Release.Version, a.Filename),
						Label: p.Name + " " + r.Release.Version + " · " + a.Platform + "/" + a.Arch + " · " + a.Filename,
					})
				}
			}
			if len(cv.Releases) > 0 {
				pv.Channels = append(pv.Channels, cv)
			}
		}
		// The instructions are an extra: a failure to work them out
		// leaves them out, not the downloads.
		if pv.Install, err = h.installFor(c.Request.Context(), h.publicURL(c), p, offered); err != nil {
			h.log.Warn("web: install instructions", "product", p.Slug, "err", err)
			pv.Install = nil
		}
		if pv.Install != nil {
			pv.Install.Fingerprint = groupFingerprint(fingerprint)
		}
		v.Products = append(v.Products, pv)
	}
	q, err := h.Downloads.Quota(c, l)
	if err != nil {
		return nil, err
	}
	v.Quota = q
	ls, err := h.Downloads.ListLinks(c, l.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range ls {
		st := "active"
		switch {
		case k.RevokedAt != nil:
			st = "revoked"
		case !now.Before(k.ExpiresAt):
			st = "expired"
		}
		v.Links = append(v.Links, custLink{Link: k, State: st})
	}
	if v.Recent, _, err = h.Downloads.Ledger().ByLicense(c, l.ID, "", recentShown); err != nil {
		return nil, err
	}
	for i, d := range h.opts.LinkTTLs {
		v.TTLs = append(v.TTLs, custTTL{Value: ttlValue(d), Label: ttlLabel(d), Selected: i == 1 || len(h.opts.LinkTTLs) == 1})
	}
	return v, nil
}

// errorView is err as the pages show a refusal.
func errorView(err error) ErrorView {
	v := ErrorView{Code: portal.ErrorCode(err), Message: portal.ErrorMessage(err)}
	if v.Code == portal.EInternal {
		v.Message = "internal error"
	}
	v.Explain = explain[v.Code]
	return v
}

func ttlLabel(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d >= 24*time.Hour:
		n := int(d / (24 * time.Hour))
		if n == 1 {
			return "1 day"
		}
		return strconv.Itoa(n) + " days"
	case d%time.Hour == 0:
		n := int(d / time.Hour)
		if n == 1 {
			return "1 hour"
		}
		return strconv.Itoa(n) + " hours"
	}
	return d.String()
}

// ttlValue is a lifetime as the share form sends it: whole hours ("24h")
// where it can, else Go's duration text.
func ttlValue(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return d.String()
}
