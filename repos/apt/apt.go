// Package apt renders a product channel's APT repository from the packages
// a caller may install (repos.Set): dists/{suite}/Release, its clear-signed
// InRelease and detached Release.gpg, and main/binary-{arch}/Packages with
// its .gz and .xz forms, in the layout apt-get and dpkg-scanpackages use.
// Package files live under pool/; Pool parses their paths back.
//
// Rendering is pure and deterministic for a Set, a key and a time; the
// server caches the result (repos.Cache) so it runs once per catalog
// change and distinct entitlement view.
package apt

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/repos"
	"github.com/portaldist/portal/signing"
)

// Component is the repository's one component.
const Component = "main"

// Architectures are the Debian architectures every suite lists, whatever
// it holds now: a machine's apt then never reports the repository as not
// supporting its architecture while a release is missing a build. An
// index with no package for an architecture is empty. Packages of
// architecture "all" are listed in every one.
var Architectures = []string{"amd64", "arm64", "armel", "armhf", "i386"}

// IndexFiles are the names of the index files of each architecture,
// relative to dists/{suite}/main/binary-{arch}/.
var IndexFiles = []string{"Packages", "Packages.gz", "Packages.xz"}

// Repo is one rendered suite as one caller sees it.
type Repo struct {
	// Release, InRelease (clear-signed Release) and ReleaseGPG (armored
	// detached signature of Release).
	Release, InRelease, ReleaseGPG []byte
	// Files maps paths relative to dists/{suite}/ (e.g.
	// "main/binary-amd64/Packages.gz") to their content.
	Files map[string][]byte
	// Date is when it was rendered: Release's Date and the documents'
	// Last-Modified.
	Date time.Time
	// ETag identifies the content (the set's digest and the signing key).
	ETag string
	// byHash maps "main/binary-{arch}/by-hash/SHA256/{hex}" to the file.
	byHash map[string][]byte
}

// ByHash returns the index file a by-hash path names
// (main/binary-{arch}/by-hash/SHA256/{hex}, as apt asks for it when
// Release says Acquire-By-Hash), if this rendering has it.
func (r *Repo) ByHash(path string) ([]byte, bool) {
	b, ok := r.byHash[path]
	return b, ok
}

// Options are what Render takes beyond the set.
type Options struct {
	// Keys sign Release: one signature each (during a key rotation, the
	// current and the staged key).
	Keys []*signing.OpenPGPKey
	// Now is the Date (truncated to the second, UTC).
	Now time.Time
	// ValidFor, when positive, adds Valid-Until (Now + ValidFor): apt then
	// refuses metadata older than that, which defeats an attacker replaying
	// an old repository state. The server re-renders before it runs out.
	ValidFor time.Duration
}

// Render renders the suite set.Channel of set.Product.
func Render(set repos.Set, o Options) (*Repo, error) {
	if len(o.Keys) == 0 {
		return nil, fmt.Errorf("apt: render: no signing key")
	}
	now := o.Now.UTC().Truncate(time.Second)
	r := &Repo{Files: map[string][]byte{}, Date: now, byHash: map[string][]byte{}}

	var files []string
	for _, arch := range Architectures {
		var b bytes.Buffer
		for _, e := range set.Entries {
			p := e.Artifact.Package
			if p == nil || p.Format != "deb" || (p.Arch != arch && p.Arch != "all") {
				continue
			}
			if err := writeStanza(&b, e); err != nil {
				return nil, err
			}
		}
		dir := Component + "/binary-" + arch + "/"
		plain := b.Bytes()
		gz, err := gzipBytes(plain)
		if err != nil {
			return nil, err
		}
		xzb, err := xzBytes(plain)
		if err != nil {
			return nil, err
		}
		r.Files[dir+"Packages"] = plain
		r.Files[dir+"Packages.gz"] = gz
		r.Files[dir+"Packages.xz"] = xzb
		for _, b := range [][]byte{plain, gz, xzb} {
			sum := sha256.Sum256(b)
			r.byHash[dir+"by-hash/SHA256/"+hex.EncodeToString(sum[:])] = b
		}
		files = append(files, dir+"Packages", dir+"Packages.gz", dir+"Packages.xz")
	}

	var rel bytes.Buffer
	origin := set.Product.Name
	if origin == "" {
		origin = set.Product.Slug
	}
	field(&rel, "Origin", oneLine(origin))
	field(&rel, "Label", set.Product.Slug)
	field(&rel, "Suite", set.Channel)
	field(&rel, "Codename", set.Channel)
	field(&rel, "Date", now.Format(dateFormat))
	if o.ValidFor > 0 {
		field(&rel, "Valid-Until", now.Add(o.ValidFor).Format(dateFormat))
	}
	field(&rel, "Architectures", strings.Join(Architectures, " "))
	field(&rel, "Components", Component)
	// By hash, apt fetches the exact indexes this Release lists even when
	// the caller's view changes between its requests (a release published
	// meanwhile); the server keeps the previous rendering for that.
	field(&rel, "Acquire-By-Hash", "yes")
	field(&rel, "Description", oneLine(origin)+" packages ("+set.Channel+")")
	for _, sum := range []struct {
		name string
		hash func([]byte) string
	}{
		{"MD5Sum", func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }},
		{"SHA1", func(b []byte) string { s := sha1.Sum(b); return hex.EncodeToString(s[:]) }},
		{"SHA256", func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }},
	} {
		rel.WriteString(sum.name + ":\n")
		for _, f := range files {
			fmt.Fprintf(&rel, " %s %16d %s\n", sum.hash(r.Files[f]), len(r.Files[f]), f)
		}
	}
	r.Release = rel.Bytes()
	var err error
	if r.InRelease, err = signing.ClearSignAll(o.Keys, r.Release, now); err != nil {
		return nil, err
	}
	if r.ReleaseGPG, err = signing.DetachSignArmoredAll(o.Keys, r.Release, now); err != nil {
		return nil, err
	}
	r.ETag = `"apt-` + set.Digest[:min(32, len(set.Digest))] + "-" + o.Keys[0].KeyID() + "-" + fmt.Sprint(now.Unix()) + `"`
	return r, nil
}

