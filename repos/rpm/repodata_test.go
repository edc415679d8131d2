package rpm

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/pkgmeta"
)

// node is a generic XML element for field-by-field comparison.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

// canon renders n with attributes sorted and text trimmed, one field a
// line, so a difference names the element and attribute.
func canon(n node, path string, b *strings.Builder) {
	path += "/" + n.XMLName.Local
	attrs := make([]string, 0, len(n.Attrs))
	for _, a := range n.Attrs {
		attrs = append(attrs, a.Name.Local+"="+a.Value)
	}
	sort.Strings(attrs)
	fmt.Fprintf(b, "%s [%s] %q\n", path, strings.Join(attrs, " "), strings.TrimSpace(n.Text))
	for _, c := range n.Children {
		canon(c, path, b)
	}
}

// packagesByID reads a gzipped primary, filelists or other document and
// returns each package's canonical text by its package id.
func packagesByID(t *testing.T, gz []byte) (map[string]string, string) {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var root node
	if err := xml.Unmarshal(raw, &root); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	out := map[string]string{}
	for _, p := range root.Children {
		id := ""
		for _, a := range p.Attrs {
			if a.Name.Local == "pkgid" {
				id = a.Value
			}
		}
		for _, c := range p.Children {
			if c.XMLName.Local == "checksum" {
				id = strings.TrimSpace(c.Text)
			}
		}
		var b strings.Builder
		canon(p, "", &b)
		out[id] = b.String()
	}
	var top strings.Builder
	canon(node{XMLName: root.XMLName, Attrs: root.Attrs}, "", &top)
	return out, top.String()
}

type repomd struct {
	Revision string `xml:"revision"`
	Data     []struct {
		Type         string `xml:"type,attr"`
		Checksum     string `xml:"checksum"`
		OpenChecksum string `xml:"open-checksum"`
		Location     struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
		Timestamp string `xml:"timestamp"`
		Size      int    `xml:"size"`
		OpenSize  int    `xml:"open-size"`
	} `xml:"data"`
}

// TestBuildMatchesCreaterepo builds real rpms, runs createrepo_c on them
// and compares every package of primary, filelists and other field by
// field, and the repomd records' checksums and sizes.
func TestBuildMatchesCreaterepo(t *testing.T) {
	createrepo, err := exec.LookPath("createrepo_c")
	if err != nil {
		t.Fatalf("createrepo_c not found (scripts/test.sh installs Debian's createrepo-c): %v", err)
	}
	dir := t.TempDir()
	specs := []rpmtest.Spec{
		{},
		{Target: "x86_64", Version: "2.0.1", Release: "3.el9"},
		{Target: "aarch64", Epoch: 2, Version: "1.0~rc.1"},
		{Name: "acme-agent", Changelogs: 15},
	}
	var pkgs []Package
	for i, s := range specs {
		src := rpmtest.Build(t, s)
		if i == len(specs)-1 {
			// A vendor-signed package: a larger signature header moves
			// the header range.
			rpmtest.Sign(t, src)
		}
		raw, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(src))
		if err := os.WriteFile(dst, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(dst)
		meta, err := pkgmeta.ParseRPM(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		pkgs = append(pkgs, Package{Meta: meta, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(raw)), Time: st.ModTime().Unix(), Href: filepath.Base(src)})
	}
	if out, err := exec.Command(createrepo, "--quiet", "--no-database", dir).CombinedOutput(); err != nil {
		t.Fatalf("createrepo_c: %v\n%s", err, out)
	}
	refMD, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var ref repomd
	if err := xml.Unmarshal(refMD, &ref); err != nil {
		t.Fatal(err)
	}

	rd, err := Build(pkgs, 1736337601)
	if err != nil {
		t.Fatal(err)
	}
	var ours repomd
	if err := xml.Unmarshal(rd.RepoMD, &ours); err != nil {
		t.Fatalf("%v\n%s", err, rd.RepoMD)
	}
	if ours.Revision != "1736337601" {
		t.Errorf("revision %q", ours.Revision)
	}
	refTypes := map[string]bool{}
	for _, d := range ref.Data {
		refTypes[d.Type] = true
	}
	if len(ours.Data) != 3 {
		t.Fatalf("%d data records, want primary, filelists, other", len(ours.Data))
	}
	for _, d := range ours.Data {
		if !refTypes[d.Type] {
			t.Errorf("createrepo_c has no %q record", d.Type)
		}
		gz, ok := rd.Files[d.Location.Href]
		if !ok {
			t.Fatalf("%s: no file %s", d.Type, d.Location.Href)
		}
		if !strings.HasPrefix(d.Location.Href, "repodata/"+d.Checksum+"-") || d.Size != len(gz) || d.Timestamp != ours.Revision {
			t.Errorf("%s: location %s, size %d of %d, timestamp %s", d.Type, d.Location.Href, d.Size, len(gz), d.Timestamp)
		}
		if sum := sha256.Sum256(gz); hex.EncodeToString(sum[:]) != d.Checksum {
			t.Errorf("%s: checksum %s is not the file's", d.Type, d.Checksum)
		}
		zr, _ := gzip.NewReader(bytes.NewReader(gz))
		open, _ := io.ReadAll(zr)
		if sum := sha256.Sum256(open); hex.EncodeToString(sum[:]) != d.OpenChecksum || len(open) != d.OpenSize {
			t.Errorf("%s: open checksum or size wrong", d.Type)
		}
		for _, r := range ref.Data {
			if r.Type != d.Type {
				continue
			}
			refGz, err := os.ReadFile(filepath.Join(dir, r.Location.Href))
			if err != nil {
				t.Fatal(err)
			}
			want, wantTop := packagesByID(t, refGz)
			got, gotTop := packagesByID(t, gz)
			if gotTop != wantTop {
				t.Errorf("%s root:\n got %s\nwant %s", d.Type, gotTop, wantTop)
			}
			if len(got) != len(want) || len(want) != len(specs) {
				t.Errorf("%s: %d packages, createrepo_c %d", d.Type, len(got), len(want))
			}
			for id, w := range want {
				if got[id] != w {
					t.Errorf("%s package %s:\n got:\n%s\nwant:\n%s", d.Type, id, got[id], w)
				}
			}
		}
	}

	again, err := Build(pkgs, 1736337601)
	if err != nil || !bytes.Equal(again.RepoMD, rd.RepoMD) {
		t.Errorf("a second build differs: %v", err)
	}
}

