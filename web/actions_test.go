package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/web"
)

// TestDownload: the download button mints through the API's grant (303 to
// the storage URL, no referrer, no caching), the URL serves the published
// bytes, and the signature and public key files verify them with minisign.
func TestDownload(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	data := []byte(strings.Repeat("the published bytes\n", 100))
	f.publish("app", "1.0.0", "", "", file{"app-1.0.0.tar.gz", "linux", "amd64", data})
	_, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	b.signIn(key)
	home := b.do("GET", "/", nil)
	token := csrfOf(t, home.Body)
	p := b.do("POST", "/download", url.Values{"csrf": {token}, "product": {"app"}, "version": {"1.0.0"}, "filename": {"app-1.0.0.tar.gz"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("download: %d\n%s", p.Status, p.Body)
	}
	loc := p.Header.Get("Location")
	if !strings.HasPrefix(loc, f.URL+"/blobs/") {
		t.Fatalf("Location %q is not a minted storage URL", loc)
	}
	if p.Header.Get("Referrer-Policy") != "no-referrer" || p.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the redirect's headers: %v", p.Header)
	}
	res, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(got) != string(data) {
		t.Fatalf("the minted URL served %d bytes, want the published %d", len(got), len(data))
	}

	// The page links the .minisig and the public key; minisign verifies.
	dir := t.TempDir()
	for path, name := range map[string]string{
		"/signature/app/1.0.0/app-1.0.0.tar.gz.minisig": "app-1.0.0.tar.gz.minisig",
		"/keys/app/minisign.pub":                        "minisign.pub",
	} {
		if !strings.Contains(home.Body, path) {
			t.Errorf("the page does not link %s", path)
		}
		p := b.do("GET", path, nil)
		if p.Status != http.StatusOK || !strings.Contains(p.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("%s: %d %v\n%s", path, p.Status, p.Header, p.Body)
		}
		os.WriteFile(filepath.Join(dir, name), []byte(p.Body), 0o644)
	}
	os.WriteFile(filepath.Join(dir, "app-1.0.0.tar.gz"), data, 0o644)
	mini, err := exec.LookPath("minisign")
	if err != nil {
		t.Fatalf("minisign is not installed (scripts/test.sh installs it): %v", err)
	}
	cmd := exec.Command(mini, "-V", "-p", "minisign.pub", "-m", "app-1.0.0.tar.gz")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}
	// The "how to verify" line on the page is the same command with -P.
	if !strings.Contains(home.Body, "minisign -V -P RW") {
		t.Errorf("the page has no minisign -V -P line")
	}
	// Signed out, neither file is served.
	anon := f.browser()
	if p := anon.do("GET", "/signature/app/1.0.0/app-1.0.0.tar.gz.minisig", nil); p.Status != http.StatusSeeOther {
		t.Errorf("signature without a session: %d", p.Status)
	}
}

