package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/signing"
)

// aptClient is a real apt-get with its own state, cache, sources, trusted
// key and auth.conf under a temporary directory, so it never touches the
// machine's apt configuration.
type aptClient struct {
	t   *testing.T
	dir string
}

func newAPTClient(t *testing.T, repoURL, suite, licenseKey string, key []byte) *aptClient {
	t.Helper()
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Fatal("apt-get is not on PATH: run scripts/test.sh, which installs apt")
	}
	c := &aptClient{t: t, dir: t.TempDir()}
	for _, d := range []string{"state/lists/partial", "cache/archives/partial", "sources.list.d", "apt.conf.d", "preferences.d", "trusted.gpg.d", "log", "dl",
		"dpkg/updates", "dpkg/info", "dpkg/triggers", "root"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.write("dpkg/status", "")
	c.write("acme.gpg", string(key))
	c.write("sources.list", "deb [signed-by="+filepath.Join(c.dir, "acme.gpg")+"] "+repoURL+" "+suite+" main\n")
	// Over plain http apt matches auth.conf entries with the scheme.
	c.write("auth.conf", "machine "+repoURL+"\nlogin license\npassword "+licenseKey+"\n")
	return c
}

func (c *aptClient) write(name, content string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(content), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

// run runs apt-get with the private configuration; it returns the combined
// output and whether apt-get succeeded.
func (c *aptClient) run(args ...string) (string, bool) {
	c.t.Helper()
	d := c.dir
	opts := []string{
		"-o", "Dir::State=" + d + "/state", "-o", "Dir::State::status=" + d + "/dpkg/status",
		"-o", "Dir::Cache=" + d + "/cache", "-o", "Dir::Log=" + d + "/log",
		"-o", "Dir::Etc::SourceList=" + d + "/sources.list", "-o", "Dir::Etc::SourceParts=" + d + "/sources.list.d",
		"-o", "Dir::Etc::Parts=" + d + "/apt.conf.d", "-o", "Dir::Etc::Preferences=" + d + "/preferences",
		"-o", "Dir::Etc::PreferencesParts=" + d + "/preferences.d",
		"-o", "Dir::Etc::Trusted=" + d + "/trusted.gpg", "-o", "Dir::Etc::TrustedParts=" + d + "/trusted.gpg.d",
		"-o", "Dir::Etc::netrc=" + d + "/auth.conf", "-o", "Dir::Etc::netrcparts=" + d + "/auth.conf.d",
		"-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1",
		"-o", "APT::Architecture=amd64", "-o", "APT::Architectures::=amd64",
		"-o", "Acquire::Languages=none", "-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=10",
		"-o", "Acquire::Check-Valid-Until=true", "-q",
		// install and upgrade unpack into a throwaway root with its own
		// dpkg database, never the machine's.
		"-o", "DPkg::Options::=--root=" + d + "/root", "-o", "DPkg::Options::=--admindir=" + d + "/dpkg",
		"-o", "DPkg::Options::=--force-not-root", "-o", "DPkg::Options::=--force-script-chrootless",
		"-o", "DPkg::Use-Pty=0",
	}
	cmd := exec.Command("apt-get", append(opts, args...)...)
	cmd.Dir = filepath.Join(d, "dl")
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// downloaded returns the .deb files apt-get download left, by name.
func (c *aptClient) downloaded() map[string][]byte {
	c.t.Helper()
	out := map[string][]byte{}
	ents, _ := os.ReadDir(filepath.Join(c.dir, "dl"))
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(c.dir, "dl", e.Name()))
		if err != nil {
			c.t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// installed returns the version of pkg in the throwaway root's dpkg
// database ("" if not installed) and the file it installed.
func (c *aptClient) installed(pkg string) (string, []byte) {
	c.t.Helper()
	st, err := os.ReadFile(filepath.Join(c.dir, "dpkg/status"))
	if err != nil {
		c.t.Fatal(err)
	}
	for _, para := range strings.Split(string(st), "\n\n") {
		if strings.Contains(para, "Package: "+pkg+"\n") && strings.Contains(para, "Status: install ok installed") {
			_, v, _ := strings.Cut(para, "\nVersion: ")
			v, _, _ = strings.Cut(v, "\n")
			payload, _ := os.ReadFile(filepath.Join(c.dir, "root/usr/share", pkg, "payload"))
			return v, payload
		}
	}
	return "", nil
}

func (c *aptClient) clearDownloads() {
	ents, _ := os.ReadDir(filepath.Join(c.dir, "dl"))
	for _, e := range ents {
		os.Remove(filepath.Join(c.dir, "dl", e.Name()))
	}
}

// aptWorld is a portal with product acme (licensed) and built packages.
type aptWorld struct {
	*env
	debs   string // directory of the built packages
	admin  string
	build  map[string][]byte // file name -> bytes
	keyBin []byte
}

func newAPTWorld(t *testing.T) *aptWorld { return newAPTWorldWith(t, envOptions{}) }

func newAPTWorldWith(t *testing.T, o envOptions) *aptWorld {
	e := newEnvWith(t, o)
	w := &aptWorld{env: e, debs: t.TempDir(), admin: bearer(e.admin), build: map[string][]byte{}}
	e.product("acme", "licensed")
	r := e.must(200, e.do("GET", "/apt/acme/key.gpg", "", nil))
	w.keyBin = r.body
	return w
}

// release builds, uploads and publishes packages for version v: one per
// (name, arch) pair given as "name/arch".
func (w *aptWorld) release(v string, pkgs ...string) {
	w.t.Helper()
	w.must(201, w.do("POST", "/v1/products/acme/releases", w.admin, map[string]any{"version": v}))
	for _, p := range pkgs {
		name, arch, _ := strings.Cut(p, "/")
		path := debtest.Build(w.t, w.debs, debtest.Package{Name: name, Version: v + "-1", Arch: arch})
		b, err := os.ReadFile(path)
		if err != nil {
			w.t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			w.t.Fatal(err)
		}
		meta, err := pkgmeta.Extract(path, f, int64(len(b)))
		f.Close()
		if err != nil {
			w.t.Fatal(err)
		}
		plat, parch, err := pkgmeta.Platform(meta)
		if err != nil {
			w.t.Fatal(err)
		}
		w.upload(w.admin, "acme", v, filepath.Base(path), plat, parch, b)
		w.build[filepath.Base(path)] = b
	}
	w.must(200, w.do("POST", "/v1/products/acme/releases/"+v+"/publish", w.admin, nil))
}

func TestAPTWithRealClient(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.2.0", "acme-server/amd64", "acme-server/arm64", "acme-doc/all")
	licID, key := w.license(map[string]any{"customer": "c1", "product": "acme"})

	c := newAPTClient(t, w.url+"/apt/acme", "stable", key, w.keyBin)
	if out, ok := c.run("update"); !ok || strings.Contains(out, "W:") {
		t.Fatalf("apt-get update:\n%s", out)
	}
	if out, ok := c.run("download", "acme-server", "acme-doc"); !ok {
		t.Fatalf("apt-get download:\n%s", out)
	}
	got := c.downloaded()
	for _, name := range []string{"acme-server_1.2.0-1_amd64.deb", "acme-doc_1.2.0-1_all.deb"} {
		if !bytes.Equal(got[name], w.build[name]) {
			t.Fatalf("apt-get download fetched %d bytes as %s, want the published %d (got files %v)", len(got[name]), name, len(w.build[name]), keys(got))
		}
	}
	if len(got) != 2 {
		t.Fatalf("downloaded %v", keys(got))
	}
	// apt-get install, into a throwaway root.
	if out, ok := c.run("install", "-y", "acme-server"); !ok {
		t.Fatalf("apt-get install:\n%s", out)
	}
	if v, payload := c.installed("acme-server"); v != "1.2.0-1" || !strings.Contains(string(payload), "acme-server 1.2.0-1 amd64") {
		t.Fatalf("installed %q %q", v, payload)
	}

	// A new release: update + download fetches it.
	w.release("1.3.0", "acme-server/amd64")
	c.clearDownloads()
	if out, ok := c.run("update"); !ok {
		t.Fatalf("apt-get update after a release:\n%s", out)
	}
	if out, ok := c.run("download", "acme-server"); !ok {
		t.Fatalf("apt-get download after a release:\n%s", out)
	}
	if got := c.downloaded(); !bytes.Equal(got["acme-server_1.3.0-1_amd64.deb"], w.build["acme-server_1.3.0-1_amd64.deb"]) || len(got) != 1 {
		t.Fatalf("after 1.3.0 apt-get download fetched %v", keys(got))
	}
	// apt-get upgrade brings it.
	if out, ok := c.run("upgrade", "-y"); !ok {
		t.Fatalf("apt-get upgrade:\n%s", out)
	}
	if v, payload := c.installed("acme-server"); v != "1.3.0-1" || !strings.Contains(string(payload), "1.3.0-1") {
		t.Fatalf("after apt-get upgrade: installed %q %q", v, payload)
	}
	// The older version stays installable by its version.
	c.clearDownloads()
	if out, ok := c.run("download", "acme-server=1.2.0-1"); !ok {
		t.Fatalf("apt-get download of the older version:\n%s", out)
	}

	// A yanked release leaves the index.
	w.must(200, w.do("POST", "/v1/products/acme/releases/1.3.0/yank", w.admin, nil))
	c.clearDownloads()
	if out, ok := c.run("update"); !ok {
		t.Fatalf("apt-get update after a yank:\n%s", out)
	}
	// (1.3.0-1 stays installed, but no repository offers it any more.)
	if out, ok := c.run("download", "acme-server=1.3.0-1"); ok || len(c.downloaded()) != 0 {
		t.Fatalf("apt-get download of the yanked version (ok %v):\n%s", ok, out)
	}
	c.run("download", "acme-server=1.2.0-1")
	if got := c.downloaded(); len(got) != 1 || got["acme-server_1.2.0-1_amd64.deb"] == nil {
		t.Fatalf("after yanking 1.3.0 apt-get download fetched %v", keys(got))
	}

	// Suspended: apt-get update fails as unauthorized, nothing downloads
	// (not even with the lists apt kept from before).
	w.must(200, w.do("POST", "/v1/licenses/"+licID+"/suspend", w.admin, nil))
	c.clearDownloads()
	out, ok := c.run("update")
	if ok && !strings.Contains(out, "403") || !strings.Contains(out, "403") {
		t.Fatalf("apt-get update with a suspended license (ok %v):\n%s", ok, out)
	}
	out, _ = c.run("download", "acme-server=1.2.0-1") // still in the lists apt kept
	if got := c.downloaded(); len(got) != 0 {
		t.Fatalf("a suspended license downloaded %v:\n%s", keys(got), out)
	}
	if !strings.Contains(out, "403") {
		t.Fatalf("apt-get download with a suspended license:\n%s", out)
	}

	// A wrong key is 401, and apt says so.
	bad := newAPTClient(t, w.url+"/apt/acme", "stable", "lic_wrong", w.keyBin)
	if out, ok := bad.run("update"); ok || !strings.Contains(out, "401") {
		t.Fatalf("apt-get update with a wrong key (ok %v):\n%s", ok, out)
	}
}

// A license narrowed to arm64... sees only what it may install, and a
// tampered InRelease served by a proxy is rejected by apt.
func TestAPTViewsAndTampering(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.0.0", "acme-server/amd64")
	w.release("2.0.0", "acme-server/amd64")
	_, keyOld := w.license(map[string]any{"customer": "c1", "product": "acme", "constraint": "< 2.0"})
	_, keyAll := w.license(map[string]any{"customer": "c2", "product": "acme"})

	packages := func(key string) string {
		r := w.must(200, w.do("GET", "/apt/acme/dists/stable/main/binary-amd64/Packages", licBasic(key), nil))
		return string(r.body)
	}
	if p := packages(keyOld); !strings.Contains(p, "Version: 1.0.0-1") || strings.Contains(p, "Version: 2.0.0-1") {
		t.Fatalf("a license for < 2.0 sees:\n%s", p)
	}
	if p := packages(keyAll); !strings.Contains(p, "Version: 1.0.0-1") || !strings.Contains(p, "Version: 2.0.0-1") {
		t.Fatalf("a full license sees:\n%s", p)
	}
	// The constrained license cannot fetch 2.0.0 from the pool either.
	all := packages(keyAll)
	i := strings.Index(all, "Filename: pool/main/a/acme-server/2.0.0/")
	fn := strings.TrimPrefix(strings.SplitN(all[i:], "\n", 2)[0], "Filename: ")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path, key string) *http.Response {
		req, _ := http.NewRequest("GET", w.url+path, nil)
		req.Header.Set("Authorization", licBasic(key))
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := get("/apt/acme/"+fn, keyOld); res.StatusCode != 403 {
		t.Fatalf("pool file beyond the license: %d", res.StatusCode)
	}
	if res := get("/apt/acme/"+fn, keyAll); res.StatusCode != 303 || !strings.HasPrefix(res.Header.Get("Location"), w.url+"/blobs/") || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("pool file: %d %v", res.StatusCode, res.Header)
	}

	// Conditional requests: 304 by ETag and by Last-Modified.
	r := w.must(200, w.do("GET", "/apt/acme/dists/stable/InRelease", licBasic(keyAll), nil))
	etag, lm := r.header.Get("ETag"), r.header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("InRelease headers %v", r.header)
	}
	expectRevalidated(t, w.url+"/apt/acme/dists/stable/InRelease", licBasic(keyAll), etag, lm)
	// The signed text verifies with go-crypto too.
	if _, err := signing.VerifyOpenPGPClearSigned(w.keyBin, r.body); err != nil {
		t.Fatal(err)
	}

	// A proxy that alters InRelease: apt refuses the repository.
	target, _ := url.Parse(w.url)
	proxy := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		out, _ := http.NewRequest(req.Method, target.String()+req.URL.Path, nil)
		out.Header = req.Header.Clone()
		out.Header.Del("If-Modified-Since")
		out.Header.Del("If-None-Match")
		res, err := noRedirect.Do(out)
		if err != nil {
			rw.WriteHeader(502)
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if strings.HasSuffix(req.URL.Path, "/InRelease") {
			b = bytes.Replace(b, []byte("Suite: stable"), []byte("Suite: stablx"), 1)
		}
		for k, v := range res.Header {
			if k != "Content-Length" && k != "Etag" && k != "Last-Modified" {
				rw.Header()[k] = v
			}
		}
		rw.WriteHeader(res.StatusCode)
		rw.Write(b)
	}))
	defer proxy.Close()
	c := newAPTClient(t, proxy.URL+"/apt/acme", "stable", keyAll, w.keyBin)
	out, ok := c.run("update")
	if ok || !strings.Contains(out, "BADSIG") && !strings.Contains(out, "not signed") && !strings.Contains(out, "invalid") {
		t.Fatalf("apt-get update through a tampering proxy (ok %v):\n%s", ok, out)
	}
	c.run("download", "acme-server")
	if got := c.downloaded(); len(got) != 0 {
		t.Fatalf("downloaded %v from a tampered repository", keys(got))
	}
}

