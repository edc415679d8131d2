package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/updates"
)

// grant mints the resolved build for the caller (downloads.Service.Grant)
// and answers with a 303 to the storage URL, or 200 JSON when the client
// asks for JSON.
func (s *Server) grant(c *gin.Context, res updates.Resolution, ttl time.Duration, linkID string) {
	g, err := s.Downloads.Grant(c, res, ttl, downloads.Origin{Client: c.ClientIP(), UserAgent: c.GetHeader("User-Agent"), ShareLink: linkID})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.metrics.grants.WithLabelValues(res.Product.Slug, strconv.FormatBool(linkID != "")).Inc()
	signedURLHeaders(c)
	if wantsJSON(c) {
		c.Data(http.StatusOK, "application/json; charset=utf-8", appendGrantJSON(make([]byte, 0, 512), g))
		return
	}
	c.Redirect(http.StatusSeeOther, g.URL)
}

// appendGrantJSON appends g as c.PureJSON writes it (encoding/json without
// HTML escaping, then a newline), without reflection: the grant is the
// API's busiest JSON answer, and the encoder was a tenth of its CPU.
// TestGrantJSON compares the two byte for byte.
func appendGrantJSON(b []byte, g downloads.Grant) []byte {
	b = append(b, `{"url":`...)
	b = appendJSONString(b, g.URL)
	b = append(b, `,"expires_at":"`...)
	b = g.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","filename":`...)
	b = appendJSONString(b, g.Filename)
	b = append(b, `,"version":`...)
	b = appendJSONString(b, g.Version)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, g.Size, 10)
	b = append(b, `,"sha256":`...)
	b = appendJSONString(b, g.SHA256)
	return append(b, "}\n"...)
}

