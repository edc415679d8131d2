package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
)

// auditActions returns the actions recorded for targets under prefix,
// newest first.
func (e *env) auditActions(prefix string) []string {
	e.t.Helper()
	rs, _, err := audit.New(e.db).List(context.Background(), audit.Filter{TargetPrefix: prefix, Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.Action)
	}
	return out
}

// A license's life over HTTP: several products, edits, a past expiry that
// stops downloads and a renewal that restarts them, a reissued key, and
// every answer's computed status; each change audited.
func TestLicenseAdministration(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("acme", "licensed")
	e.product("tool", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	e.release("tool", "2.0.0", "", "linux/amd64")
	r := e.must(201, e.do("POST", "/v1/licenses", admin, map[string]any{"customer": "Bob", "products": []string{"acme", "tool"},
		"metadata": map[string]string{"crm": "7"}}))
	m := r.json(t)
	lic := m["license"].(map[string]any)
	id, key := lic["id"].(string), m["key"].(string)
	if lic["status"] != "active" || fmt.Sprint(lic["products"]) != "[acme tool]" || lic["product"] != nil || lic["key_digest"] != nil {
		t.Fatalf("created %v", lic)
	}
	auth := "License " + key
	for _, p := range []string{"acme/releases/1.0.0", "tool/releases/2.0.0"} {
		e.must(303, e.get("/v1/products/"+p+"/download?platform=linux&arch=amd64", auth))
	}

	// An expiry in the past with on_expiry revoke: allowed, and expired.
	past := e.now().Add(-time.Hour).UTC().Format(time.RFC3339)
	r = e.must(200, e.do("PATCH", "/v1/licenses/"+id, admin, map[string]any{"expires_at": past, "on_expiry": "revoke"}))
	if got := r.json(t); got["status"] != "expired" || got["expires_at"] != past {
		t.Fatalf("after a past expiry: %s", r.body)
	}
	if r := e.get("/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64", auth); r.status != 403 || r.code() != "license_expired" {
		t.Fatalf("expired license downloads: %d %s", r.status, r.body)
	}
	if got := e.must(200, e.get("/v1/licenses/"+id, admin)).json(t); got["status"] != "expired" {
		t.Fatalf("GET shows %v", got["status"])
	}
	// Renewal: null clears the expiry; downloads work again.
	r = e.must(200, e.do("PATCH", "/v1/licenses/"+id, admin, map[string]any{"expires_at": nil, "customer": "Bob Ltd", "products": []string{"acme"}}))
	if got := r.json(t); got["status"] != "active" || got["expires_at"] != nil || got["customer"] != "Bob Ltd" || fmt.Sprint(got["products"]) != "[acme]" {
		t.Fatalf("renewed %s", r.body)
	}
	e.must(303, e.get("/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64", auth))
	if r := e.get("/v1/products/tool/releases/2.0.0/download?platform=linux&arch=amd64", auth); r.status != 403 || r.code() != "not_entitled" {
		t.Fatalf("a product taken off the license: %d %s", r.status, r.body)
	}

	// Reissue: the new key works, the old one is refused at once.
	r = e.must(200, e.do("POST", "/v1/licenses/"+id+"/reissue", admin, nil))
	m = r.json(t)
	newKey := m["key"].(string)
	if newKey == key || m["license"].(map[string]any)["status"] != "active" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reissue: %s", r.body)
	}
	if r := e.get("/v1/me", auth); r.status != 401 {
		t.Fatalf("old key after reissue: %d %s", r.status, r.body)
	}
	e.must(200, e.get("/v1/me", "License "+newKey))

	// Status changes answer the computed status too.
	if got := e.must(200, e.do("POST", "/v1/licenses/"+id+"/suspend", admin, nil)).json(t); got["status"] != "suspended" {
		t.Fatalf("suspend answered %v", got["status"])
	}
	e.must(200, e.do("POST", "/v1/licenses/"+id+"/revoke", admin, nil))
	before := e.dump()
	if r := e.do("POST", "/v1/licenses/"+id+"/reissue", admin, nil); r.status != 409 || r.code() != "conflict" {
		t.Fatalf("reissue of a revoked license: %d %s", r.status, r.body)
	}
	if e.dump() != before {
		t.Fatal("a refused reissue changed the store")
	}
	want := "[license.revoke license.suspend license.reissue license.update license.update license.create]"
	if got := fmt.Sprint(e.auditActions("license/" + id)); got != want {
		t.Fatalf("audit %s, want %s", got, want)
	}
	// Only admins.
	pub := bearer(e.token("publisher", "acme"))
	for _, c := range []struct{ method, path string }{{"PATCH", "/v1/licenses/" + id}, {"POST", "/v1/licenses/" + id + "/reissue"}} {
		if r := e.do(c.method, c.path, pub, map[string]any{}); r.status != 403 {
			t.Errorf("%s %s as a publisher: %d", c.method, c.path, r.status)
		}
		if r := e.do(c.method, c.path, "License "+newKey, map[string]any{}); r.status != 401 && r.status != 403 {
			t.Errorf("%s %s as a license: %d", c.method, c.path, r.status)
		}
	}
}