// The Packages index agrees with dpkg-scanpackages on the same files, field
// by field (apart from Filename, which is the portal's pool layout).
func TestAPTPackagesMatchDpkgScanpackages(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.2.0", "acme-server/amd64", "acme-doc/all")
	w.release("1.3.0", "acme-server/amd64")
	_, key := w.license(map[string]any{"customer": "c1", "product": "acme"})
	r := w.must(200, w.do("GET", "/apt/acme/dists/stable/main/binary-amd64/Packages", licBasic(key), nil))

	cmd := exec.Command("dpkg-scanpackages", "-m", ".", "/dev/null")
	cmd.Dir = w.debs
	ref, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v", err)
	}
	got, want := stanzas(t, string(r.body)), stanzas(t, string(ref))
	if len(got) != 3 || len(got) != len(want) {
		t.Fatalf("%d stanzas, dpkg-scanpackages has %d:\n%s\n---\n%s", len(got), len(want), r.body, ref)
	}
	for id, wf := range want {
		gf, ok := got[id]
		if !ok {
			t.Fatalf("no stanza for %s", id)
		}
		for name, v := range wf {
			if name == "Filename" {
				if !strings.HasSuffix(gf[name], "/"+filepath.Base(v)) {
					t.Errorf("%s Filename %q, file %q", id, gf[name], v)
				}
				continue
			}
			if gf[name] != v {
				t.Errorf("%s field %s: %q, dpkg-scanpackages %q", id, name, gf[name], v)
			}
		}
		if len(gf) != len(wf) {
			t.Errorf("%s: fields %v, dpkg-scanpackages %v", id, sortedKeys(gf), sortedKeys(wf))
		}
	}
	// Release lists every index with its size and hashes, and the
	// compressed forms decompress to the same index.
	rel := string(w.must(200, w.do("GET", "/apt/acme/dists/stable/Release", licBasic(key), nil)).body)
	for _, f := range []string{"Origin: acme", "Suite: stable", "Codename: stable", "Components: main", "SHA256:", "MD5Sum:",
		" main/binary-amd64/Packages.xz", " main/binary-arm64/Packages.gz", "Architectures: amd64 arm64 armel armhf i386"} {
		if !strings.Contains(rel, f) {
			t.Fatalf("Release lacks %q:\n%s", f, rel)
		}
	}
	gz := w.must(200, w.do("GET", "/apt/acme/dists/stable/main/binary-amd64/Packages.gz", licBasic(key), nil)).body
	zc := exec.Command("gzip", "-dc")
	zc.Stdin = bytes.NewReader(gz)
	plain, err := zc.Output()
	if err != nil || !bytes.Equal(plain, r.body) {
		t.Fatalf("Packages.gz does not decompress to Packages: %v", err)
	}
	xzb := w.must(200, w.do("GET", "/apt/acme/dists/stable/main/binary-amd64/Packages.xz", licBasic(key), nil)).body
	if len(xzb) < 6 || string(xzb[1:6]) != "7zXZ\x00" {
		t.Fatalf("Packages.xz is not xz")
	}
}

