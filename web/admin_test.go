package web_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/audit"
	auditcaller "github.com/portaldist/portal/audit/caller"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
)

// token creates an API token and returns its secret.
func (f *fixture) token(name, role string, products ...string) (tokens.Token, string) {
	f.t.Helper()
	t, raw, err := f.App.Tokens.Create(cliCtx, name, role, products)
	if err != nil {
		f.t.Fatal(err)
	}
	return t, raw
}

// adminSignIn signs a browser in to the console with an API token, as a
// person would: GET /admin, then POST its form with the CSRF token.
func (b *browser) adminSignIn(token string) page {
	b.f.t.Helper()
	p := b.do("GET", "/admin", nil)
	if p.Status != http.StatusOK || !strings.Contains(p.Body, `<label for="token">Admin token</label>`) {
		b.f.t.Fatalf("GET /admin: %d, no Admin token field:\n%s", p.Status, p.Body)
	}
	return b.do("POST", "/admin/signin", url.Values{"csrf": {csrfOf(b.f.t, p.Body)}, "token": {token}})
}

// admin is a browser signed in to the console with token.
func (f *fixture) admin(token string) *browser {
	f.t.Helper()
	b := f.browser()
	if p := b.adminSignIn(token); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/admin/products" {
		f.t.Fatalf("sign-in: %d %s\n%s", p.Status, p.Header.Get("Location"), p.Body)
	}
	return b
}