// Hostile PATCH bodies: a 400 naming the field, and the store unchanged.
func TestLicensePatchHostile(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("acme", "licensed")
	id, _ := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	for _, c := range []struct {
		name, body, code, word string
		status                 int
	}{
		{"unknown field", `{"customer":"x","colour":"red"}`, "invalid", "colour", 400},
		{"product is not patchable", `{"product":"acme"}`, "invalid", "product", 400},
		{"status is not patchable", `{"status":"active"}`, "invalid", "status", 400},
		{"wrong type", `{"downloads_per_day":"ten"}`, "invalid", "downloads_per_day", 400},
		{"wrong type products", `{"products":"acme"}`, "invalid", "products", 400},
		{"invalid constraint", `{"constraint":">>> 1"}`, "invalid", "constraint", 400},
		{"bad expiry", `{"expires_at":"tomorrow"}`, "invalid", "expires_at", 400},
		{"bad expiry type", `{"expires_at":5}`, "invalid", "expires_at", 400},
		{"unknown product", `{"products":["nope"]}`, "not_found", "nope", 404},
		{"empty products", `{"products":[]}`, "invalid", "products", 400},
		{"bad channel", `{"channels":["nightly"]}`, "invalid", "channel", 400},
		{"bad on_expiry", `{"on_expiry":"never"}`, "invalid", "on_expiry", 400},
		{"negative quota", `{"downloads_per_day":-1}`, "invalid", "downloads_per_day", 400},
		{"metadata too long", `{"metadata":{"k":"` + strings.Repeat("v", 5000) + `"}}`, "invalid", "metadata", 400},
		{"malformed", `{"customer":`, "invalid", "JSON", 400},
		{"two objects", `{}{}`, "invalid", "one JSON object", 400},
	} {
		before := e.dump()
		r := e.do("PATCH", "/v1/licenses/"+id, admin, c.body)
		if r.status != c.status || r.code() != c.code || !strings.Contains(string(r.body), c.word) {
			t.Errorf("%s: %d %s, want %d %s naming %s", c.name, r.status, r.body, c.status, c.code, c.word)
		}
		if e.dump() != before {
			t.Errorf("%s: the store changed", c.name)
		}
	}
	if r := e.do("PATCH", "/v1/licenses/nope", admin, `{"customer":"x"}`); r.status != 404 {
		t.Errorf("unknown license: %d %s", r.status, r.body)
	}
}