// Bad products, suites, architectures, files and pool paths are clear
// 4xx errors.
func TestAPTHostile(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.0.0", "acme-server/amd64")
	_, key := w.license(map[string]any{"customer": "c1", "product": "acme"})
	w.product("other", "licensed")
	for _, tc := range []struct {
		path, auth string
		status     int
	}{
		{"/apt/nope/dists/stable/InRelease", licBasic(key), 404},
		{"/apt/Bad%20Name/dists/stable/InRelease", licBasic(key), 404},
		{"/apt/acme/dists/nightly/InRelease", licBasic(key), 404},
		{"/apt/acme/dists/stable/main/binary-mips/Packages", licBasic(key), 404},
		{"/apt/acme/dists/stable/main/binary-amd64/Packages.bz2", licBasic(key), 404},
		{"/apt/acme/dists/stable/../../../etc/passwd", licBasic(key), 404},
		{"/apt/acme/dists/stable/InRelease", "", 401},
		{"/apt/acme/dists/stable/InRelease", licBasic("lic_nope"), 401},
		{"/apt/other/dists/stable/InRelease", licBasic(key), 403},
		{"/apt/acme/pool/main/a/acme-server/1.0.0/..%2F..%2Fx.deb", licBasic(key), 404},
		{"/apt/acme/pool/main/a/acme-server/1.0.0/missing.deb", licBasic(key), 404},
		{"/apt/acme/pool/main/a/acme-server/9.9.9/acme-server_1.0.0-1_amd64.deb", licBasic(key), 404},
		{"/apt/acme/pool/main/a/acme-server/1.0.0/x/acme-server_1.0.0-1_amd64.deb", licBasic(key), 404},
		{"/apt/acme/pool/main/a/acme-server/1.0.0/acme-server_1.0.0-1_amd64.txt", licBasic(key), 404},
		{"/apt/acme/pool/main/a/acme-server/1.0.0/acme-server_1.0.0-1_amd64.deb", "", 401},
	} {
		r := w.do("GET", tc.path, tc.auth, nil)
		if r.status != tc.status || r.code() == "" {
			t.Errorf("GET %s: %d %s, want %d with a JSON error", tc.path, r.status, r.body, tc.status)
		}
	}
	// The public key needs no credentials; an unknown product's is 404.
	w.must(200, w.do("GET", "/apt/acme/key.asc", "", nil))
	w.must(404, w.do("GET", "/apt/nope/key.gpg", "", nil))
	// /keys shows the same key.
	k := w.must(200, w.do("GET", "/v1/products/acme/keys", licBasic(key), nil)).json(t)
	pgp, _ := k["openpgp"].(map[string]any)
	asc := w.must(200, w.do("GET", "/apt/acme/key.asc", "", nil)).body
	if pgp == nil || pgp["armored"] != string(asc) || len(pgp["fingerprint"].(string)) != 40 {
		t.Fatalf("/keys openpgp: %v", pgp)
	}
}