// post sends a console form: GET the page the form is on, take its CSRF
// token, POST form to action.
func (b *browser) post(from, action string, form url.Values) page {
	b.f.t.Helper()
	p := b.do("GET", from, nil)
	if p.Status != http.StatusOK {
		b.f.t.Fatalf("GET %s: %d\n%s", from, p.Status, p.Body)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", csrfOf(b.f.t, p.Body))
	return b.do("POST", action, form)
}

// wantRedirect checks a POST-redirect-GET answer and returns the page it
// leads to.
func (b *browser) wantRedirect(p page, to string) page {
	b.f.t.Helper()
	if p.Status != http.StatusSeeOther || p.Header.Get("Location") != to {
		b.f.t.Fatalf("answer %d to %q, want 303 to %q\n%s", p.Status, p.Header.Get("Location"), to, p.Body)
	}
	return b.do("GET", to, nil)
}

// wantError checks an error page: the status and the API's code on it.
func wantError(t *testing.T, p page, status int, code string) {
	t.Helper()
	if p.Status != status || !strings.Contains(p.Body, "<code>"+code+"</code>") {
		t.Fatalf("answer %d, want %d with code %s:\n%s", p.Status, status, code, p.Body)
	}
}

// auditCount counts the audit records of action.
func (f *fixture) auditCount(action string) int {
	f.t.Helper()
	recs, _, err := audit.New(f.App.DB).List(context.Background(), audit.Filter{Action: action, Limit: audit.MaxLimit})
	if err != nil {
		f.t.Fatal(err)
	}
	return len(recs)
}

// lastAudit is the newest record of action.
func (f *fixture) lastAudit(action string) audit.Record {
	f.t.Helper()
	recs, _, err := audit.New(f.App.DB).List(context.Background(), audit.Filter{Action: action, Limit: 1})
	if err != nil || len(recs) == 0 {
		f.t.Fatalf("no %s record: %v", action, err)
	}
	return recs[0]
}

func (f *fixture) release(product, version string) releases.Release {
	f.t.Helper()
	r, err := f.App.Catalog.Release(context.Background(), product, version)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) getLicense(id string) licenses.License {
	f.t.Helper()
	l, err := f.App.Licenses.Get(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

var build = file{Name: "app-linux-amd64.tar.gz", Platform: "linux", Arch: "amd64", Data: []byte("the build")}

func TestAdminSignIn(t *testing.T) {
	f := newFixture(t, nil)
	_, raw := f.token("ops", "admin")

	// A wrong token: the error page, no session.
	b := f.browser()
	p := b.adminSignIn("ptk_" + strings.Repeat("x", 40))
	wantError(t, p, http.StatusUnauthorized, portal.EUnauthorized)
	if _, ok := b.cookies["portal_admin"]; ok {
		t.Fatal("a wrong token set a session cookie")
	}
	if strings.Contains(p.Body, "ptk_xxxx") {
		t.Fatal("the wrong token is echoed")
	}
	// Signed out, console pages send to the sign-in form.
	if p := b.do("GET", "/admin/licenses", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/admin" {
		t.Fatalf("signed out: %d %s", p.Status, p.Header.Get("Location"))
	}

	// The right one: a session cookie for /admin only, HttpOnly, SameSite=Strict.
	p = b.adminSignIn(raw)
	c := p.Cookie["portal_admin"]
	if p.Status != http.StatusSeeOther || c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/admin" {
		t.Fatalf("sign-in: %d, cookie %+v", p.Status, c)
	}
	if strings.Contains(p.Header.Get("Location"), raw) {
		t.Fatal("the token is in the redirect")
	}
	p = b.wantRedirect(p, "/admin/products")
	if !strings.Contains(p.Body, "Signed in as ops (admin)") {
		t.Fatalf("products page:\n%s", p.Body)
	}
	// Signed in, /admin goes on to the products.
	if p := b.do("GET", "/admin", nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/admin/products" {
		t.Fatalf("GET /admin signed in: %d %s", p.Status, p.Header.Get("Location"))
	}
	// Sign out ends the session: the old cookie no longer works.
	old := b.jar()
	b.wantRedirect(b.post("/admin/products", "/admin/signout", nil), "/admin")
	if p := f.do("GET", "/admin/products", old, nil); p.Status != http.StatusSeeOther {
		t.Fatalf("after sign-out the old cookie still works: %d", p.Status)
	}
	// A revoked token ends its sessions.
	b = f.admin(raw)
	tok, _ := f.App.Tokens.Authenticate(context.Background(), raw)
	if err := f.App.Tokens.Delete(cliCtx, tok.ID); err != nil {
		t.Fatal(err)
	}
	wantError(t, b.do("GET", "/admin/products", nil), http.StatusUnauthorized, portal.EUnauthorized)
}

// TestAdminReleaseActions: each release action through the console
// changes the release as the API would, audited with the console's token
// as the actor, and answers 303 back to the release's page.
func TestAdminReleaseActions(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "first", build)
	if _, err := f.App.Catalog.CreateRelease(cliCtx, "app", releases.NewRelease{Version: "1.1.0", Notes: "draft"}); err != nil {
		t.Fatal(err)
	}
	_, raw := f.token("rel", "publisher", "app")
	b := f.admin(raw)

	page := "/admin/products/app/releases/1.0.0"
	p := b.do("GET", "/admin/products/app", nil)
	for _, want := range []string{`href="/admin/products/app/releases/1.0.0"`, `action="/admin/products/app/releases/1.1.0/publish"`, `action="/admin/products/app/releases/1.0.0/yank"`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("product page lacks %s:\n%s", want, p.Body)
		}
	}
	p = b.do("GET", page, nil)
	for _, want := range []string{"app-linux-amd64.tar.gz", "uploaded", `<label for="rollout">`, `<label for="notes">`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("release page lacks %s:\n%s", want, p.Body)
		}
	}

	cases := []struct {
		action, version string
		form            url.Values
		action2         string // audit action
		check           func(releases.Release) bool
	}{
		{"yank", "1.0.0", nil, "release.yank", func(r releases.Release) bool { return r.Status == releases.Yanked }},
		{"unyank", "1.0.0", nil, "release.unyank", func(r releases.Release) bool { return r.Status == releases.Published }},
		{"rollout", "1.0.0", url.Values{"rollout": {"25"}}, "release.update", func(r releases.Release) bool { return r.Rollout == 25 }},
		{"notes", "1.0.0", url.Values{"notes": {"# New notes\n<b>bold</b>"}}, "release.update", func(r releases.Release) bool { return r.Notes == "# New notes\n<b>bold</b>" }},
		{"publish", "1.1.0", nil, "release.publish", nil}, // 1.1.0 has no artifact: see below
	}
	for _, c := range cases {
		t.Run(c.action, func(t *testing.T) {
			from := "/admin/products/app/releases/" + c.version
			before := f.auditCount(c.action2)
			p := b.post(from, from+"/"+c.action, c.form)
			if c.check == nil {
				// The service's own refusal, shown with its code; nothing changes.
				wantError(t, p, http.StatusConflict, portal.EConflict)
				if r := f.release("app", c.version); r.Status != releases.Draft || f.auditCount(c.action2) != before {
					t.Fatalf("refused publish changed %+v", r)
				}
				return
			}
			p = b.wantRedirect(p, from)
			if !strings.Contains(p.Body, `class="flash"`) {
				t.Fatalf("no notice after %s:\n%s", c.action, p.Body)
			}
			if r := f.release("app", c.version); !c.check(r) {
				t.Fatalf("after %s: %+v", c.action, r)
			}
			rec := f.lastAudit(c.action2)
			if f.auditCount(c.action2) != before+1 || rec.Actor.Kind != audit.KindPublisher || rec.Actor.Name != "rel" {
				t.Fatalf("audit: %d records, last %+v", f.auditCount(c.action2), rec)
			}
		})
	}
	// Notes are shown as Markdown with the HTML as text.
	p = b.do("GET", page, nil)
	if strings.Contains(p.Body, "<b>bold</b>") || !strings.Contains(p.Body, "&lt;b&gt;bold&lt;/b&gt;") {
		t.Fatalf("release notes HTML not escaped:\n%s", p.Body)
	}
	// Bad input: the API's error, nothing changed.
	before := f.release("app", "1.0.0")
	for _, form := range []url.Values{{"rollout": {"-5"}}, {"rollout": {"101"}}, {"rollout": {"lots"}}, {}} {
		wantError(t, b.post(page, page+"/rollout", form), http.StatusBadRequest, portal.EInvalid)
	}
	wantError(t, b.post(page, page+"/notes", url.Values{"notes": {"control \x00 character"}}), http.StatusBadRequest, portal.EInvalid)
	if after := f.release("app", "1.0.0"); after.Rollout != before.Rollout || after.Notes != before.Notes {
		t.Fatalf("refused edits changed the release: %+v", after)
	}
	wantError(t, b.post(page, "/admin/products/app/releases/9.9.9/yank", nil), http.StatusNotFound, portal.ENotFound)
}