func TestLicenseList(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("acme", "licensed")
	e.product("tool", "licensed")
	soon := e.now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	bob, _ := e.license(map[string]any{"customer": "Bob Builder", "product": "acme"})
	bobby, _ := e.license(map[string]any{"customer": "bobby", "products": []string{"acme", "tool"}, "expires_at": soon})
	alice, _ := e.license(map[string]any{"customer": "Alice", "product": "tool"})
	e.must(200, e.do("POST", "/v1/licenses/"+alice+"/suspend", admin, nil))
	names := map[string]string{bob: "bob", bobby: "bobby", alice: "alice"}
	list := func(q string) string {
		t.Helper()
		r := e.must(200, e.get("/v1/licenses?"+q, admin))
		var out []string
		for _, l := range r.json(t)["licenses"].([]any) {
			l := l.(map[string]any)
			out = append(out, names[l["id"].(string)]+":"+l["status"].(string))
		}
		slicesSortStrings(out)
		return fmt.Sprint(out)
	}
	for q, want := range map[string]string{
		"customer=BOB":                            "[bob:active bobby:active]",
		"product=tool":                            "[alice:suspended bobby:active]",
		"status=suspended":                        "[alice:suspended]",
		"status=active&customer=b":                "[bob:active bobby:active]",
		"expires_before=" + url.QueryEscape(soon): "[]",
		"expires_before=" + url.QueryEscape("2100-01-01T00:00:00Z"): "[bobby:active]",
	} {
		if got := list(q); got != want {
			t.Errorf("?%s = %s, want %s", q, got, want)
		}
	}
	// Pages.
	seen := map[string]bool{}
	cursor := ""
	for range 5 {
		m := e.must(200, e.get("/v1/licenses?limit=1&cursor="+cursor, admin)).json(t)
		for _, l := range m["licenses"].([]any) {
			seen[l.(map[string]any)["id"].(string)] = true
		}
		next, _ := m["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 3 {
		t.Errorf("paged through %d licenses, want 3", len(seen))
	}
	for q, word := range map[string]string{"limit=0": "limit", "limit=1001": "limit", "limit=x": "limit",
		"status=dead": "status", "expires_before=tomorrow": "expires_before"} {
		r := e.get("/v1/licenses?"+q, admin)
		if r.status != 400 || !strings.Contains(string(r.body), word) {
			t.Errorf("?%s: %d %s", q, r.status, r.body)
		}
	}
}

func slicesSortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// /v1/me of a license of two products lists both, keeps "releases" for the
// first, and says today's quota, where a repeat of a download whose URL is
// still valid is not counted again.
func TestMeProductsAndQuota(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("tool", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64", "darwin/arm64")
	e.release("tool", "2.0.0", "", "linux/amd64")
	_, key := e.license(map[string]any{"customer": "Bob", "products": []string{"acme", "tool"}, "downloads_per_day": 2})
	auth := "License " + key
	type me struct {
		License  struct{ Status string }
		Products []struct {
			Slug     string
			Releases []struct{ Version string }
		}
		Releases []struct{ Version string }
		Quota    struct {
			Used      int
			Remaining *int
			ResetAt   time.Time `json:"reset_at"`
		}
	}
	read := func() me {
		t.Helper()
		var m me
		r := e.must(200, e.get("/v1/me", auth))
		if err := json.Unmarshal(r.body, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := read()
	if m.License.Status != "active" || len(m.Products) != 2 || m.Products[0].Slug != "acme" || m.Products[1].Slug != "tool" ||
		len(m.Products[1].Releases) != 1 || m.Products[1].Releases[0].Version != "2.0.0" ||
		len(m.Releases) != 1 || m.Releases[0].Version != "1.0.0" {
		t.Fatalf("me %+v", m)
	}
	midnight := e.now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	if m.Quota.Used != 0 || m.Quota.Remaining == nil || *m.Quota.Remaining != 2 || !m.Quota.ResetAt.Equal(midnight) {
		t.Fatalf("quota %+v", m.Quota)
	}
	linux := "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	// A JSON probe, the redirect, a retry: one download.
	e.must(200, e.get(linux, auth, "Accept", "application/json"))
	e.must(303, e.get(linux, auth))
	e.must(303, e.get(linux, auth))
	if m := read(); m.Quota.Used != 1 || *m.Quota.Remaining != 1 {
		t.Fatalf("after one download asked three times: %+v", m.Quota)
	}
	e.must(303, e.get("/v1/products/acme/releases/1.0.0/download?platform=darwin&arch=arm64", auth))
	if r := e.get("/v1/products/tool/releases/2.0.0/download?platform=linux&arch=amd64", auth); r.status != 403 || r.code() != "quota_exceeded" {
		t.Fatalf("third artifact: %d %s", r.status, r.body)
	}
	// The repeat of a valid URL still works past the quota.
	e.must(303, e.get(linux, auth))
	if m := read(); m.Quota.Used != 2 || *m.Quota.Remaining != 0 {
		t.Fatalf("at the quota: %+v", m.Quota)
	}
	// Once the URL expired, asking again is another download.
	e.advance(6 * time.Minute)
	if r := e.get(linux, auth); r.status != 403 || r.code() != "quota_exceeded" {
		t.Fatalf("after the URL expired: %d %s", r.status, r.body)
	}

	// Unlimited: counted, remaining null.
	_, key2 := e.license(map[string]any{"customer": "Carol", "product": "acme"})
	e.must(303, e.get(linux, "License "+key2))
	r := e.must(200, e.get("/v1/me", "License "+key2))
	q := r.json(t)["quota"].(map[string]any)
	if q["used"] != 1.0 || q["remaining"] != nil {
		t.Fatalf("unlimited quota %v", q)
	}
	if _, ok := q["remaining"]; !ok {
		t.Fatal("remaining is missing, want null")
	}
}

// Share links: a license lists its own; an admin lists a license's and
// makes one on its behalf, which acts as that license; publishers may not.
func TestLinksListAndOnBehalf(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme", "platforms": []string{"linux"}})
	otherID, otherKey := e.license(map[string]any{"customer": "Eve", "product": "acme"})
	auth := "License " + key
	body := map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "ttl": 3600}
	own := e.must(201, e.do("POST", "/v1/links", auth, body)).json(t)

	// On behalf of Bob, by an admin.
	body["license"] = id
	made := e.must(201, e.do("POST", "/v1/links", admin, body)).json(t)
	if made["license"] != id || !strings.HasPrefix(made["created_by"].(string), "admin token") {
		t.Fatalf("on behalf: %v", made)
	}
	u, _ := url.Parse(made["url"].(string))
	e.must(303, e.get(u.Path, ""))

	list := func(auth, q string) []string {
		t.Helper()
		var out []string
		for _, l := range e.must(200, e.get("/v1/links"+q, auth)).json(t)["links"].([]any) {
			out = append(out, l.(map[string]any)["id"].(string))
		}
		return out
	}
	if got := list(auth, ""); len(got) != 2 || !(got[0] == made["id"] && got[1] == own["id"] || got[1] == made["id"] && got[0] == own["id"]) {
		t.Fatalf("Bob's links %v", got)
	}
	if got := list(admin, "?license="+id); len(got) != 2 {
		t.Fatalf("admin's view of Bob's links %v", got)
	}
	if got := list("License "+otherKey, ""); len(got) != 0 {
		t.Fatalf("Eve sees %v", got)
	}
	for _, c := range []struct {
		auth, q string
		status  int
	}{
		{bearer(e.token("publisher", "acme")), "?license=" + id, 403},
		{"", "", 401},
		{"License " + otherKey, "?license=" + id, 403},
		{admin, "", 400},
	} {
		if r := e.get("/v1/links"+c.q, c.auth); r.status != c.status {
			t.Errorf("GET /v1/links%s: %d %s, want %d", c.q, r.status, r.body, c.status)
		}
	}

	// On behalf is checked as the license would be: Bob may not have a
	// build for darwin; a suspended license makes none; a license may not
	// name another; a publisher may not make links at all.
	e.release("acme", "1.1.0", "", "darwin/arm64")
	for _, c := range []struct {
		name   string
		auth   string
		body   map[string]any
		status int
		code   string
	}{
		{"not entitled", admin, map[string]any{"product": "acme", "version": "1.1.0", "filename": "acme_1.1.0_darwin_arm64.tar.gz", "license": id}, 403, "not_entitled"},
		{"unknown license", admin, map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "license": "nope"}, 404, "not_found"},
		{"admin without license", admin, map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz"}, 403, "forbidden"},
		{"another license", "License " + otherKey, map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "license": id}, 403, "forbidden"},
		{"license wrong type", admin, map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "license": 5}, 400, "invalid"},
	} {
		before := e.dump()
		r := e.do("POST", "/v1/links", c.auth, c.body)
		if r.status != c.status || r.code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
		if e.dump() != before {
			t.Errorf("%s: the store changed", c.name)
		}
	}
	e.must(200, e.do("POST", "/v1/licenses/"+id+"/suspend", admin, nil))
	if r := e.do("POST", "/v1/links", admin, body); r.status != 403 || r.code() != "license_suspended" {
		t.Errorf("on behalf of a suspended license: %d %s", r.status, r.body)
	}
	e.must(204, e.do("DELETE", "/v1/links/"+own["id"].(string), admin, nil))
	_ = otherID
	got := e.auditActions("link/")
	if fmt.Sprint(got) != "[link.revoke link.create link.create]" {
		t.Errorf("link audit %v", got)
	}
	rs, _, _ := audit.New(e.db).List(context.Background(), audit.Filter{TargetPrefix: "link/" + made["id"].(string)})
	if len(rs) != 1 || rs[0].Actor.Kind != audit.KindAdmin {
		t.Errorf("the on-behalf link's record: %+v", rs)
	}
}
