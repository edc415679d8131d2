package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/pkgmeta"
	"github.com/portaldist/portal/signing"
)

// publishRPMs creates, uploads (platform and arch read from each package,
// as `portal publish` does) and publishes a release of the rpm files at
// paths, and returns their bytes by file name.
func (e *env) publishRPMs(product, version, channel string, paths ...string) map[string][]byte {
	e.t.Helper()
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/"+product+"/releases", admin, map[string]any{"version": version, "channel": channel}))
	files := map[string][]byte{}
	for _, p := range paths {
		body, err := os.ReadFile(p)
		if err != nil {
			e.t.Fatal(err)
		}
		pkg, err := pkgmeta.Extract(p, bytes.NewReader(body), int64(len(body)))
		if err != nil {
			e.t.Fatal(err)
		}
		plat, arch, err := pkgmeta.Platform(pkg)
		if err != nil {
			e.t.Fatal(err)
		}
		e.upload(admin, product, version, filepath.Base(p), plat, arch, body)
		files[filepath.Base(p)] = body
	}
	e.must(200, e.do("POST", "/v1/products/"+product+"/releases/"+version+"/publish", admin, nil))
	return files
}

func rpmBasic(key string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte("license:"+key))
}

type repomdDoc struct {
	Data []struct {
		Type     string `xml:"type,attr"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"data"`
}

type primaryDoc struct {
	Packages string `xml:"packages,attr"`
	Package  []struct {
		Name     string `xml:"name"`
		Arch     string `xml:"arch"`
		Location struct {
			Href string `xml:"href,attr"`
		} `xml:"location"`
	} `xml:"package"`
}

// rpmPrimary fetches repomd.xml, checks its signature against the
// product's published key, and returns primary's packages as
// "name.arch href" lines, sorted.
func (e *env) rpmPrimary(base, auth string) []string {
	e.t.Helper()
	md := e.must(200, e.do("GET", base+"/repodata/repomd.xml", auth, nil))
	asc := e.must(200, e.do("GET", base+"/repodata/repomd.xml.asc", auth, nil))
	product := strings.Split(base, "/")[2]
	pub := e.must(200, e.do("GET", "/rpm/"+product+"/key.asc", "", nil))
	if err := signing.VerifyOpenPGPDetached(pub.body, md.body, asc.body); err != nil {
		e.t.Fatalf("repomd.xml.asc does not verify: %v", err)
	}
	var doc repomdDoc
	if err := xml.Unmarshal(md.body, &doc); err != nil {
		e.t.Fatal(err)
	}
	for _, d := range doc.Data {
		if d.Type != "primary" {
			continue
		}
		gz := e.must(200, e.do("GET", base+"/"+d.Location.Href, auth, nil))
		zr, err := gzip.NewReader(bytes.NewReader(gz.body))
		if err != nil {
			e.t.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		var p primaryDoc
		if err := xml.Unmarshal(raw, &p); err != nil {
			e.t.Fatal(err)
		}
		out := []string{}
		for _, pk := range p.Package {
			out = append(out, pk.Name+"."+pk.Arch+" "+pk.Location.Href)
		}
		sort.Strings(out)
		return out
	}
	e.t.Fatalf("repomd.xml has no primary: %s", md.body)
	return nil
}

// TestRPMRepository: what each license sees in each repository, the
// signature, package downloads through the license decision, caching and
// conditional requests, yank, publish and suspension, over real HTTP.
func TestRPMRepository(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	server := rpmtest.Build(t, rpmtest.Spec{Target: "x86_64", Version: "1.0.0"})
	doc := rpmtest.Build(t, rpmtest.Spec{Name: "acme-doc", Version: "1.0.0"})
	beta := rpmtest.Build(t, rpmtest.Spec{Target: "x86_64", Version: "1.1.0~beta.1"})
	files := e.publishRPMs("acme", "1.0.0", "stable", server, doc)
	e.publishRPMs("acme", "1.1.0-beta.1", "beta", beta)
	_, all := e.license(map[string]any{"customer": "all", "product": "acme"})
	_, same := e.license(map[string]any{"customer": "same view", "product": "acme"})
	susID, sus := e.license(map[string]any{"customer": "suspended later", "product": "acme"})
	_, old := e.license(map[string]any{"customer": "old versions only", "product": "acme", "constraint": "< 1.0"})

	srv, docName := filepath.Base(server), filepath.Base(doc)
	for _, tc := range []struct {
		name, base, key string
		want            []string
	}{
		{"x86_64 lists the arch and noarch", "/rpm/acme/stable/x86_64", all, []string{
			"acme-doc.noarch packages/1.0.0/" + docName, "acme-server.x86_64 packages/1.0.0/" + srv}},
		{"aarch64 lists noarch only", "/rpm/acme/stable/aarch64", all, []string{"acme-doc.noarch packages/1.0.0/" + docName}},
		{"noarch", "/rpm/acme/stable/noarch", all, []string{"acme-doc.noarch packages/1.0.0/" + docName}},
		{"beta sees beta and stable", "/rpm/acme/beta/x86_64", all, []string{
			"acme-doc.noarch packages/1.0.0/" + docName, "acme-server.x86_64 packages/1.0.0/" + srv,
			"acme-server.x86_64 packages/1.1.0-beta.1/" + filepath.Base(beta)}},
		{"a constraint that admits nothing", "/rpm/acme/stable/x86_64", old, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.rpmPrimary(tc.base, rpmBasic(tc.key))
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("primary lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}

	base := "/rpm/acme/stable/x86_64"
	// Packages: a 303 to a minted URL, which serves the exact bytes.
	code, body, _ := e.fetch(base+"/packages/1.0.0/"+srv, rpmBasic(all))
	if code != 200 || !bytes.Equal(body, files[srv]) {
		t.Fatalf("package download: %d, %d bytes", code, len(body))
	}

	// One render per distinct view: another license with the same view
	// gets the same signed bytes; conditional requests get 304.
	md := e.must(200, e.do("GET", base+"/repodata/repomd.xml", rpmBasic(all), nil))
	md2 := e.must(200, e.do("GET", base+"/repodata/repomd.xml", rpmBasic(same), nil))
	if !bytes.Equal(md.body, md2.body) || md.header.Get("ETag") == "" || md.header.Get("ETag") != md2.header.Get("ETag") {
		t.Fatalf("two licenses with one view got different documents")
	}
	if md.header.Get("Last-Modified") == "" || !strings.Contains(md.header.Get("Cache-Control"), "no-cache") {
		t.Fatalf("headers %v", md.header)
	}
	expectRevalidated(t, e.url+base+"/repodata/repomd.xml", rpmBasic(all), md.header.Get("ETag"), md.header.Get("Last-Modified"))

	// The .repo file: the key filled in for its license, a placeholder
	// for anyone else.
	repo := e.must(200, e.do("GET", "/rpm/acme/stable.repo", rpmBasic(all), nil))
	for _, want := range []string{"baseurl=" + e.url + "/rpm/acme/stable/$basearch", "gpgkey=" + e.url + "/rpm/acme/key.asc",
		"repo_gpgcheck=1", "username=license", "password=" + all} {
		if !strings.Contains(string(repo.body), want+"\n") {
			t.Fatalf(".repo lacks %q:\n%s", want, repo.body)
		}
	}
	if repo.header.Get("Cache-Control") != "no-store" {
		t.Fatalf(".repo with a key: Cache-Control %q", repo.header.Get("Cache-Control"))
	}
	anon := e.must(200, e.do("GET", "/rpm/acme/stable.repo", "", nil))
	if !strings.Contains(string(anon.body), "password=YOUR_LICENSE_KEY\n") || strings.Contains(string(anon.body), "lic_") {
		t.Fatalf("anonymous .repo:\n%s", anon.body)
	}

	// An open product's file has no credentials: dnf would send them,
	// and a placeholder is a bad key.
	e.product("free", "open")
	open := e.must(200, e.do("GET", "/rpm/free/stable.repo", "", nil))
	if strings.Contains(string(open.body), "password=") || !strings.Contains(string(open.body), "baseurl="+e.url+"/rpm/free/stable/$basearch\n") {
		t.Fatalf("open product's .repo:\n%s", open.body)
	}
	e.must(200, e.do("GET", "/rpm/free/stable/x86_64/repodata/repomd.xml", "", nil))

	// Hostile and wrong requests: clear errors, nothing stored.
	before := e.dump()
	for _, tc := range []struct {
		path, auth string
		status     int
		code       string
	}{
		{base + "/repodata/repomd.xml", "", 401, "unauthorized"},
		{base + "/repodata/repomd.xml", "Basic " + base64.StdEncoding.EncodeToString([]byte("root:"+all)), 401, "unauthorized"},
		{base + "/repodata/repomd.xml", rpmBasic("lic_wrong"), 401, "unauthorized"},
		{"/rpm/nope/stable/x86_64/repodata/repomd.xml", rpmBasic(all), 404, "not_found"},
		{"/rpm/acme/nightly/x86_64/repodata/repomd.xml", rpmBasic(all), 400, "invalid"},
		{"/rpm/acme/stable/sparc/repodata/repomd.xml", rpmBasic(all), 404, "not_found"},
		{base + "/repodata/0000-primary.xml.gz", rpmBasic(all), 404, "not_found"},
		{base + "/repodata/..%2f..%2f..%2fv1%2fme", rpmBasic(all), 404, "not_found"},
		{base + "/repodata/../../../../v1/me", rpmBasic(all), 404, "not_found"},
		{base + "/packages/1.0.0/..%2f..%2fetc%2fpasswd", rpmBasic(all), 404, "not_found"},
		{base + "/packages/1.0.0/notes.txt", rpmBasic(all), 404, "not_found"},
		{base + "/packages/9.9.9/" + srv, rpmBasic(all), 404, "not_found"},
		{base + "/packages/1.0.0/" + srv, rpmBasic(old), 403, "not_entitled"},
		{"/rpm/nope/stable.repo", "", 404, "not_found"},
		{"/rpm/acme/stable", "", 404, "not_found"},
		{"/rpm/acme/nightly.repo", "", 400, "invalid"},
		{"/rpm/nope/key.asc", "", 404, "not_found"},
	} {
		r := e.do("GET", tc.path, tc.auth, nil)
		if r.status != tc.status || r.code() != tc.code {
			t.Errorf("GET %s: %d %s, want %d %s: %s", tc.path, r.status, r.code(), tc.status, tc.code, r.body)
		}
		if strings.HasPrefix(strings.ToLower(r.header.Get("WWW-Authenticate")), "basic") {
			t.Errorf("GET %s: WWW-Authenticate %q", tc.path, r.header.Get("WWW-Authenticate"))
		}
	}
	if after := e.dump(); after != before {
		t.Fatalf("refused requests changed the store")
	}

	// A yank leaves the index at once; a new release joins it.
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/yank", bearer(e.admin), nil))
	next := rpmtest.Build(t, rpmtest.Spec{Target: "x86_64", Version: "1.2.0"})
	e.publishRPMs("acme", "1.2.0", "stable", next)
	if got := e.rpmPrimary(base, rpmBasic(all)); strings.Join(got, ",") != "acme-server.x86_64 packages/1.2.0/"+filepath.Base(next) {
		t.Fatalf("after yank and publish: %v", got)
	}
	after := e.must(200, e.do("GET", base+"/repodata/repomd.xml", rpmBasic(all), nil))
	t1, _ := http.ParseTime(md.header.Get("Last-Modified"))
	t2, err := http.ParseTime(after.header.Get("Last-Modified"))
	if err != nil || !t2.After(t1) || bytes.Equal(after.body, md.body) {
		t.Fatalf("Last-Modified %v then %v (%v): it must move when the view changes", t1, t2, err)
	}
	if r := e.do("GET", base+"/packages/1.0.0/"+srv, rpmBasic(all), nil); r.status != 404 {
		t.Fatalf("a yanked package: %d %s", r.status, r.body)
	}

	// Suspension: the repository and its packages are refused at once.
	e.must(200, e.do("GET", base+"/repodata/repomd.xml", rpmBasic(sus), nil))
	e.must(200, e.do("POST", "/v1/licenses/"+susID+"/suspend", bearer(e.admin), nil))
	for _, path := range []string{base + "/repodata/repomd.xml", base + "/repodata/repomd.xml.asc", base + "/packages/1.2.0/" + filepath.Base(next)} {
		if r := e.do("GET", path, rpmBasic(sus), nil); r.status != 403 || r.code() != "license_suspended" {
			t.Fatalf("GET %s with a suspended license: %d %s", path, r.status, r.body)
		}
	}
}

// Completing a file named .rpm that is no rpm, or an rpm of another
// version, is refused over HTTP with the reason; the repository does not
// list it.
func TestRPMRefusedAtComplete(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{"version": "2.0.0"}))
	other, err := os.ReadFile(rpmtest.Build(t, rpmtest.Spec{Version: "1.9.0"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		body       []byte
		want       string
	}{
		{"garbage", "acme-2.0.0-1.noarch.rpm", bytes.Repeat([]byte("garbage "), 300), "no rpm lead magic"},
		{"truncated", "acme-cut-2.0.0-1.noarch.rpm", other[:200], "truncated"},
		{"other version", "acme-server-1.9.0-1.noarch.rpm", other, "version 1.9.0-1 is not the release's version 2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := e.declare(admin, "acme", "2.0.0", tc.file, "linux", "any", tc.body)
			if st := put(t, up, tc.body); st/100 != 2 {
				t.Fatalf("PUT %d", st)
			}
			r := e.do("POST", "/v1/products/acme/releases/2.0.0/artifacts/"+tc.file+"/complete", admin, nil)
			if r.status != 422 || r.code() != "unprocessable" || !strings.Contains(string(r.body), tc.want) {
				t.Fatalf("complete: %d %s", r.status, r.body)
			}
		})
	}
	rel := e.must(200, e.do("GET", "/v1/products/acme/releases/2.0.0", admin, nil)).json(t)
	for _, a := range rel["artifacts"].([]any) {
		if a.(map[string]any)["status"] != "failed" {
			t.Fatalf("artifact after a refusal: %v", a)
		}
	}
}