// TestAdminPublisherScope: a publisher token sees and changes only its
// products, and none of the admin-only pages or actions; every refusal
// leaves the store as it was.
func TestAdminPublisherScope(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.product("other", "Other")
	f.publish("app", "1.0.0", "stable", "", build)
	f.publish("other", "1.0.0", "stable", "", build)
	lic, _ := f.license("Acme", []string{"other"}, nil)
	_, raw := f.token("rel", "publisher", "app")
	b := f.admin(raw)

	p := b.do("GET", "/admin/products", nil)
	if !strings.Contains(p.Body, `href="/admin/products/app"`) || strings.Contains(p.Body, `/admin/products/other`) {
		t.Fatalf("a publisher of app sees:\n%s", p.Body)
	}
	if strings.Contains(p.Body, `href="/admin/licenses"`) {
		t.Fatal("a publisher's navigation offers the licenses")
	}
	p = b.do("GET", "/admin/downloads", nil)
	if !strings.Contains(p.Body, "<h2>App</h2>") || strings.Contains(p.Body, "<h2>Other</h2>") {
		t.Fatalf("a publisher's downloads page:\n%s", p.Body)
	}
	audits := f.auditCount("")
	for _, c := range []struct{ method, path string }{
		{"GET", "/admin/products/other"},
		{"GET", "/admin/products/other/releases/1.0.0"},
		{"POST", "/admin/products/other/releases/1.0.0/yank"},
		{"POST", "/admin/products/other/releases/1.0.0/rollout"},
		{"POST", "/admin/products/other/releases/1.0.0/notes"},
		{"GET", "/admin/licenses"},
		{"GET", "/admin/licenses/new"},
		{"GET", "/admin/licenses/" + lic.ID},
		{"POST", "/admin/licenses"},
		{"POST", "/admin/licenses/" + lic.ID + "/suspend"},
		{"POST", "/admin/licenses/" + lic.ID + "/reissue"},
		{"GET", "/admin/tokens"},
		{"POST", "/admin/tokens"},
		{"GET", "/admin/audit"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			var p page
			if c.method == "GET" {
				p = b.do("GET", c.path, nil)
			} else {
				p = b.post("/admin/products", c.path, url.Values{"rollout": {"5"}, "notes": {"x"}, "customer": {"Mallory"},
					"product": {"other"}, "name": {"x"}, "role": {"admin"}})
			}
			wantError(t, p, http.StatusForbidden, portal.EForbidden)
		})
	}
	if r := f.release("other", "1.0.0"); r.Status != releases.Published || r.Rollout != 0 || r.Notes != "" {
		t.Fatalf("other's release changed: %+v", r)
	}
	if l := f.getLicense(lic.ID); l.Status != licenses.Active || l.KeyDigest != lic.KeyDigest {
		t.Fatalf("license changed: %+v", l)
	}
	// No refusal wrote an audit record.
	if n := f.auditCount(""); n != audits {
		t.Fatalf("%d audit records after refusals, want %d", n, audits)
	}
}

