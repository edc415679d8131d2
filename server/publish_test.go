package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func sha(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// put sends body to a minted upload, using only its URL and headers.
func put(t *testing.T, up map[string]any, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(up["method"].(string), up["url"].(string), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range up["headers"].(map[string]any) {
		req.Header.Set(k, v.(string))
	}
	// net/http sends the body's real length, whatever the header says.
	req.ContentLength = int64(len(body))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// declare adds an artifact and returns its upload instructions.
func (e *env) declare(auth, product, version, filename, platform, arch string, body []byte) map[string]any {
	e.t.Helper()
	r := e.must(201, e.do("POST", "/v1/products/"+product+"/releases/"+version+"/artifacts", auth, map[string]any{
		"filename": filename, "platform": platform, "arch": arch, "size": len(body), "sha256": sha(body)}))
	if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Referrer-Policy") != "no-referrer" {
		e.t.Fatalf("upload URL response headers: %v", r.header)
	}
	m := r.json(e.t)
	if m["artifact"].(map[string]any)["status"] != "waiting" || m["artifact"].(map[string]any)["object_key"] != nil {
		e.t.Fatalf("declared artifact: %s", r.body)
	}
	return m["upload"].(map[string]any)
}

// upload declares, uploads and completes one artifact.
func (e *env) upload(auth, product, version, filename, platform, arch string, body []byte) map[string]any {
	e.t.Helper()
	up := e.declare(auth, product, version, filename, platform, arch, body)
	if st := put(e.t, up, body); st != 200 && st != 201 && st != 204 {
		e.t.Fatalf("PUT: %d", st)
	}
	r := e.must(200, e.do("POST", "/v1/products/"+product+"/releases/"+version+"/artifacts/"+url.PathEscape(filename)+"/complete", auth, nil))
	return r.json(e.t)["artifact"].(map[string]any)
}

func TestPublishFlow(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	pub := bearer(e.token("publisher", "acme"))
	e.must(201, e.do("POST", "/v1/products/acme/releases", pub, map[string]any{"version": "1.0.0"}))
	body := []byte(strings.Repeat("portal build ", 1000))
	a := e.upload(pub, "acme", "1.0.0", "acme_1.0.0_linux_amd64.tar.gz", "linux", "amd64", body)
	if a["status"] != "uploaded" || a["sha512"] == "" || a["signatures"].(map[string]any)["minisign"] == nil {
		t.Fatalf("completed artifact: %v", a)
	}
	// Completing twice is harmless.
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/artifacts/acme_1.0.0_linux_amd64.tar.gz/complete", pub, nil))
	r := e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/publish", pub, nil))
	if r.json(t)["status"] != "published" {
		t.Fatalf("publish: %s", r.body)
	}
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/publish", pub, nil)) // idempotent
	// A published release's artifacts can no longer change.
	e.must(409, e.do("POST", "/v1/products/acme/releases/1.0.0/artifacts", pub, map[string]any{
		"filename": "x.zip", "platform": "linux", "arch": "amd64", "size": 1, "sha256": sha([]byte("x"))}))
	e.must(409, e.do("DELETE", "/v1/products/acme/releases/1.0.0/artifacts/acme_1.0.0_linux_amd64.tar.gz", pub, nil))
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/yank", pub, nil))
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/yank", pub, nil))
}

func TestPublishHostile(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("other", "licensed")
	admin := bearer(e.admin)
	pub := bearer(e.token("publisher", "acme"))
	e.must(201, e.do("POST", "/v1/products/acme/releases", pub, map[string]any{"version": "2.0.0"}))
	e.must(201, e.do("POST", "/v1/products/other/releases", admin, map[string]any{"version": "1.0.0"}))
	body := []byte("the real build")

	// Wrong bytes of the declared size, and a different size: refused by
	// the store, so the artifact stays waiting and cannot be published.
	up := e.declare(pub, "acme", "2.0.0", "app.zip", "darwin", "universal", body)
	if st := put(t, up, []byte("the fake build")); st < 400 || st >= 500 {
		t.Fatalf("PUT of other bytes: %d", st)
	}
	if st := put(t, up, []byte("short")); st < 400 || st >= 500 {
		t.Fatalf("PUT of another size: %d", st)
	}
	r := e.do("POST", "/v1/products/acme/releases/2.0.0/artifacts/app.zip/complete", pub, nil)
	if r.status != 409 {
		t.Fatalf("complete before a successful upload: %d %s", r.status, r.body)
	}
	e.must(409, e.do("POST", "/v1/products/acme/releases/2.0.0/publish", pub, nil))

	before := e.dump()
	long := strings.Repeat("a", 1000) + ".zip"
	for _, name := range []string{"../evil.zip", "a/b.zip", `a\b.zip`, "bad\x01name.zip", "tab\tname", long, "..", ""} {
		r := e.do("POST", "/v1/products/acme/releases/2.0.0/artifacts", pub, map[string]any{
			"filename": name, "platform": "linux", "arch": "amd64", "size": len(body), "sha256": sha(body)})
		if r.status != 400 {
			t.Errorf("filename %q: %d %s", name, r.status, r.body)
		}
	}
	for _, c := range []struct {
		name string
		body map[string]any
	}{
		{"negative size", map[string]any{"filename": "a.zip", "platform": "linux", "arch": "amd64", "size": -1, "sha256": sha(body)}},
		{"zero size", map[string]any{"filename": "a.zip", "platform": "linux", "arch": "amd64", "size": 0, "sha256": sha(body)}},
		{"bad sha", map[string]any{"filename": "a.zip", "platform": "linux", "arch": "amd64", "size": 3, "sha256": "XYZ"}},
		{"upper-case sha", map[string]any{"filename": "a.zip", "platform": "linux", "arch": "amd64", "size": 3, "sha256": strings.ToUpper(sha(body))}},
		{"bad platform", map[string]any{"filename": "a.zip", "platform": "amiga", "arch": "amd64", "size": 3, "sha256": sha(body)}},
		{"bad arch", map[string]any{"filename": "a.zip", "platform": "linux", "arch": "z80", "size": 3, "sha256": sha(body)}},
	} {
		if r := e.do("POST", "/v1/products/acme/releases/2.0.0/artifacts", pub, c.body); r.status != 400 {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
	}
	// A publisher of acme adding to, completing or deleting on other.
	r = e.do("POST", "/v1/products/other/releases/1.0.0/artifacts", pub, map[string]any{
		"filename": "a.zip", "platform": "linux", "arch": "amd64", "size": len(body), "sha256": sha(body)})
	if r.status != 403 {
		t.Fatalf("publisher on another product: %d", r.status)
	}
	e.must(403, e.do("POST", "/v1/products/other/releases/1.0.0/artifacts/a.zip/complete", pub, nil))
	e.must(403, e.do("DELETE", "/v1/products/other/releases/1.0.0/artifacts/a.zip", pub, nil))
	e.must(404, e.do("POST", "/v1/products/acme/releases/2.0.0/artifacts/none.zip/complete", pub, nil))
	if after := e.dump(); after != before {
		t.Fatalf("refused declarations changed the store")
	}
}
