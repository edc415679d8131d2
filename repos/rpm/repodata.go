// Package rpm writes YUM/DNF repository metadata (repodata/): primary,
// filelists and other as gzipped XML, and the repomd.xml that indexes them,
// from the .rpm headers read by pkgmeta.ParseRPM.
//
// The documents follow what createrepo_c writes for the same packages
// (its filtering of requires, primary's file subset, the changelog limit
// and date adjustment), so dnf and yum read them as they read any
// distribution's repository. The package knows no HTTP and no catalog: the
// caller decides which packages a repository (or a license's view of it)
// holds, where their bytes are served, and signs repomd.xml.
package rpm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/portaldist/portal/pkgmeta"
)

// Package is one .rpm of a repository.
type Package struct {
	Meta *pkgmeta.RPM
	// SHA256 (lower-case hex) of the whole file: the package id.
	SHA256 string
	// Size of the file in bytes.
	Size int64
	// Time is the file's time in Unix seconds (createrepo_c uses the
	// mtime; the portal its upload time).
	Time int64
	// Href is the file's path relative to the repository root (the
	// directory holding repodata/), as dnf will request it.
	Href string
}

// Repodata is a generated repository index.
type Repodata struct {
	// RepoMD is repodata/repomd.xml.
	RepoMD []byte
	// Files are the gzipped documents by their path relative to the
	// repository root ("repodata/<sha256>-primary.xml.gz", ...): the names
	// carry their checksum, so a client never mixes documents of two
	// generations.
	Files map[string][]byte
}

// Build writes the repodata for pkgs, in the order given (callers sort
// them for stable output), stamped with revision (Unix seconds of the
// catalog change it reflects). The same input gives the same bytes.
func Build(pkgs []Package, revision int64) (*Repodata, error) {
	var primary, filelists, other bytes.Buffer
	n := strconv.Itoa(len(pkgs))
	primary.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="` + n + `">` + "\n")
	filelists.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="` + n + `">` + "\n")
	other.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<otherdata xmlns="http://linux.duke.edu/metadata/other" packages="` + n + `">` + "\n")
	for _, p := range pkgs {
		if p.Meta == nil {
			return nil, fmt.Errorf("rpm repodata: %s has no rpm metadata", p.Href)
		}
		writePrimary(&primary, p)
		writeFilelists(&filelists, p)
		writeOther(&other, p)
	}
	primary.WriteString("</metadata>")
	filelists.WriteString("</filelists>")
	other.WriteString("</otherdata>")

	rd := &Repodata{Files: make(map[string][]byte, 3)}
	var md bytes.Buffer
	md.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">` + "\n")
	rev := strconv.FormatInt(revision, 10)
	md.WriteString("  <revision>" + rev + "</revision>\n")
	for _, doc := range []struct {
		typ  string
		body []byte
	}{{"primary", primary.Bytes()}, {"filelists", filelists.Bytes()}, {"other", other.Bytes()}} {
		gz, err := gzipBytes(doc.body)
		if err != nil {
			return nil, err
		}
		sum, open := sha256.Sum256(gz), sha256.Sum256(doc.body)
		href := "repodata/" + hex.EncodeToString(sum[:]) + "-" + doc.typ + ".xml.gz"
		rd.Files[href] = gz
		fmt.Fprintf(&md, `  <data type="%s">
    <checksum type="sha256">%x</checksum>
    <open-checksum type="sha256">%x</open-checksum>
    <location href="%s"/>
    <timestamp>%s</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>
`, doc.typ, sum, open, href, rev, len(gz), len(doc.body))
	}
	md.WriteString("</repomd>\n")
	rd.RepoMD = md.Bytes()
	return rd, nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writePrimary(w *bytes.Buffer, p Package) {
	m := p.Meta
	w.WriteString("<package type=\"rpm\">\n")
	elem(w, "  ", "name", m.Name)
	elem(w, "  ", "arch", m.Arch)
	writeVersion(w, "  ", m)
	w.WriteString(`  <checksum type="sha256" pkgid="YES">` + text(p.SHA256) + "</checksum>\n")
	elem(w, "  ", "summary", m.Summary)
	elem(w, "  ", "description", m.Description)
	elem(w, "  ", "packager", m.Packager)
	elem(w, "  ", "url", m.URL)
	fmt.Fprintf(w, "  <time file=\"%d\" build=\"%d\"/>\n", p.Time, m.BuildTime)
	fmt.Fprintf(w, "  <size package=\"%d\" installed=\"%d\" archive=\"%d\"/>\n", p.Size, m.InstalledSize, m.ArchiveSize)
	w.WriteString("  <location href=\"" + attr(p.Href) + "\"/>\n")
	w.WriteString("  <format>\n")
	elem(w, "    ", "rpm:license", m.License)
	elem(w, "    ", "rpm:vendor", m.Vendor)
	elem(w, "    ", "rpm:group", m.Group)
	elem(w, "    ", "rpm:buildhost", m.BuildHost)
	elem(w, "    ", "rpm:sourcerpm", m.SourceRPM)
	fmt.Fprintf(w, "    <rpm:header-range start=\"%d\" end=\"%d\"/>\n", m.HeaderStart, m.HeaderEnd)
	d := primaryDeps(m)
	for _, kind := range []struct {
		name string
		deps []dep
	}{
		{"rpm:provides", d.provides}, {"rpm:requires", d.requires}, {"rpm:conflicts", d.conflicts},
		{"rpm:obsoletes", d.obsoletes}, {"rpm:suggests", d.suggests}, {"rpm:enhances", d.enhances},
		{"rpm:recommends", d.recommends}, {"rpm:supplements", d.supplements},
	} {
		writeDeps(w, kind.name, kind.deps)
	}
	for _, f := range m.Files {
		if isPrimaryFile(f.Path) {
			writeFile(w, "    ", f)
		}
	}
	w.WriteString("  </format>\n</package>\n")
}