// TestAdminCSRF: every console action posted without the session's CSRF
// token, or with another session's, is refused with 403 before it runs.
func TestAdminCSRF(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "", build)
	lic, _ := f.license("Acme", []string{"app"}, nil)
	tok, raw := f.token("ops", "admin")
	b := f.admin(raw)
	other := f.admin(raw) // another session of the same token
	otherCSRF := csrfOf(t, other.do("GET", "/admin/products", nil).Body)

	audits := f.auditCount("")
	actions := []string{
		"/admin/products/app/releases/1.0.0/yank", "/admin/products/app/releases/1.0.0/rollout",
		"/admin/products/app/releases/1.0.0/notes", "/admin/licenses", "/admin/licenses/" + lic.ID + "/edit",
		"/admin/licenses/" + lic.ID + "/renew", "/admin/licenses/" + lic.ID + "/suspend", "/admin/licenses/" + lic.ID + "/revoke",
		"/admin/licenses/" + lic.ID + "/reissue", "/admin/tokens", "/admin/tokens/" + tok.ID + "/revoke", "/admin/signout",
	}
	form := url.Values{"rollout": {"5"}, "notes": {"x"}, "customer": {"Mallory"}, "product": {"app"}, "expires_at": {"2030-01-01"},
		"confirm": {"yes"}, "name": {"x"}, "role": {"admin"}}
	for _, a := range actions {
		for _, csrf := range []string{"", "forged", otherCSRF} {
			t.Run(fmt.Sprintf("%s csrf=%q", a, csrf), func(t *testing.T) {
				f2 := url.Values{}
				for k, v := range form {
					f2[k] = v
				}
				if csrf != "" {
					f2.Set("csrf", csrf)
				}
				wantError(t, b.do("POST", a, f2), http.StatusForbidden, portal.EForbidden)
			})
		}
	}
	if n := f.auditCount(""); n != audits {
		t.Fatalf("refused posts wrote %d audit records", n-audits)
	}
	if r := f.release("app", "1.0.0"); r.Status != releases.Published || r.Rollout != 0 || r.Notes != "" {
		t.Fatalf("release changed: %+v", r)
	}
	if l := f.getLicense(lic.ID); l.Status != licenses.Active || l.Customer != "Acme" || l.ExpiresAt != nil || l.KeyDigest != lic.KeyDigest {
		t.Fatalf("license changed: %+v", l)
	}
	if ts, _ := f.App.Tokens.List(context.Background()); len(ts) != 1 {
		t.Fatalf("%d tokens", len(ts))
	}
	// The session still works.
	if p := b.do("GET", "/admin/tokens", nil); p.Status != http.StatusOK {
		t.Fatalf("session after refused posts: %d", p.Status)
	}
}

var secretRE = regexp.MustCompile(`id="secret" class="mono" readonly value="([^"]+)"`)

// shownSecret returns the secret of a show-once page, checking that the
// page is the POST's own answer and the secret is in no header.
func shownSecret(t *testing.T, p page, status int) string {
	t.Helper()
	m := secretRE.FindStringSubmatch(p.Body)
	if p.Status != status || m == nil || !strings.Contains(p.Body, `data-copy="secret"`) {
		t.Fatalf("show-once page: %d\n%s", p.Status, p.Body)
	}
	s := html.UnescapeString(m[1])
	for k, vs := range p.Header {
		for _, v := range vs {
			if strings.Contains(v, s) {
				t.Fatalf("the secret is in the %s header", k)
			}
		}
	}
	if p.Header.Get("Location") != "" || !strings.Contains(p.Header.Get("Cache-Control"), "no-store") {
		t.Fatalf("show-once page: Location %q, Cache-Control %q", p.Header.Get("Location"), p.Header.Get("Cache-Control"))
	}
	return s
}

var licenseLinkRE = regexp.MustCompile(`href="/admin/licenses/([0-9a-f]{16})"`)

