package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/repos"
	"github.com/portaldist/portal/repos/apt"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/updates"
)

// APT repositories: /apt/{product}/dists/{channel}/... and pool/...; see
// package repos/apt and the README's "APT and YUM repositories".
//
// Credentials are the API's (HTTP Basic "license:<key>", which apt sends
// from auth.conf without being asked, so the 401 keeps the API's
// "WWW-Authenticate: License" and never a Basic challenge; the real-apt
// tests check both a good and a wrong key). Each caller gets the index of what its license may install
// (repos.Permitted); the rendered and signed suite is cached under that
// set's digest, the key's fingerprint and the update index's snapshot of
// the product, so apt-get update from many machines costs a resolver walk
// and a cache lookup, and a catalog change (seen through the update
// index's store watch, so another replica's publish shows within the
// watch's delay) makes one new render per distinct view.

// aptState is the APT door's cache: rendered suites and opened OpenPGP keys.
type aptState struct {
	suites *repos.Cache[*aptSuite]
	// keys caches each product's opened OpenPGP key with the stored bytes
	// it was opened from: a changed product record (another replica made
	// the key, a master key sealed it) opens again.
	keys sync.Map // product slug -> aptKey

	// seen remembers, per view (product, suite, caller), the content it
	// was last served and since when: that time is the documents'
	// Last-Modified. apt revalidates with If-Modified-Since only, so it
	// must move forward whenever the view's content changes, even twice
	// in one second, and must not move while it stays the same.
	mu   sync.Mutex
	seen map[string]aptSeen
}

type aptSeen struct {
	content string
	since   time.Time
	// cur and prev are the cache keys of the suite served now and of the
	// one served before the content last changed: keys, not suites, so
	// memory stays bounded by the suite cache (a prev suite gone from it
	// is no longer served by hash).
	cur, prev string
}

// aptSeenMax bounds the views remembered; past it the map starts over,
// and every view's next answer is a full one (Last-Modified now).
const aptSeenMax = 100_000

// lastModified returns the Last-Modified of view when it is served
// content (a key naming the content).
func (a *aptState) lastModified(view, content string, now time.Time) time.Time {
	t, _ := a.lastModifiedDoc(view, content, "", now)
	return t
}

// lastModifiedDoc is lastModified for a view served the suite cached under
// docKey: it also returns the key of the suite the view was served before
// its content last changed ("" if unknown), whose indexes apt may still
// ask for by hash.
func (a *aptState) lastModifiedDoc(view, content, docKey string, now time.Time) (time.Time, string) {
	now = now.UTC().Truncate(time.Second)
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, ok := a.seen[view]
	if ok && prev.content == content {
		if prev.cur != docKey {
			// Re-rendered (a catalog change elsewhere): same content.
			prev.cur = docKey
			a.seen[view] = prev
		}
		return prev.since, prev.prev
	}
	since := now
	if ok && !since.After(prev.since) {
		since = prev.since.Add(time.Second)
	}
	if len(a.seen) >= aptSeenMax {
		a.seen = map[string]aptSeen{}
	}
	a.seen[view] = aptSeen{content: content, since: since, cur: docKey, prev: prev.cur}
	return since, prev.cur
}

// aptView names the caller's view of a suite: its license, token or
// nobody.
func aptView(c *gin.Context, product, suite string) string {
	who := caller(c)
	id := "anonymous"
	if l := who.License(); l != nil {
		id = "license:" + l.ID
	} else if t := who.Token(); t != nil {
		id = "token:" + t.ID
	}
	return product + "\x00" + suite + "\x00" + id
}

type aptKey struct {
	stored string
	keys   []*signing.OpenPGPKey
	// fingerprints names the keys, for cache keys.
	fingerprints string
}

// aptSuite is a rendered suite with each file's ETag.
type aptSuite struct {
	repo  *apt.Repo
	etags map[string]string
}

