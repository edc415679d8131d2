package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/repos"
	rpmrepo "github.com/portaldist/portal/repos/rpm"
	"github.com/portaldist/portal/updates"
)

// YUM/DNF repositories: /rpm/{product}/{channel}/{basearch}/ holds
// repodata/ (repomd.xml, its detached signature repomd.xml.asc, and the
// primary, filelists and other documents it names) and packages/, whose
// files redirect to minted storage URLs. The credentials are the API's
// (HTTP Basic license:<key>, which dnf sends with every request when the
// .repo file has username and password, so no challenge is needed and none
// is sent).
//
// What a repository lists is what the caller may install
// (repos.Permitted: the resolver's rules, the license's constraint,
// channels, platforms and expiry; yanked releases leave at once). Its
// metadata is rendered and signed once per distinct list, cached under the
// list's digest (repos.Cache), so a fleet of machines refreshing their
// metadata costs a resolver walk and a map lookup per request.

// rpmArches returns, for dnf's $basearch, the portal arches whose packages
// the repository lists: the arch's own (releases.ParseArch's name for it)
// and noarch ("any").
func rpmArches(basearch string) ([]string, bool) {
	switch basearch {
	case "noarch":
		return []string{"any"}, true
	case "x86_64", "aarch64":
		a, err := releases.ParseArch(basearch)
		return []string{a, "any"}, err == nil
	}
	return nil, false
}

// rpmRepo is one rendered, signed repository view.
type rpmRepo struct {
	docs map[string]rendered // by name under repodata/
}

type rpmDoor struct {
	s     *Server
	cache *repos.Cache[*rpmRepo]
	// seen gives each caller's view its Last-Modified, which moves when
	// (and only when) what that caller sees changes: the APT door's rule
	// (aptState.lastModified), kept per replica.
	seen *aptState
}

// rpmRoutes mounts the YUM/DNF repositories.
func (s *Server) rpmRoutes(e *gin.Engine) {
	d := &rpmDoor{s: s, cache: repos.NewCache[*rpmRepo](1000, 6*time.Hour, 2), seen: &aptState{seen: map[string]aptSeen{}}}
	g := e.Group("/rpm/:product", s.authenticate)
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		g.Handle(m, "/key.asc", d.key)
		g.Handle(m, "/:channel", d.repoFile)
		g.Handle(m, "/:channel/:basearch/repodata/:file", d.repodata)
	}
	// GET only: answering a package mints a URL and counts a download.
	g.GET("/:channel/:basearch/packages/:version/:filename", d.pkg)
}

