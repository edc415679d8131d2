package server

import (
	"bytes"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/releases/feeds"
	"github.com/portaldist/portal/updates"
)

// feedQuery is what a feed asks for.
type feedQuery struct {
	channel string
	current string // only strictly newer releases; "" = any
	// rollout applies staged rollouts here (clients that cannot do it
	// themselves); feeds whose clients stage on their own carry the
	// percentage instead.
	rollout  bool
	clientID string
}

// feedReleases walks the product's published releases, newest first, and
// calls fn with each one the caller may have on the channel (and that is
// newer than current); fn picks its artifact and returns false to stop.
func (s *Server) feedReleases(p releases.Product, lic *licenses.License, q feedQuery, fn func(r releases.Release) bool) error {
	now := s.now()
	if lic != nil {
		if err := lic.RefusesAll(p.Slug, now); err != nil {
			return err
		}
	}
	var curKey []byte
	if q.current != "" {
		v, err := releases.ParseVersion(q.current)
		if err != nil {
			return err
		}
		curKey = releases.VersionKey(v)
	}
	for _, r := range s.Index.Releases(p.Slug) {
		if curKey != nil {
			v, err := releases.ParseVersion(r.Version)
			if err != nil || bytes.Compare(releases.VersionKey(v), curKey) <= 0 {
				return nil
			}
		}
		if !releases.Visible(q.channel, r.Channel) {
			continue
		}
		if lic != nil && lic.Decide(licenses.TargetOf(r, ""), now) != nil {
			continue
		}
		if q.rollout && r.Rollout > 0 {
			id := q.clientID
			if lic != nil {
				id = lic.ID
			}
			if id == "" || updates.Bucket(id, p.Slug, r.Version) >= r.Rollout {
				continue
			}
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// feedProduct loads the path's product and checks the caller. The channel
// is ?channel=, else defaultChannel ("" = stable).
func (s *Server) feedProduct(c *gin.Context, defaultChannel string) (releases.Product, *licenses.License, string, bool) {
	p, err := s.catalog.Product(c, c.Param("product"))
	if err != nil {
		s.fail(c, err)
		return p, nil, "", false
	}
	lic, err := s.updateCaller(c, p)
	if err != nil {
		s.fail(c, err)
		return p, nil, "", false
	}
	ch, err := releases.ParseChannel(firstNonEmpty(c.Query("channel"), defaultChannel))
	if err != nil {
		s.fail(c, err)
		return p, nil, "", false
	}
	c.Header("Cache-Control", "private, no-cache")
	c.Header("Vary", "Authorization")
	return p, lic, ch, true
}

// appcast serves the Sparkle appcast: one item per release with a Mac
// build the caller may have (?arch=arm64|amd64 narrows to one Mac
// architecture; by default only builds that run on every Mac are listed).
func (s *Server) appcast(c *gin.Context) {
	p, lic, ch, ok := s.feedProduct(c, "")
	if !ok {
		return
	}
	arch := ""
	if a := c.Query("arch"); a != "" {
		var err error
		if arch, err = releases.ParseArch(a); err != nil {
			s.fail(c, err)
			return
		}
	}
	var rs []releases.Release
	err := s.feedReleases(p, lic, feedQuery{channel: ch}, func(r releases.Release) bool {
		if lic != nil {
			if a, ok := r.ArtifactFor("darwin", firstNonEmpty(arch, "arm64")); !ok || !s.permits(lic, r, *a) {
				return true
			}
		}
		rs = append(rs, r)
		return len(rs) < 50
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	var buf bytes.Buffer
	if err := feeds.Appcast(&buf, p, rs, arch, s); err != nil {
		s.fail(c, err)
		return
	}
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
	// otherwise. (Rewriting the request's query here would not do: Gin has
	// already cached the parsed query by then.)
	p, lic, ch, ok := s.feedProduct(c, channel)
	if !ok {
		return
	}
	resolveArch := firstNonEmpty(arch, "arm64")
	var buf bytes.Buffer
	var found bool
	err = s.feedReleases(p, lic, feedQuery{channel: ch}, func(r releases.Release) bool {
		a, ok := r.ArtifactFor(platform, resolveArch)
		if !ok && arch == "" {
			// latest-mac.yml serves every Mac: an Intel-only release
			// has no arm64 build but is still the Intel Macs' update.
			a, ok = r.ArtifactFor(platform, "amd64")
		}
		if !ok || !s.permits(lic, r, *a) {
			return true
		}
		buf.Reset()
		if err := feeds.Electron(&buf, p, r, platform, arch, s); err != nil {
			return true // no file electron-updater can use in this release
		}
		found = true
		return false
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	if !found {
		s.fail(c, portal.Errorf(portal.ENotFound, "no %s release of %s for %s", ch, p.Slug, file))
		return
	}
	s.writeWithETag(c, "text/yaml; charset=utf-8", buf.Bytes())
}

// tauri serves the Tauri updater's dynamic endpoint: 200 JSON or 204.
func (s *Server) tauri(c *gin.Context) {
	platform, arch, err := feeds.TauriTarget(c.Param("target"), c.Param("arch"))
	if err != nil {
		s.fail(c, err)
		return
	}
	s.oneUpdate(c, c.Param("current"), func(p releases.Product, r releases.Release, lic *licenses.License) (any, bool) {
		a, ok := feeds.TauriArtifact(r, platform, arch)
		if !ok || !s.permits(lic, r, a) {
			return nil, false
		}
		t, err := feeds.Tauri(p, r, a, s)
		return t, err == nil
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
	s.oneUpdate(c, c.Param("version"), func(p releases.Product, r releases.Release, lic *licenses.License) (any, bool) {
		a, ok := feeds.SquirrelArtifact(r, arch)
		if !ok || !s.permits(lic, r, a) {
			return nil, false
		}
		return feeds.Squirrel(p, r, a, s), true
	})
}

// oneUpdate answers a feed whose clients get one update or nothing (Tauri,
// Squirrel.Mac): 200 with what render makes of the newest release newer
// than current that it accepts, else 204. Staged rollouts apply here,
// since these clients cannot stage by themselves.
func (s *Server) oneUpdate(c *gin.Context, current string, render func(releases.Product, releases.Release, *licenses.License) (any, bool)) {
	p, lic, ch, ok := s.feedProduct(c, "")
	if !ok {
		return
	}
	var out any
	err := s.feedReleases(p, lic, feedQuery{channel: ch, current: current, rollout: true, clientID: c.Query("client_id")},
		func(r releases.Release) bool {
			v, ok := render(p, r, lic)
			if ok {
				out = v
			}
			return !ok
		})
	if err != nil {
		s.fail(c, err)
		return
	}
	if out == nil {
		c.Status(http.StatusNoContent)
		return
	}
	s.writeJSONWithETag(c, out)
}

// permits reports whether the license (nil for none) may have artifact a
// of release r now.
func (s *Server) permits(lic *licenses.License, r releases.Release, a releases.Artifact) bool {
	return lic == nil || lic.Decide(licenses.TargetOf(r, a.Platform), s.now()) == nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
