// Package pkgmeta reads what a system package says about itself — name,
// version, architecture and, for a .deb, its control fields — from the
// package file, for the portal's APT and YUM repositories and for the CLI,
// which tells a package's platform and arch from its content rather than
// its name.
//
// The server reads each package once, when its upload completes
// (publishing), through a Capture that keeps only the first bytes of the
// file (where the metadata of both formats lives) and hashes the whole
// stream; the CLI calls Extract on the local file. Both run the same
// readers.
//
// Every reader is bounded: it reads at most the format's prefix limit of
// the file and decompresses at most MaxControl bytes of metadata, so a
// hostile upload costs a bounded amount of memory and time. Bad input is a
// *portal.Error with code EUnprocessable saying what is wrong; nothing
// panics.
package pkgmeta

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// MaxControl bounds the decompressed metadata a reader looks at (a .deb's
// control archive) and the metadata kept (releases.Package stays within a
// few KiB of it, see MaxStored).
const (
	MaxControl = 4 << 20
	// MaxStored bounds the metadata stored on an artifact (control text,
	// format-specific Meta), which lives on the release record.
	MaxStored = 64 << 10
)

// Format describes one package format.
type Format struct {
	// Name is releases.Package.Format ("deb", "rpm").
	Name string
	// Ext is the file name extension, lower case with the dot (".deb").
	Ext string
	// Prefix is how many leading bytes of a file the reader may need; a
	// Capture keeps at most that many.
	Prefix int64
	// Extract reads the package from r (size bytes). MD5 and SHA1 are left
	// empty; Capture fills them.
	Extract func(r io.ReaderAt, size int64) (releases.Package, error)
	// Upstream returns the version of the software in a package version
	// (without epoch, packaging revision or release), in a form
	// releases.ParseVersion reads, to compare with the release version.
	Upstream func(pkgVersion string) string
	// Arch maps the package's architecture to the portal's
	// (releases.ParseArch); ok false for one the portal has no name for.
	Arch func(pkgArch string) (arch string, ok bool)
}

var formats = []*Format{debFormat}

// Register adds a format (in an init function of this package).
func Register(f *Format) { formats = append(formats, f) }

// For returns the format of a file name (by extension, case-insensitively),
// or nil when the file is not a package this package reads.
func For(filename string) *Format {
	ext := strings.ToLower(path.Ext(filename))
	for _, f := range formats {
		if f.Ext == ext {
			return f
		}
	}
	return nil
}

// Extract reads the package metadata of a file from r (size bytes): by its
// name's extension; a file that is no package is EInvalid. The MD5 and SHA1
// fields are left empty (Capture computes them while hashing the upload).
func Extract(filename string, r io.ReaderAt, size int64) (releases.Package, error) {
	f := For(filename)
	if f == nil {
		return releases.Package{}, portal.Errorf(portal.EInvalid, "%s is not a .deb or .rpm package", filename)
	}
	return f.Extract(r, size)
}

// Platform returns the portal platform and arch of a package: "linux" and
// the mapped architecture (Debian's "all" and RPM's "noarch" are "any").
func Platform(p releases.Package) (platform, arch string, err error) {
	for _, f := range formats {
		if f.Name != p.Format {
			continue
		}
		a, ok := f.Arch(p.Arch)
		if !ok {
			return "", "", portal.Errorf(portal.EUnprocessable, "the package's architecture %q has no portal arch name (supported: %s)", p.Arch, supportedArches(f))
		}
		return "linux", a, nil
	}
	return "", "", portal.Errorf(portal.EUnprocessable, "unknown package format %q", p.Format)
}

func supportedArches(f *Format) string {
	if f == debFormat {
		return "amd64, arm64, i386, armhf, armel, all"
	}
	return "see the README"
}