// aptSuiteCacheSize bounds the distinct views kept (a view is a few KiB
// to a few hundred KiB of indexes); aptSuiteTTL re-renders even an unchanged
// view now and then, so its Date moves.
// aptSuiteCacheBytes bounds their memory: a view of a large catalog
// (hundreds of releases) is a few MiB, and licenses that expire with
// "maintain" on many different days each see their own.
const (
	aptSuiteCacheSize  = 1024
	aptSuiteCacheBytes = 256 << 20
	aptSuiteTTL        = 6 * time.Hour
)

func (d *aptSuite) size() int64 {
	n := len(d.repo.Release) + len(d.repo.InRelease) + len(d.repo.ReleaseGPG)
	for _, b := range d.repo.Files {
		n += len(b)
	}
	return int64(n)
}

func (s *Server) aptRoutes(e *gin.Engine) {
	s.apt = &aptState{seen: map[string]aptSeen{},
		suites: repos.NewCache[*aptSuite](aptSuiteCacheSize, aptSuiteTTL, 2).LimitBytes(aptSuiteCacheBytes, (*aptSuite).size)}
	g := e.Group("/apt/:product", s.authenticate)
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		g.Handle(m, "/key.asc", s.aptPublicKey)
		g.Handle(m, "/key.gpg", s.aptPublicKey)
		g.Handle(m, "/dists/:suite/*file", s.aptDists)
	}
	// GET only: each request mints a URL and counts a download.
	g.GET("/pool/*path", s.aptPool)
}

// aptOpenPGP returns the product's OpenPGP keys that sign (the current
// one, and a staged one beside it during a rotation), opened once per
// stored form.
func (s *Server) aptOpenPGP(c *gin.Context, product string) (aptKey, error) {
	p, err := s.Catalog.Product(c, product)
	if err != nil {
		return aptKey{}, err
	}
	if v, ok := s.apt.keys.Load(product); ok && v.(aptKey).stored == string(p.SigningKey) {
		return v.(aptKey), nil
	}
	keys, err := s.Keys.OpenPGPSigners(c, product)
	if err != nil {
		return aptKey{}, &portal.Error{Code: portal.EInternal, Message: "the product's repository signing key is unavailable", Err: err}
	}
	k := aptKey{keys: keys}
	for _, key := range keys {
		k.fingerprints += key.Fingerprint() + "+"
	}
	if p, err = s.Catalog.Product(c, product); err == nil {
		k.stored = string(p.SigningKey)
		s.apt.keys.Store(product, k)
	}
	return k, nil
}