// Publishing a .deb whose version is not the release's is refused at
// complete, with both versions, and the artifact fails.
func TestAPTCompleteRefusesOtherVersion(t *testing.T) {
	w := newAPTWorld(t)
	w.must(201, w.do("POST", "/v1/products/acme/releases", w.admin, map[string]any{"version": "1.0.0"}))
	path := debtest.Build(t, w.debs, debtest.Package{Name: "acme-server", Version: "1.0.1-1", Arch: "amd64"})
	b, _ := os.ReadFile(path)
	up := w.declare(w.admin, "acme", "1.0.0", "acme-server.deb", "linux", "amd64", b)
	put(t, up, b)
	r := w.do("POST", "/v1/products/acme/releases/1.0.0/artifacts/acme-server.deb/complete", w.admin, nil)
	if r.status != 422 || !strings.Contains(string(r.body), "1.0.1-1") || !strings.Contains(string(r.body), "1.0.0") {
		t.Fatalf("complete: %d %s", r.status, r.body)
	}
	rel := w.must(200, w.do("GET", "/v1/products/acme/releases/1.0.0", w.admin, nil)).json(t)
	if a := rel["artifacts"].([]any)[0].(map[string]any); a["status"] != "failed" {
		t.Fatalf("artifact after the refusal: %v", a)
	}
	// Garbage named .deb: refused too.
	junk := bytes.Repeat([]byte("junk"), 5000)
	up = w.declare(w.admin, "acme", "1.0.0", "junk.deb", "linux", "amd64", junk)
	put(t, up, junk)
	if r := w.do("POST", "/v1/products/acme/releases/1.0.0/artifacts/junk.deb/complete", w.admin, nil); r.status != 422 {
		t.Fatalf("complete of junk: %d %s", r.status, r.body)
	}
}

