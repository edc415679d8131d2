package server

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/updates"
)

// downloadURL is portal's own download endpoint for an artifact: feeds and
// the upgrade API point there, so the license check happens on the click.
// It is .../files/{filename} (downloadFile), whose path ends with the file
// name: electron-updater names its cached file and finds the .blockmap
// from the URL, MacUpdater picks the URL that ends in .zip, and a Go
// self-updater finds the signature at the URL plus ".minisig".
func (s *Server) downloadURL(product, version, filename string) string {
	return s.opts.PublicURL + "/v1/products/" + url.PathEscape(product) + "/releases/" + url.PathEscape(version) +
		"/files/" + url.PathEscape(filename)
}

// Download implements feeds' link maker.
func (s *Server) Download(product, version, filename string) string {
	return s.downloadURL(product, version, filename)
}

type upgradeArtifact struct {
	Filename   string            `json:"filename"`
	Platform   string            `json:"platform"`
	Arch       string            `json:"arch"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256"`
	SHA512     string            `json:"sha512"`
	Signatures map[string]string `json:"signatures,omitempty"`
}

type upgradeResponse struct {
	Version     string            `json:"version"`
	Channel     string            `json:"channel"`
	Notes       string            `json:"notes,omitempty"`
	PublishedAt *time.Time        `json:"published_at,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Artifact    upgradeArtifact   `json:"artifact"`
	DownloadURL string            `json:"download_url"`
}

// upgrade answers GET /v1/products/{product}/upgrade from the in-memory
// index: 200 with the release to move to, 204 when there is none, 304 when
// the client's ETag is current.
func (s *Server) upgrade(c *gin.Context) {
	res, ok, err := s.Resolver.Update(c, updates.Request{
		Product: c.Param("product"), Current: c.Query("current"), Platform: c.Query("platform"), Arch: c.Query("arch"),
		Channel: c.Query("channel"), Constraint: c.Query("constraint"), UpdateCheck: true, Rollout: true,
		ClientID: c.Query("client_id"),
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "private, no-cache")
	c.Header("Vary", "Authorization")
	if !ok {
		c.Status(http.StatusNoContent)
		return
	}
	// The answer depends only on the release and artifact chosen (the
	// license only chooses), so it is rendered once per index snapshot.
	p, r, a := res.Product, res.Release, res.Artifact
	key := s.Index.ETag(p.Slug) + "\x00" + r.Version + "\x00" + a.Filename
	doc, ok := s.upgrades.Get(key)
	if !ok {
		gen := s.upgrades.Gen()
		body, err := json.Marshal(upgradeResponse{
			Version: r.Version, Channel: r.Channel, Notes: r.Notes, PublishedAt: r.PublishedAt, Metadata: r.Metadata,
			Artifact: upgradeArtifact{Filename: a.Filename, Platform: a.Platform, Arch: a.Arch, Size: a.Size,
				SHA256: a.SHA256, SHA512: a.SHA512, Signatures: a.Signatures},
			DownloadURL: s.downloadURL(p.Slug, r.Version, a.Filename),
		})
		if err != nil {
			s.fail(c, err)
			return
		}
		doc = rendered{body: body, etag: etagOf(body)}
		s.upgrades.PutIf(key, doc, gen)
	}
	s.writeRendered(c, "application/json; charset=utf-8", doc)
}

// rendered is a response body and its ETag.
type rendered struct {
	body []byte
	etag string
}

func etagOf(body []byte) string {
	sum := sha256.Sum256(body)
	return `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
}

// writeJSONWithETag answers with v and an ETag of its bytes, or 304 when the
// request's If-None-Match names that ETag. Hashing the body makes the tag
// exact for every caller (licenses see different answers) at the cost of
// encoding a small document.
func (s *Server) writeJSONWithETag(c *gin.Context, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.writeWithETag(c, "application/json; charset=utf-8", body)
}

func (s *Server) writeWithETag(c *gin.Context, contentType string, body []byte) {
	s.writeRendered(c, contentType, rendered{body: body, etag: etagOf(body)})
}