// aptPublicKey serves the product's OpenPGP public key, armored (key.asc)
// or binary (key.gpg, for apt's signed-by). Public keys are public: no
// credentials needed, for any product, as /v1/products/{product}/keys
// (an unknown product is 404).
func (s *Server) aptPublicKey(c *gin.Context) {
	p, err := s.Catalog.Product(c, c.Param("product"))
	if err != nil {
		s.fail(c, err)
		return
	}
	k, err := s.aptOpenPGP(c, p.Slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	// During a rotation the keyring holds both keys, so a customer who
	// fetches it then trusts the key that will sign alone.
	bin, armored := signing.PublicKeyring(k.keys)
	c.Header("Cache-Control", "public, max-age=300")
	if strings.HasSuffix(c.FullPath(), ".gpg") {
		s.writeWithETag(c, "application/pgp-keys", bin)
		return
	}
	s.writeWithETag(c, "application/pgp-keys; charset=utf-8", []byte(armored))
}

// aptDists serves dists/{suite}/InRelease, Release, Release.gpg and
// main/binary-{arch}/Packages[.gz|.xz] for the caller.
func (s *Server) aptDists(c *gin.Context) {
	file := strings.TrimPrefix(c.Param("file"), "/")
	suite := c.Param("suite")
	if _, err := releases.ParseChannel(suite); err != nil || suite == "" {
		s.fail(c, portal.Errorf(portal.ENotFound, "no suite %q: the suites are the channels (%s)", truncateString(suite, 40), strings.Join(releases.Channels, ", ")))
		return
	}
	set, err := repos.Permitted(c, s.Resolver, c.Param("product"), suite, "deb")
	if err != nil {
		s.fail(c, err)
		return
	}
	key, err := s.aptOpenPGP(c, set.Product.Slug)
	if err != nil {
		s.fail(c, err)
		return
	}
	// The key names the content (the set's digest, the signing key) and the
	// catalog's state (the index snapshot's ETag): each catalog change
	// renders afresh, so a view that returns to an earlier set (a release
	// yanked, then unyanked) gets a new Release Date, never an older one
	// than the one apt already has.
	etag := ""
	if s.Index != nil {
		etag = s.Index.ETag(set.Product.Slug)
	}
	cacheKey := "deb\x00" + set.Product.Slug + "\x00" + set.Channel + "\x00" + set.Digest + "\x00" + key.fingerprints + "\x00" + etag
	// The render may outlive this request (it serves others too): it gets
	// the request's context, never the gin.Context, which Gin reuses.
	doc, err := s.apt.suites.Get(c.Request.Context(), cacheKey, func(context.Context) (*aptSuite, error) {
		repo, err := apt.Render(set, apt.Options{Keys: key.keys, Now: s.now()})
		if err != nil {
			return nil, err
		}
		d := &aptSuite{repo: repo, etags: map[string]string{}}
		d.etags["Release"] = etagOfBytes(repo.Release)
		d.etags["InRelease"] = etagOfBytes(repo.InRelease)
		d.etags["Release.gpg"] = etagOfBytes(repo.ReleaseGPG)
		for name, b := range repo.Files {
			d.etags[name] = etagOfBytes(b)
		}
		return d, nil
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	// Last-Modified follows the view's content only: an unrelated catalog
	// change re-renders, but apt's copy stays current (304).
	modified, before := s.apt.lastModifiedDoc(aptView(c, set.Product.Slug, set.Channel), set.Digest+"\x00"+key.fingerprints, cacheKey, s.now())
	var body []byte
	contentType := "text/plain; charset=utf-8"
	switch file {
	case "InRelease":
		body = doc.repo.InRelease
	case "Release":
		body = doc.repo.Release
	case "Release.gpg":
		body, contentType = doc.repo.ReleaseGPG, "application/pgp-signature"
	default:
		var ok bool
		if body, ok = doc.repo.Files[file]; !ok && strings.Contains(file, "/by-hash/") {
			// The caller's view now, or the one it had before its last
			// change (its InRelease may be from then): never another's.
			if body, ok = doc.repo.ByHash(file); !ok && before != "" {
				if old, cached := s.apt.suites.Peek(before); cached {
					body, ok = old.repo.ByHash(file)
				}
			}
		}
		if !ok {
			s.fail(c, portal.Errorf(portal.ENotFound, "no such file in suite %s: %q", set.Channel, truncateString(file, 80)))
			return
		}
		switch {
		case strings.Contains(file, "/by-hash/"):
			contentType = "application/octet-stream"
		case strings.HasSuffix(file, ".gz"):
			contentType = "application/gzip"
		case strings.HasSuffix(file, ".xz"):
			contentType = "application/x-xz"
		}
	}
	// Every caller may see another index: private, and revalidated with
	// the ETag or Last-Modified (apt sends If-Modified-Since).
	if notModified(c, modified, doc.etags[file]) {
		return
	}
	s.writeRendered(c, contentType, rendered{body: body, etag: doc.etags[file]})
}

// aptPool answers pool/... with a redirect to a freshly minted storage URL
// for the package file, after the same entitlement and quota decision as
// the download API (the exact release and file name, then
// downloads.Service.Grant).
func (s *Server) aptPool(c *gin.Context) {
	version, filename, err := apt.Pool(c.Param("path"))
	if err != nil {
		s.fail(c, err)
		return
	}
	res, err := s.Resolver.Resolve(c, updates.Request{Product: c.Param("product"), Version: version, Filename: filename})
	if err != nil {
		s.fail(c, err)
		return
	}
	if p := res.Artifact.Package; p == nil || p.Format != "deb" {
		s.fail(c, portal.Errorf(portal.ENotFound, "no such package file in the repository"))
		return
	}
	s.grant(c, res, s.opts.URLTTL, "")
}

func etagOfBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
