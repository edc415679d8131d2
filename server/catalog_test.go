package server_test

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	e := newEnv(t)
	e.must(200, e.do("GET", "/healthz", "", nil))
	r := e.must(200, e.do("GET", "/readyz", "", nil))
	if r.json(t)["ready"] != true {
		t.Fatalf("readyz: %s", r.body)
	}
	e.do("GET", "/d/secret-looking-token", "", nil)
	m := e.must(200, e.do("GET", "/metrics", bearer(e.admin), nil))
	for _, want := range []string{`portal_http_requests_total{method="GET",route="/readyz",status="200"} 1`, `portal_refusals_total{code="signature_invalid"} 1`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(string(m.body), "secret-looking-token") {
		t.Fatal("metrics carry a raw path")
	}
}

func TestCatalogEndpoints(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("free", "open")
	admin := bearer(e.admin)

	r := e.must(200, e.do("GET", "/v1/products/acme", admin, nil))
	if m := r.json(t); m["slug"] != "acme" || m["distribution"] != "licensed" || m["signing_key"] != nil {
		t.Fatalf("product: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/v1/products", admin, nil))
	if n := len(r.json(t)["products"].([]any)); n != 2 {
		t.Fatalf("admin sees %d products, want 2", n)
	}
	// Anonymous callers see open products only.
	r = e.must(200, e.do("GET", "/v1/products", "", nil))
	if ps := r.json(t)["products"].([]any); len(ps) != 1 || ps[0].(map[string]any)["slug"] != "free" {
		t.Fatalf("anonymous sees %s", r.body)
	}
	e.must(401, e.do("GET", "/v1/products/acme", "", nil))

	r = e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{
		"version": "1.2.0", "notes": "Fixes", "metadata": map[string]string{"minimum_system_version": "12.0"}}))
	if m := r.json(t); m["status"] != "draft" || m["channel"] != "stable" {
		t.Fatalf("release: %s", r.body)
	}
	e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{"version": "1.3.0-beta.1", "channel": "beta"}))
	e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{"version": "1.10.0"}))
	r = e.must(200, e.do("GET", "/v1/products/acme/releases", admin, nil))
	var got []string
	for _, x := range r.json(t)["releases"].([]any) {
		got = append(got, x.(map[string]any)["version"].(string))
	}
	if strings.Join(got, " ") != "1.10.0 1.3.0-beta.1 1.2.0" {
		t.Fatalf("listing order %v", got)
	}
	r = e.must(200, e.do("GET", "/v1/products/acme/releases?channel=stable&limit=1", admin, nil))
	page := r.json(t)
	cur, _ := page["next_cursor"].(string)
	if len(page["releases"].([]any)) != 1 || cur == "" {
		t.Fatalf("page 1: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/v1/products/acme/releases?channel=stable&limit=1&cursor="+cur, admin, nil))
	if v := r.json(t)["releases"].([]any)[0].(map[string]any)["version"]; v != "1.2.0" {
		t.Fatalf("page 2 has %v", v)
	}
	e.must(200, e.do("GET", "/v1/products/acme/releases/v1.2.0", admin, nil))
	e.must(404, e.do("GET", "/v1/products/acme/releases/latest", admin, nil)) // nothing published yet
	e.must(404, e.do("GET", "/v1/products/acme/releases/9.9.9", admin, nil))

	// Publishing needs uploaded artifacts; yanking a draft is a conflict.
	if r := e.do("POST", "/v1/products/acme/releases/1.2.0/publish", admin, nil); r.status != 409 {
		t.Fatalf("publish without artifacts: %d %s", r.status, r.body)
	}
	e.must(409, e.do("POST", "/v1/products/acme/releases/1.2.0/yank", admin, nil))

	// A license sees published releases of its product only.
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	r = e.must(200, e.do("GET", "/v1/products/acme/releases", "License "+key, nil))
	if n := len(r.json(t)["releases"].([]any)); n != 0 {
		t.Fatalf("license sees %d draft releases", n)
	}
	e.must(404, e.do("GET", "/v1/products/acme/releases/1.2.0", "License "+key, nil))
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("license:"+key))
	e.must(200, e.do("GET", "/v1/products/acme", basic, nil))
}

