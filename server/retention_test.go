package server_test

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAnonymousGrantsAreLimitedPerAddress: an anonymous flood of an open
// product's downloads gets 429 rate_limited with Retry-After past
// downloads.anonymous_grants_per_minute (60), and the refused grants are
// not recorded; another address, and the same one a minute later, still
// download.
func TestAnonymousGrantsAreLimitedPerAddress(t *testing.T) {
	e := newEnv(t)
	e.product("free", "open")
	e.release("free", "1.0.0", "", "linux/amd64")
	path := "/v1/products/free/releases/1.0.0/download?platform=linux&arch=amd64"
	flood := e.from("127.0.0.6")
	for i := range 60 {
		if r := flood("GET", path, ""); r.status != 303 {
			t.Fatalf("anonymous grant %d: %d %s", i, r.status, r.body)
		}
	}
	for range 20 {
		r := flood("GET", path, "")
		if r.status != 429 || r.code() != "rate_limited" || r.header.Get("Retry-After") == "" {
			t.Fatalf("anonymous grant past the limit: %d %q, Retry-After %q", r.status, r.code(), r.header.Get("Retry-After"))
		}
	}
	if err := e.ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.ledger.Count(context.Background(), "free", "1.0.0"); n != 60 {
		t.Fatalf("ledger counts %d grants, want the 60 granted", n)
	}
	if r := e.from("127.0.0.7")("GET", path, ""); r.status != 303 {
		t.Fatalf("another address: %d", r.status)
	}
	e.advance(time.Minute)
	if r := flood("GET", path, ""); r.status != 303 {
		t.Fatalf("the flooding address a minute later: %d", r.status)
	}
}

// TestLinksPerLicenseOverHTTP: a license holds at most
// downloads.links_per_license (100) live share links; the next one is 409
// conflict with a message saying what to do, and the store is unchanged;
// revoking one makes room.
func TestLinksPerLicenseOverHTTP(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	lic := "License " + key
	body := map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "ttl": 3600}
	var first string
	for i := range 100 {
		r := e.must(201, e.do("POST", "/v1/links", lic, body))
		if i == 0 {
			first = r.json(t)["id"].(string)
		}
	}
	before := e.dump()
	r := e.do("POST", "/v1/links", lic, body)
	if r.status != 409 || r.code() != "conflict" || !strings.Contains(string(r.body), "100 live share links") {
		t.Fatalf("link 101: %d %s", r.status, r.body)
	}
	if e.dump() != before {
		t.Fatal("a refused link changed the store")
	}
	e.must(204, e.do("DELETE", "/v1/links/"+first, lic, nil))
	e.must(201, e.do("POST", "/v1/links", lic, body))
	if ls, err := e.app.Links.List(context.Background(), id); err != nil || len(ls) != 100 {
		t.Fatalf("%d links stored (%v), want 100 (the revoked one made room)", len(ls), err)
	}
}

// TestRetentionPurge: a retention pass (what the app runs hourly) deletes
// grants older than downloads.ledger_retention (90 days) and share links
// expired more than downloads.link_retention (7 days) ago, and keeps the
// release totals, the daily rollups and what is newer.
func TestRetentionPurge(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.product("free", "open")
	e.release("free", "1.0.0", "", "linux/amd64")
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	lic := "License " + key
	free := "/v1/products/free/releases/1.0.0/download?platform=linux&arch=amd64"
	paid := "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	get := func(path, auth string) {
		t.Helper()
		if st, body, _ := e.fetch(path, auth); st != 200 {
			t.Fatalf("download %s: %d %s", path, st, body)
		}
	}
	day0 := e.now().UTC().Format(time.DateOnly)
	for range 5 {
		get(free, "")
		get(paid, lic)
	}
	link := map[string]any{"product": "acme", "version": "1.0.0", "filename": "acme_1.0.0_linux_amd64.tar.gz", "ttl": 3600}
	e.must(201, e.do("POST", "/v1/links", lic, link))
	if err := e.ledger.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	// 91 days later: new grants and a new link.
	e.advance(91 * 24 * time.Hour)
	day91 := e.now().UTC().Format(time.DateOnly)
	get(free, "")
	get(paid, lic)
	e.must(201, e.do("POST", "/v1/links", lic, link))
	if err := e.ledger.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.app.Downloads.Purge(ctx); err != nil {
		t.Fatal(err)
	}

	grants := e.must(200, e.do("GET", "/v1/licenses/"+id+"/downloads", bearer(e.admin), nil)).json(t)
	if gs := grants["downloads"].([]any); len(gs) != 1 {
		t.Fatalf("%d grants of the license after the purge, want the 1 newer than 90 days", len(gs))
	}
	anon, _, err := e.ledger.ByLicense(ctx, "", "", 100)
	if err != nil || len(anon) != 1 {
		t.Fatalf("%d anonymous grants after the purge (%v), want 1", len(anon), err)
	}
	for _, p := range []string{"free", "acme"} {
		if n, _ := e.ledger.Count(ctx, p, "1.0.0"); n != 6 {
			t.Errorf("%s: total %d after the purge, want 6", p, n)
		}
		daily, err := e.ledger.Daily(ctx, p, "1.0.0")
		if err != nil || daily[day0] != 5 || daily[day91] != 1 {
			t.Errorf("%s: daily rollup %v (%v), want 5 on %s and 1 on %s", p, daily, err, day0, day91)
		}
	}
	if ls, err := e.app.Links.List(ctx, id); err != nil || len(ls) != 1 {
		t.Fatalf("%d links after the purge (%v), want the live one", len(ls), err)
	}
}
