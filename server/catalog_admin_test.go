package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/accesslog"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/updates"
)

// cliCtx is the context of the tests' direct calls to the services, which
// audit their changes: they act as an offline command would.
var cliCtx = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

// doWith is do with extra header pairs.
func (e *env) doWith(method, path, auth string, body any, kv ...string) resp {
	e.t.Helper()
	j, _ := json.Marshal(body)
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(j))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return resp{res.StatusCode, res.Header, b.Bytes()}
}

// A rollout moved 10 -> 50 -> 100 takes effect at once in the upgrade API
// and in the electron feed (stagingPercentage), and changes their ETags.
func TestRolloutEdit(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("roll", "licensed")
	e.release("roll", "1.0.0", "", "linux/amd64")
	e.must(201, e.do("POST", "/v1/products/roll/releases", admin, map[string]any{"version": "2.0.0", "rollout": 10}))
	e.upload(admin, "roll", "2.0.0", "roll-2.0.0.AppImage", "linux", "amd64", []byte(strings.Repeat("roll 2 ", 100)))
	e.must(200, e.do("POST", "/v1/products/roll/releases/2.0.0/publish", admin, nil))

	// A license in the 10% cohort, one between 10 and 50, one above 50.
	var in10, in50, out50 string
	for i := 0; i < 400 && (in10 == "" || in50 == "" || out50 == ""); i++ {
		id, key := e.license(map[string]any{"customer": "c", "product": "roll"})
		switch b := updates.Bucket(id, "roll", "2.0.0"); {
		case b < 10 && in10 == "":
			in10 = key
		case b >= 10 && b < 50 && in50 == "":
			in50 = key
		case b >= 50 && out50 == "":
			out50 = key
		}
	}
	if in10 == "" || in50 == "" || out50 == "" {
		t.Fatal("no license found for each cohort")
	}
	const upgrade = "/v1/products/roll/upgrade?current=0.9.0&platform=linux&arch=amd64"
	const feed = "/feeds/roll/electron/latest-linux.yml"
	check := func(rollout int, want10, want50, wantOut string) (etags []string) {
		t.Helper()
		for _, c := range []struct{ key, want string }{{in10, want10}, {in50, want50}, {out50, wantOut}} {
			r := e.must(200, e.get(upgrade, "License "+c.key))
			if v := r.json(t)["version"]; v != c.want {
				t.Fatalf("rollout %d: upgrade answers %v, want %s", rollout, v, c.want)
			}
			etags = append(etags, r.header.Get("ETag"))
		}
		r := e.must(200, e.get(feed, "License "+in10))
		var doc struct {
			Version           string `yaml:"version"`
			StagingPercentage int    `yaml:"stagingPercentage"`
		}
		if err := yaml.Unmarshal(r.body, &doc); err != nil {
			t.Fatal(err)
		}
		wantPct := rollout
		if rollout == 100 {
			wantPct = 0 // everyone: no staging
		}
		if doc.Version != "2.0.0" || doc.StagingPercentage != wantPct {
			t.Fatalf("rollout %d: electron feed %+v", rollout, doc)
		}
		return append(etags, r.header.Get("ETag"))
	}
	at10 := check(10, "2.0.0", "1.0.0", "1.0.0")
	r := e.must(200, e.do("PATCH", "/v1/products/roll/releases/2.0.0", admin, map[string]any{"rollout": 50}))
	if r.json(t)["rollout"] != float64(50) {
		t.Fatalf("PATCH answer %s", r.body)
	}
	at50 := check(50, "2.0.0", "2.0.0", "1.0.0")
	e.must(200, e.do("PATCH", "/v1/products/roll/releases/2.0.0", admin, map[string]any{"rollout": 100}))
	at100 := check(100, "2.0.0", "2.0.0", "2.0.0")
	// An answer that changed has a new ETag, one that did not keeps it;
	// the feed (index 3) changes at every step.
	changes := [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}}
	for i, ch := range changes {
		if at10[i] == "" || (at10[i] != at50[i]) != ch[0] || (at50[i] != at100[i]) != ch[1] {
			t.Errorf("ETags of answer %d: %q %q %q, want changes %v", i, at10[i], at50[i], at100[i], ch)
		}
	}
	// Each change is in the audit log with the changed field only.
	recs := e.must(200, e.do("GET", "/v1/audit?action=release.update&target=release/roll/2.0.0", admin, nil)).json(t)["records"].([]any)
	if len(recs) != 2 {
		t.Fatalf("audit records: %v", recs)
	}
	last := recs[0].(map[string]any)
	if b, a := last["before"].(map[string]any), last["after"]; b["rollout"] != float64(50) || len(a.(map[string]any)) != 0 {
		t.Errorf("newest release.update: %v", last)
	}
}

