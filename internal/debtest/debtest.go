// Package debtest builds small real Debian packages with dpkg-deb for
// tests. dpkg-deb is installed by scripts/test.sh; a missing tool fails the
// test.
package debtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Package describes a package to build.
type Package struct {
	Name, Version, Arch string
	// Compression is dpkg-deb's -Z (gzip, xz, zstd, none); "" is xz.
	Compression string
	// Extra control fields, appended after the standard ones.
	Extra string
	// Payload is the content of /usr/share/<Name>/payload (makes each
	// build's bytes distinct).
	Payload string
}

// Build builds p in dir and returns the path of the .deb
// (<name>_<version>_<arch>.deb, without the epoch).
func Build(t testing.TB, dir string, p Package) string {
	t.Helper()
	tool, err := exec.LookPath("dpkg-deb")
	if err != nil {
		t.Fatal("dpkg-deb is not on PATH: run scripts/test.sh, which installs dpkg-dev (or apt-get install dpkg-dev)")
	}
	root := filepath.Join(dir, "build-"+p.Name+"-"+p.Arch+"-"+p.Version)
	must(t, os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "usr/share", p.Name), 0o755))
	payload := p.Payload
	if payload == "" {
		payload = p.Name + " " + p.Version + " " + p.Arch + "\n"
	}
	must(t, os.WriteFile(filepath.Join(root, "usr/share", p.Name, "payload"), []byte(payload), 0o644))
	control := fmt.Sprintf(`Package: %s
Version: %s
Architecture: %s
Maintainer: Acme Packaging <pkg@acme.example>
Installed-Size: 1
Section: utils
Priority: optional
Homepage: https://acme.example
%sDescription: %s test package
 A small package built by the portal's tests.
 .
 It installs one file.
`, p.Name, p.Version, p.Arch, p.Extra, p.Name)
	must(t, os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte(control), 0o644))
	comp := p.Compression
	if comp == "" {
		comp = "xz"
	}
	v := p.Version
	for i := range v {
		if v[i] == ':' {
			v = v[i+1:]
			break
		}
	}
	out := filepath.Join(dir, p.Name+"_"+v+"_"+p.Arch+".deb")
	cmd := exec.Command(tool, "--root-owner-group", "-Z"+comp, "--build", root, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, b)
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