// key serves the product's OpenPGP public key (the .repo file's gpgkey),
// to anyone: it is public.
func (d *rpmDoor) key(c *gin.Context) {
	k, err := d.s.Keys.OpenPGP(c, c.Param("product"))
	if err != nil {
		d.s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age=3600")
	d.s.writeWithETag(c, "application/pgp-keys", []byte(k.PublicArmored()))
}

// repoFile serves /rpm/{product}/{channel}.repo, the file a customer puts
// in /etc/yum.repos.d/. A caller that authenticated with a license of the
// product gets its key filled in (it sent it; the answer is not stored by
// caches); anyone else a placeholder to replace.
func (d *rpmDoor) repoFile(c *gin.Context) {
	channel, ok := strings.CutSuffix(c.Param("channel"), ".repo")
	if !ok {
		d.s.fail(c, portal.Errorf(portal.ENotFound, "no such endpoint: the repository file is /rpm/{product}/{channel}.repo"))
		return
	}
	ch, err := releases.ParseChannel(channel)
	if err != nil {
		d.s.fail(c, err)
		return
	}
	p, err := d.s.Resolver.Product(c, c.Param("product"))
	if err != nil && portal.ErrorCode(err) == portal.EUnauthorized {
		// The file itself is no secret: without credentials it still
		// describes the repository, with a placeholder for the key.
		p, err = d.s.Catalog.Product(c, c.Param("product"))
	}
	if err != nil {
		d.s.fail(c, err)
		return
	}
	// An open product needs no credentials (and a placeholder would be
	// refused as a bad key).
	creds := ""
	if p.Distribution != releases.Open {
		password := "YOUR_LICENSE_KEY"
		if l := access.FromContext(c).Entitlement(p); l != nil {
			if key, ok := licenseKeyOf(c.Request); ok {
				password = key
			}
		}
		creds = "username=license\npassword=" + password + "\n"
	}
	base := strings.TrimSuffix(d.s.opts.PublicURL, "/") + "/rpm/" + url.PathEscape(p.Slug)
	name := p.Name
	if name == "" {
		name = p.Slug
	}
	body := fmt.Sprintf(`# %[1]s (%[2]s): put this file in /etc/yum.repos.d/%[3]s.repo
#
# repo_gpgcheck verifies repomd.xml against the portal's key (gpgkey),
# and through it the checksum of every package dnf downloads. gpgcheck=1
# also wants each .rpm signed (rpmsign) by a key listed in gpgkey: turn it
# on, and add that key, when the publisher signs its packages.
# skip_if_unavailable=False: a refused license or metadata that fails its
# signature stops dnf with the reason instead of being skipped quietly.
[%[3]s-%[2]s]
name=%[1]s (%[2]s)
baseurl=%[4]s/%[2]s/$basearch
enabled=1
repo_gpgcheck=1
gpgcheck=0
gpgkey=%[4]s/key.asc
skip_if_unavailable=False
metadata_expire=1h
%[5]s`, oneLine(name), ch, p.Slug, base, creds)
	c.Header("Cache-Control", "no-store")
	c.Header("Vary", "Authorization")
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(body))
}

