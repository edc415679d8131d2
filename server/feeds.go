package server

import (
	"bytes"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/releases/feeds"
	"github.com/portaldist/portal/updates"
)

// feedHeaders marks a feed answer: it differs per caller, and clients
// revalidate it with its ETag.
func feedHeaders(c *gin.Context) {
	c.Header("Cache-Control", "private, no-cache")
	c.Header("Vary", "Authorization")
}

// appcast serves the Sparkle appcast: one item per release with a Mac
// build the caller may have (?arch=arm64|amd64 narrows to one Mac
// architecture; by default only builds that run on every Mac are listed).
func (s *Server) appcast(c *gin.Context) {
	arch := ""
	if a := c.Query("arch"); a != "" {
		var err error
		if arch, err = releases.ParseArch(a); err != nil {
			s.fail(c, err)
			return
		}
	}
	var p releases.Product
	var rs []releases.Release
	err := s.Resolver.Walk(c, updates.Request{
		Product: c.Param("product"), Platform: "darwin", Arch: arch, AnyBuild: true, Channel: c.Query("channel"),
		UpdateCheck: true, Pick: func(r *releases.Release) (releases.Artifact, bool) { return feeds.AppcastArtifact(*r, arch) },
	}, func(res updates.Resolution) bool {
		p = res.Product
		rs = append(rs, res.Release)
		return len(rs) < 50
	})
	if na := (*updates.NotAvailable)(nil); errors.As(err, &na) {
		// An empty appcast: Sparkle reads it as "no update".
		p, err = s.Catalog.Product(c, c.Param("product"))
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := feeds.Appcast(&buf, p, rs, arch, s); err != nil {
		s.fail(c, err)
		return
	}
	feedHeaders(c)
	s.writeWithETag(c, "application/rss+xml; charset=utf-8", buf.Bytes())
}

// electron serves electron-updater's generic provider files.
func (s *Server) electron(c *gin.Context) {
	file := c.Param("file")
	channel, platform, arch, err := feeds.ParseElectronFile(file)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The file name's channel ("beta.yml") applies unless ?channel= says
	// otherwise. electron-updater stages rollouts itself from the
	// manifest's stagingPercentage, so the portal does not.
	res, err := s.Resolver.Resolve(c, updates.Request{
		Product: c.Param("product"), Platform: platform, Arch: arch, AnyBuild: true,
		Channel: firstNonEmpty(c.Query("channel"), channel), UpdateCheck: true,
		Pick: func(r *releases.Release) (releases.Artifact, bool) { return feeds.ElectronArtifact(*r, platform, arch) },
	})
	if na := (*updates.NotAvailable)(nil); errors.As(err, &na) {
		err = portal.Errorf(portal.ENotFound, "no release of %s for %s", c.Param("product"), file)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	// The manifest depends on the release and on the builds the caller's
	// license leaves in it (the resolver's view), so it is rendered once
	// per index snapshot and view, like the upgrade answer: YAML encoding
	// was most of this handler's time.
	key := electronKey(s.Index.ETag(res.Product.Slug), res.Release, platform, arch)
	doc, ok := s.upgrades.Get(key)
	if !ok {
		gen := s.upgrades.Gen()
		var buf bytes.Buffer
		if err := feeds.Electron(&buf, res.Product, res.Release, platform, arch, s); err != nil {
			s.fail(c, err)
			return
		}
		doc = rendered{body: buf.Bytes(), etag: etagOf(buf.Bytes())}
		s.upgrades.PutIf(key, doc, gen)
	}
	feedHeaders(c)
	s.writeRendered(c, "text/yaml; charset=utf-8", doc)
}

// electronKey names a rendered electron-updater manifest in the rendered
// answers' cache: the product's index snapshot, the release, the asked
// platform and arch, and the file names of the builds in the caller's
// view of the release (a license limited to some platforms sees fewer).
func electronKey(indexETag string, r releases.Release, platform, arch string) string {
	var b strings.Builder
	b.WriteString("electron\x00")
	b.WriteString(indexETag)
	b.WriteString("\x00")
	b.WriteString(r.Version)
	b.WriteString("\x00")
	b.WriteString(platform)
	b.WriteString("\x00")
	b.WriteString(arch)
	for _, a := range r.Artifacts {
		b.WriteString("\x00")
		b.WriteString(a.Filename)
	}
	return b.String()
}

// tauri serves the Tauri updater's dynamic endpoint: 200 JSON or 204.
func (s *Server) tauri(c *gin.Context) {
	platform, arch, err := feeds.TauriTarget(c.Param("target"), c.Param("arch"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.oneUpdate(c, updates.Request{Current: c.Param("current"), Platform: platform, Arch: arch,
		Pick: func(r *releases.Release) (releases.Artifact, bool) { return feeds.TauriArtifact(*r, platform, arch) },
	}, func(res updates.Resolution) (any, error) {
		return feeds.Tauri(res.Product, res.Release, res.Artifact, s)
	})
}

// squirrel serves Squirrel.Mac: 200 JSON or 204. Without ?arch= only
// builds that run on every Mac (universal) are offered, since the client
// does not say which Mac it runs on; apps with single-architecture builds
// put ?arch=arm64 or ?arch=amd64 in their feed URL.
func (s *Server) squirrel(c *gin.Context) {
	if plat, err := releases.ParsePlatform(c.Param("platform")); err != nil || plat != "darwin" {
		s.fail(c, portal.Errorf(portal.EInvalid, "Squirrel.Mac feeds are for darwin"))
		return
	}
	arch, err := releases.ParseArch(firstNonEmpty(c.Query("arch"), "universal"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.oneUpdate(c, updates.Request{Current: c.Param("version"), Platform: "darwin", Arch: arch,
		Pick: func(r *releases.Release) (releases.Artifact, bool) { return feeds.SquirrelArtifact(*r, arch) },
	}, func(res updates.Resolution) (any, error) {
		return feeds.Squirrel(res.Product, res.Release, res.Artifact, s), nil
	})
}

// oneUpdate answers a feed whose clients get one update or nothing (Tauri,
// Squirrel.Mac): 200 with what render makes of the newest release newer
// than the client's that the resolver offers, else 204. Staged rollouts
// apply here, since these clients cannot stage by themselves.
func (s *Server) oneUpdate(c *gin.Context, req updates.Request, render func(updates.Resolution) (any, error)) {
	req.Product, req.Channel, req.ClientID = c.Param("product"), c.Query("channel"), c.Query("client_id")
	req.UpdateCheck, req.Rollout = true, true
	res, ok, err := s.Resolver.Update(c, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	feedHeaders(c)
	if !ok {
		c.Status(http.StatusNoContent)
		return
	}
	out, err := render(res)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeJSONWithETag(c, out)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
