package server_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portaldist/portal/internal/rpmtest"
)

// dnfClient runs the real dnf against the portal with private state: its
// own install root, repository directory and cache.
type dnfClient struct {
	t                       *testing.T
	bin, root, repos, cache string
}

func newDNF(t *testing.T) *dnfClient {
	t.Helper()
	bin, err := exec.LookPath("dnf")
	if err != nil {
		t.Fatalf("dnf not found (scripts/test.sh installs Debian's dnf): %v", err)
	}
	d := &dnfClient{t: t, bin: bin, root: t.TempDir(), repos: t.TempDir(), cache: t.TempDir()}
	return d
}

// repo writes a .repo file into the client's repository directory
// (replacing any other).
func (d *dnfClient) repo(body []byte) {
	d.t.Helper()
	old, _ := filepath.Glob(filepath.Join(d.repos, "*.repo"))
	for _, f := range old {
		os.Remove(f)
	}
	if err := os.WriteFile(filepath.Join(d.repos, "acme.repo"), body, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// run runs dnf with args and returns its combined output and error.
func (d *dnfClient) run(args ...string) (string, error) {
	d.t.Helper()
	base := []string{"-y", "--installroot", d.root, "--setopt=reposdir=" + d.repos, "--setopt=cachedir=" + d.cache,
		"--releasever=1", "--forcearch=x86_64", "--setopt=install_weak_deps=False", "--nodocs"}
	cmd := exec.Command(d.bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *dnfClient) must(args ...string) string {
	d.t.Helper()
	out, err := d.run(args...)
	if err != nil {
		d.t.Fatalf("dnf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// downloadOnly has dnf fetch the package into a fresh directory and
// returns the bytes it saved.
func (d *dnfClient) downloadOnly(pkg, filename string, extra ...string) []byte {
	d.t.Helper()
	dest := d.t.TempDir()
	d.must(append(extra, "install", "--downloadonly", "--destdir", dest, pkg)...)
	b, err := os.ReadFile(filepath.Join(dest, filename))
	if err != nil {
		d.t.Fatalf("dnf saved no %s: %v", filename, err)
	}
	return b
}

func (d *dnfClient) installed(path string) string {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.root, path))
	if err != nil {
		d.t.Fatalf("installed file: %v", err)
	}
	return string(b)
}

// TestDNF: the real dnf, with repo_gpgcheck on, reads the portal's signed
// repository, downloads and installs exactly the published bytes, upgrades
// to a new release, rejects tampered metadata, and is refused once the
// license is suspended. gpgcheck=1 needs signed packages: an unsigned one
// is refused by dnf, one signed by the vendor's key installs.
func TestDNF(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	d := newDNF(t)
	v1 := rpmtest.Build(t, rpmtest.Spec{Name: "acme-agent", Version: "1.0.0", Bare: true, Payload: "one"})
	files := e.publishRPMs("acme", "1.0.0", "stable", v1)
	licID, key := e.license(map[string]any{"customer": "dnf", "product": "acme"})

	repo := e.must(200, e.do("GET", "/rpm/acme/stable.repo", rpmBasic(key), nil)).body
	d.repo(repo)
	out := d.must("makecache")
	if !strings.Contains(out, "Importing GPG key") {
		t.Fatalf("dnf did not import the repository key:\n%s", out)
	}
	name1 := filepath.Base(v1)
	if got := d.downloadOnly("acme-agent", name1); !bytes.Equal(got, files[name1]) {
		t.Fatalf("dnf downloaded %d bytes, not the published %d", len(got), len(files[name1]))
	}
	d.must("install", "acme-agent")
	if got := d.installed("usr/share/acme-agent/data.txt"); got != "one" {
		t.Fatalf("installed payload %q", got)
	}

	// A new release is offered at once (dnf refreshes with --refresh).
	v2 := rpmtest.Build(t, rpmtest.Spec{Name: "acme-agent", Version: "1.1.0", Bare: true, Payload: "two"})
	e.publishRPMs("acme", "1.1.0", "stable", v2)
	d.must("--refresh", "upgrade", "acme-agent")
	if got := d.installed("usr/share/acme-agent/data.txt"); got != "two" {
		t.Fatalf("after upgrade the payload is %q", got)
	}

	// Tampered metadata (a proxy changes repomd.xml) fails repo_gpgcheck.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequest(r.Method, e.url+r.URL.Path, nil)
		req.Header = r.Header.Clone()
		res, err := noRedirect.Do(req)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if strings.HasSuffix(r.URL.Path, "/repomd.xml") {
			b = bytes.Replace(b, []byte("<revision>"), []byte("<revision>1"), 1)
		}
		for k, v := range res.Header {
			if k != "Content-Length" {
				w.Header()[k] = v
			}
		}
		w.WriteHeader(res.StatusCode)
		w.Write(b)
	}))
	defer proxy.Close()
	tampered := newDNF(t)
	tampered.repo(bytes.ReplaceAll(repo, []byte(e.url), []byte(proxy.URL)))
	if out, err := tampered.run("makecache"); err == nil || !strings.Contains(out, "Bad GPG signature") {
		t.Fatalf("dnf accepted a tampered repomd.xml (%v):\n%s", err, out)
	}

	// gpgcheck=1 needs packages signed by a key in gpgkey: dnf refuses an
	// unsigned one, and installs one the vendor signed (rpmsign).
	strict := newDNF(t)
	strict.repo(bytes.Replace(repo, []byte("gpgcheck=0"), []byte("gpgcheck=1"), 1))
	if out, err := strict.run("install", "acme-agent"); err == nil || !strings.Contains(out, "is not signed") {
		t.Fatalf("gpgcheck=1 installed an unsigned package (%v):\n%s", err, out)
	}
	v3 := rpmtest.Build(t, rpmtest.Spec{Name: "acme-agent", Version: "1.2.0", Bare: true, Payload: "three"})
	vendorKey := rpmtest.Sign(t, v3)
	keyFile := filepath.Join(t.TempDir(), "vendor.asc")
	if err := os.WriteFile(keyFile, vendorKey, 0o644); err != nil {
		t.Fatal(err)
	}
	files = e.publishRPMs("acme", "1.2.0", "stable", v3)
	withVendor := bytes.Replace(repo, []byte("gpgcheck=0"), []byte("gpgcheck=1"), 1)
	withVendor = bytes.Replace(withVendor, []byte("/key.asc\n"), []byte("/key.asc file://"+keyFile+"\n"), 1)
	strict.repo(withVendor)
	strict.must("--refresh", "install", "acme-agent")
	if got := strict.installed("usr/share/acme-agent/data.txt"); got != "three" {
		t.Fatalf("signed package payload %q", got)
	}
	name3 := filepath.Base(v3)
	other := newDNF(t)
	other.repo(repo)
	if got := other.downloadOnly("acme-agent", name3); !bytes.Equal(got, files[name3]) {
		t.Fatalf("the signed package: dnf downloaded other bytes")
	}

	// Suspended: the repository refuses, dnf fails and downloads nothing.
	e.must(200, e.do("POST", "/v1/licenses/"+licID+"/suspend", bearer(e.admin), nil))
	if out, err := d.run("--refresh", "makecache"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("dnf with a suspended license (%v):\n%s", err, out)
	}
	fresh := newDNF(t)
	fresh.repo(repo)
	dest := t.TempDir()
	if out, err := fresh.run("install", "--downloadonly", "--destdir", dest, "acme-agent"); err == nil {
		t.Fatalf("a suspended license downloaded:\n%s", out)
	}
	if left, _ := os.ReadDir(dest); len(left) != 0 {
		t.Fatalf("files downloaded with a suspended license: %v", left)
	}
}