// Editing, deleting and unyanking over HTTP, with the refusals that leave
// the store unchanged.
func TestCatalogAdmin(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("app", "licensed")
	pub := bearer(e.token("publisher", "app"))
	other := bearer(e.token("publisher", "other"))
	_, key := e.license(map[string]any{"customer": "c", "product": "app"})

	// Products: admin only.
	e.must(403, e.do("PATCH", "/v1/products/app", pub, map[string]any{"name": "X"}))
	r := e.must(200, e.do("PATCH", "/v1/products/app", admin, map[string]any{"name": "The App", "distribution": "open"})).json(t)
	if r["name"] != "The App" || r["distribution"] != "open" || r["signing_key"] != nil {
		t.Fatalf("edited product %v", r)
	}
	e.must(200, e.do("PATCH", "/v1/products/app", admin, map[string]any{"distribution": "licensed"}))
	e.must(404, e.do("PATCH", "/v1/products/nope", admin, map[string]any{"name": "X"}))

	// Releases: a publisher of the product, or an admin.
	e.release("app", "1.0.0", "", "linux/amd64")
	e.must(201, e.do("POST", "/v1/products/app/releases", pub, map[string]any{"version": "1.1.0-beta.1", "channel": "beta"}))
	e.must(403, e.do("PATCH", "/v1/products/app/releases/1.0.0", other, map[string]any{"notes": "x"}))
	e.must(403, e.do("PATCH", "/v1/products/app/releases/1.0.0", "License "+key, map[string]any{"notes": "x"}))
	rel := e.must(200, e.do("PATCH", "/v1/products/app/releases/1.0.0", pub, map[string]any{"notes": "Fixed.", "metadata": map[string]string{"k": "v"}})).json(t)
	if rel["notes"] != "Fixed." || rel["metadata"].(map[string]any)["k"] != "v" {
		t.Fatalf("edited release %v", rel)
	}
	// The customer sees the new notes at once.
	if n := e.must(200, e.get("/v1/products/app/upgrade?current=0.1.0&platform=linux&arch=amd64", "License "+key)).json(t)["notes"]; n != "Fixed." {
		t.Fatalf("upgrade notes %v", n)
	}
	rel = e.must(200, e.do("PATCH", "/v1/products/app/releases/1.1.0-beta.1", pub, map[string]any{"channel": "alpha"})).json(t)
	if rel["channel"] != "alpha" {
		t.Fatalf("draft channel %v", rel)
	}

	// Unyank.
	e.must(200, e.do("POST", "/v1/products/app/releases/1.0.0/yank", pub, nil))
	e.must(404, e.get("/v1/products/app/releases/1.0.0", "License "+key))
	rel = e.must(200, e.do("POST", "/v1/products/app/releases/1.0.0/unyank", pub, nil)).json(t)
	if rel["status"] != "published" || rel["yanked_at"] != nil {
		t.Fatalf("unyanked %v", rel)
	}
	e.must(200, e.get("/v1/products/app/releases/1.0.0", "License "+key))

	// Deleting a draft deletes its uploaded object: its download URL stops.
	e.must(201, e.do("POST", "/v1/products/app/releases", pub, map[string]any{"version": "2.0.0"}))
	e.upload(pub, "app", "2.0.0", "app-2.zip", "linux", "amd64", []byte(strings.Repeat("two ", 100)))
	grant := e.must(200, e.get("/v1/products/app/releases/2.0.0/artifacts/app-2.zip/download", pub, "Accept", "application/json")).json(t)
	blob := e.relPath(grant["url"].(string))
	e.must(200, e.get(blob, ""))
	e.must(403, e.do("DELETE", "/v1/products/app/releases/2.0.0", other, nil))
	e.must(204, e.do("DELETE", "/v1/products/app/releases/2.0.0", pub, nil))
	e.must(404, e.do("GET", "/v1/products/app/releases/2.0.0", pub, nil))
	if st := e.get(blob, "").status; st != 404 {
		t.Fatalf("object of the deleted draft: GET %d, want 404", st)
	}

	// A product with nothing but drafts is deleted with them.
	e.product("gone", "open")
	e.must(201, e.do("POST", "/v1/products/gone/releases", admin, map[string]any{"version": "0.1.0"}))
	e.must(204, e.do("DELETE", "/v1/products/gone", admin, nil))
	e.must(404, e.do("GET", "/v1/products/gone", admin, nil))

	// The audit log names the actor and the request of each change.
	q := url.Values{"target": {"release/app/"}, "limit": {"100"}}
	recs := e.must(200, e.do("GET", "/v1/audit?"+q.Encode(), admin, nil)).json(t)["records"].([]any)
	actions := map[string]bool{}
	for _, x := range recs {
		m := x.(map[string]any)
		actions[m["action"].(string)] = true
		if m["request_id"] == "" || m["client"] != "127.0.0.1" || m["actor"].(map[string]any)["kind"] == "anonymous" {
			t.Errorf("record %v", m)
		}
	}
	for _, a := range []string{"release.create", "release.update", "release.publish", "release.yank", "release.unyank", "release.delete"} {
		if !actions[a] {
			t.Errorf("no %s record under release/app/: %v", a, actions)
		}
	}
	arts := e.must(200, e.do("GET", "/v1/audit?action=artifact&target=artifact/app/2.0.0/", admin, nil)).json(t)["records"].([]any)
	if len(arts) != 2 || arts[0].(map[string]any)["action"] != "artifact.uploaded" || arts[1].(map[string]any)["action"] != "artifact.create" {
		t.Errorf("artifact records %v", arts)
	}
	pd := e.must(200, e.do("GET", "/v1/audit?action=product.delete", admin, nil)).json(t)["records"].([]any)
	if len(pd) != 1 || pd[0].(map[string]any)["target"] != "product/gone" {
		t.Errorf("product.delete records %v", pd)
	}
}

