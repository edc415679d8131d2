package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/objects"
)

// releaseSameName publishes version on channel with one linux/amd64
// artifact named "app.tar.gz", the same name in every release (as many
// vendors name their builds).
func (e *env) releaseSameName(product, version, channel string) []byte {
	e.t.Helper()
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/"+product+"/releases", admin, map[string]any{"version": version, "channel": channel}))
	body := []byte(strings.Repeat(version+" ", 300))
	e.upload(admin, product, version, "app.tar.gz", "linux", "amd64", body)
	e.must(200, e.do("POST", "/v1/products/"+product+"/releases/"+version+"/publish", admin, nil))
	return body
}

// API.md: "latest" is the newest published release on the requested
// channel, stable by default. Artifact metadata, its .minisig and share
// links made for "latest" must agree with the download, not look on dev.
func TestReviewLatestDefaultsToStable(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.releaseSameName("acme", "1.0.0", "")
	e.releaseSameName("acme", "1.1.0-beta.1", "beta")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	lic := "License " + key

	g := e.must(200, e.get("/v1/products/acme/releases/latest/artifacts/app.tar.gz/download", lic, "Accept", "application/json")).json(t)
	if g["version"] != "1.0.0" {
		t.Fatalf("download of latest: %v", g["version"])
	}
	info := e.must(200, e.get("/v1/products/acme/releases/latest/artifacts/app.tar.gz", lic)).json(t)
	if info["version"] != "1.0.0" {
		t.Fatalf("metadata of latest is %v, the download is 1.0.0", info["version"])
	}
	info = e.must(200, e.get("/v1/products/acme/releases/latest/artifacts/app.tar.gz?channel=beta", lic)).json(t)
	if info["version"] != "1.1.0-beta.1" {
		t.Fatalf("metadata of latest on beta is %v", info["version"])
	}
	sig := e.must(200, e.get("/v1/products/acme/releases/latest/artifacts/app.tar.gz.minisig", lic))
	want := e.must(200, e.get("/v1/products/acme/releases/1.0.0/artifacts/app.tar.gz.minisig", lic))
	if string(sig.body) != string(want.body) {
		t.Fatalf("minisig of latest is not 1.0.0's")
	}
	l := e.must(201, e.do("POST", "/v1/links", lic, map[string]any{"product": "acme", "version": "latest", "filename": "app.tar.gz"})).json(t)
	if l["version"] != "1.0.0" {
		t.Fatalf("share link for latest pins %v", l["version"])
	}
}

// Rule 6: redirect only to URLs the portal minted. Gin's trailing-slash
// redirect builds its Location from the client's X-Forwarded-Prefix.
func TestReviewNoTrailingSlashRedirect(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	for _, p := range []string{"/v1/products/acme/", "/d/abc/", "/healthz/"} {
		req, _ := http.NewRequest("GET", e.url+p, nil)
		req.Header.Set("X-Forwarded-Prefix", "/elsewhere")
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); loc != "" || res.StatusCode/100 == 3 {
			t.Errorf("%s: %d to %q", p, res.StatusCode, loc)
		}
	}
}

// API.md: anyone may check for updates of and download open products. A
// publisher token of another product is refused what an anonymous caller
// gets (a license of another product is not).
func TestReviewOtherTokenOnOpenProduct(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("free", "open")
	e.release("free", "1.0.0", "", "linux/amd64")
	pub := bearer(e.token("publisher", "acme"))
	for _, p := range []string{
		"/v1/products/free",
		"/v1/products/free/releases",
		"/v1/products/free/releases/1.0.0",
		"/v1/products/free/upgrade?current=0.9.0&platform=linux&arch=amd64",
		"/v1/products/free/releases/1.0.0/download?platform=linux&arch=amd64",
	} {
		anon := e.get(p, "")
		got := e.get(p, pub)
		if got.status != anon.status {
			t.Errorf("%s: publisher of another product %d, anonymous %d: %s", p, got.status, anon.status, got.body)
		}
	}
	// Still no more than anonymous: no drafts, no publishing.
	e.must(201, e.do("POST", "/v1/products/free/releases", bearer(e.admin), map[string]any{"version": "2.0.0"}))
	e.must(404, e.get("/v1/products/free/releases/2.0.0", pub))
	e.must(403, e.do("POST", "/v1/products/free/releases/2.0.0/publish", pub, nil))
}

// flakyObjects fails PresignGet while fail is set.
type flakyObjects struct {
	objects.ObjectStore
	fail atomic.Bool
}

func (f *flakyObjects) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (objects.SignedRequest, error) {
	if f.fail.Load() {
		return objects.SignedRequest{}, errors.New("presign: credentials unavailable")
	}
	return f.ObjectStore.PresignGet(ctx, key, ttl, filename)
}

// A download that fails to mint its URL (500) must not use up the
// license's daily quota: Reserve comes after every other step that can fail.
func TestReviewFailedMintKeepsQuota(t *testing.T) {
	e := newEnv(t)
	objs := &flakyObjects{ObjectStore: e.srv.Objects}
	e.srv.Objects = objs
	e.srv.Downloads = downloads.New(objs, e.srv.Ledger, e.srv.Links, e.srv.Licenses, downloads.Options{Now: e.now})
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme", "downloads_per_day": 1})
	lic := "License " + key
	path := "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	objs.fail.Store(true)
	e.must(500, e.get(path, lic))
	objs.fail.Store(false)
	e.must(303, e.get(path, lic))
	// Asking again while that URL is valid is the same download; once it
	// expired, it is another, past the quota.
	e.must(303, e.get(path, lic))
	e.advance(6 * time.Minute)
	e.must(403, e.get(path, lic)) // quota_exceeded
}