// TestRefusals: domain refusals are pages with the API's code, message and
// explanation: the quota with its reset time, a release outside the
// license, a yanked release.
func TestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.product("other", "Other")
	f.publish("app", "1.0.0", "", "", file{"a1.tar.gz", "linux", "amd64", []byte("1")})
	f.publish("app", "2.0.0", "", "", file{"a2.tar.gz", "linux", "amd64", []byte("2")})
	f.publish("other", "1.0.0", "", "", file{"o1.tar.gz", "linux", "amd64", []byte("o")})
	_, key := f.license("ACME", []string{"app"}, func(l *licenses.License) {
		l.DownloadsPerDay = 1
		l.Constraint = "< 2.0"
	})
	b := f.browser()
	b.signIn(key)
	home := b.do("GET", "/", nil)
	if strings.Contains(home.Body, "a2.tar.gz") || strings.Contains(home.Body, "o1.tar.gz") {
		t.Fatal("the page offers builds outside the license")
	}
	token := csrfOf(t, home.Body)
	dl := func(product, version, filename string) page {
		return b.do("POST", "/download", url.Values{"csrf": {token}, "product": {product}, "version": {version}, "filename": {filename}})
	}
	for _, tc := range []struct {
		name, product, version, filename string
		status                           int
		want                             []string
	}{
		{"outside the constraint", "app", "2.0.0", "a2.tar.gz", 403, []string{"not_entitled", "does not cover"}},
		{"another product", "other", "1.0.0", "o1.tar.gz", 403, []string{"not_entitled", "not other"}},
		{"unknown product", "nope", "1.0.0", "x", 404, []string{"not_found"}},
		{"unknown version", "app", "9.9.9", "x", 404, []string{"not_found"}},
		{"unknown file", "app", "1.0.0", "../../etc/passwd", 404, []string{"not_found"}},
		{"empty", "", "", "", 404, []string{"not_found"}},
		{"too long", "app", "1.0.0", strings.Repeat("x", 5000), 400, []string{"invalid"}},
		{"first download", "app", "1.0.0", "a1.tar.gz", 303, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := dl(tc.product, tc.version, tc.filename)
			if p.Status != tc.status {
				t.Fatalf("%d, want %d\n%s", p.Status, tc.status, p.Body)
			}
			for _, w := range tc.want {
				if !strings.Contains(p.Body, w) {
					t.Errorf("the page lacks %q:\n%s", w, p.Body)
				}
			}
		})
	}
	// The quota is used: the next grant of another build is refused
	// with the reset time. (A repeat of the same build while its URL is
	// valid is not a new download.)
	f.publish("app", "1.1.0", "", "", file{"a11.tar.gz", "linux", "amd64", []byte("11")})
	p := dl("app", "1.1.0", "a11.tar.gz")
	if p.Status != http.StatusForbidden || !strings.Contains(p.Body, "quota_exceeded") || !strings.Contains(p.Body, "Try again after") ||
		p.Header.Get("Retry-After") == "" {
		t.Fatalf("over quota: %d %v\n%s", p.Status, p.Header, p.Body)
	}
	// Yanked: no longer on the page, and refused.
	if _, err := f.App.Catalog.Yank(cliCtx, "app", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	if p := dl("app", "1.1.0", "a11.tar.gz"); p.Status != http.StatusNotFound || !strings.Contains(p.Body, "withdrawn") {
		t.Fatalf("yanked: %d\n%s", p.Status, p.Body)
	}
}

// TestFailedSignIns share the API's limiter: after the limit of wrong keys
// from one address, both the page and the API answer 429, and a valid key
// still signs in.
func TestFailedSignIns(t *testing.T) {
	f := newFixture(t, map[string]string{"limits.auth_failures_per_minute": "3"})
	f.product("app", "App")
	_, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	for i := range 3 {
		p := b.signIn("lic_" + strings.Repeat(string(rune('a'+i)), 40))
		if p.Status != http.StatusUnauthorized || p.Cookie[web.CookieLicense] != nil {
			t.Fatalf("wrong key %d: %d %v", i, p.Status, p.Cookie)
		}
		if !strings.Contains(p.Body, "unknown license key") {
			t.Fatalf("wrong key page:\n%s", p.Body)
		}
	}
	p := b.signIn("lic_" + strings.Repeat("z", 40))
	if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Body, "rate_limited") {
		t.Fatalf("over the limit: %d %v\n%s", p.Status, p.Header, p.Body)
	}
	req, _ := http.NewRequest("GET", f.URL+"/v1/me", nil)
	req.Header.Set("Authorization", "License lic_"+strings.Repeat("y", 40))
	res, err := f.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the API after the page's failures: %s, want 429 (one limiter)", res.Status)
	}
	if p := b.signIn(key); p.Status != http.StatusSeeOther {
		t.Fatalf("a valid key over the limit: %d\n%s", p.Status, p.Body)
	}
}

