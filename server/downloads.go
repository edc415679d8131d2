package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
)

// downloadRequest is what a download asks for.
type downloadRequest struct {
	version  string // a version or "latest"
	filename string // "" = choose by platform and arch
	platform string
	arch     string
	channel  string
}

// caller is who downloads and how they may.
type caller struct {
	manager bool              // an admin or publisher token of the product
	license *licenses.License // nil for open products and managers
}

// downloader checks who may download from the product.
func (s *Server) downloader(c *gin.Context, p releases.Product) (caller, error) {
	manager, err := mayView(c, p)
	if err != nil {
		return caller{}, err
	}
	id := who(c)
	if manager || p.Distribution == releases.Open {
		return caller{manager: manager}, nil
	}
	if id.license == nil {
		return caller{}, portal.Errorf(portal.EUnauthorized, "%s is licensed: send Authorization: License <key>", p.Slug)
	}
	l := *id.license
	return caller{license: &l}, nil
}

// resolve finds the release and artifact a download asks for and applies
// the entitlement decision. "latest" is the newest published release on the
// channel that has a fitting artifact and that the license may have.
func (s *Server) resolve(ctx context.Context, p releases.Product, who caller, q downloadRequest) (releases.Release, releases.Artifact, error) {
	now := s.now()
	if q.version != "latest" {
		r, err := s.catalog.Release(ctx, p.Slug, q.version)
		if err != nil {
			return r, releases.Artifact{}, err
		}
		if !who.manager && r.Status != releases.Published {
			if r.Status == releases.Yanked {
				return r, releases.Artifact{}, portal.Errorf(portal.ENotFound, "%s %s was withdrawn and is no longer available", p.Slug, r.Version)
			}
			return r, releases.Artifact{}, portal.Errorf(portal.ENotFound, "%s has no version %s", p.Slug, q.version)
		}
		a, err := pickArtifact(&r, q)
		if err != nil {
			return r, a, err
		}
		if who.license != nil {
			if err := who.license.Decide(licenses.TargetOf(r, a.Platform), now); err != nil {
				return r, a, err
			}
		}
		return r, a, nil
	}
	if who.license != nil {
		if err := who.license.RefusesAll(p.Slug, now); err != nil {
			return releases.Release{}, releases.Artifact{}, err
		}
	}
	var refusal error
	for _, r := range s.Index.Releases(p.Slug) {
		if !releases.Visible(q.channel, r.Channel) {
			continue
		}
		a, err := pickArtifact(&r, q)
		if err != nil {
			continue
		}
		if who.license != nil {
			if err := who.license.Decide(licenses.TargetOf(r, a.Platform), now); err != nil {
				if refusal == nil {
					refusal = err
				}
				continue
			}
		}
		return r, a, nil
	}
	if refusal != nil {
		return releases.Release{}, releases.Artifact{}, refusal
	}
	what := q.filename
	if what == "" {
		what = q.platform + "/" + q.arch
	}
	return releases.Release{}, releases.Artifact{}, portal.Errorf(portal.ENotFound, "no %s release of %s has %s", q.channel, p.Slug, what)
}

func pickArtifact(r *releases.Release, q downloadRequest) (releases.Artifact, error) {
	if q.filename != "" {
		a, ok := r.Artifact(q.filename)
		if !ok || a.Status != releases.Uploaded {
			return releases.Artifact{}, portal.Errorf(portal.ENotFound, "%s %s has no artifact %q", r.Product, r.Version, q.filename)
		}
		return *a, nil
	}
	a, ok := r.ArtifactFor(q.platform, q.arch)
	if !ok {
		return releases.Artifact{}, portal.Errorf(portal.ENotFound, "%s %s has no build for %s/%s", r.Product, r.Version, q.platform, q.arch)
	}
	return *a, nil
}