// licenseKeyOf returns the license key the request authenticated with
// ("License <key>" or Basic license:<key>; authenticate has checked it).
func licenseKeyOf(r *http.Request) (string, bool) {
	if user, pass, ok := r.BasicAuth(); ok {
		return pass, user == "license" && pass != ""
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	return cred, strings.EqualFold(scheme, "license") && cred != ""
}

// rpmTrunc shortens client input quoted in an error message.
func rpmTrunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// oneLine keeps a product name from breaking the .repo file's syntax.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// view returns the caller's repository for the request's product, channel
// and basearch, rendering and signing it on a cache miss, and its
// Last-Modified.
func (d *rpmDoor) view(c *gin.Context) (*rpmRepo, time.Time, error) {
	arches, ok := rpmArches(c.Param("basearch"))
	if !ok {
		return nil, time.Time{}, portal.Errorf(portal.ENotFound, "no repository for basearch %q: use x86_64, aarch64 or noarch", rpmTrunc(c.Param("basearch"), 40))
	}
	set, err := repos.Permitted(c, d.s.Resolver, c.Param("product"), c.Param("channel"), "rpm")
	if err != nil {
		return nil, time.Time{}, err
	}
	var entries []repos.Entry
	for _, e := range set.Entries {
		for _, a := range arches {
			if e.Artifact.Arch == a {
				entries = append(entries, e)
				break
			}
		}
	}
	key := strings.Join([]string{"rpm", set.Digest, c.Param("basearch"), set.Product.CreatedAt.Format(time.RFC3339Nano)}, "\x00")
	// The render may outlive this request (it serves others too): it gets
	// the request's context, never the gin.Context, which Gin reuses.
	r, err := d.cache.Get(c.Request.Context(), key, func(ctx context.Context) (*rpmRepo, error) {
		return d.render(ctx, set, entries)
	})
	if err != nil {
		return nil, time.Time{}, err
	}
	modified := d.seen.lastModified(aptView(c, set.Product.Slug, "rpm\x00"+set.Channel+"\x00"+c.Param("basearch")), key, d.s.now())
	return r, modified, nil
}

// render builds and signs one repository view.
func (d *rpmDoor) render(ctx context.Context, set repos.Set, entries []repos.Entry) (*rpmRepo, error) {
	now := d.s.now()
	pkgs := make([]rpmrepo.Package, 0, len(entries))
	for _, e := range entries {
		m, err := pkgmeta.DecodeRPM(e.Artifact.Package.Meta)
		if err != nil {
			return nil, fmt.Errorf("rpm repository of %s: %s %s: %w", set.Product.Slug, e.Release.Version, e.Artifact.Filename, err)
		}
		t := now
		if e.Artifact.UploadedAt != nil {
			t = *e.Artifact.UploadedAt
		}
		pkgs = append(pkgs, rpmrepo.Package{
			Meta: m, SHA256: e.Artifact.SHA256, Size: e.Artifact.Size, Time: t.Unix(),
			Href: "packages/" + url.PathEscape(e.Release.Version) + "/" + url.PathEscape(e.Artifact.Filename),
		})
	}
	rd, err := rpmrepo.Build(pkgs, now.Unix())
	if err != nil {
		return nil, err
	}
	key, err := d.s.Keys.OpenPGP(ctx, set.Product.Slug)
	if err != nil {
		return nil, fmt.Errorf("rpm repository of %s: signing key: %w", set.Product.Slug, err)
	}
	sig, err := key.DetachSignArmored(rd.RepoMD, now)
	if err != nil {
		return nil, fmt.Errorf("rpm repository of %s: sign: %w", set.Product.Slug, err)
	}
	r := &rpmRepo{docs: map[string]rendered{}}
	r.docs["repomd.xml"] = rendered{body: rd.RepoMD, etag: etagOf(rd.RepoMD)}
	r.docs["repomd.xml.asc"] = rendered{body: sig, etag: etagOf(sig)}
	for href, b := range rd.Files {
		r.docs[strings.TrimPrefix(href, "repodata/")] = rendered{body: b, etag: etagOf(b)}
	}
	return r, nil
}

// repodata serves repomd.xml, its signature and the documents it names,
// with an ETag and Last-Modified, and 304 to a conditional request that
// names the current one.
func (d *rpmDoor) repodata(c *gin.Context) {
	v, modified, err := d.view(c)
	if err != nil {
		d.s.fail(c, err)
		return
	}
	file := c.Param("file")
	doc, ok := v.docs[file]
	if !ok {
		// A document of an older view (a client that read repomd.xml
		// before a change): dnf fetches repomd.xml again.
		d.s.fail(c, portal.Errorf(portal.ENotFound, "no repodata file %q in this repository now: fetch repodata/repomd.xml again", rpmTrunc(file, 100)))
		return
	}
	ctype := "application/gzip"
	switch {
	case file == "repomd.xml":
		ctype = "application/xml; charset=utf-8"
	case file == "repomd.xml.asc":
		ctype = "application/pgp-signature"
	}
	if notModified(c, modified, doc.etag) {
		return
	}
	d.s.writeRendered(c, ctype, doc)
}

// pkg serves a package file: the download API's decision (the exact
// release and file, the license, the quota, the ledger) and a 303 to a
// freshly minted storage URL.
func (d *rpmDoor) pkg(c *gin.Context) {
	if _, ok := rpmArches(c.Param("basearch")); !ok {
		d.s.fail(c, portal.Errorf(portal.ENotFound, "no repository for basearch %q: use x86_64, aarch64 or noarch", rpmTrunc(c.Param("basearch"), 40)))
		return
	}
	if _, err := releases.ParseChannel(c.Param("channel")); err != nil {
		d.s.fail(c, err)
		return
	}
	name := c.Param("filename")
	if !strings.HasSuffix(strings.ToLower(name), ".rpm") {
		d.s.fail(c, portal.Errorf(portal.ENotFound, "not a package: %q", rpmTrunc(name, 100)))
		return
	}
	res, err := d.s.Resolver.Resolve(c, updates.Request{Product: c.Param("product"), Version: c.Param("version"), Filename: name})
	if err != nil {
		d.s.fail(c, err)
		return
	}
	d.s.grant(c, res, d.s.opts.URLTTL, "")
}