// dateFormat is the Release Date format apt parses (RFC 2822, in UTC).
const dateFormat = "Mon, 02 Jan 2006 15:04:05 UTC"

func field(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteByte('\n')
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeStanza writes one Packages stanza: the package's control fields,
// then where the file is and its size and digests (as dpkg-scanpackages).
func writeStanza(b *bytes.Buffer, e repos.Entry) error {
	p := e.Artifact.Package
	if p.Control == "" {
		return fmt.Errorf("apt: %s of %s %s has no control fields", e.Artifact.Filename, e.Release.Product, e.Release.Version)
	}
	b.WriteString(p.Control)
	field(b, "Filename", PoolPath(e.Release.Version, *p, e.Artifact.Filename))
	field(b, "Size", fmt.Sprint(e.Artifact.Size))
	field(b, "MD5sum", p.MD5)
	field(b, "SHA1", p.SHA1)
	field(b, "SHA256", e.Artifact.SHA256)
	b.WriteByte('\n')
	return nil
}

// PoolPath is where a package's file is, relative to the repository root:
// pool/main/{a|libx}/{name}/{release version}/{filename}, each segment
// path-escaped. The release version makes it unique per release; the file
// name is the artifact's.
func PoolPath(releaseVersion string, p releases.Package, filename string) string {
	prefix := p.Name[:1]
	if strings.HasPrefix(p.Name, "lib") && len(p.Name) > 3 {
		prefix = p.Name[:4]
	}
	return "pool/" + Component + "/" + prefix + "/" + url.PathEscape(p.Name) + "/" + url.PathEscape(releaseVersion) + "/" + url.PathEscape(filename)
}

// Pool parses a pool path (as PoolPath makes, without "pool/") into the
// release version and file name; anything else is ENotFound.
func Pool(path string) (version, filename string, err error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	notFound := portal.Errorf(portal.ENotFound, "no such package file in the repository")
	if len(parts) != 5 || parts[0] != Component {
		return "", "", notFound
	}
	for _, s := range parts {
		if s == "" || s == "." || s == ".." {
			return "", "", notFound
		}
	}
	version, filename = parts[3], parts[4]
	if releases.ValidateFilename(filename) != nil || pkgmeta.For(filename) == nil || len(version) > 128 {
		return "", "", notFound
	}
	if !strings.HasPrefix(parts[1], parts[2][:1]) {
		return "", "", notFound
	}
	return version, filename, nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("apt: gzip: %w", err)
	}
	return out.Bytes(), nil
}

func xzBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	// The dictionary need not exceed the input: xz's default (8 MiB) makes
	// the encoder allocate about 40 MiB per index, whatever its size.
	w, err := xz.WriterConfig{DictCap: min(max(len(b), 64<<10), 8<<20)}.NewWriter(&out)
	if err != nil {
		return nil, fmt.Errorf("apt: xz: %w", err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("apt: xz: %w", err)
	}
	return out.Bytes(), nil
}