// TestHostileInputs: bad form values get a clear error page, never a
// panic or a change.
func TestHostileInputs(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "", file{"a.tar.gz", "linux", "amd64", []byte("a")})
	l, key := f.license("ACME", []string{"app"}, nil)
	_, key2 := f.license("Other", []string{"app"}, nil)
	b, b2 := f.browser(), f.browser()
	b.signIn(key)
	b2.signIn(key2)
	token := csrfOf(t, b.do("GET", "/", nil).Body)
	token2 := csrfOf(t, b2.do("GET", "/", nil).Body)
	if p := b2.do("POST", "/share", url.Values{"csrf": {token2}, "build": {"app|1.0.0|a.tar.gz"}, "ttl": {"1h"}}); p.Status != http.StatusCreated {
		t.Fatalf("share: %d", p.Status)
	}
	theirs, _ := f.App.Links.List(cliCtx, "")
	if len(theirs) != 1 {
		t.Fatalf("%d links", len(theirs))
	}
	for _, tc := range []struct {
		name   string
		path   string
		form   url.Values
		status int
		want   string
	}{
		{"share: no build", "/share", url.Values{"ttl": {"1h"}}, 400, "choose a build"},
		{"share: half a build", "/share", url.Values{"build": {"app|1.0.0"}, "ttl": {"1h"}}, 400, "choose a build"},
		{"share: a lifetime not offered", "/share", url.Values{"build": {"app|1.0.0|a.tar.gz"}, "ttl": {"8760h"}}, 400, "offered lifetimes"},
		{"share: a negative lifetime", "/share", url.Values{"build": {"app|1.0.0|a.tar.gz"}, "ttl": {"-1h"}}, 400, "offered lifetimes"},
		{"share: unknown build", "/share", url.Values{"build": {"app|1.0.0|nope"}, "ttl": {"1h"}}, 404, "not_found"},
		{"revoke: no id", "/share/revoke", url.Values{}, 400, "which link"},
		{"revoke: unknown", "/share/revoke", url.Values{"id": {"nope"}}, 404, "not_found"},
		{"revoke: another license's", "/share/revoke", url.Values{"id": {theirs[0].ID}}, 0, ""},
		{"revoke: NUL", "/share/revoke", url.Values{"id": {"a\x00b"}}, 404, "not_found"},
		{"download: control characters", "/download", url.Values{"product": {"app\r\nX: y"}, "version": {"1.0.0"}, "filename": {"a"}}, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("csrf", token)
			p := b.do("POST", tc.path, tc.form)
			if tc.status == 0 {
				if p.Status < 400 || p.Status >= 500 {
					t.Fatalf("%d\n%s", p.Status, p.Body)
				}
				return
			}
			if p.Status != tc.status || !strings.Contains(p.Body, tc.want) {
				t.Fatalf("%d, want %d with %q\n%s", p.Status, tc.status, tc.want, p.Body)
			}
		})
	}
	after, _ := f.App.Links.List(cliCtx, "")
	if len(after) != 1 || after[0].RevokedAt != nil {
		t.Fatalf("links changed: %+v", after)
	}
	if mine, _ := f.App.Links.List(cliCtx, l.ID); len(mine) != 0 {
		t.Fatalf("a refused post made a link: %+v", mine)
	}
	// A form body beyond the pages' limit is refused, not read whole.
	big := url.Values{"csrf": {token}, "id": {strings.Repeat("x", 100<<10)}}
	if p := b.do("POST", "/share/revoke", big); p.Status != http.StatusForbidden && p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("a 100 KiB form: %d", p.Status)
	}
	// Static paths stay in the embedded assets.
	for _, path := range []string{"/static/../web.go", "/static/%2e%2e/web.go", "/static/templates/layout.html", "/static/", "/static/nope.css"} {
		if p := b.do("GET", path, nil); p.Status != http.StatusNotFound {
			t.Errorf("GET %s: %d", path, p.Status)
		}
	}
	// A sign-in key of 10 KB: refused as unknown.
	if p := f.browser().signIn(strings.Repeat("k", 10000)); p.Status != http.StatusUnauthorized {
		t.Errorf("a 10 KB key: %d", p.Status)
	}
}

// TestBrandAndRoutes: the configured brand reaches the layout and the
// theme; a logo URL's origin is allowed by the CSP; the API's routes are
// not shadowed by the pages.
func TestBrandAndRoutes(t *testing.T) {
	f := newFixture(t, map[string]string{"web.brand_name": "Initech <Tools>", "web.accent_color": "#a0b",
		"web.logo_url": "https://cdn.example.com/logo.svg"})
	p := f.do("GET", "/", nil, nil)
	if !strings.Contains(p.Body, "Initech &lt;Tools&gt;") || !strings.Contains(p.Body, `src="https://cdn.example.com/logo.svg"`) {
		t.Fatalf("brand:\n%s", p.Body)
	}
	if csp := p.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "img-src 'self' data: https://cdn.example.com;") {
		t.Errorf("CSP %q does not allow the logo's origin", csp)
	}
	if p := f.do("GET", "/static/theme.css", nil, nil); !strings.Contains(p.Body, "--accent:#a0b;") || p.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("theme.css: %v %s", p.Header, p.Body)
	}
	for path, wantJSON := range map[string]bool{"/healthz": true, "/v1/me": true, "/v1/products": true, "/nope": true} {
		p := f.do("GET", path, nil, nil)
		var v map[string]any
		if isJSON := json.Unmarshal([]byte(p.Body), &v) == nil; isJSON != wantJSON {
			t.Errorf("GET %s: %d %q", path, p.Status, p.Body)
		}
	}
}