// appendJSONString appends s as a JSON string the way encoding/json does
// without HTML escaping: as is between quotes when it is printable ASCII
// without '"' or '\', through the encoder otherwise (escapes, U+2028,
// invalid UTF-8).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			var buf strings.Builder
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.Encode(s) // a string always encodes
			return append(b, strings.TrimSuffix(buf.String(), "\n")...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func wantsJSON(c *gin.Context) bool {
	return strings.Contains(c.GetHeader("Accept"), "application/json")
}

// urlTTL is the life of a minted URL: ?ttl= (seconds or a Go duration)
// capped by the configured maximum, or the default.
func (s *Server) urlTTL(c *gin.Context) (time.Duration, error) {
	v := c.Query("ttl")
	if v == "" {
		return s.opts.URLTTL, nil
	}
	d, err := parseTTL(v)
	if err != nil || d <= 0 {
		return 0, portal.Errorf(portal.EInvalid, "ttl must be a positive number of seconds or a duration such as 10m")
	}
	if d > s.opts.MaxURLTTL {
		d = s.opts.MaxURLTTL
	}
	return d, nil
}

func parseTTL(v string) (time.Duration, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(7*24*time.Hour/time.Second) {
			n = int64(7 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}

func (s *Server) downloadRelease(c *gin.Context) {
	platform, arch := c.Query("platform"), c.Query("arch")
	if platform == "" || arch == "" {
		s.fail(c, portal.Errorf(portal.EInvalid, "say which build: ?platform=linux|darwin|windows&arch=amd64|arm64|..."))
		return
	}
	s.download(c, updates.Request{Platform: platform, Arch: arch})
}

func (s *Server) downloadArtifact(c *gin.Context) {
	s.download(c, updates.Request{Filename: c.Param("filename")})
}

func (s *Server) download(c *gin.Context, req updates.Request) {
	ttl, err := s.urlTTL(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	req.Product, req.Version, req.Channel = c.Param("product"), c.Param("version"), c.Query("channel")
	res, err := s.Resolver.Resolve(c, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.grant(c, res, ttl, "")
}

// me tells a license holder what the license allows, which releases of
// each product it covers it may download now, with the builds of each, and
// today's download quota. "releases" is the list of the first product (the
// one product of most licenses); "products" lists every covered product with
// its own releases.
func (s *Server) me(c *gin.Context) {
	who := caller(c)
	if t := who.Token(); t != nil {
		c.PureJSON(http.StatusOK, gin.H{"token": t.Public()})
		return
	}
	l := who.License()
	if l == nil {
		s.fail(c, portal.Errorf(portal.EUnauthorized, "send Authorization: License <key>"))
		return
	}
	type build struct {
		Filename string `json:"filename"`
		Platform string `json:"platform"`
		Arch     string `json:"arch"`
		Size     int64  `json:"size"`
		SHA256   string `json:"sha256"`
	}
	type available struct {
		Version     string     `json:"version"`
		Channel     string     `json:"channel"`
		PublishedAt *time.Time `json:"published_at,omitempty"`
		Platforms   []string   `json:"platforms"`
		Builds      []build    `json:"builds"`
	}
	type product struct {
		Slug         string      `json:"slug"`
		Name         string      `json:"name"`
		Distribution string      `json:"distribution"`
		Releases     []available `json:"releases"`
	}
	status := l.Standing(s.now())
	products := []product{}
	for _, slug := range l.ProductList() {
		p, err := s.Catalog.Product(c, slug)
		if portal.IsCode(err, portal.ENotFound) {
			continue // deleted since the license was written
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		avail := []available{}
		if status == "ok" || status == "maintained" {
			rs, err := s.Resolver.Available(c, p.Slug, 20)
			if err != nil {
				s.fail(c, err)
				return
			}
			for _, r := range rs {
				a := available{Version: r.Release.Version, Channel: r.Release.Channel, PublishedAt: r.Release.PublishedAt}
				for _, b := range r.Release.Artifacts {
					a.Platforms = append(a.Platforms, b.Platform+"/"+b.Arch)
					a.Builds = append(a.Builds, build{b.Filename, b.Platform, b.Arch, b.Size, b.SHA256})
				}
				avail = append(avail, a)
			}
		}
		products = append(products, product{Slug: p.Slug, Name: p.Name, Distribution: p.Distribution, Releases: avail})
	}
	first := []available{}
	if len(products) > 0 {
		first = products[0].Releases
	}
	quota, err := s.Downloads.Quota(c, l)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{
		"license": s.licenseView(*l),
		"access":  status,
		"entitlements": gin.H{
			"products": l.ProductList(), "constraint": l.Constraint, "channels": l.Channels, "platforms": l.Platforms,
			"expires_at": l.ExpiresAt, "on_expiry": l.OnExpiry, "downloads_per_day": l.DownloadsPerDay,
		},
		"quota":    quota,
		"products": products,
		"releases": first,
	})
}

// createLink makes a share link for one build the caller's license may
// have: a version (or "latest" on ?channel, stable by default) and a file
// name, or a platform and arch. An admin names the license the link is
// made for ("license"); the link is then checked and owned as that
// license's.
func (s *Server) createLink(c *gin.Context) {
	var in struct {
		Product  string          `json:"product"`
		Version  string          `json:"version"`
		Filename string          `json:"filename"`
		Platform string          `json:"platform"`
		Arch     string          `json:"arch"`
		Channel  string          `json:"channel"`
		TTL      json.RawMessage `json:"ttl"`
		License  string          `json:"license"`
	}
	who := caller(c)
	if who.Role() != access.Admin {
		if err := who.MayShare(s.now()); err != nil {
			s.fail(c, err)
			return
		}
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	if who.Role() == access.Admin && in.License == "" {
		s.fail(c, portal.Errorf(portal.EForbidden, "share links are made with the license they share: an admin names that license's id in license"))
		return
	}
	ctx, err := s.Downloads.ActAs(c.Request.Context(), in.License)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Request = c.Request.WithContext(ctx)
	if err := caller(c).MayShare(s.now()); err != nil {
		s.fail(c, err)
		return
	}
	ttl, err := s.Downloads.ParseLinkTTL(in.TTL)
	if err != nil {
		s.fail(c, err)
		return
	}
	if in.Filename == "" && (in.Platform == "" || in.Arch == "") {
		s.fail(c, portal.Errorf(portal.EInvalid, "say which build: filename, or platform and arch"))
		return
	}
	// The link must be for something the license may have now.
	res, err := s.Resolver.Resolve(c, updates.Request{Product: in.Product, Version: in.Version, Filename: in.Filename,
		Platform: in.Platform, Arch: in.Arch, Channel: in.Channel})
	if err != nil {
		s.fail(c, err)
		return
	}
	link, token, err := s.Downloads.CreateLink(c, res, ttl)
	if err != nil {
		s.fail(c, err)
		return
	}
	signedURLHeaders(c)
	c.PureJSON(http.StatusCreated, gin.H{"id": link.ID, "url": s.opts.PublicURL + "/d/" + token, "expires_at": link.ExpiresAt,
		"product": link.Product, "version": link.Version, "filename": link.Filename, "license": link.License,
		"created_by": link.CreatedBy})
}

func (s *Server) deleteLink(c *gin.Context) {
	if err := s.Downloads.RevokeLink(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// shareLink serves /d/{token}: it re-checks the link and the license now,
// then redirects to a storage URL that lives about a minute.
func (s *Server) shareLink(c *gin.Context) {
	link, owner, err := s.Downloads.OpenLink(c, c.Param("token"))
	if err != nil {
		s.fail(c, err)
		return
	}
	// The link acts as the license that made it.
	c.Request = c.Request.WithContext(access.NewContext(c.Request.Context(), owner))
	res, err := s.Resolver.Resolve(c, updates.Request{Product: link.Product, Version: link.Version, Filename: link.Filename})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.grant(c, res, s.opts.ShareRedirectTTL, link.ID)
}

// licenseDownloads lists a license's grants, newest first.
func (s *Server) licenseDownloads(c *gin.Context) {
	if _, err := s.Licenses.Get(c, c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			s.fail(c, portal.Errorf(portal.EInvalid, "limit must be from 1 to 1000"))
			return
		}
		limit = n
	}
	gs, next, err := s.Ledger.ByLicense(c, c.Param("id"), c.Query("cursor"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if gs == nil {
		gs = []ledger.Grant{}
	}
	out := gin.H{"downloads": gs}
	if next != "" {
		out["next_cursor"] = next
	}
	c.PureJSON(http.StatusOK, out)
}

// downloadCounts gives per-release download counts of a product.
func (s *Server) downloadCounts(c *gin.Context) {
	slug := c.Param("product")
	if err := caller(c).MayPublish(slug); err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.Catalog.Product(c, slug); err != nil {
		s.fail(c, err)
		return
	}
	counts, err := s.Ledger.Counts(c, slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"product": slug, "downloads": counts})
}