// Refused edits and deletes answer 4xx naming the field or the reason,
// and leave the store as it was.
func TestCatalogAdminHostile(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	e.product("app", "licensed")
	e.release("app", "1.0.0", "", "linux/amd64")
	e.must(201, e.do("POST", "/v1/products/app/releases", admin, map[string]any{"version": "2.0.0"}))
	e.release("app", "0.9.0", "", "linux/amd64")
	e.must(200, e.do("POST", "/v1/products/app/releases/0.9.0/yank", admin, nil))
	pub := bearer(e.token("publisher", "app"))

	cases := []struct {
		name, method, path, auth string
		body                     any
		status                   int
		code, mention            string
	}{
		{"product unknown field", "PATCH", "/v1/products/app", admin, `{"name":"x","slug":"y"}`, 400, "invalid", "slug"},
		{"product wrong type", "PATCH", "/v1/products/app", admin, `{"name":5}`, 400, "invalid", "name"},
		{"product bad distribution", "PATCH", "/v1/products/app", admin, `{"distribution":"free"}`, 400, "invalid", "distribution"},
		{"product empty name", "PATCH", "/v1/products/app", admin, `{"name":""}`, 400, "invalid", "name"},
		{"product by a publisher", "PATCH", "/v1/products/app", pub, `{"name":"x"}`, 403, "forbidden", ""},
		{"product anonymous", "DELETE", "/v1/products/app", "", nil, 401, "unauthorized", ""},
		{"product with published releases", "DELETE", "/v1/products/app", admin, nil, 409, "conflict", "stays on record"},
		{"release unknown field", "PATCH", "/v1/products/app/releases/1.0.0", pub, `{"status":"draft"}`, 400, "invalid", "status"},
		{"release rollout wrong type", "PATCH", "/v1/products/app/releases/1.0.0", pub, `{"rollout":"50"}`, 400, "invalid", "rollout"},
		{"release rollout out of range", "PATCH", "/v1/products/app/releases/1.0.0", pub, `{"rollout":101}`, 400, "invalid", "rollout"},
		{"release bad metadata", "PATCH", "/v1/products/app/releases/1.0.0", pub, `{"metadata":{"k":5}}`, 400, "invalid", "metadata"},
		{"release channel of a published one", "PATCH", "/v1/products/app/releases/1.0.0", pub, `{"channel":"beta"}`, 409, "conflict", "only a draft"},
		{"release unknown channel", "PATCH", "/v1/products/app/releases/2.0.0", pub, `{"channel":"nightly"}`, 400, "invalid", "channel"},
		{"release prerelease channel", "PATCH", "/v1/products/app/releases/2.0.0", pub, `{"notes":"x\u0000"}`, 400, "invalid", "notes"},
		{"release not JSON", "PATCH", "/v1/products/app/releases/2.0.0", pub, `notes=x`, 400, "invalid", ""},
		{"release unknown version", "PATCH", "/v1/products/app/releases/9.9.9", pub, `{"notes":"x"}`, 404, "not_found", ""},
		{"delete a published release", "DELETE", "/v1/products/app/releases/1.0.0", pub, nil, 409, "conflict", "only a draft"},
		{"delete a yanked release", "DELETE", "/v1/products/app/releases/0.9.0", pub, nil, 409, "conflict", "only a draft"},
		{"unyank a published release", "POST", "/v1/products/app/releases/1.0.0/unyank", pub, nil, 409, "conflict", "was never yanked"},
		{"unyank a draft", "POST", "/v1/products/app/releases/2.0.0/unyank", pub, nil, 409, "conflict", "was never yanked"},
		{"audit malformed since", "GET", "/v1/audit?since=yesterday", admin, nil, 400, "invalid", "since"},
		{"audit malformed until", "GET", "/v1/audit?until=2026-13-01T00:00:00Z", admin, nil, 400, "invalid", "until"},
		{"audit bad limit", "GET", "/v1/audit?limit=0", admin, nil, 400, "invalid", "limit"},
		{"audit unknown parameter", "GET", "/v1/audit?who=me", admin, nil, 400, "invalid", "who"},
		{"audit by a publisher", "GET", "/v1/audit", pub, nil, 403, "forbidden", ""},
		{"token past expiry", "POST", "/v1/tokens", admin, `{"role":"admin","expires_at":"2001-01-01T00:00:00Z"}`, 400, "invalid", "expires_at"},
		{"token malformed expiry", "POST", "/v1/tokens", admin, `{"role":"admin","expires_at":"tomorrow"}`, 400, "invalid", "expires_at"},
		{"token expiry wrong type", "POST", "/v1/tokens", admin, `{"role":"admin","expires_at":5}`, 400, "invalid", "expires_at"},
		{"token list by a publisher", "GET", "/v1/tokens", pub, nil, 403, "forbidden", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.dump()
			r := e.do(c.method, c.path, c.auth, c.body)
			if r.status != c.status || r.code() != c.code {
				t.Fatalf("%d %s, want %d %s: %s", r.status, r.code(), c.status, c.code, r.body)
			}
			if !strings.Contains(string(r.body), c.mention) {
				t.Errorf("answer does not mention %q: %s", c.mention, r.body)
			}
			if after := e.dump(); after != before {
				t.Error("a refused request changed the store")
			}
		})
	}
}