// TestAdminLicenses: create (the key shown once), search and filter, edit,
// renew, suspend, reinstate, revoke, reissue, through the same service
// calls as the API, with bad input refused and nothing changed.
func TestAdminLicenses(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.product("tool", "Tool")
	f.publish("app", "1.0.0", "stable", "", build)
	_, raw := f.token("ops", "admin")
	b := f.admin(raw)

	p := b.do("GET", "/admin/licenses/new", nil)
	for _, want := range []string{`<label for="customer">Customer</label>`, `value="app"`, `value="tool"`, `<label for="expires_at">`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("new license form lacks %s:\n%s", want, p.Body)
		}
	}
	p = b.post("/admin/licenses/new", "/admin/licenses", url.Values{"customer": {"Acme <Corp>"}, "product": {"app"},
		"expires_at": {"2020-01-01"}, "on_expiry": {"revoke"}, "downloads_per_day": {"5"}})
	key := shownSecret(t, p, http.StatusCreated)
	if !strings.Contains(p.Body, "Acme &lt;Corp&gt;") {
		t.Fatalf("customer not escaped:\n%s", p.Body)
	}
	l, err := f.App.Licenses.ByKey(context.Background(), key)
	if err != nil || l.Customer != "Acme <Corp>" || l.DownloadsPerDay != 5 || l.StatusAt(time.Now()) != licenses.Expired {
		t.Fatalf("shown key: %+v %v", l, err)
	}
	if rec := f.lastAudit(licenses.ActionCreate); rec.Actor.Kind != audit.KindAdmin || strings.Contains(string(rec.After), key) {
		t.Fatalf("create record %+v", rec)
	}
	lp := "/admin/licenses/" + l.ID
	// The key is on no later page.
	if p := b.do("GET", lp, nil); strings.Contains(p.Body, key) || !strings.Contains(p.Body, "expired") {
		t.Fatalf("license page: key shown again or status missing:\n%s", p.Body)
	}
	other, _ := f.license("Globex", []string{"tool"}, nil)

	// Search by customer, filter by status and product.
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"customer=acme", []string{l.ID}},
		{"customer=GLOB", []string{other.ID}},
		{"status=expired", []string{l.ID}},
		{"status=active", []string{other.ID}},
		{"product=tool", []string{other.ID}},
		{"expires_before=2021-01-01", []string{l.ID}},
		{"expires_before=2019-12-31T00:00:00Z", nil},
		{"", []string{l.ID, other.ID}},
		{"customer=nobody", nil},
	} {
		p := b.do("GET", "/admin/licenses?"+c.query, nil)
		var got []string
		for _, m := range licenseLinkRE.FindAllStringSubmatch(p.Body, -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		slices.Sort(c.want)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("?%s: %v, want %v", c.query, got, c.want)
		}
	}
	wantError(t, b.do("GET", "/admin/licenses?status=sleeping", nil), http.StatusBadRequest, portal.EInvalid)
	wantError(t, b.do("GET", "/admin/licenses?expires_before=soon", nil), http.StatusBadRequest, portal.EInvalid)

	// Renew: expired to active.
	p = b.wantRedirect(b.post(lp, lp+"/renew", url.Values{"expires_at": {"2031-06-30"}}), lp)
	if l := f.getLicense(l.ID); l.ExpiresAt == nil || l.ExpiresAt.Format(time.DateOnly) != "2031-06-30" || l.StatusAt(time.Now()) != licenses.Active {
		t.Fatalf("after renew: %+v", l)
	}
	if !strings.Contains(p.Body, "License renewed until 2031-06-30") {
		t.Fatalf("renew notice:\n%s", p.Body)
	}
	// Edit every field.
	b.wantRedirect(b.post(lp, lp+"/edit", url.Values{"customer": {"Acme Corp"}, "product": {"app", "tool"}, "constraint": {">= 1.0"},
		"channel": {"stable", "beta"}, "platforms": {"linux"}, "expires_at": {""}, "on_expiry": {"maintain"}, "downloads_per_day": {"0"}}), lp)
	l = f.getLicense(l.ID)
	if l.Customer != "Acme Corp" || len(l.Products) != 2 || l.Constraint != ">= 1.0" || len(l.Channels) != 2 || l.ExpiresAt != nil ||
		l.OnExpiry != licenses.OnExpiryMaintain || l.DownloadsPerDay != 0 {
		t.Fatalf("after edit: %+v", l)
	}
	// Bad input: the API's message, nothing changed.
	edits := f.auditCount(licenses.ActionUpdate)
	for name, c := range map[string]struct {
		action string
		form   url.Values
		status int
		code   string
	}{
		"bad date":           {"/renew", url.Values{"expires_at": {"next year"}}, 400, portal.EInvalid},
		"no date":            {"/renew", url.Values{}, 400, portal.EInvalid},
		"bad constraint":     {"/edit", url.Values{"customer": {"X"}, "product": {"app"}, "constraint": {"~~ 1"}}, 400, portal.EInvalid},
		"no customer":        {"/edit", url.Values{"customer": {""}, "product": {"app"}}, 400, portal.EInvalid},
		"no product":         {"/edit", url.Values{"customer": {"X"}}, 400, portal.EInvalid},
		"unknown product":    {"/edit", url.Values{"customer": {"X"}, "product": {"nope"}}, 0, ""},
		"bad channel":        {"/edit", url.Values{"customer": {"X"}, "product": {"app"}, "channel": {"nightly"}}, 400, portal.EInvalid},
		"bad quota":          {"/edit", url.Values{"customer": {"X"}, "product": {"app"}, "downloads_per_day": {"-1"}}, 400, portal.EInvalid},
		"revoke unconfirmed": {"/revoke", url.Values{}, 400, portal.EInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			p := b.post(lp, lp+c.action, c.form)
			if c.status == 0 {
				if p.Status/100 != 4 || !strings.Contains(p.Body, `class="card error"`) {
					t.Fatalf("answer %d:\n%s", p.Status, p.Body)
				}
				return
			}
			wantError(t, p, c.status, c.code)
		})
	}
	if after := f.getLicense(l.ID); after.Customer != l.Customer || after.Constraint != l.Constraint || after.Status != licenses.Active ||
		f.auditCount(licenses.ActionUpdate) != edits {
		t.Fatalf("refused edits changed the license: %+v", after)
	}
	wantError(t, b.post(lp, "/admin/licenses/nosuch/suspend", nil), http.StatusNotFound, portal.ENotFound)
	wantError(t, b.do("GET", "/admin/licenses/nosuch", nil), http.StatusNotFound, portal.ENotFound)

	// Suspend, reinstate, reissue, revoke.
	for _, c := range []struct {
		action string
		want   string
	}{{"suspend", licenses.Suspended}, {"reinstate", licenses.Active}} {
		b.wantRedirect(b.post(lp, lp+"/"+c.action, nil), lp)
		if got := f.getLicense(l.ID).Status; got != c.want {
			t.Fatalf("after %s: %s", c.action, got)
		}
	}
	newKey := shownSecret(t, b.post(lp, lp+"/reissue", nil), http.StatusOK)
	if _, err := f.App.Licenses.ByKey(context.Background(), key); portal.ErrorCode(err) != portal.EUnauthorized {
		t.Fatalf("old key after reissue: %v", err)
	}
	if got, err := f.App.Licenses.ByKey(context.Background(), newKey); err != nil || got.ID != l.ID {
		t.Fatalf("new key: %+v %v", got, err)
	}
	b.wantRedirect(b.post(lp, lp+"/revoke", url.Values{"confirm": {"yes"}}), lp)
	if got := f.getLicense(l.ID).Status; got != licenses.Revoked {
		t.Fatalf("after revoke: %s", got)
	}
	wantError(t, b.post(lp, lp+"/reinstate", nil), http.StatusConflict, portal.EConflict)
}

