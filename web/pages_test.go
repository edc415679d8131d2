package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/portaldist/portal/web"
)

// TestSignInAndHeaders signs in over plain HTTP and checks the security
// headers and the session cookie's attributes on the way.
func TestSignInAndHeaders(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "First release", file{"app-1.0.0-linux-amd64.tar.gz", "linux", "amd64", []byte("bytes of app 1.0.0")})
	_, key := f.license("ACME", []string{"app"}, nil)

	b := f.browser()
	p := b.do("GET", "/", nil)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `<label for="key">License key</label>`) {
		t.Fatalf("sign-in page: %d\n%s", p.Status, p.Body)
	}
	for k, want := range map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'; object-src 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
		"Cache-Control":           "no-store",
	} {
		if got := p.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	p = b.signIn(key)
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/" {
		t.Fatalf("sign-in: %d %s\n%s", p.Status, p.Header.Get("Location"), p.Body)
	}
	c := p.Cookie[web.CookieLicense]
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
	}
	p = b.do("GET", "/", nil)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, "app-1.0.0-linux-amd64.tar.gz") || strings.Contains(p.Body, key) {
		t.Fatalf("customer page: %d\n%s", p.Status, p.Body)
	}
	if strings.Contains(p.Body, key) {
		t.Fatal("the page shows the license key")
	}
	// A wrong key: an error page, no session.
	b2 := f.browser()
	p = b2.signIn("lic_" + strings.Repeat("x", 40))
	if p.Status != http.StatusUnauthorized || !strings.Contains(p.Body, "unauthorized") || p.Cookie[web.CookieLicense] != nil {
		t.Fatalf("wrong key: %d %v\n%s", p.Status, p.Cookie, p.Body)
	}
}

// TestNoInlineCode: the pages hold no inline script, style or event
// handler, which the Content-Security-Policy would block (and which would
// be a way in if it did not).
func TestNoInlineCode(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "notes <b style=\"x\" onclick=\"y\">", file{"app.tar.gz", "linux", "amd64", []byte("a")})
	_, key := f.license("ACME", []string{"app"}, nil)
	b := f.browser()
	pages := []page{b.do("GET", "/", nil), b.signIn("lic_" + strings.Repeat("q", 40))}
	b.signIn(key)
	home := b.do("GET", "/", nil)
	pages = append(pages, home, b.do("POST", "/share", url.Values{"csrf": {csrfOf(t, home.Body)}, "build": {"app|1.0.0|app.tar.gz"}, "ttl": {"1h"}}))
	inline := regexp.MustCompile(`(?i)<script(\s[^>]*)?>[^<]|<script>|<style|<[a-z][^>]*\s(style|on[a-z]+)=|javascript:`)
	for i, p := range pages {
		if m := inline.FindString(p.Body); m != "" {
			t.Errorf("page %d holds inline code %q:\n%s", i, m, p.Body)
		}
		if !strings.Contains(p.Body, `<script src="/static/app.js" defer></script>`) {
			t.Errorf("page %d is not a full page:\n%s", i, p.Body)
		}
	}
}