func TestTokensAndLicenses(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	admin := bearer(e.admin)

	r := e.must(201, e.do("POST", "/v1/tokens", admin, map[string]any{"name": "ci", "role": "publisher", "products": []string{"acme"}}))
	pub, id := r.json(t)["token"].(string), r.json(t)["id"].(string)
	if r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response is cacheable")
	}
	e.must(201, e.do("POST", "/v1/products/acme/releases", bearer(pub), map[string]any{"version": "1.0.0"}))
	e.must(403, e.do("POST", "/v1/products", bearer(pub), map[string]any{"slug": "x"}))
	e.must(204, e.do("DELETE", "/v1/tokens/"+id, admin, nil))
	e.must(401, e.do("POST", "/v1/products/acme/releases", bearer(pub), map[string]any{"version": "1.0.1"}))
	e.must(404, e.do("DELETE", "/v1/tokens/"+id, admin, nil))

	lid, key := e.license(map[string]any{"customer": "Bob", "product": "acme", "constraint": ">= 1.0, < 2.0",
		"channels": []string{"stable", "beta"}, "platforms": []string{"linux"}, "expires_at": "2030-01-01T00:00:00Z",
		"on_expiry": "maintain", "downloads_per_day": 5})
	if !strings.HasPrefix(key, "lic_") || len(key) < 30 {
		t.Fatalf("key %q", key)
	}
	r = e.must(200, e.do("GET", "/v1/licenses/"+lid, admin, nil))
	m := r.json(t)
	if m["constraint"] != ">= 1.0, < 2.0" || m["status"] != "active" || m["key_digest"] != nil || strings.Contains(string(r.body), key) {
		t.Fatalf("license: %s", r.body)
	}
	for _, step := range []struct{ action, status string }{{"suspend", "suspended"}, {"reinstate", "active"}, {"revoke", "revoked"}} {
		r = e.must(200, e.do("POST", "/v1/licenses/"+lid+"/"+step.action, admin, nil))
		if r.json(t)["status"] != step.status {
			t.Fatalf("%s: %s", step.action, r.body)
		}
	}
	e.must(409, e.do("POST", "/v1/licenses/"+lid+"/reinstate", admin, nil))
	r = e.must(200, e.do("GET", "/v1/licenses", admin, nil))
	if n := len(r.json(t)["licenses"].([]any)); n != 1 {
		t.Fatalf("list: %d", n)
	}
	// Licenses and publishers are not admins.
	e.must(401, e.do("GET", "/v1/licenses/"+lid, "", nil))
	e.must(403, e.do("GET", "/v1/licenses/"+lid, bearer(e.token("publisher", "acme")), nil))
	if r := e.do("GET", "/v1/licenses/"+lid, "License "+key, nil); r.status != 401 && r.status != 403 {
		t.Fatalf("license reading licenses: %d", r.status)
	}
}