// TestAdminLicenseDownloadsAndLinks: a license's page lists its downloads
// and share links, and revokes a link.
func TestAdminLicenseDownloadsAndLinks(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "", build)
	lic, _ := f.license("Acme", []string{"app"}, func(l *licenses.License) { l.DownloadsPerDay = 9 })
	_, raw := f.token("ops", "admin")
	f.App.Ledger.Record(ledger.Grant{License: lic.ID, Product: "app", Version: "1.0.0", Filename: build.Name, Client: "192.0.2.7"})
	if err := f.App.Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tok, err := f.App.Tokens.Authenticate(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx, err := f.App.Downloads.ActAs(auditcaller.NewContext(context.Background(), access.ForToken(tok)), lic.ID)
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.App.Server.Resolver.Resolve(ctx, updates.Request{Product: "app", Version: "1.0.0", Filename: build.Name})
	if err != nil {
		t.Fatal(err)
	}
	link, _, err := f.App.Downloads.CreateLink(ctx, res, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	b := f.admin(raw)
	lp := "/admin/licenses/" + lic.ID
	p := b.do("GET", lp, nil)
	for _, want := range []string{"192.0.2.7", build.Name, "links/" + link.ID + "/revoke", "of 9"} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("license page lacks %q:\n%s", want, p.Body)
		}
	}
	b.wantRedirect(b.post(lp, lp+"/links/"+link.ID+"/revoke", nil), lp+"#links")
	ls, _ := f.App.Links.List(context.Background(), lic.ID)
	if len(ls) != 1 || ls[0].RevokedAt == nil {
		t.Fatalf("links after revoke: %+v", ls)
	}
	wantError(t, b.post(lp, lp+"/links/nosuch/revoke", nil), http.StatusNotFound, portal.ENotFound)

	// Send a link on the license's behalf: the URL shown once works
	// without a session, the record names the admin.
	p = b.do("GET", lp, nil)
	m := regexp.MustCompile(`<option value="([^"]+)">app 1.0.0`).FindStringSubmatch(p.Body)
	ttl := regexp.MustCompile(`<option value="([^"]+)" selected>`).FindStringSubmatch(p.Body)
	if m == nil || ttl == nil {
		t.Fatalf("no link form:\n%s", p.Body)
	}
	buildValue := html.UnescapeString(m[1])
	p = b.post(lp, lp+"/links", url.Values{"build": {buildValue}, "ttl": {ttl[1]}})
	u := shownSecret(t, p, http.StatusCreated)
	if !strings.HasPrefix(u, f.URL+"/d/") || p.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("link %q, Referrer-Policy %q", u, p.Header.Get("Referrer-Policy"))
	}
	resp, err := f.Client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the new link answers %s", resp.Status)
	}
	if rec := f.lastAudit("link.create"); rec.Actor.Kind != audit.KindAdmin || rec.Actor.Name != "ops" || strings.Contains(string(rec.After), u[len(f.URL)+3:]) {
		t.Fatalf("link record %+v", rec)
	}
	// Refusals: a bad choice, and a suspended license shares nothing.
	links := f.auditCount("link.create")
	wantError(t, b.post(lp, lp+"/links", url.Values{"build": {"app|9.9.9|x"}, "ttl": {ttl[1]}}), http.StatusNotFound, portal.ENotFound)
	wantError(t, b.post(lp, lp+"/links", url.Values{"build": {buildValue}, "ttl": {"1000h"}}), http.StatusBadRequest, portal.EInvalid)
	wantError(t, b.post(lp, lp+"/links", url.Values{"build": {"nonsense"}, "ttl": {ttl[1]}}), http.StatusBadRequest, portal.EInvalid)
	if _, err := f.App.Licenses.Suspend(cliCtx, lic.ID); err != nil {
		t.Fatal(err)
	}
	wantError(t, b.post(lp, lp+"/links", url.Values{"build": {buildValue}, "ttl": {ttl[1]}}), http.StatusForbidden, portal.ELicenseSuspended)
	if n := f.auditCount("link.create"); n != links {
		t.Fatalf("refused links wrote %d records", n-links)
	}
}