func licBasic(key string) string {
	req, _ := http.NewRequest("GET", "/", nil)
	req.SetBasicAuth("license", key)
	return req.Header.Get("Authorization")
}

// stanzas parses a Packages file into Package/Version/Architecture ->
// fields (continuation lines joined).
func stanzas(t *testing.T, s string) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, para := range strings.Split(strings.TrimSpace(s), "\n\n") {
		if para == "" {
			continue
		}
		f := map[string]string{}
		last := ""
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, " ") {
				f[last] += "\n" + line
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				t.Fatalf("bad line %q", line)
			}
			last = k
			f[k] = strings.TrimSpace(v)
		}
		out[f["Package"]+"/"+f["Version"]+"/"+f["Architecture"]] = f
	}
	return out
}

func keys[V any](m map[string]V) []string {
	return sortedKeys(m)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Products get their OpenPGP key at creation, of the configured algorithm,
// sealed under the master key; a product made before repository signing
// gets one on first need, audited, and keeps it.
func TestAPTOpenPGPKeys(t *testing.T) {
	mk, err := signing.NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, envOptions{flags: map[string]string{"repos.openpgp_algorithm": "rsa3072", "signing.master_key": mk}})
	e.product("acme", "open")
	k := e.must(200, e.do("GET", "/v1/products/acme/keys", "", nil)).json(t)["openpgp"].(map[string]any)
	if k["algorithm"] != "rsa3072" {
		t.Fatalf("openpgp key %v, want rsa3072", k)
	}
	p, err := e.app.Catalog.Product(cliCtx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := signing.NewSealer(nil)
	if _, err := plain.For("acme").OpenPGP(p.SigningKey); !errors.Is(err, signing.ErrMasterKeyRequired) {
		t.Fatalf("the stored OpenPGP key opens without the master key: %v", err)
	}

	// An older product: its stored keys hold no OpenPGP key.
	ks, err := e.app.Keys.SigningKeys(cliCtx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	old, err := e.app.Sealer.For("acme").SealSet(ks)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.Catalog.ReplaceSigningKey(cliCtx, "acme", p.SigningKey, old); err != nil {
		t.Fatal(err)
	}
	asc := e.must(200, e.do("GET", "/apt/acme/key.asc", "", nil)).body
	k2 := e.must(200, e.do("GET", "/v1/products/acme/keys", "", nil)).json(t)["openpgp"].(map[string]any)
	if k2["armored"] != string(asc) || k2["fingerprint"] == k["fingerprint"] {
		t.Fatalf("the key made on first need: %v", k2)
	}
	// The Ed25519 keys did not change, and the new key is audited.
	if ks2, err := e.app.Keys.SigningKeys(cliCtx, "acme"); err != nil || ks2.Public() != ks.Public() {
		t.Fatalf("Ed25519 keys changed: %v", err)
	}
	audit := e.must(200, e.do("GET", "/v1/audit?action=product.update_keys", bearer(e.admin), nil))
	if n := strings.Count(string(audit.body), "product.update_keys"); n < 2 {
		t.Fatalf("audit of the key changes: %s", audit.body)
	}
	// An empty open repository still verifies (signed, no packages).
	r := e.must(200, e.do("GET", "/apt/acme/dists/stable/InRelease", "", nil))
	if _, err := signing.VerifyOpenPGPClearSigned(asc, r.body); err != nil {
		t.Fatal(err)
	}
}

// Release says Acquire-By-Hash: an index named by the hash an earlier
// InRelease listed is still served after the caller's view changed (a
// release published between apt's requests), never another view's.
func TestAPTByHash(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.0.0", "acme-server/amd64")
	_, key := w.license(map[string]any{"customer": "c1", "product": "acme"})
	_, other := w.license(map[string]any{"customer": "c2", "product": "acme", "constraint": ">= 5.0"})
	hashOf := func(key, file string) string {
		rel := string(w.must(200, w.do("GET", "/apt/acme/dists/stable/Release", licBasic(key), nil)).body)
		if !strings.Contains(rel, "Acquire-By-Hash: yes\n") {
			t.Fatalf("Release without Acquire-By-Hash:\n%s", rel)
		}
		_, sums, _ := strings.Cut(rel, "SHA256:\n")
		for _, line := range strings.Split(sums, "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[2] == file {
				return f[0]
			}
		}
		t.Fatalf("Release lists no %s:\n%s", file, rel)
		return ""
	}
	const idx = "main/binary-amd64/Packages.xz"
	byHash := func(h string) string { return "/apt/acme/dists/stable/main/binary-amd64/by-hash/SHA256/" + h }
	old := hashOf(key, idx)
	oldBody := w.must(200, w.do("GET", "/apt/acme/dists/stable/"+idx, licBasic(key), nil)).body
	if got := w.must(200, w.do("GET", byHash(old), licBasic(key), nil)).body; !bytes.Equal(got, oldBody) {
		t.Fatal("by-hash body differs from the index")
	}
	w.release("1.1.0", "acme-server/amd64")
	cur := hashOf(key, idx)
	if cur == old {
		t.Fatal("the index did not change with a new release")
	}
	if got := w.must(200, w.do("GET", byHash(old), licBasic(key), nil)).body; !bytes.Equal(got, oldBody) {
		t.Fatal("the previous index is not served by hash after a change")
	}
	w.must(200, w.do("GET", byHash(cur), licBasic(key), nil))
	for _, tc := range []struct{ auth, hash string }{
		{licBasic(other), cur}, {licBasic(other), old}, {licBasic(key), strings.Repeat("0", 64)}, {licBasic(key), "../../Release"}, {"", cur},
	} {
		if r := w.do("GET", byHash(tc.hash), tc.auth, nil); r.status != 404 && r.status != 401 {
			t.Errorf("by-hash %s with %q: %d", tc.hash, tc.auth, r.status)
		}
	}
}

// realDeb builds a real .deb of package name for release version v and
// portal arch (what complete accepts for that release and arch): the
// Debian version is v with SemVer's pre-release "-" as "~", revision 1.
func realDeb(t *testing.T, name, v, arch string) []byte {
	t.Helper()
	debArch := map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf", "any": "all"}[arch]
	path := debtest.Build(t, t.TempDir(), debtest.Package{Name: name, Version: strings.Replace(v, "-", "~", 1) + "-1", Arch: debArch})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each license's index lists exactly what the license may install, by the
// same rules as downloads, and every package it lists downloads (a 303 from
// the pool); the suite is the channel.
func TestAPTEntitlementViews(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.0.0", "acme-server/amd64", "acme-server/arm64")
	w.must(201, w.do("POST", "/v1/products/acme/releases", w.admin, map[string]any{"version": "1.1.0-beta.1", "channel": "beta"}))
	b := realDeb(t, "acme-server", "1.1.0-beta.1", "amd64")
	w.upload(w.admin, "acme", "1.1.0-beta.1", "acme-server_1.1.0~beta.1-1_amd64.deb", "linux", "amd64", b)
	w.must(200, w.do("POST", "/v1/products/acme/releases/1.1.0-beta.1/publish", w.admin, nil))
	expires := w.now().Add(time.Hour).Format(time.RFC3339)
	licenses := map[string]map[string]any{
		"all":      {"customer": "a", "product": "acme"},
		"stable":   {"customer": "b", "product": "acme", "channels": []string{"stable"}},
		"windows":  {"customer": "c", "product": "acme", "platforms": []string{"windows"}},
		"maintain": {"customer": "d", "product": "acme", "expires_at": expires, "on_expiry": "maintain"},
		"revoke":   {"customer": "e", "product": "acme", "expires_at": expires, "on_expiry": "revoke"},
	}
	keyOf := map[string]string{}
	for name, body := range licenses {
		_, keyOf[name] = w.license(body)
	}
	w.advance(2 * time.Hour) // both expiring licenses have expired
	w.release("2.0.0", "acme-server/amd64")

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		license, suite, arch string
		status               int
		versions             []string
	}{
		{"all", "stable", "amd64", 200, []string{"2.0.0-1", "1.0.0-1"}},
		{"all", "stable", "arm64", 200, []string{"1.0.0-1"}},
		{"all", "beta", "amd64", 200, []string{"2.0.0-1", "1.1.0~beta.1-1", "1.0.0-1"}},
		{"stable", "beta", "amd64", 200, []string{"2.0.0-1", "1.0.0-1"}},
		{"windows", "stable", "amd64", 200, nil},
		{"maintain", "stable", "amd64", 200, []string{"1.0.0-1"}},
		{"maintain", "beta", "amd64", 200, []string{"1.1.0~beta.1-1", "1.0.0-1"}},
		{"revoke", "stable", "amd64", 403, nil},
	} {
		name := tc.license + "/" + tc.suite + "/" + tc.arch
		r := w.do("GET", "/apt/acme/dists/"+tc.suite+"/main/binary-"+tc.arch+"/Packages", licBasic(keyOf[tc.license]), nil)
		if r.status != tc.status {
			t.Fatalf("%s: %d %s", name, r.status, r.body)
		}
		if r.status != 200 {
			continue
		}
		var versions []string
		for _, st := range stanzas(t, string(r.body)) {
			versions = append(versions, st["Version"])
			res, err := func() (*http.Response, error) {
				req, _ := http.NewRequest("GET", w.url+"/apt/acme/"+st["Filename"], nil)
				req.Header.Set("Authorization", licBasic(keyOf[tc.license]))
				return noRedirect.Do(req)
			}()
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != 303 {
				t.Errorf("%s lists %s, which answers %d", name, st["Filename"], res.StatusCode)
			}
		}
		sort.Sort(sort.Reverse(sort.StringSlice(versions)))
		if strings.Join(versions, " ") != strings.Join(tc.versions, " ") {
			t.Errorf("%s lists %v, want %v", name, versions, tc.versions)
		}
	}
}

// With objects in S3, apt follows the pool's redirect to a presigned URL
// (no credentials of its own) and gets the published bytes.
func TestAPTWithS3(t *testing.T) {
	w := newAPTWorldWith(t, envOptions{s3: true})
	w.release("1.0.0", "acme-server/amd64")
	_, key := w.license(map[string]any{"customer": "c1", "product": "acme"})
	c := newAPTClient(t, w.url+"/apt/acme", "stable", key, w.keyBin)
	if out, ok := c.run("update"); !ok {
		t.Fatalf("apt-get update:\n%s", out)
	}
	if out, ok := c.run("download", "acme-server"); !ok {
		t.Fatalf("apt-get download:\n%s", out)
	}
	if got := c.downloaded(); !bytes.Equal(got["acme-server_1.0.0-1_amd64.deb"], w.build["acme-server_1.0.0-1_amd64.deb"]) {
		t.Fatalf("downloaded %v", keys(got))
	}
}

// Rotating the OpenPGP key: while a new key is staged, Release is signed by
// both, so apt trusting the old key or the new one verifies; once
// activated, only the new key does.
func TestAPTKeyRotation(t *testing.T) {
	w := newAPTWorld(t)
	w.release("1.0.0", "acme-server/amd64")
	_, key := w.license(map[string]any{"customer": "c1", "product": "acme"})
	oldKey := w.keyBin
	oldClient := newAPTClient(t, w.url+"/apt/acme", "stable", key, oldKey)
	if out, ok := oldClient.run("update"); !ok {
		t.Fatalf("apt-get update before the rotation:\n%s", out)
	}

	next, created, err := w.app.Keys.StageOpenPGP(cliCtx, "acme")
	if err != nil || !created {
		t.Fatalf("stage: %v %v", created, err)
	}
	k := w.must(200, w.do("GET", "/v1/products/acme/keys", "", nil)).json(t)["openpgp"].(map[string]any)
	nx, _ := k["next"].(map[string]any)
	if nx == nil || nx["fingerprint"] != next.Fingerprint() || k["fingerprint"] == next.Fingerprint() {
		t.Fatalf("/keys while staged: %v", k)
	}
	both := w.must(200, w.do("GET", "/apt/acme/key.gpg", "", nil)).body
	if !bytes.HasPrefix(both, oldKey) || len(both) <= len(oldKey) {
		t.Fatal("the published keyring does not hold the current and the staged key")
	}
	w.release("1.1.0", "acme-server/amd64") // something new to fetch
	newClient := newAPTClient(t, w.url+"/apt/acme", "stable", key, next.PublicBinary())
	for name, c := range map[string]*aptClient{"old key": oldClient, "new key": newClient} {
		if out, ok := c.run("update"); !ok || strings.Contains(out, "W:") {
			t.Fatalf("apt-get update trusting the %s while a key is staged:\n%s", name, out)
		}
		if out, ok := c.run("download", "acme-server"); !ok {
			t.Fatalf("apt-get download trusting the %s:\n%s", name, out)
		}
	}

	if _, err := w.app.Keys.ActivateOpenPGP(cliCtx, "acme"); err != nil {
		t.Fatal(err)
	}
	w.release("1.2.0", "acme-server/amd64")
	if out, ok := newClient.run("update"); !ok {
		t.Fatalf("apt-get update trusting the new key after activation:\n%s", out)
	}
	// apt keeps its previous lists and says so (its exit status is 0).
	out, _ := oldClient.run("update")
	if !strings.Contains(out, "NO_PUBKEY") || !strings.Contains(out, "The repository is not updated") {
		t.Fatalf("apt-get update trusting only the old key after activation:\n%s", out)
	}
	if _, err := w.app.Keys.ActivateOpenPGP(cliCtx, "acme"); !strings.Contains(fmt.Sprint(err), "no staged OpenPGP key") {
		t.Fatalf("activating again: %v", err)
	}
}