// TestHostileRequests sends what careless and hostile clients send; each
// gets the right 4xx with the error envelope and the store is unchanged.
func TestHostileRequests(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("other", "licensed")
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/acme/releases", admin, map[string]any{"version": "1.0.0"}))
	pub := e.token("publisher", "acme")

	big := `{"version":"` + strings.Repeat("1", 10<<20) + `"}`
	cases := []struct {
		name         string
		method, path string
		auth         string
		body         any
		status       int
		code         string
	}{
		{"malformed JSON", "POST", "/v1/products/acme/releases", admin, `{"version":`, 400, "invalid"},
		{"not an object", "POST", "/v1/products/acme/releases", admin, `[1,2]`, 400, "invalid"},
		{"empty body", "POST", "/v1/products/acme/releases", admin, ``, 400, "invalid"},
		{"trailing data", "POST", "/v1/products/acme/releases", admin, `{"version":"2.0.0"} {}`, 400, "invalid"},
		{"unknown field", "POST", "/v1/products/acme/releases", admin, `{"version":"2.0.0","versoin":"x"}`, 400, "invalid"},
		{"wrong type", "POST", "/v1/products/acme/releases", admin, `{"version":2}`, 400, "invalid"},
		{"10 MiB body", "POST", "/v1/products/acme/releases", admin, big, 413, "too_large"},
		{"empty version", "POST", "/v1/products/acme/releases", admin, `{"version":""}`, 400, "invalid"},
		{"bare v", "POST", "/v1/products/acme/releases", admin, `{"version":"v"}`, 400, "invalid"},
		{"six segments", "POST", "/v1/products/acme/releases", admin, `{"version":"1.2.3.4.5.x"}`, 400, "invalid"},
		{"300 characters", "POST", "/v1/products/acme/releases", admin, `{"version":"1.0.0-` + strings.Repeat("a", 300) + `"}`, 400, "invalid"},
		{"duplicate version", "POST", "/v1/products/acme/releases", admin, `{"version":"v1.0.0+build.7"}`, 409, "conflict"},
		{"prerelease on stable", "POST", "/v1/products/acme/releases", admin, `{"version":"2.0.0-rc.1"}`, 400, "invalid"},
		{"unknown channel", "POST", "/v1/products/acme/releases", admin, `{"version":"2.0.0","channel":"nightly"}`, 400, "invalid"},
		{"rollout over 100", "POST", "/v1/products/acme/releases", admin, `{"version":"2.0.0","rollout":150}`, 400, "invalid"},
		{"invalid slug", "POST", "/v1/products", admin, `{"slug":"Bad Slug!","name":"x"}`, 400, "invalid"},
		{"slug with slash", "POST", "/v1/products", admin, `{"slug":"a/b"}`, 400, "invalid"},
		{"duplicate product", "POST", "/v1/products", admin, `{"slug":"acme"}`, 409, "conflict"},
		{"bad distribution", "POST", "/v1/products", admin, `{"slug":"new","distribution":"free"}`, 400, "invalid"},
		{"missing token", "POST", "/v1/products/acme/releases", "", `{"version":"2.0.0"}`, 401, "unauthorized"},
		{"wrong token", "POST", "/v1/products/acme/releases", bearer("ptk_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), `{"version":"2.0.0"}`, 401, "unauthorized"},
		{"garbage token", "POST", "/v1/products/acme/releases", bearer("not-a-token ünïcode"), `{"version":"2.0.0"}`, 401, "unauthorized"},
		{"unknown scheme", "POST", "/v1/products/acme/releases", "Digest abc", `{"version":"2.0.0"}`, 401, "unauthorized"},
		{"basic without license user", "GET", "/v1/products/acme", "Basic " + "YWRtaW46eA==", nil, 401, "unauthorized"},
		{"publisher on another product", "POST", "/v1/products/other/releases", bearer(pub), `{"version":"2.0.0"}`, 403, "forbidden"},
		{"publisher creating products", "POST", "/v1/products", bearer(pub), `{"slug":"new"}`, 403, "forbidden"},
		{"publisher publishing another product", "POST", "/v1/products/other/releases/1.0.0/publish", bearer(pub), nil, 403, "forbidden"},
		{"unknown product", "POST", "/v1/products/nope/releases", admin, `{"version":"2.0.0"}`, 404, "not_found"},
		{"license for unknown product", "POST", "/v1/licenses", admin, `{"customer":"x","product":"nope"}`, 404, "not_found"},
		{"license bad constraint", "POST", "/v1/licenses", admin, `{"customer":"x","product":"acme","constraint":">>> 1"}`, 400, "invalid"},
		{"license bad on_expiry", "POST", "/v1/licenses", admin, `{"customer":"x","product":"acme","on_expiry":"never"}`, 400, "invalid"},
		{"license bad time", "POST", "/v1/licenses", admin, `{"customer":"x","product":"acme","expires_at":"tomorrow"}`, 400, "invalid"},
		{"license no customer", "POST", "/v1/licenses", admin, `{"product":"acme"}`, 400, "invalid"},
		{"token bad role", "POST", "/v1/tokens", admin, `{"role":"root"}`, 400, "invalid"},
		{"publisher token without products", "POST", "/v1/tokens", admin, `{"role":"publisher"}`, 400, "invalid"},
		{"bad cursor", "GET", "/v1/products/acme/releases?cursor=!!!notbase64", admin, nil, 400, "invalid"},
		{"bad limit", "GET", "/v1/products/acme/releases?limit=-1", admin, nil, 400, "invalid"},
		{"unknown route", "GET", "/v1/nothing", admin, nil, 404, "not_found"},
	}
	before := e.dump()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.auth, c.body)
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("got %d %q, want %d %q: %.300s", r.status, r.code(), c.status, c.code, r.body)
			}
			if c.status == 401 && strings.HasPrefix(strings.ToLower(r.header.Get("WWW-Authenticate")), "basic") {
				t.Fatalf("401 asks for Basic auth")
			}
		})
	}
	if after := e.dump(); after != before {
		t.Fatalf("refused requests changed the store")
	}
}

func TestFailedAuthIsRateLimited(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	var limited bool
	for i := 0; i < 30; i++ {
		r := e.do("GET", "/v1/products/acme", "License lic_zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"+string(rune('a'+i%20)), nil)
		if r.status == 429 {
			if r.header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			limited = true
			break
		}
	}
	if !limited {
		t.Fatal("30 wrong keys from one address were never limited")
	}
	// The address is limited for bad keys only: a good key from it is
	// accepted (TestBadKeysFromAnAddressDoNotLockOutValidCredentials).
	if r := e.do("GET", "/v1/products/acme", "License "+key, nil); r.status != 200 {
		t.Fatalf("good key from a limited address: %d", r.status)
	}
}