// writePackageStart opens p's <package> element of filelists.xml and
// other.xml, with its version.
func writePackageStart(w *bytes.Buffer, p Package) {
	m := p.Meta
	w.WriteString(`<package pkgid="` + attr(p.SHA256) + `" name="` + attr(m.Name) + `" arch="` + attr(m.Arch) + "\">\n")
	writeVersion(w, "  ", m)
}

func writeFilelists(w *bytes.Buffer, p Package) {
	m := p.Meta
	writePackageStart(w, p)
	for _, f := range m.Files {
		writeFile(w, "  ", f)
	}
	w.WriteString("</package>\n")
}

func writeOther(w *bytes.Buffer, p Package) {
	m := p.Meta
	writePackageStart(w, p)
	for _, c := range changelogs(m.Changelogs) {
		w.WriteString(`  <changelog author="` + attr(c.Author) + `" date="` + strconv.FormatInt(c.Time, 10) + `">` + text(c.Text) + "</changelog>\n")
	}
	w.WriteString("</package>\n")
}

func writeVersion(w *bytes.Buffer, indent string, m *pkgmeta.RPM) {
	w.WriteString(indent + `<version epoch="` + strconv.FormatUint(uint64(m.Epoch), 10) + `" ver="` + attr(m.Version) + `" rel="` + attr(m.Release) + "\"/>\n")
}

func writeFile(w *bytes.Buffer, indent string, f pkgmeta.RPMFile) {
	switch {
	case f.Dir:
		w.WriteString(indent + `<file type="dir">` + text(f.Path) + "</file>\n")
	case f.Ghost:
		w.WriteString(indent + `<file type="ghost">` + text(f.Path) + "</file>\n")
	default:
		w.WriteString(indent + "<file>" + text(f.Path) + "</file>\n")
	}
}

func elem(w *bytes.Buffer, indent, name, value string) {
	w.WriteString(indent + "<" + name + ">" + text(value) + "</" + name + ">\n")
}

// isPrimaryFile is createrepo's rule for the files primary.xml lists (the
// ones dependencies commonly name): anything under /etc/, any path with
// "bin/" in it, and /usr/lib/sendmail.
func isPrimaryFile(path string) bool {
	return strings.HasPrefix(path, "/etc/") || strings.Contains(path, "bin/") || path == "/usr/lib/sendmail"
}

// changelogs returns the entries as other.xml lists them: oldest first,
// authors without trailing spaces, and entries sharing a time with a newer
// one moved apart by a second each (createrepo_c's adjustment, which keeps
// dnf's ordering stable).
func changelogs(in []pkgmeta.RPMChangelog) []pkgmeta.RPMChangelog {
	out := make([]pkgmeta.RPMChangelog, len(in))
	var last int64
	for i, c := range in { // newest first
		a := c.Author
		if len(a) > 1 {
			a = a[:1] + strings.TrimRight(a[1:], " ")
		}
		pos := len(in) - 1 - i
		out[pos] = pkgmeta.RPMChangelog{Author: a, Time: c.Time, Text: c.Text}
		if i > 0 && c.Time == last {
			t := c.Time
			for j := pos + 1; j < len(out) && out[j].Time == t; j++ {
				out[j].Time++
				t++
			}
		} else {
			last = c.Time
		}
	}
	return out
}

// text escapes s for XML character data as libxml2 does, after making it
// UTF-8 the way createrepo_c does (a string that is not UTF-8 is taken as
// Latin-1).
func text(s string) string {
	s = toUTF8(s)
	if !strings.ContainsAny(s, "&<>\r") {
		return s
	}
	return textEscaper.Replace(s)
}

// attr escapes s for a double-quoted XML attribute.
func attr(s string) string {
	s = toUTF8(s)
	if !strings.ContainsAny(s, "&<>\"\r\n\t") {
		return s
	}
	return attrEscaper.Replace(s)
}

var (
	textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;")
	attrEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\"", "&quot;", "\r", "&#13;", "\n", "&#10;", "\t", "&#9;")
)

// toUTF8 is createrepo_c's cr_latin1_to_utf8 for strings that are not
// valid UTF-8: control characters other than tab, LF and CR and the C1
// range are dropped, the rest mapped from Latin-1.
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 32 && c != 9 && c != 10 && c != 13:
		case c < 128:
			b.WriteByte(c)
		case c < 192:
		default:
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}
