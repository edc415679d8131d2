package pkgmeta

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/releases"
)

func TestExtractDeb(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		pkg      debtest.Package
		platform string
		arch     string
	}{
		{debtest.Package{Name: "acme-server", Version: "1.2.0-1", Arch: "amd64", Compression: "xz"}, "linux", "amd64"},
		{debtest.Package{Name: "acme-server", Version: "1:1.2.0-1", Arch: "arm64", Compression: "gzip"}, "linux", "arm64"},
		{debtest.Package{Name: "acme-cli", Version: "2.0.0~rc1", Arch: "armhf", Compression: "zstd"}, "linux", "arm"},
		{debtest.Package{Name: "acme-data", Version: "3.0", Arch: "all", Compression: "none",
			Extra: "Depends: libc6 (>= 2.31),\n libssl3\n"}, "linux", "any"},
		{debtest.Package{Name: "acme-i386", Version: "1.0.0+b1", Arch: "i386"}, "linux", "386"},
	} {
		t.Run(tc.pkg.Name+"_"+tc.pkg.Arch+"_"+tc.pkg.Compression, func(t *testing.T) {
			path := debtest.Build(t, dir, tc.pkg)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Extract(path, bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != "deb" || p.Name != tc.pkg.Name || p.Version != tc.pkg.Version || p.Arch != tc.pkg.Arch {
				t.Fatalf("read %+v, want %+v", p, tc.pkg)
			}
			plat, arch, err := Platform(p)
			if err != nil || plat != tc.platform || arch != tc.arch {
				t.Fatalf("platform %s/%s, %v; want %s/%s", plat, arch, err, tc.platform, tc.arch)
			}
			// Every field dpkg-deb reads from the package, with the same value.
			fields, err := ParseControl(p.Control)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range fields {
				out, err := exec.Command("dpkg-deb", "--field", path, f.Name).Output()
				if err != nil {
					t.Fatal(err)
				}
				if got, want := f.Value, strings.TrimRight(string(out), "\n"); got != want {
					t.Errorf("field %s: %q, dpkg-deb says %q", f.Name, got, want)
				}
			}
			if len(fields) < 9 {
				t.Fatalf("only %d fields read: %q", len(fields), p.Control)
			}

			// The server's way: a Capture fed in small writes.
			c := NewCapture(path, int64(len(data)))
			for b := data; len(b) > 0; {
				n := min(len(b), 777)
				c.Write(b[:n])
				b = b[n:]
			}
			cp, err := c.Package(int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			m, s := md5.Sum(data), sha1.Sum(data)
			if cp.MD5 != hex.EncodeToString(m[:]) || cp.SHA1 != hex.EncodeToString(s[:]) || cp.Control != p.Control {
				t.Fatalf("capture read %+v", cp)
			}
		})
	}
}

func TestCheckRelease(t *testing.T) {
	deb := func(v, arch string) releases.Package {
		return releases.Package{Format: "deb", Name: "acme", Version: v, Arch: arch}
	}
	for _, tc := range []struct {
		p                       releases.Package
		release, platform, arch string
		ok                      bool
	}{
		{deb("1.2.0", "amd64"), "1.2.0", "linux", "amd64", true},
		{deb("1.2.0-1", "amd64"), "1.2.0", "linux", "amd64", true},
		{deb("2:1.2.0-1ubuntu3", "amd64"), "1.2.0", "linux", "amd64", true},
		{deb("1.2", "amd64"), "1.2.0", "linux", "amd64", true},
		{deb("1.2.0~rc1-1", "arm64"), "1.2.0-rc1", "linux", "arm64", true},
		{deb("1.2.0-1", "all"), "1.2.0", "linux", "any", true},
		{deb("1.2.0-1", "armhf"), "1.2.0", "linux", "arm", true},
		{deb("1.2.1-1", "amd64"), "1.2.0", "linux", "amd64", false},
		{deb("1.2.0~rc1", "amd64"), "1.2.0", "linux", "amd64", false},
		{deb("1.2.0~rc1", "amd64"), "1.2.0-rc.1", "linux", "amd64", false},
		{deb("1.2.0-1", "arm64"), "1.2.0", "linux", "amd64", false},
		{deb("1.2.0-1", "amd64"), "1.2.0", "darwin", "amd64", false},
		{deb("1.2.0-1", "all"), "1.2.0", "linux", "amd64", false},
		{deb("1.2.0", "s390x"), "1.2.0", "linux", "amd64", false},
	} {
		err := CheckRelease(tc.p, tc.release, tc.platform, tc.arch)
		if (err == nil) != tc.ok {
			t.Errorf("%s %s for %s %s/%s: %v, want ok %v", tc.p.Version, tc.p.Arch, tc.release, tc.platform, tc.arch, err, tc.ok)
		}
		if err != nil && !portal.IsCode(err, portal.EUnprocessable) {
			t.Errorf("%s: error code %v, want unprocessable", tc.p.Version, err)
		}
		if err != nil && tc.p.Arch == "amd64" && tc.platform == "linux" && (!strings.Contains(err.Error(), tc.p.Version) || !strings.Contains(err.Error(), tc.release)) {
			t.Errorf("the refusal does not name both versions: %v", err)
		}
	}
}

// ar builds an ar archive from name/content pairs.
func ar(members ...string) []byte {
	var b bytes.Buffer
	b.WriteString(arMagic)
	for i := 0; i+1 < len(members); i += 2 {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", members[i], 0, 0, 0, "100644", len(members[i+1]))
		b.WriteString(members[i+1])
		if len(members[i+1])%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func TestExtractDebHostile(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(debtest.Build(t, dir, debtest.Package{Name: "acme", Version: "1.0.0", Arch: "amd64", Compression: "gzip"}))
	if err != nil {
		t.Fatal(err)
	}
	bomb := bytes.Repeat([]byte{0}, 16<<20) // a tar of zeros, gzip-compressed: inflates past MaxControl
	var gz bytes.Buffer
	{
		w := newGzip(&gz)
		w.Write(bomb)
		w.Close()
	}
	for name, data := range map[string][]byte{
		"empty":             {},
		"garbage":           bytes.Repeat([]byte("garbage!"), 1000),
		"truncated":         good[:len(good)/2],
		"truncated header":  good[:70],
		"no control":        ar("debian-binary", "2.0\n", "data.tar.gz", "x"),
		"data first":        ar("debian-binary", "2.0\n", "data.tar.gz", "x", "control.tar.gz", "y"),
		"wrong first":       ar("control.tar.gz", "y"),
		"format 3":          ar("debian-binary", "3.0\n", "control.tar.gz", "y"),
		"bad compression":   ar("debian-binary", "2.0\n", "control.tar.bz2", "y"),
		"not gzip":          ar("debian-binary", "2.0\n", "control.tar.gz", "not gzip at all"),
		"not xz":            ar("debian-binary", "2.0\n", "control.tar.xz", "not xz at all"),
		"not zstd":          ar("debian-binary", "2.0\n", "control.tar.zst", "not zstd at all"),
		"not tar":           ar("debian-binary", "2.0\n", "control.tar", strings.Repeat("x", 1024)),
		"bomb":              ar("debian-binary", "2.0\n", "control.tar.gz", gz.String()),
		"huge control":      ar("debian-binary", "2.0\n", "control.tar.gz", strings.Repeat("x", MaxControl+1)),
		"control too far":   ar("debian-binary", "2.0\n", "padding", strings.Repeat("x", debPrefix), "control.tar.gz", "y"),
		"huge member size":  []byte(arMagic + "debian-binary   0           0     0     100644  9999999999`\n"),
		"negative size":     []byte(arMagic + "debian-binary   0           0     0     100644  -4        `\n2.0\n"),
		"bad member header": []byte(arMagic + "debian-binary   0           0     0     100644  4         XX2.0\n"),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Extract("x.deb", bytes.NewReader(data), int64(len(data)))
			if !portal.IsCode(err, portal.EUnprocessable) {
				t.Fatalf("error %v, want unprocessable", err)
			}
			c := NewCapture("x.deb", int64(len(data)))
			c.Write(data)
			if _, err := c.Package(int64(len(data))); !portal.IsCode(err, portal.EUnprocessable) {
				t.Fatalf("capture: error %v, want unprocessable", err)
			}
		})
	}
	// Control files that are no valid paragraph.
	for name, control := range map[string]string{
		"no package":     "Version: 1.0\nArchitecture: amd64\nDescription: x\n",
		"bad name":       "Package: Acme!\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n",
		"bad version":    "Package: acme\nVersion: one\nArchitecture: amd64\nDescription: x\n",
		"unknown arch":   "Package: acme\nVersion: 1.0\nArchitecture: mips\nDescription: x\n",
		"no description": "Package: acme\nVersion: 1.0\nArchitecture: amd64\n",
		"twice":          "Package: acme\nPackage: acme\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n",
		"continuation":   " x\nPackage: acme\n",
		"no colon":       "Package acme\n",
		"binary":         "Package: acme\x00\n",
	} {
		if _, err := parseDebControl([]byte(control)); !portal.IsCode(err, portal.EUnprocessable) {
			t.Errorf("%s: error %v, want unprocessable", name, err)
		}
	}
	if For("acme.tar.gz") != nil || NewCapture("acme.zip", 10) != nil {
		t.Fatal("a non-package file has a format")
	}
	if _, err := Extract("acme.zip", bytes.NewReader(good), int64(len(good))); !portal.IsCode(err, portal.EInvalid) {
		t.Fatalf("a non-package file: %v", err)
	}
}

func TestDebUpstream(t *testing.T) {
	for in, want := range map[string]string{
		"1.2.0": "1.2.0", "1.2.0-1": "1.2.0", "3:1.2.0-1ubuntu1": "1.2.0", "1.2.0~rc1-2": "1.2.0-rc1",
		"1.2.0-beta-1": "1.2.0-beta", "1.2.0+dfsg-1": "1.2.0+dfsg",
	} {
		if got := DebUpstream(in); got != want {
			t.Errorf("DebUpstream(%q) = %q, want %q", in, got, want)
		}
	}
}

func newGzip(w *bytes.Buffer) *gzip.Writer { return gzip.NewWriter(w) }

// xz control archives the decoder must not see: a dictionary declared far
// larger than the file (the decoder would allocate it), several blocks,
// several streams.
func TestCheckXZ(t *testing.T) {
	enc := func(cfg xz.WriterConfig, data []byte) []byte {
		var b bytes.Buffer
		w, err := cfg.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
		return b.Bytes()
	}
	data := bytes.Repeat([]byte("Package: acme\n"), 100)
	good := enc(xz.WriterConfig{DictCap: 64 << 10}, data)
	if err := checkXZ(good); err != nil {
		t.Fatalf("a plain xz file: %v", err)
	}
	// The same file declaring a 1 GiB dictionary (block header CRC fixed).
	huge := bytes.Clone(good)
	h := huge[12:]
	size := (int(h[0]) + 1) * 4
	if h[2] != 0x21 || h[3] != 1 {
		t.Fatalf("unexpected block header % x", h[:size])
	}
	h[4] = 36
	binary.LittleEndian.PutUint32(h[size-4:], crc32.ChecksumIEEE(h[:size-4]))
	many := enc(xz.WriterConfig{DictCap: 64 << 10, BlockSize: 256}, data)
	for name, b := range map[string][]byte{
		"huge dictionary": huge,
		"several blocks":  many,
		"two streams":     append(bytes.Clone(good), good...),
		"truncated":       good[:len(good)-5],
		"not xz":          []byte("not xz at all, not at all"),
		"empty":           {},
	} {
		if err := checkXZ(b); !portal.IsCode(err, portal.EUnprocessable) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Through the whole reader too: refused before anything is allocated.
	deb := ar("debian-binary", "2.0\n", "control.tar.xz", string(huge))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := Extract("x.deb", bytes.NewReader(deb), int64(len(deb))); !portal.IsCode(err, portal.EUnprocessable) {
		t.Fatalf("a .deb whose control archive declares 1 GiB: %v", err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("refusing it allocated %d MiB", grew>>20)
	}
}
