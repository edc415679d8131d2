package web_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/webhooks"
)

// wantActor checks that the newest record of action names the token (its
// id and name) as the actor.
func (f *fixture) wantActor(action, kind, tokenID, tokenName string) {
	f.t.Helper()
	rec := f.lastAudit(action)
	if rec.Actor.Kind != kind || rec.Actor.ID != tokenID || rec.Actor.Name != tokenName {
		f.t.Fatalf("%s audited as %+v, want %s %s (%s)", action, rec.Actor, kind, tokenID, tokenName)
	}
}

// products are the catalog's product slugs.
func (f *fixture) products() []string {
	f.t.Helper()
	ps, err := f.App.Catalog.Products(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Slug)
	}
	return out
}

// TestAdminProductAdministration: an admin creates, edits and deletes
// products from the console, as POST, PATCH and DELETE /v1/products; bad
// input, a missing CSRF token and a publisher are refused with nothing
// changed; every change is audited as the signed-in token.
func TestAdminProductAdministration(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "", build)
	tok, raw := f.token("ops", "admin")
	b := f.admin(raw)

	p := b.do("GET", "/admin/products", nil)
	for _, want := range []string{`<form method="post" action="/admin/products"`, `<label for="p-slug">`, `<label for="p-distribution">`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("products page lacks %s:\n%s", want, p.Body)
		}
	}

	// Create.
	p = b.post("/admin/products", "/admin/products", url.Values{"slug": {"tool"}, "name": {"The Tool"}, "distribution": {"open"}})
	p = b.wantRedirect(p, "/admin/products/tool")
	if !strings.Contains(p.Body, "Product tool created.") {
		t.Fatalf("no notice:\n%s", p.Body)
	}
	tool, err := f.App.Catalog.Product(context.Background(), "tool")
	if err != nil || tool.Name != "The Tool" || tool.Distribution != releases.Open || len(tool.SigningKey) == 0 {
		t.Fatalf("created product %+v %v", tool.Public(), err)
	}
	f.wantActor("product.create", audit.KindAdmin, tok.ID, "ops")

	// Bad input and a missing CSRF token: refused, nothing created.
	bad := []struct {
		form   url.Values
		status int
		code   string
	}{
		{url.Values{"slug": {"Bad Slug"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"slug": {""}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"slug": {"new"}, "distribution": {"free"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"slug": {"new"}, "name": {"bell \a"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"slug": {"tool"}}, http.StatusConflict, portal.EConflict},
	}
	creates := f.auditCount("product.create")
	for _, c := range bad {
		wantError(t, b.post("/admin/products", "/admin/products", c.form), c.status, c.code)
	}
	wantError(t, b.do("POST", "/admin/products", url.Values{"slug": {"new"}}), http.StatusForbidden, portal.EForbidden)
	if got := f.products(); len(got) != 2 || f.auditCount("product.create") != creates {
		t.Fatalf("refused creates left products %v", got)
	}

	// Edit: name and distribution, as PATCH /v1/products/{product}.
	page := "/admin/products/tool"
	b.wantRedirect(b.post(page, page+"/edit", url.Values{"name": {"Tool Pro"}, "distribution": {"licensed"}}), page)
	if tool, _ = f.App.Catalog.Product(context.Background(), "tool"); tool.Name != "Tool Pro" || tool.Distribution != releases.Licensed {
		t.Fatalf("edited product %+v", tool.Public())
	}
	f.wantActor("product.update", audit.KindAdmin, tok.ID, "ops")
	updates := f.auditCount("product.update")
	for _, form := range []url.Values{{"name": {""}, "distribution": {"open"}}, {"name": {"X"}, "distribution": {"public"}}} {
		wantError(t, b.post(page, page+"/edit", form), http.StatusBadRequest, portal.EInvalid)
	}
	wantError(t, b.do("POST", page+"/edit", url.Values{"name": {"Sneaky"}, "distribution": {"open"}}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.post(page, "/admin/products/nope/edit", url.Values{"name": {"X"}, "distribution": {"open"}}), http.StatusNotFound, portal.ENotFound)
	if tool, _ = f.App.Catalog.Product(context.Background(), "tool"); tool.Name != "Tool Pro" || tool.Distribution != releases.Licensed || f.auditCount("product.update") != updates {
		t.Fatalf("refused edits changed the product: %+v", tool.Public())
	}

	// A publisher of both products: none of this.
	_, pubRaw := f.token("rel", "publisher", "app", "tool")
	pub := f.admin(pubRaw)
	if p := pub.do("GET", "/admin/products", nil); strings.Contains(p.Body, `action="/admin/products"`) {
		t.Fatal("a publisher is offered the new product form")
	}
	if p := pub.do("GET", page, nil); strings.Contains(p.Body, page+"/edit") || strings.Contains(p.Body, page+"/delete") {
		t.Fatal("a publisher is offered the product's settings")
	}
	for _, c := range []struct {
		action string
		form   url.Values
	}{
		{"/admin/products", url.Values{"slug": {"pubs"}}},
		{page + "/edit", url.Values{"name": {"Pub"}, "distribution": {"open"}}},
		{page + "/delete", url.Values{"confirm": {"yes"}}},
	} {
		wantError(t, pub.post("/admin/products", c.action, c.form), http.StatusForbidden, portal.EForbidden)
	}
	if got := f.products(); len(got) != 2 {
		t.Fatalf("a publisher changed the products: %v", got)
	}

	// Delete: refused while a product has a published release; a product
	// with nothing but drafts goes.
	yes := url.Values{"confirm": {"yes"}}
	wantError(t, b.post("/admin/products/app", "/admin/products/app/delete", yes), http.StatusConflict, portal.EConflict)
	wantError(t, b.do("POST", page+"/delete", url.Values{"confirm": {"yes"}}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.post(page, page+"/delete", nil), http.StatusBadRequest, portal.EInvalid)
	if got := f.products(); len(got) != 2 {
		t.Fatalf("refused deletes left %v", got)
	}
	if _, err := f.App.Catalog.CreateRelease(cliCtx, "tool", releases.NewRelease{Version: "0.1.0"}); err != nil {
		t.Fatal(err)
	}
	p = b.wantRedirect(b.post(page, page+"/delete", yes), "/admin/products")
	if !strings.Contains(p.Body, "Product tool deleted.") {
		t.Fatalf("no notice:\n%s", p.Body)
	}
	if got := f.products(); len(got) != 1 || got[0] != "app" {
		t.Fatalf("after the delete: %v", got)
	}
	f.wantActor("product.delete", audit.KindAdmin, tok.ID, "ops")
}

// draftWithFile declares an artifact on a draft and uploads it; it
// returns the artifact's object key.
func (f *fixture) draftWithFile(product, version string, fl file) string {
	f.t.Helper()
	f.upload(product, version, fl)
	for _, a := range f.release(product, version).Artifacts {
		if a.Filename == fl.Name {
			return a.ObjectKey
		}
	}
	f.t.Fatalf("no artifact %s", fl.Name)
	return ""
}

// TestAdminDrafts: a publisher creates a draft release from the console,
// moves it to another channel and deletes it (with its uploaded file), as
// POST, PATCH and DELETE /v1/products/{product}/releases; published
// releases cannot be deleted, bad input and other products are refused.
func TestAdminDrafts(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.product("other", "Other")
	f.publish("app", "1.0.0", "stable", "", build)
	tok, raw := f.token("rel", "publisher", "app")
	b := f.admin(raw)
	page := "/admin/products/app"

	p := b.do("GET", page, nil)
	for _, want := range []string{`action="/admin/products/app/releases"`, `<label for="r-version">`, `<label for="r-channel">`, `<label for="r-notes">`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("product page lacks %s:\n%s", want, p.Body)
		}
	}
	// The product's public keys, as GET /v1/products/{product}/keys.
	keys, err := f.App.Keys.Describe(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`value="` + keys.Current.Sparkle + `"`, `value="` + keys.Current.Minisign + `"`, `data-copy="k-sparkle"`} {
		if !strings.Contains(html.UnescapeString(p.Body), want) {
			t.Fatalf("product page lacks %s:\n%s", want, p.Body)
		}
	}
	p = b.post(page, page+"/releases", url.Values{"version": {"2.0.0-beta.1"}, "channel": {"beta"}, "notes": {"line one\r\nline two"}})
	rel := "/admin/products/app/releases/2.0.0-beta.1"
	p = b.wantRedirect(p, rel)
	for _, want := range []string{"Draft 2.0.0-beta.1 created", `action="` + rel + `/delete"`, `<label for="channel">`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("draft page lacks %s:\n%s", want, p.Body)
		}
	}
	if r := f.release("app", "2.0.0-beta.1"); r.Status != releases.Draft || r.Channel != "beta" || r.Notes != "line one\nline two" {
		t.Fatalf("created draft %+v", r)
	}
	f.wantActor("release.create", audit.KindPublisher, tok.ID, "rel")

	creates := f.auditCount("release.create")
	for _, c := range []struct {
		form   url.Values
		status int
		code   string
	}{
		{url.Values{"version": {"not a version"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"version": {"3.0.0-rc.1"}, "channel": {"stable"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"version": {"3.0.0"}, "channel": {"nightly"}}, http.StatusBadRequest, portal.EInvalid},
		{url.Values{"version": {"1.0.0"}}, http.StatusConflict, portal.EConflict},
	} {
		wantError(t, b.post(page, page+"/releases", c.form), c.status, c.code)
	}
	wantError(t, b.do("POST", page+"/releases", url.Values{"version": {"3.0.0"}}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.post(page, "/admin/products/other/releases", url.Values{"version": {"3.0.0"}}), http.StatusForbidden, portal.EForbidden)
	if f.auditCount("release.create") != creates {
		t.Fatal("a refused create made a release")
	}

	// The channel of a draft, not of a published release.
	b.wantRedirect(b.post(rel, rel+"/channel", url.Values{"channel": {"rc"}}), rel)
	if r := f.release("app", "2.0.0-beta.1"); r.Channel != "rc" {
		t.Fatalf("channel now %s", r.Channel)
	}
	f.wantActor("release.update", audit.KindPublisher, tok.ID, "rel")
	wantError(t, b.post(rel, rel+"/channel", url.Values{"channel": {"nightly"}}), http.StatusBadRequest, portal.EInvalid)
	wantError(t, b.do("POST", rel+"/channel", url.Values{"channel": {"beta"}}), http.StatusForbidden, portal.EForbidden)
	if r := f.release("app", "2.0.0-beta.1"); r.Channel != "rc" {
		t.Fatalf("refused channel changes left %s", r.Channel)
	}
	if p := b.do("GET", page+"/releases/1.0.0", nil); strings.Contains(p.Body, `<label for="channel">`) || strings.Contains(p.Body, "/1.0.0/delete") {
		t.Fatal("a published release offers a channel change or a delete")
	}
	p = b.post(page+"/releases/1.0.0", page+"/releases/1.0.0/channel", url.Values{"channel": {"beta"}})
	if p.Status < 400 || f.release("app", "1.0.0").Channel != "stable" {
		t.Fatalf("channel change of a published release: %d", p.Status)
	}

	// Delete a draft with an uploaded file: the release and its object go.
	key := f.draftWithFile("app", "2.0.0-beta.1", file{"app-2.0.0-beta.1.tar.gz", "linux", "amd64", []byte("beta build")})
	if _, err := f.App.Objects.Stat(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	// An artifact of a draft goes with its object; one of a published
	// release stays.
	key2 := f.draftWithFile("app", "2.0.0-beta.1", file{"app-2.0.0-beta.1.zip", "windows", "amd64", []byte("windows beta")})
	del := rel + "/artifacts/app-2.0.0-beta.1.zip/delete"
	if p := b.do("GET", rel, nil); !strings.Contains(p.Body, `action="`+del+`"`) {
		t.Fatalf("draft page lacks the artifact's delete:\n%s", p.Body)
	}
	wantError(t, b.do("POST", del, url.Values{}), http.StatusForbidden, portal.EForbidden)
	b.wantRedirect(b.post(rel, del, nil), rel)
	if as := f.release("app", "2.0.0-beta.1").Artifacts; len(as) != 1 || as[0].Filename != "app-2.0.0-beta.1.tar.gz" {
		t.Fatalf("artifacts after the delete: %+v", as)
	}
	if _, err := f.App.Objects.Stat(context.Background(), key2); portal.ErrorCode(err) != portal.ENotFound {
		t.Fatalf("the deleted artifact's object: %v", err)
	}
	f.wantActor("artifact.delete", audit.KindPublisher, tok.ID, "rel")
	p = b.post(page, page+"/releases/1.0.0/artifacts/"+build.Name+"/delete", nil)
	if p.Status < 400 || len(f.release("app", "1.0.0").Artifacts) != 1 {
		t.Fatalf("deleting an artifact of a published release: %d", p.Status)
	}
	wantError(t, b.do("POST", rel+"/delete", url.Values{}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.post(page, page+"/releases/1.0.0/delete", nil), http.StatusConflict, portal.EConflict)
	if f.release("app", "1.0.0").Status != releases.Published || f.release("app", "2.0.0-beta.1").Status != releases.Draft {
		t.Fatal("a refused delete deleted a release")
	}
	p = b.wantRedirect(b.post(page, rel+"/delete", nil), page)
	if !strings.Contains(p.Body, "Draft 2.0.0-beta.1 deleted.") || strings.Contains(p.Body, "2.0.0-beta.1</a>") {
		t.Fatalf("after the delete:\n%s", p.Body)
	}
	if _, err := f.App.Catalog.Release(context.Background(), "app", "2.0.0-beta.1"); portal.ErrorCode(err) != portal.ENotFound {
		t.Fatalf("deleted draft: %v", err)
	}
	if _, err := f.App.Objects.Stat(context.Background(), key); portal.ErrorCode(err) != portal.ENotFound {
		t.Fatalf("the deleted draft's object: %v", err)
	}
	f.wantActor("release.delete", audit.KindPublisher, tok.ID, "rel")
}

// receiver is a webhook endpoint that answers status and keeps what it
// was sent.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, body)
		r.sigs = append(r.sigs, req.Header.Get("Portal-Signature"))
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

// TestAdminWebhooks: an admin lists, creates (the secret shown once, and
// it is the one deliveries are signed with), and deletes webhooks, and
// sees a webhook's deliveries with their attempts; bad input, a missing
// CSRF token and a publisher are refused with nothing changed.
func TestAdminWebhooks(t *testing.T) {
	f := newFixture(t, map[string]string{"webhooks.allow_private_targets": "true", "webhooks.retry_base": "1h", "webhooks.retry_max": "2h"})
	f.product("app", "App")
	tok, raw := f.token("ops", "admin")
	b := f.admin(raw)
	recv := newReceiver(t, http.StatusServiceUnavailable)

	p := b.do("GET", "/admin/webhooks", nil)
	for _, want := range []string{"No webhooks yet.", `<label for="w-url">`, `value="release.published"`, `aria-current="page">Webhooks`} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("webhooks page lacks %s:\n%s", want, p.Body)
		}
	}
	// Bad input, no CSRF token: nothing is created.
	for _, form := range []url.Values{
		{"url": {"ftp://example.com/x"}, "event": {"release.published"}},
		{"url": {recv.URL}},
		{"url": {recv.URL}, "event": {"release.exploded"}},
	} {
		wantError(t, b.post("/admin/webhooks", "/admin/webhooks", form), http.StatusBadRequest, portal.EInvalid)
	}
	wantError(t, b.do("POST", "/admin/webhooks", url.Values{"url": {recv.URL}, "event": {"release.published"}}), http.StatusForbidden, portal.EForbidden)
	if hs, _ := f.App.Webhooks.List(context.Background()); len(hs) != 0 {
		t.Fatalf("refused creates made %+v", hs)
	}

	// Create: the secret is on the answer's own page, once.
	p = b.post("/admin/webhooks", "/admin/webhooks", url.Values{"url": {recv.URL + "/hook"}, "event": {"release.published", "release.yanked"}})
	secret := shownSecret(t, p, http.StatusCreated)
	if !strings.HasPrefix(secret, "whsec_") || !strings.Contains(p.Body, "keeps it sealed") || strings.Contains(p.Body, "digest") {
		t.Fatalf("shown secret %q:\n%s", secret, p.Body)
	}
	hs, _ := f.App.Webhooks.List(context.Background())
	if len(hs) != 1 || hs[0].URL != recv.URL+"/hook" || strings.Join(hs[0].Events, ",") != "release.published,release.yanked" {
		t.Fatalf("webhooks %+v", hs)
	}
	id := hs[0].ID
	f.wantActor("webhook.create", audit.KindAdmin, tok.ID, "ops")
	if p := b.do("GET", "/admin/webhooks", nil); strings.Contains(p.Body, secret) || !strings.Contains(p.Body, recv.URL+"/hook") {
		t.Fatalf("the list shows the secret or lacks the webhook:\n%s", p.Body)
	}

	// An event: its delivery, its failed attempt and its next retry.
	page := "/admin/webhooks/" + id
	if p := b.do("GET", page, nil); !strings.Contains(p.Body, "No deliveries yet") {
		t.Fatalf("webhook page before any event:\n%s", p.Body)
	}
	f.publish("app", "1.0.0", "stable", "", build)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds, _, err := f.App.Webhooks.Deliveries(context.Background(), id, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && len(ds[0].Attempts) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempted delivery: %+v", ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p = b.do("GET", page, nil)
	for _, want := range []string{"release.published", "HTTP <span class=\"mono\">503</span>", "retry at", `<span class="badge">pending</span><br><span class="muted">next try 20`, recv.URL + "/hook"} {
		if !strings.Contains(p.Body, want) {
			t.Fatalf("webhook page lacks %s:\n%s", want, p.Body)
		}
	}
	// The shown secret is the one the delivery was signed with.
	recv.mu.Lock()
	body, sig := recv.bodies[0], recv.sigs[0]
	recv.mu.Unlock()
	tsText, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		t.Fatalf("signature header %q: %v", sig, err)
	}
	if want := webhooks.Sign(secret, time.Unix(ts, 0), body); sig != want {
		t.Fatalf("delivery signed %q, with the shown secret %q", sig, want)
	}
	var ev webhooks.Event
	if json.Unmarshal(body, &ev) != nil || ev.Type != "release.published" {
		t.Fatalf("delivered %s", body)
	}

	// A publisher: no webhook page, no create, no delete.
	_, pubRaw := f.token("rel", "publisher", "app")
	pub := f.admin(pubRaw)
	if p := pub.do("GET", "/admin/products", nil); strings.Contains(p.Body, `href="/admin/webhooks"`) {
		t.Fatal("a publisher's navigation offers webhooks")
	}
	for _, path := range []string{"/admin/webhooks", page} {
		wantError(t, pub.do("GET", path, nil), http.StatusForbidden, portal.EForbidden)
	}
	csrf := csrfOf(t, pub.do("GET", "/admin/products", nil).Body)
	wantError(t, pub.do("POST", "/admin/webhooks", url.Values{"csrf": {csrf}, "url": {recv.URL}, "event": {"release.published"}}), http.StatusForbidden, portal.EForbidden)
	wantError(t, pub.do("POST", page+"/delete", url.Values{"csrf": {csrf}}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.do("POST", page+"/delete", url.Values{}), http.StatusForbidden, portal.EForbidden)
	wantError(t, b.post("/admin/webhooks", "/admin/webhooks/wh_0000000000000000/delete", nil), http.StatusNotFound, portal.ENotFound)
	wantError(t, b.do("GET", page+"?cursor=bogus", nil), http.StatusBadRequest, portal.EInvalid)
	if hs, _ := f.App.Webhooks.List(context.Background()); len(hs) != 1 {
		t.Fatalf("refused deletes left %+v", hs)
	}

	// Delete.
	p = b.wantRedirect(b.post(page, page+"/delete", nil), "/admin/webhooks")
	if !strings.Contains(p.Body, "Webhook "+id+" deleted.") || !strings.Contains(p.Body, "No webhooks yet.") {
		t.Fatalf("after the delete:\n%s", p.Body)
	}
	f.wantActor("webhook.delete", audit.KindAdmin, tok.ID, "ops")
	wantError(t, b.do("GET", page, nil), http.StatusNotFound, portal.ENotFound)
}

// TestAdminNotFound: an unknown path under /admin is the console's HTML
// 404 page, with the pages' headers and, signed in, the sign-out button;
// unknown API paths keep their JSON answer.
func TestAdminNotFound(t *testing.T) {
	f := newFixture(t, nil)
	_, raw := f.token("ops", "admin")
	for _, signedIn := range []bool{false, true} {
		b := f.browser()
		if signedIn {
			b = f.admin(raw)
		}
		// The last is an action's path, which takes only the form's POST.
		for _, path := range []string{"/admin/nope", "/admin/products/app/releases/1.0.0/nope", "/admin/licenses/x/y/z", "/admin/tokens/x/revoke"} {
			p := b.do("GET", path, nil)
			wantError(t, p, http.StatusNotFound, portal.ENotFound)
			if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("GET %s: Content-Type %s", path, ct)
			}
			if p.Header.Get("Content-Security-Policy") == "" || p.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Fatalf("GET %s: no page headers: %v", path, p.Header)
			}
			if !strings.Contains(p.Body, `<span class="tag">console</span>`) || strings.Contains(p.Body, `action="/admin/signout"`) != signedIn {
				t.Fatalf("GET %s (signed in %v): not the console's layout:\n%s", path, signedIn, p.Body)
			}
		}
	}
	// The sign-in's and sign-out's addresses, opened, lead to the console.
	for _, path := range []string{"/admin/signin", "/admin/signout"} {
		if p := f.do("GET", path, nil, nil); p.Status != http.StatusSeeOther || p.Header.Get("Location") != "/admin" {
			t.Fatalf("GET %s: %d to %q", path, p.Status, p.Header.Get("Location"))
		}
	}
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/nope", http.StatusNotFound},
		{"PUT", "/v1/products", http.StatusMethodNotAllowed},
	} {
		p := f.do(c.method, c.path, nil, nil)
		if p.Status != c.status || !strings.HasPrefix(p.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d %s", c.method, c.path, p.Status, p.Header.Get("Content-Type"))
		}
	}
}

// TestAdminReleaseNotesLimit: notes of the largest legal size, even
// non-ASCII and sent with the browser's CRLF line breaks, are saved (the
// form's bound is not the notes' limit); a byte more is refused with the
// notes limit; a form beyond any notes is refused as too large, not as a
// CSRF failure. Nothing changes on a refusal.
func TestAdminReleaseNotesLimit(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "old notes", build)
	_, raw := f.token("ops", "admin")
	b := f.admin(raw)
	page := "/admin/products/app/releases/1.0.0"

	// Notes of exactly releases.MaxNotes bytes: line breaks only (each
	// sent as %0D%0A, the most a byte becomes), then 2-byte runes and
	// line breaks.
	line := strings.Repeat("é", 31) + "\n" // 63 bytes
	legal := strings.Repeat(line, releases.MaxNotes/len(line))
	legal += strings.Repeat("x", releases.MaxNotes-len(legal))
	if len(legal) != releases.MaxNotes {
		t.Fatal(len(legal))
	}
	for _, notes := range []string{strings.Repeat("\n", releases.MaxNotes), legal} {
		sent := strings.ReplaceAll(notes, "\n", "\r\n")
		b.wantRedirect(b.post(page, page+"/notes", url.Values{"notes": {sent}}), page)
		if got := f.release("app", "1.0.0").Notes; got != notes {
			t.Fatalf("saved notes: %d bytes, want the %d sent", len(got), len(notes))
		}
	}

	updates := f.auditCount("release.update")
	p := b.post(page, page+"/notes", url.Values{"notes": {legal + "x"}})
	wantError(t, p, http.StatusBadRequest, portal.EInvalid)
	if !strings.Contains(p.Body, "notes is longer than 65536 bytes") {
		t.Fatalf("oversize notes:\n%s", p.Body)
	}
	// 160 KiB of notes, 480 KiB percent-encoded: over the notes form's
	// bound, under the server's.
	p = b.post(page, page+"/notes", url.Values{"notes": {strings.Repeat("é", 80<<10)}})
	wantError(t, p, http.StatusRequestEntityTooLarge, portal.ETooLarge)
	// Other forms keep the small bound.
	wantError(t, b.post(page, page+"/rollout", url.Values{"rollout": {"50"}, "pad": {strings.Repeat("x", 70<<10)}}), http.StatusRequestEntityTooLarge, portal.ETooLarge)
	if r := f.release("app", "1.0.0"); r.Notes != legal || r.Rollout != 0 || f.auditCount("release.update") != updates {
		t.Fatalf("refused edits changed the release: %d bytes of notes, rollout %d", len(r.Notes), r.Rollout)
	}
}

// TestAdminMetadata: a release's and a license's metadata are edited as
// key=value lines, as PATCH replaces them; a line that is not key=value or
// a value the service refuses changes nothing.
func TestAdminMetadata(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "stable", "", build)
	l, _ := f.license("ACME", []string{"app"}, func(l *licenses.License) { l.Metadata = map[string]string{"crm": "1"} })
	tok, raw := f.token("ops", "admin")
	b := f.admin(raw)

	rel := "/admin/products/app/releases/1.0.0"
	if p := b.do("GET", rel, nil); !strings.Contains(p.Body, `<label for="metadata">`) {
		t.Fatalf("release page lacks the metadata field:\n%s", p.Body)
	}
	b.wantRedirect(b.post(rel, rel+"/metadata", url.Values{"metadata": {"min_os = 12\r\nsha=a=b\r\n"}}), rel)
	if m := f.release("app", "1.0.0").Metadata; len(m) != 2 || m["min_os"] != "12" || m["sha"] != "a=b" {
		t.Fatalf("release metadata %v", m)
	}
	f.wantActor("release.update", audit.KindAdmin, tok.ID, "ops")
	if p := b.do("GET", rel, nil); !strings.Contains(p.Body, "min_os=12\nsha=a=b\n</textarea>") {
		t.Fatalf("release page does not show the metadata:\n%s", p.Body)
	}
	for _, text := range []string{"no equals sign", "k=" + strings.Repeat("v", releases.MaxMetadataValue+1), "k=bell\a"} {
		wantError(t, b.post(rel, rel+"/metadata", url.Values{"metadata": {text}}), http.StatusBadRequest, portal.EInvalid)
	}
	if m := f.release("app", "1.0.0").Metadata; len(m) != 2 {
		t.Fatalf("refused edits changed the metadata: %v", m)
	}
	b.wantRedirect(b.post(rel, rel+"/metadata", url.Values{"metadata": {""}}), rel)
	if m := f.release("app", "1.0.0").Metadata; len(m) != 0 {
		t.Fatalf("cleared metadata is %v", m)
	}

	// A license's, on its edit form with the other fields as they are.
	page := "/admin/licenses/" + l.ID
	if p := b.do("GET", page, nil); !strings.Contains(p.Body, "crm=1\n</textarea>") {
		t.Fatalf("license page does not show the metadata:\n%s", p.Body)
	}
	form := url.Values{"customer": {"ACME"}, "product": {"app"}, "on_expiry": {"revoke"}, "metadata": {"crm=2\norder=77"}}
	b.wantRedirect(b.post(page, page+"/edit", form), page)
	if m := f.getLicense(l.ID).Metadata; len(m) != 2 || m["crm"] != "2" || m["order"] != "77" {
		t.Fatalf("license metadata %v", m)
	}
	form.Set("metadata", "crm")
	wantError(t, b.post(page, page+"/edit", form), http.StatusBadRequest, portal.EInvalid)
	if m := f.getLicense(l.ID).Metadata; m["crm"] != "2" {
		t.Fatalf("a refused edit changed the metadata: %v", m)
	}
}