// CheckRelease refuses a package that does not belong to a release: its
// version (after the format's epoch and revision rules) must be the
// release's, and its architecture the declared platform and arch. The
// error is EUnprocessable with both values in its message and Details
// ("release_version"/"package_version", or "declared"/"package").
func CheckRelease(p releases.Package, releaseVersion, platform, arch string) error {
	var f *Format
	for _, x := range formats {
		if x.Name == p.Format {
			f = x
		}
	}
	if f == nil {
		return portal.Errorf(portal.EUnprocessable, "unknown package format %q", p.Format)
	}
	if !SameVersion(f.Upstream(p.Version), releaseVersion) {
		return &portal.Error{Code: portal.EUnprocessable,
			Message: "the package's version " + p.Version + " is not the release's version " + releaseVersion +
				" (compared without epoch and packaging revision): build the package for " + releaseVersion + " or upload it to its own release",
			Details: map[string]any{"release_version": releaseVersion, "package_version": p.Version}}
	}
	pp, pa, err := Platform(p)
	if err != nil {
		return err
	}
	if pp != platform || pa != arch {
		return &portal.Error{Code: portal.EUnprocessable,
			Message: "the package is built for " + pp + "/" + pa + " (" + p.Arch + ") but was declared as " + platform + "/" + arch + ": declare it with its own platform and arch",
			Details: map[string]any{"declared": platform + "/" + arch, "package": pp + "/" + pa}}
	}
	return nil
}

// SameVersion reports whether upstream (a package's version without epoch
// and revision) is the release version: equal as strings or as versions
// (go-version: "1.2" is "1.2.0"; "1.2.0-rc.1" and "1.2.0-rc1" differ).
func SameVersion(upstream, release string) bool {
	if upstream == release {
		return true
	}
	a, err1 := releases.ParseVersion(upstream)
	b, err2 := releases.ParseVersion(release)
	return err1 == nil && err2 == nil && a.Equal(b) && a.Prerelease() == b.Prerelease()
}

// Capture collects what the server needs from an upload as it streams by:
// the first Prefix bytes of the file (where its metadata lives) and the MD5
// and SHA-1 of the whole stream. Write never fails. It is not safe for
// concurrent use.
type Capture struct {
	f        *Format
	filename string
	buf      []byte
	limit    int64
	md5, sh1 hash.Hash
	n        int64
}

// NewCapture returns a Capture for a file of the given name and declared
// size, or nil when the file is not a package (For is nil).
func NewCapture(filename string, size int64) *Capture {
	f := For(filename)
	if f == nil {
		return nil
	}
	limit := min(f.Prefix, max(size, 0))
	return &Capture{f: f, filename: filename, limit: limit, buf: make([]byte, 0, limit), md5: md5.New(), sh1: sha1.New()}
}

func (c *Capture) Write(p []byte) (int, error) {
	c.md5.Write(p)
	c.sh1.Write(p)
	c.n += int64(len(p))
	if room := c.limit - int64(len(c.buf)); room > 0 {
		c.buf = append(c.buf, p[:min(int64(len(p)), room)]...)
	}
	return len(p), nil
}

// Package reads the package from the captured bytes. size is the file's
// verified size. A package whose metadata lies beyond the prefix is
// EUnprocessable.
func (c *Capture) Package(size int64) (releases.Package, error) {
	p, err := c.f.Extract(prefixReader{c.buf}, size)
	if err != nil {
		return p, err
	}
	p.MD5 = hex.EncodeToString(c.md5.Sum(nil))
	p.SHA1 = hex.EncodeToString(c.sh1.Sum(nil))
	return p, nil
}

// errBeyondPrefix is the io error a reader gets for bytes a Capture did not
// keep; readers report it as a package whose metadata is not where it
// should be.
var errBeyondPrefix = errors.New("pkgmeta: read beyond the captured prefix")

type prefixReader struct{ b []byte }

func (r prefixReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errBeyondPrefix
	}
	if off >= int64(len(r.b)) {
		return 0, errBeyondPrefix
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, errBeyondPrefix
	}
	return n, nil
}

// unprocessable is the error for a package file that cannot be read.
func unprocessable(format string, args ...any) error {
	return portal.Errorf(portal.EUnprocessable, format, args...)
}

// readFull reads exactly len(p) bytes at off; running out of file (or of
// captured prefix) is unprocessable.
func readFull(r io.ReaderAt, p []byte, off int64, what string) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if errors.Is(err, errBeyondPrefix) {
		return unprocessable("%s lies beyond the part of the file where the portal reads package metadata", what)
	}
	return unprocessable("the file ends inside %s", what)
}
