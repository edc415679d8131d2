package web_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/internal/testcert"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/web"
)

// TestSecureCookieOnTLS: over TLS the session cookie is Secure.
func TestSecureCookieOnTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcert.New(t)
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, cert, key, 1)
	f := newFixture(t, map[string]string{"tls.cert_file": cert, "tls.key_file": key})
	client := ca.Client(t)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	f.Client = client
	f.product("app", "App")
	_, lkey := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	p := b.signIn(lkey)
	c := p.Cookie[web.CookieLicense]
	if p.Status != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("sign-in over TLS: %d, cookie %+v", p.Status, c)
	}
}

// TestLogoFile: web.logo_file is served by the portal and shown; a file
// that is no image stops the start.
func TestLogoFile(t *testing.T) {
	dir := t.TempDir()
	logo := filepath.Join(dir, "logo.svg")
	svg := `<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>`
	os.WriteFile(logo, []byte(svg), 0o644)
	f := newFixture(t, map[string]string{"web.logo_file": logo})
	p := f.do("GET", "/", nil, nil)
	if !strings.Contains(p.Body, `src="/static/brand/logo"`) {
		t.Fatalf("no logo in the page:\n%s", p.Body)
	}
	if p := f.do("GET", "/static/brand/logo", nil, nil); p.Body != svg || p.Header.Get("Content-Type") != "image/svg+xml" ||
		!strings.Contains(p.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("logo: %v %q", p.Header, p.Body)
	}
	notImage := filepath.Join(dir, "logo.txt")
	os.WriteFile(notImage, []byte("hello"), 0o644)
	_, err := web.New(web.Deps{}, web.Options{LogoFile: notImage, Secret: make([]byte, 32)})
	if err == nil || !strings.Contains(err.Error(), "not a PNG") {
		t.Fatalf("a text logo: %v", err)
	}
}

// TestMaintainedLicense: past its expiry, an on_expiry "maintain" license
// keeps the releases published before the expiry, and the page says so.
func TestMaintainedLicense(t *testing.T) {
	clk := &clock{t: time.Now().UTC()}
	f := newFixtureWith(t, nil, app.Options{Now: clk.Now})
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "", file{"old.tar.gz", "linux", "amd64", []byte("old")})
	clk.Add(time.Hour)
	expiry := clk.Now()
	clk.Add(time.Hour)
	f.publish("app", "2.0.0", "", "", file{"new.tar.gz", "linux", "amd64", []byte("new")})
	clk.Add(time.Hour)
	_, key := f.license("ACME", []string{"app"}, func(l *licenses.License) {
		l.ExpiresAt = &expiry
		l.OnExpiry = licenses.OnExpiryMaintain
	})
	b := f.browser()
	b.signIn(key)
	p := b.do("GET", "/", nil)
	if !signedIn(p) || !strings.Contains(p.Body, "old.tar.gz") || strings.Contains(p.Body, "new.tar.gz") ||
		!strings.Contains(p.Body, "stay available (on_expiry maintain)") {
		t.Fatalf("a maintained license's page:\n%s", p.Body)
	}
}