// GET /v1/tokens lists every token without a secret; DELETE stops one at
// once; expires_at is kept and shown.
func TestTokenAdmin(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	created := e.must(201, e.do("POST", "/v1/tokens", admin, map[string]any{
		"name": "ci", "role": "publisher", "products": []string{"app"}, "expires_at": "2099-01-02T03:04:05Z"})).json(t)
	raw := created["token"].(string)
	if created["expires_at"] != "2099-01-02T03:04:05Z" {
		t.Fatalf("created %v", created)
	}
	e.must(200, e.do("GET", "/v1/products", bearer(raw), nil)) // noted as used
	r := e.must(200, e.do("GET", "/v1/tokens", admin, nil))
	if strings.Contains(string(r.body), raw) || strings.Contains(string(r.body), "digest") || strings.Contains(string(r.body), "hint") {
		t.Fatalf("token list shows a secret: %s", r.body)
	}
	list := r.json(t)["tokens"].([]any)
	if len(list) != 2 {
		t.Fatalf("tokens %v", list)
	}
	// Oldest first; both were created within the same second.
	ci, root := list[1].(map[string]any), list[0].(map[string]any)
	if ci["id"] != created["id"] {
		ci, root = root, ci
	}
	for _, k := range []string{"id", "name", "role", "products", "created_at", "last_used_at", "expires_at"} {
		if _, ok := ci[k]; !ok {
			t.Errorf("token has no %s: %v", k, ci)
		}
	}
	if ci["id"] != created["id"] || ci["expires_at"] != "2099-01-02T03:04:05Z" || ci["last_used_at"] == nil || ci["role"] != "publisher" {
		t.Fatalf("listed %v", ci)
	}
	if root["expires_at"] != nil || len(root["products"].([]any)) != 0 {
		t.Fatalf("root token %v", root)
	}
	e.must(204, e.do("DELETE", "/v1/tokens/"+ci["id"].(string), admin, nil))
	e.must(401, e.do("GET", "/v1/products", bearer(raw), nil))
	e.must(404, e.do("DELETE", "/v1/tokens/"+ci["id"].(string), admin, nil))
	recs := e.must(200, e.do("GET", "/v1/audit?action=token", admin, nil)).json(t)["records"].([]any)
	// The root token's creation (by the test, as the CLI), then ci's.
	all := string(e.do("GET", "/v1/audit", admin, nil).body)
	if len(recs) != 3 || strings.Contains(all, raw) || strings.Contains(all, raw[:8]) {
		t.Fatalf("token records %v", recs)
	}
}