// TestAdminTokens: create (shown once, usable), list, revoke.
func TestAdminTokens(t *testing.T) {
	f := newFixture(t, nil)
	_, raw := f.token("ops", "admin")
	b := f.admin(raw)
	p := b.post("/admin/tokens", "/admin/tokens", url.Values{"name": {"ci <bot>"}, "role": {"publisher"}, "products": {"app, tool"}})
	secret := shownSecret(t, p, http.StatusCreated)
	tok, err := f.App.Tokens.Authenticate(context.Background(), secret)
	if err != nil || tok.Name != "ci <bot>" || tok.Role != tokens.Publisher || len(tok.Products) != 2 {
		t.Fatalf("created token %+v %v", tok, err)
	}
	p = b.do("GET", "/admin/tokens", nil)
	if !strings.Contains(p.Body, "ci &lt;bot&gt;") || strings.Contains(p.Body, secret) || !strings.Contains(p.Body, "this session") {
		t.Fatalf("tokens page:\n%s", p.Body)
	}
	wantError(t, b.post("/admin/tokens", "/admin/tokens", url.Values{"name": {"x"}, "role": {"root"}}), http.StatusBadRequest, portal.EInvalid)
	wantError(t, b.post("/admin/tokens", "/admin/tokens", url.Values{"name": {"x"}, "role": {"publisher"}}), http.StatusBadRequest, portal.EInvalid)
	if ts, _ := f.App.Tokens.List(context.Background()); len(ts) != 2 {
		t.Fatalf("%d tokens after refused creations", len(ts))
	}
	b.wantRedirect(b.post("/admin/tokens", "/admin/tokens/"+tok.ID+"/revoke", nil), "/admin/tokens")
	if _, err := f.App.Tokens.Authenticate(context.Background(), secret); err == nil {
		t.Fatal("revoked token still authenticates")
	}
	if rec := f.lastAudit("token.delete"); rec.Actor.Name != "ops" {
		t.Fatalf("delete record %+v", rec)
	}
	wantError(t, b.post("/admin/tokens", "/admin/tokens/nosuch/revoke", nil), http.StatusNotFound, portal.ENotFound)
}