// notModified sets the headers of an index that each caller may see
// differently and that last changed at modified: private, revalidated, with
// its Last-Modified (apt and dnf revalidate with If-Modified-Since). When
// the request has no If-None-Match and its If-Modified-Since is not before
// modified, it answers 304 with etag and reports true: the caller writes
// nothing more. Otherwise writeRendered decides.
func notModified(c *gin.Context, modified time.Time, etag string) bool {
	c.Header("Cache-Control", "private, no-cache")
	c.Header("Vary", "Authorization")
	c.Header("Last-Modified", modified.Format(http.TimeFormat))
	if c.GetHeader("If-None-Match") == "" {
		if ims, err := http.ParseTime(c.GetHeader("If-Modified-Since")); err == nil && !modified.After(ims) {
			c.Header("ETag", etag)
			c.Status(http.StatusNotModified)
			return true
		}
	}
	return false
}

// writeRendered answers with doc, or 304 when the request's If-None-Match
// names its ETag.
func (s *Server) writeRendered(c *gin.Context, contentType string, doc rendered) {
	c.Header("ETag", doc.etag)
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, t := range strings.Split(inm, ",") {
			if t = strings.TrimSpace(t); t == doc.etag || t == "*" || strings.TrimPrefix(t, "W/") == doc.etag {
				c.Status(http.StatusNotModified)
				return
			}
		}
	}
	c.Data(http.StatusOK, contentType, doc.body)
}

// artifactInfo serves GET .../artifacts/{filename}: the artifact's
// metadata, or, for "{filename}.minisig", its minisign signature file. It
// applies the same entitlement rules as a download, without counting one.
func (s *Server) artifactInfo(c *gin.Context) {
	res, isSig, err := s.resolveFile(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if isSig {
		s.minisig(c, res)
		return
	}
	p, r, a := res.Product, res.Release, res.Artifact
	c.PureJSON(http.StatusOK, gin.H{"product": p.Slug, "version": r.Version, "artifact": a.Public()})
}

// downloadFile serves GET .../files/{filename}, the download URL feeds and
// the upgrade API give (downloadURL): the artifact download itself, with
// the resolver, license checks, grant and ledger of
// .../artifacts/{filename}/download. "{filename}.minisig", when the
// release has no file of that name, is the artifact's signature, as
// artifactInfo serves it.
func (s *Server) downloadFile(c *gin.Context) {
	if strings.HasSuffix(c.Param("filename"), ".minisig") {
		if res, isSig, err := s.resolveFile(c); err == nil && isSig {
			s.minisig(c, res)
			return
		}
	}
	s.downloadArtifact(c)
}

// resolveFile resolves the request's {filename}, or, when it ends in
// ".minisig" and no artifact has that name, the artifact it signs (isSig).
// "latest" is looked up on ?channel= (stable by default), as for the
// download itself, so metadata and .minisig match the downloaded file.
func (s *Server) resolveFile(c *gin.Context) (res updates.Resolution, isSig bool, err error) {
	name := c.Param("filename")
	base, isSig := strings.CutSuffix(name, ".minisig")
	req := updates.Request{Product: c.Param("product"), Version: c.Param("version"), Filename: name, Channel: c.Query("channel")}
	res, err = s.Resolver.Resolve(c, req)
	if err == nil || !isSig {
		return res, false, err
	}
	req.Filename = base
	res, err = s.Resolver.Resolve(c, req)
	return res, err == nil, err
}

// minisig answers with the minisign signature file of the resolved
// artifact.
func (s *Server) minisig(c *gin.Context, res updates.Resolution) {
	a := res.Artifact
	sig := a.Signatures["minisign"]
	if sig == "" {
		s.fail(c, portal.Errorf(portal.ENotFound, "%s has no minisign signature", a.Filename))
		return
	}
	// An ASCII fallback and the exact name in RFC 5987 filename*=: header
	// values carry no raw UTF-8.
	c.Header("Content-Disposition", objects.ContentDisposition(a.Filename+".minisig"))
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte(sig))
}