// downloadGrant is the JSON form of a minted download.
type downloadGrant struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Filename  string    `json:"filename"`
	Version   string    `json:"version"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
}

// grant counts the download against the license's daily quota, mints a
// storage URL valid ttl, records the grant in the ledger and answers with a
// 303 to the URL, or 200 JSON when the client asks for JSON.
func (s *Server) grant(c *gin.Context, r releases.Release, a releases.Artifact, lic *licenses.License, linkID string, ttl time.Duration) {
	// Mint first: presigning is offline and cheap, and a request that fails
	// must not use up quota (the reservation cannot be given back).
	signed, err := s.Objects.PresignGet(c, a.ObjectKey, ttl, a.Filename)
	if err != nil {
		s.fail(c, err)
		return
	}
	if lic != nil && lic.DownloadsPerDay > 0 {
		if err := s.Ledger.Reserve(c, lic.ID, lic.DownloadsPerDay, s.now()); err != nil {
			var pe *portal.Error
			if errors.As(err, &pe) {
				if reset, ok := pe.Details["reset_at"].(string); ok {
					if t, err := time.Parse(time.RFC3339, reset); err == nil {
						c.Header("Retry-After", strconv.Itoa(int(t.Sub(s.now()).Seconds())+1))
					}
				}
			}
			s.fail(c, err)
			return
		}
	}
	g := ledger.Grant{
		Time: s.now().UTC(), Product: r.Product, Version: r.Version, Filename: a.Filename,
		Platform: a.Platform, Arch: a.Arch, Client: c.ClientIP(), UserAgent: c.GetHeader("User-Agent"), ShareLink: linkID,
	}
	if lic != nil {
		g.License = lic.ID
	}
	s.Ledger.Record(g)
	s.metrics.grants.WithLabelValues(r.Product, strconv.FormatBool(linkID != "")).Inc()
	signedURLHeaders(c)
	if wantsJSON(c) {
		c.PureJSON(http.StatusOK, downloadGrant{URL: signed.URL, ExpiresAt: signed.ExpiresAt, Filename: a.Filename, Version: r.Version, Size: a.Size, SHA256: a.SHA256})
		return
	}
	c.Redirect(http.StatusSeeOther, signed.URL)
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
	q := downloadRequest{version: c.Param("version"), platform: c.Query("platform"), arch: c.Query("arch"), channel: c.Query("channel")}
	if q.platform == "" || q.arch == "" {
		s.fail(c, portal.Errorf(portal.EInvalid, "say which build: ?platform=linux|darwin|windows&arch=amd64|arm64|..."))
		return
	}
	s.download(c, q)
}

func (s *Server) downloadArtifact(c *gin.Context) {
	s.download(c, downloadRequest{version: c.Param("version"), filename: c.Param("filename"), channel: c.Query("channel")})
}

func (s *Server) download(c *gin.Context, q downloadRequest) {
	var err error
	if q.channel, err = releases.ParseChannel(q.channel); err != nil {
		s.fail(c, err)
		return
	}
	if q.platform != "" {
		if q.platform, err = releases.ParsePlatform(q.platform); err != nil {
			s.fail(c, err)
			return
		}
	}
	if q.arch != "" {
		if q.arch, err = releases.ParseArch(q.arch); err != nil {
			s.fail(c, err)
			return
		}
	}
	ttl, err := s.urlTTL(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.catalog.Product(c, c.Param("product"))
	if err != nil {
		s.fail(c, err)
		return
	}
	who, err := s.downloader(c, p)
	if err != nil {
		s.fail(c, err)
		return
	}
	r, a, err := s.resolve(c, p, who, q)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.grant(c, r, a, who.license, "", ttl)
}

// me tells a license holder what the license allows and which releases it
// may download now.
func (s *Server) me(c *gin.Context) {
	id := who(c)
	if id.token != nil {
		c.PureJSON(http.StatusOK, gin.H{"token": id.token.Public()})
		return
	}
	if id.license == nil {
		s.fail(c, portal.Errorf(portal.EUnauthorized, "send Authorization: License <key>"))
		return
	}
	l := *id.license
	p, err := s.catalog.Product(c, l.Product)
	if err != nil {
		s.fail(c, err)
		return
	}
	now := s.now()
	type available struct {
		Version     string     `json:"version"`
		Channel     string     `json:"channel"`
		PublishedAt *time.Time `json:"published_at,omitempty"`
		Platforms   []string   `json:"platforms"`
	}
	avail := []available{}
	for _, r := range s.Index.Releases(p.Slug) {
		if len(avail) == 20 {
			break
		}
		var plats []string
		for _, a := range r.Artifacts {
			if a.Status == releases.Uploaded && l.Decide(licenses.TargetOf(r, a.Platform), now) == nil {
				plats = append(plats, a.Platform+"/"+a.Arch)
			}
		}
		if len(plats) > 0 {
			avail = append(avail, available{r.Version, r.Channel, r.PublishedAt, plats})
		}
	}
	// access is "ok", "maintained" (expired, keeping what was published
	// before), or the code of a refusal that holds for every release.
	status := "ok"
	if err := l.RefusesAll(l.Product, now); err != nil {
		status = portal.ErrorCode(err)
	} else if l.ExpiresAt != nil && !now.Before(*l.ExpiresAt) {
		status = "maintained"
	}
	c.PureJSON(http.StatusOK, gin.H{
		"license": l.Public(),
		"access":  status,
		"entitlements": gin.H{
			"product": l.Product, "constraint": l.Constraint, "channels": l.Channels, "platforms": l.Platforms,
			"expires_at": l.ExpiresAt, "on_expiry": l.OnExpiry, "downloads_per_day": l.DownloadsPerDay,
		},
		"products": []gin.H{{"slug": p.Slug, "name": p.Name, "distribution": p.Distribution}},
		"releases": avail,
	})
}

// createLink makes a share link for one artifact of the caller's license.
func (s *Server) createLink(c *gin.Context) {
	var in struct {
		Product  string          `json:"product"`
		Version  string          `json:"version"`
		Filename string          `json:"filename"`
		TTL      json.RawMessage `json:"ttl"`
	}
	id := who(c)
	switch {
	case id.token != nil:
		s.fail(c, portal.Errorf(portal.EForbidden, "share links are made with the license they share, not an API token"))
		return
	case id.license == nil:
		s.fail(c, portal.Errorf(portal.EUnauthorized, "share links are made with a license: send Authorization: License <key>"))
		return
	}
	if err := s.decode(c, &in); err != nil {
		s.fail(c, err)
		return
	}
	ttl := 24 * time.Hour
	if len(in.TTL) > 0 && string(in.TTL) != "null" {
		var raw any
		json.Unmarshal(in.TTL, &raw)
		var err error
		switch v := raw.(type) {
		case float64:
			ttl, err = time.Duration(v)*time.Second, nil
			if v <= 0 || v > float64(7*24*3600) {
				err = portal.Errorf(portal.EInvalid, "ttl must be from 1 second to %s", s.opts.ShareLinkMaxTTL)
			}
		case string:
			ttl, err = time.ParseDuration(v)
		default:
			err = portal.Errorf(portal.EInvalid, "ttl must be seconds or a duration such as 24h")
		}
		if err != nil {
			s.fail(c, portal.Errorf(portal.EInvalid, "ttl must be seconds or a duration such as 24h, at most %s", s.opts.ShareLinkMaxTTL))
			return
		}
	}
	if ttl < time.Second {
		s.fail(c, portal.Errorf(portal.EInvalid, "ttl must be at least one second"))
		return
	}
	if ttl > s.opts.ShareLinkMaxTTL {
		s.fail(c, portal.Errorf(portal.EInvalid, "ttl %s is above the maximum of %s", ttl, s.opts.ShareLinkMaxTTL))
		return
	}
	p, err := s.catalog.Product(c, in.Product)
	if err != nil {
		s.fail(c, err)
		return
	}
	l := *id.license
	// The link must be for something the license may have now. "latest"
	// is the newest stable release, as everywhere else.
	r, a, err := s.resolve(c, p, caller{license: &l}, downloadRequest{version: in.Version, filename: in.Filename, channel: "stable"})
	if err != nil {
		s.fail(c, err)
		return
	}
	link, token, err := s.Links.Create(c, links.Link{License: l.ID, Product: p.Slug, Version: r.Version, Filename: a.Filename}, ttl, s.opts.ShareLinkMaxTTL)
	if err != nil {
		s.fail(c, err)
		return
	}
	signedURLHeaders(c)
	c.PureJSON(http.StatusCreated, gin.H{"id": link.ID, "url": s.opts.PublicURL + "/d/" + token, "expires_at": link.ExpiresAt,
		"product": link.Product, "version": link.Version, "filename": link.Filename})
}

func (s *Server) deleteLink(c *gin.Context) {
	id := who(c)
	owner := ""
	switch {
	case id.license != nil:
		owner = id.license.ID
	case id.token != nil && id.token.Role == tokens.Admin:
	case id.token != nil:
		s.fail(c, portal.Errorf(portal.EForbidden, "only the license that made a link, or an admin, may delete it"))
		return
	default:
		s.fail(c, portal.Errorf(portal.EUnauthorized, "send the license that made the link, or an admin token"))
		return
	}
	if err := s.Links.Revoke(c, c.Param("id"), owner); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// shareLink serves /d/{token}: it re-checks the link and the license now,
// then redirects to a storage URL that lives about a minute.
func (s *Server) shareLink(c *gin.Context) {
	link, err := s.Links.Verify(c, c.Param("token"))
	if err != nil {
		s.fail(c, err)
		return
	}
	l, err := s.licenses.Get(c, link.License)
	if portal.IsCode(err, portal.ENotFound) {
		err = portal.Errorf(portal.ELinkRevoked, "this link's license no longer exists")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	p, err := s.catalog.Product(c, link.Product)
	if err != nil {
		s.fail(c, err)
		return
	}
	r, a, err := s.resolve(c, p, caller{license: &l}, downloadRequest{version: link.Version, filename: link.Filename, channel: "dev"})
	if err != nil {
		s.fail(c, err)
		return
	}
	s.grant(c, r, a, &l, link.ID, s.opts.ShareRedirectTTL)
}

// licenseDownloads lists a license's grants, newest first.
func (s *Server) licenseDownloads(c *gin.Context) {
	if _, err := s.licenses.Get(c, c.Param("id")); err != nil {
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
	if err := mayPublish(c, slug); err != nil {
		s.fail(c, err)
		return
	}
	if _, err := s.catalog.Product(c, slug); err != nil {
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