// TestAdminAudit: the log filtered by actor, action, target and time,
// paged by the cursor.
func TestAdminAudit(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	_, raw := f.token("ops", "admin")
	b := f.admin(raw)
	// 60 suspensions by the console: more than a page.
	lic, _ := f.license("Acme", []string{"app"}, nil)
	lp := "/admin/licenses/" + lic.ID
	for i := range 30 {
		b.post(lp, lp+"/suspend", nil)
		b.post(lp, lp+"/reinstate", nil)
		_ = i
	}
	p := b.do("GET", "/admin/audit?action=license&actor=admin&target=license/"+lic.ID+"&since="+time.Now().UTC().Format(time.DateOnly), nil)
	if n := strings.Count(p.Body, "<td class=\"mono\">license."); n != 50 {
		t.Fatalf("first page: %d records, want 50\n%s", n, p.Body)
	}
	m := regexp.MustCompile(`href="(/admin/audit\?[^"]+)">Older records`).FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatal("no next page link")
	}
	next := html.UnescapeString(m[1])
	if !strings.Contains(next, "action=license") || !strings.Contains(next, "cursor=") {
		t.Fatalf("next page link %s", next)
	}
	p = b.do("GET", next, nil)
	if n := strings.Count(p.Body, "<td class=\"mono\">license."); n != 10 {
		t.Fatalf("second page: %d records, want 10", n)
	}
	if strings.Contains(p.Body, "Older records") {
		t.Fatal("a next link after the last page")
	}
	// Filters that select nothing.
	for _, q := range []string{"action=token", "actor=publisher", "target=release/", "until=2000-01-01"} {
		if p := b.do("GET", "/admin/audit?"+q, nil); strings.Contains(p.Body, "<td class=\"mono\">license.") {
			t.Errorf("?%s shows license records", q)
		}
	}
	wantError(t, b.do("GET", "/admin/audit?since=yesterday", nil), http.StatusBadRequest, portal.EInvalid)
}

// TestAdminDownloads: the chart and the totals per product.
func TestAdminDownloads(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.product("tool", "Tool")
	now := time.Now().UTC()
	for i := range 4 {
		f.App.Ledger.Record(ledger.Grant{Product: "app", Version: "1.0.0", Filename: "f", Time: now.AddDate(0, 0, -i)})
	}
	f.App.Ledger.Record(ledger.Grant{Product: "app", Version: `2.0.0`, Filename: "f", Time: now})
	f.App.Ledger.Record(ledger.Grant{Product: "app", Version: "0.1.0", Filename: "f", Time: now.AddDate(0, 0, -40)})
	if err := f.App.Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, raw := f.token("ops", "admin")
	p := f.admin(raw).do("GET", "/admin/downloads", nil)
	for _, want := range []string{
		"<strong>6</strong> downloads in total, 5 in these 30 days",
		"<strong>0</strong> downloads in total, 0 in these 30 days",
		`role="img"`, "1.0.0 (4)", "2.0.0 (1)", "No downloads in these 30 days",
	} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("downloads page lacks %q:\n%s", want, p.Body)
		}
	}
	if strings.Count(p.Body, "<svg") != 2 || strings.Contains(p.Body, "0.1.0 (") {
		t.Fatalf("charts:\n%s", p.Body)
	}
}

// TestAdminFailedSignIns: wrong tokens posted to the console count
// against the API's failed-authentication limit (429 past it, for the
// console and the API alike); a valid token still signs in.
func TestAdminFailedSignIns(t *testing.T) {
	f := newFixture(t, map[string]string{"limits.auth_failures_per_minute": "3"})
	_, raw := f.token("ops", "admin")
	b := f.browser()
	for i := range 3 {
		p := b.adminSignIn("ptk_" + strings.Repeat(string(rune('A'+i)), 32))
		wantError(t, p, http.StatusUnauthorized, portal.EUnauthorized)
		if p.Cookie["portal_admin"] != nil {
			t.Fatalf("wrong token %d set a session", i)
		}
	}
	p := b.adminSignIn("ptk_" + strings.Repeat("Z", 32))
	wantError(t, p, http.StatusTooManyRequests, portal.ERateLimited)
	if p.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	req, _ := http.NewRequest("GET", f.URL+"/v1/tokens", nil)
	req.Header.Set("Authorization", "Bearer ptk_"+strings.Repeat("Y", 32))
	res, err := f.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the API after the console's failures: %s, want 429", res.Status)
	}
	if p := b.adminSignIn(raw); p.Status != http.StatusSeeOther || p.Cookie["portal_admin"] == nil {
		t.Fatalf("a valid token over the limit: %d\n%s", p.Status, p.Body)
	}
}