// Every answer carries a request id: the client's when it is sane, else a
// new one; the audit record of a change made by the request carries the
// same id.
func TestRequestID(t *testing.T) {
	e := newEnv(t)
	admin := bearer(e.admin)
	got := e.get("/healthz", "")
	if id := got.header.Get("X-Request-Id"); len(id) != 32 {
		t.Fatalf("generated request id %q", id)
	}
	if a, b := got.header.Get("X-Request-Id"), e.get("/healthz", "").header.Get("X-Request-Id"); a == b {
		t.Fatal("two requests share a request id")
	}
	for _, c := range []struct{ in, want string }{
		{"abc-123_x.y:z", "abc-123_x.y:z"},
		{strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{strings.Repeat("a", 65), ""},
		{"has space", ""},
		{"ptk_" + strings.Repeat("A", 40), ""}, // looks like a token: never echoed
		{"é", ""},
	} {
		id := e.get("/v1/products", "", "X-Request-Id", c.in).header.Get("X-Request-Id")
		if c.want != "" && id != c.want || c.want == "" && (id == c.in || len(id) != 32) {
			t.Errorf("X-Request-Id %q answered %q", c.in, id)
		}
	}
	r := e.get("/v1/products/nope", admin, "X-Request-Id", "req-42") // 404: no change
	if r.header.Get("X-Request-Id") != "req-42" {
		t.Fatal("request id not echoed on an error")
	}
	e.must(201, e.doWith("POST", "/v1/products", admin, map[string]any{"slug": "rid"}, "X-Request-Id", "req-43"))
	recs := e.must(200, e.do("GET", "/v1/audit?target=product/rid", admin, nil)).json(t)["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["request_id"] != "req-43" {
		t.Fatalf("records %v", recs)
	}
}

// The access log line of a request carries its request id.
func TestAccessLogRequestID(t *testing.T) {
	var buf bytes.Buffer
	s := server.New(server.Deps{}, server.Options{AccessLog: accesslog.New(&buf, 0)})
	req := httptest.NewRequest("GET", "/healthz", nil)
	req.Header.Set("X-Request-Id", "trace-7")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Header().Get("X-Request-Id") != "trace-7" || !strings.Contains(buf.String(), "request_id=trace-7") {
		t.Fatalf("header %q, log %q", w.Header().Get("X-Request-Id"), buf.String())
	}
}