func TestVercmp(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0}, {"1.0", "2.0", -1}, {"2.0", "1.0", 1}, {"2.0.1", "2.0", 1}, {"2.0", "2.0.1", -1},
		{"1.10", "1.9", 1}, {"010", "10", 0}, {"1.a", "1.1", -1}, {"1a", "1", 1}, {"a", "b", -1},
		{"1.0~rc1", "1.0", -1}, {"1.0~rc1", "1.0~rc2", -1}, {"1.0~~", "1.0~", -1}, {"1.0^", "1.0", 1},
		{"1.0^git1", "1.0.1", -1}, {"1_0", "1.0", 0}, {"", "1", -1}, {"2.36", "2.4", 1},
	}
	for _, tt := range tests {
		if got := Vercmp(tt.a, tt.b); got != tt.want {
			t.Errorf("Vercmp(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestCompareLibc pins the createrepo_c order of libc.so.6 provides that
// decides which of several is kept: 1 when the first is higher, 2 when the
// second is.
func TestCompareLibc(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"libc.so.6", "libc.so.6", 0},
		{"libc.so.6", "libc.so.6(GLIBC_2.17)(64bit)", 2},
		{"libc.so.6(GLIBC_2.17)(64bit)", "libc.so.6", 1},
		{"libc.so.6(GLIBC_2.17", "libc.so.6(GLIBC_2.3", 0},
		{"libc.so.6(GLIBC_2.17", "libc.so.6(GLIBC_2.3)", 2},
		{"libc.so.6(GLIBC_2.3)", "libc.so.6(GLIBC_2.17", 1},
		{"libc.so.6()", "libc.so.6()", 0},
		{"libc.so.6()", "libc.so.6(GLIBC_2.3)", 2},
		{"libc.so.6(GLIBC_2.3)", "libc.so.6()", 1},
		{"libc.so.6(GLIBC_)", "libc.so.6(GLIBC_)", 0},
		{"libc.so.6(GLIBC_)", "libc.so.6(GLIBC_2.3)", 2},
		{"libc.so.6(GLIBC_2.3)", "libc.so.6(GLIBC_)", 1},
		{"libc.so.6(GLIBC_2.17)(64bit)", "libc.so.6(GLIBC_2.3)(64bit)", 1},
		{"libc.so.6(GLIBC_2.3)(64bit)", "libc.so.6(GLIBC_2.17)(64bit)", 2},
		{"libc.so.6(GLIBC_2.17)(64bit)", "libc.so.6(GLIBC_2.17)(64bit)", 0},
	} {
		if got := compareLibc(tc.a, tc.b); got != tc.want {
			t.Errorf("compareLibc(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
