// Package rpmtest builds small real .rpm files with rpmbuild for tests of
// the rpm reader, the repodata writer and the YUM repository routes.
package rpmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Spec says what to build. The package always has the same rich content
// (a /usr/bin program, a %config file, directories, a %ghost file, every
// kind of dependency and a changelog with two entries on the same day), so
// the repodata comparisons see every field createrepo_c writes.
type Spec struct {
	Name    string // default "acme-server"
	Version string // default "1.2.0"
	Release string // default "1"
	Epoch   int    // 0: no Epoch line
	// Target is "noarch" (BuildArch) or an rpmbuild --target such as
	// "x86_64" or "aarch64"; default "noarch".
	Target string
	// Changelogs adds that many extra changelog entries (older ones).
	Changelogs int
	// Payload is written to /usr/share/NAME/data.txt (default "data").
	Payload string
	// Bare leaves out every dependency (and rpmbuild's automatic ones), so
	// dnf can install the package into an empty root.
	Bare bool
}

// Build runs rpmbuild for s in a temporary directory and returns the
// path of the .rpm. It fails the test when rpmbuild is missing
// (scripts/test.sh installs Debian's rpm package).
func Build(t testing.TB, s Spec) string {
	t.Helper()
	rpmbuild, err := exec.LookPath("rpmbuild")
	if err != nil {
		t.Fatalf("rpmbuild not found (scripts/test.sh installs Debian's rpm package): %v", err)
	}
	if s.Name == "" {
		s.Name = "acme-server"
	}
	if s.Version == "" {
		s.Version = "1.2.0"
	}
	if s.Release == "" {
		s.Release = "1"
	}
	if s.Target == "" {
		s.Target = "noarch"
	}
	if s.Payload == "" {
		s.Payload = "data"
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, s.Name+".spec")
	if err := os.WriteFile(spec, []byte(specText(s)), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-bb", "--quiet", "--define", "_topdir " + filepath.Join(dir, "top"),
		"--define", "_tmppath " + filepath.Join(dir, "tmp")}
	if s.Target != "noarch" {
		args = append(args, "--target", s.Target)
	}
	cmd := exec.Command(rpmbuild, append(args, spec)...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rpmbuild: %v\n%s", err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "top", "RPMS", "*", "*.rpm"))
	if len(matches) != 1 {
		t.Fatalf("rpmbuild made %d rpms: %v", len(matches), matches)
	}
	return matches[0]
}

func specText(s Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Name: %s\nVersion: %s\nRelease: %s\n", s.Name, s.Version, s.Release)
	if s.Epoch != 0 {
		fmt.Fprintf(&b, "Epoch: %d\n", s.Epoch)
	}
	if s.Target == "noarch" {
		b.WriteString("BuildArch: noarch\n")
	}
	if s.Bare {
		b.WriteString("AutoReqProv: no\n")
	} else {
		fmt.Fprintf(&b, `Provides: acme = %%{version}
Requires: /bin/sh, bash >= 4.0
Requires(pre): coreutils
Requires(post): grep
Requires: /usr/bin/%[1]s
Conflicts: acme-legacy < 1:2.0-3
Obsoletes: acme-old < 1.0
Recommends: less
Suggests: vim
Supplements: acme-suite
Enhances: acme-client >= 2
`, s.Name)
	}
	fmt.Fprintf(&b, `Summary: Acme server & <tools>
License: MIT
URL: https://acme.example/
Vendor: Acme Inc.
Packager: Acme Builds <builds@acme.example>
Group: Applications/System
%%global debug_package %%{nil}
%%define __os_install_post %%{nil}
%%define _build_id_links none

%%description
The Acme server.
Second line "quoted" & <escaped>.

%%install
mkdir -p %%{buildroot}/usr/bin %%{buildroot}/etc/%[1]s %%{buildroot}/usr/share/%[1]s %%{buildroot}/var/log/%[1]s
printf '#!/bin/sh\necho %[1]s\n' > %%{buildroot}/usr/bin/%[1]s
chmod 755 %%{buildroot}/usr/bin/%[1]s
echo conf > %%{buildroot}/etc/%[1]s/%[1]s.conf
printf '%%s' '%[2]s' > %%{buildroot}/usr/share/%[1]s/data.txt

%%files
/usr/bin/%[1]s
%%config(noreplace) /etc/%[1]s/%[1]s.conf
%%dir /usr/share/%[1]s
/usr/share/%[1]s/data.txt
%%dir /var/log/%[1]s
%%ghost /var/log/%[1]s/%[1]s.log

%%changelog
* Wed Jan 08 2025 Jane Doe <jane@acme.example> - %[3]s
- Second.
* Wed Jan 08 2025 John Roe <john@acme.example> - 1.1.0-1
- Same day & <b>.
* Mon Jan 06 2025 Jane Doe <jane@acme.example> - 1.0.0-1
- First.
`, s.Name, s.Payload, s.Version+"-"+s.Release)
	for i := range s.Changelogs {
		fmt.Fprintf(&b, "* Mon Jan 01 2024 Old Timer <old@acme.example> - 0.%d-1\n- Old entry %d.\n", i, i)
	}
	return b.String()
}

// Sign signs the .rpm at path in place with a new throwaway OpenPGP key
// (rpmsign with gpg, as a vendor signs its packages) and returns that
// key's ASCII-armored public key. It fails the test when gpg or rpmsign
// is missing (scripts/test.sh installs gnupg and rpm).
func Sign(t testing.TB, path string) []byte {
	t.Helper()
	for _, tool := range []string{"gpg", "rpmsign"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (scripts/test.sh installs Debian's gnupg and rpm): %v", tool, err)
		}
	}
	// gpg-agent's socket path must stay short: a directory under /tmp.
	home, err := os.MkdirTemp("", "gpg")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
		os.RemoveAll(home)
	})
	env := append(os.Environ(), "GNUPGHOME="+home, "HOME="+home, "LC_ALL=C")
	run := func(name string, args ...string) []byte {
		cmd := exec.Command(name, args...)
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			stderr := ""
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("%s %v: %v\n%s%s", name, args, err, out, stderr)
		}
		return out
	}
	run("gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Acme Vendor <vendor@acme.example>", "ed25519", "sign", "never")
	gpg, _ := exec.LookPath("gpg")
	run("rpmsign", "--addsign", "--define", "_gpg_name Acme Vendor", "--define", "__gpg "+gpg, path)
	return run("gpg", "--armor", "--export", "Acme Vendor")
}
