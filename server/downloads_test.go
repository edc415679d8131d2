package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// release creates, uploads and publishes one release with one artifact per
// platform/arch pair, and returns the bytes of each (keyed by filename).
func (e *env) release(product, version, channel string, builds ...string) map[string][]byte {
	e.t.Helper()
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/"+product+"/releases", admin, map[string]any{"version": version, "channel": channel}))
	files := map[string][]byte{}
	for _, b := range builds {
		plat, arch, _ := strings.Cut(b, "/")
		name := fmt.Sprintf("%s_%s_%s_%s.tar.gz", product, version, plat, arch)
		body := []byte(strings.Repeat(name+" ", 200))
		e.upload(admin, product, version, name, plat, arch, body)
		files[name] = body
	}
	e.must(200, e.do("POST", "/v1/products/"+product+"/releases/"+version+"/publish", admin, nil))
	return files
}

// fetch follows a download the way `curl -L` does, with the license only on
// the portal request, and returns the final status and bytes.
func (e *env) fetch(path, auth string) (int, []byte, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.url+path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		return res.StatusCode, body, res.Header
	}
	hdr := res.Header
	for _, h := range []string{"Cache-Control", "Referrer-Policy"} {
		if hdr.Get(h) == "" {
			e.t.Fatalf("redirect to a signed URL without %s", h)
		}
	}
	// The storage URL works without the license header.
	res, err = http.Get(hdr.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ = io.ReadAll(res.Body)
	return res.StatusCode, body, hdr
}

func testDownloadBytes(t *testing.T, o envOptions) {
	e := newEnvWith(t, o)
	e.product("acme", "licensed")
	files := e.release("acme", "1.0.0", "", "linux/amd64", "darwin/arm64")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	lic := "License " + key
	st, got, _ := e.fetch("/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64", lic)
	if st != 200 || !bytes.Equal(got, files["acme_1.0.0_linux_amd64.tar.gz"]) {
		t.Fatalf("download: %d, %d bytes", st, len(got))
	}
	st, got, _ = e.fetch("/v1/products/acme/releases/latest/artifacts/acme_1.0.0_darwin_arm64.tar.gz/download", lic)
	if st != 200 || !bytes.Equal(got, files["acme_1.0.0_darwin_arm64.tar.gz"]) {
		t.Fatalf("artifact download: %d, %d bytes", st, len(got))
	}
	// JSON mode.
	req, _ := http.NewRequest("GET", e.url+"/v1/products/acme/releases/latest/download?platform=darwin&arch=arm64", nil)
	req.Header.Set("Authorization", lic)
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	r := resp{res.StatusCode, res.Header, b}
	m := e.must(200, r).json(t)
	if m["filename"] != "acme_1.0.0_darwin_arm64.tar.gz" || m["sha256"] != sha(files["acme_1.0.0_darwin_arm64.tar.gz"]) || m["url"] == "" || m["version"] != "1.0.0" {
		t.Fatalf("JSON grant: %s", b)
	}
	if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("grant headers: %v", res.Header)
	}
}

func TestDownloadLocal(t *testing.T) { testDownloadBytes(t, envOptions{}) }
func TestDownloadS3(t *testing.T)    { testDownloadBytes(t, envOptions{s3: true}) }

func TestDownloadRefusals(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("other", "licensed")
	e.product("free", "open")
	e.release("acme", "1.0.0", "", "linux/amd64", "windows/amd64")
	e.release("other", "1.0.0", "", "linux/amd64")
	e.release("free", "1.0.0", "", "linux/amd64")
	e.release("acme", "2.0.0-beta.1", "beta", "linux/amd64")
	expiry := e.now().Add(24 * time.Hour)
	e.advance(48 * time.Hour)
	e.release("acme", "2.0.0", "", "linux/amd64") // published after the expiry
	e.release("acme", "3.0.0", "", "linux/amd64")
	e.must(200, e.do("POST", "/v1/products/acme/releases/3.0.0/yank", bearer(e.admin), nil))

	lic := func(body map[string]any) string {
		body["customer"], body["product"] = "c", "acme"
		_, key := e.license(body)
		return "License " + key
	}
	plain := lic(map[string]any{})
	suspendedID, suspendedKey := e.license(map[string]any{"customer": "c", "product": "acme"})
	e.must(200, e.do("POST", "/v1/licenses/"+suspendedID+"/suspend", bearer(e.admin), nil))
	revokedID, revokedKey := e.license(map[string]any{"customer": "c", "product": "acme"})
	e.must(200, e.do("POST", "/v1/licenses/"+revokedID+"/revoke", bearer(e.admin), nil))
	maintain := lic(map[string]any{"expires_at": expiry, "on_expiry": "maintain"})
	revoke := lic(map[string]any{"expires_at": expiry, "on_expiry": "revoke"})
	v1only := lic(map[string]any{"constraint": "< 2.0"})
	stableOnly := lic(map[string]any{"channels": []string{"stable"}})
	linuxOnly := lic(map[string]any{"platforms": []string{"linux"}})
	dl := func(ver, plat string) string {
		return "/v1/products/acme/releases/" + ver + "/download?platform=" + plat + "&arch=amd64"
	}
	cases := []struct {
		name, path, auth string
		status           int
		code             string
	}{
		{"allowed", dl("2.0.0", "linux"), plain, 200, ""},
		{"no license", dl("1.0.0", "linux"), "", 401, "unauthorized"},
		{"suspended", dl("1.0.0", "linux"), "License " + suspendedKey, 403, "license_suspended"},
		{"revoked", dl("1.0.0", "linux"), "License " + revokedKey, 403, "license_revoked"},
		{"expired, revoke", dl("1.0.0", "linux"), revoke, 403, "license_expired"},
		{"expired, maintain, release before expiry", dl("1.0.0", "linux"), maintain, 200, ""},
		{"expired, maintain, release after expiry", dl("2.0.0", "linux"), maintain, 403, "license_expired"},
		{"expired, maintain, latest falls back", dl("latest", "linux"), maintain, 200, ""},
		{"constraint", dl("2.0.0", "linux"), v1only, 403, "not_entitled"},
		{"latest under a constraint", dl("latest", "linux"), v1only, 200, ""},
		{"channel", dl("2.0.0-beta.1", "linux"), stableOnly, 403, "not_entitled"},
		{"platform", dl("1.0.0", "windows"), linuxOnly, 403, "not_entitled"},
		{"other product", "/v1/products/other/releases/1.0.0/download?platform=linux&arch=amd64", plain, 403, "not_entitled"},
		{"open product, no license", "/v1/products/free/releases/latest/download?platform=linux&arch=amd64", "", 200, ""},
		{"yanked", dl("3.0.0", "linux"), plain, 404, "not_found"},
		{"unknown version", dl("9.0.0", "linux"), plain, 404, "not_found"},
		{"unknown product", "/v1/products/nope/releases/1.0.0/download?platform=linux&arch=amd64", plain, 404, "not_found"},
		{"no build for the platform", dl("1.0.0", "darwin"), plain, 404, "not_found"},
		{"unknown artifact", "/v1/products/acme/releases/1.0.0/artifacts/nope.zip/download", plain, 404, "not_found"},
		{"missing platform", "/v1/products/acme/releases/1.0.0/download", plain, 400, "invalid"},
		{"bad channel", dl("latest", "linux") + "&channel=nightly", plain, 400, "invalid"},
		{"bad ttl", dl("1.0.0", "linux") + "&ttl=-5", plain, 400, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, body, _ := e.fetch(c.path, c.auth)
			code := resp{body: body}.code()
			if st != c.status || code != c.code {
				t.Fatalf("got %d %q, want %d %q: %.200s", st, code, c.status, c.code, body)
			}
		})
	}
	// GET .../releases/latest answers per license too.
	r := e.must(200, e.do("GET", "/v1/products/acme/releases/latest", v1only, nil))
	if v := r.json(t)["version"]; v != "1.0.0" {
		t.Fatalf("release latest for a 1.x license: %v", v)
	}
	r = e.must(200, e.do("GET", "/v1/products/acme/releases/latest?channel=beta", plain, nil))
	if v := r.json(t)["version"]; v != "2.0.0" {
		t.Fatalf("release latest on beta: %v", v)
	}
	// latest resolves per license: the constrained license gets 1.0.0, the
	// plain one 2.0.0 (3.0.0 was yanked), beta sees the beta on its channel.
	for _, c := range []struct{ auth, channel, want string }{
		{v1only, "", "1.0.0"}, {plain, "", "2.0.0"}, {maintain, "", "1.0.0"}, {plain, "beta", "2.0.0"}, {stableOnly, "beta", "2.0.0"},
	} {
		_, body, hdr := e.fetch(dl("latest", "linux")+"&channel="+c.channel, c.auth)
		_ = body
		if loc := hdr.Get("Location"); loc == "" {
			t.Fatalf("latest on %q: no redirect", c.channel)
		}
		req, _ := http.NewRequest("GET", e.url+dl("latest", "linux")+"&channel="+c.channel, nil)
		req.Header.Set("Authorization", c.auth)
		req.Header.Set("Accept", "application/json")
		res, _ := http.DefaultClient.Do(req)
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if v := (resp{body: b}).json(t)["version"]; v != c.want {
			t.Errorf("latest on %q: %v, want %s", c.channel, v, c.want)
		}
	}
}

func TestShareLinks(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	files := e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	lic := "License " + key
	name := "acme_1.0.0_linux_amd64.tar.gz"
	link := func() (string, string) {
		r := e.must(201, e.do("POST", "/v1/links", lic, map[string]any{"product": "acme", "version": "1.0.0", "filename": name, "ttl": 3600}))
		m := r.json(t)
		return m["id"].(string), strings.TrimPrefix(m["url"].(string), e.url)
	}
	linkID, path := link()
	st, got, _ := e.fetch(path, "")
	if st != 200 || !bytes.Equal(got, files[name]) {
		t.Fatalf("share link: %d", st)
	}
	e.must(204, e.do("DELETE", "/v1/links/"+linkID, lic, nil))
	if st, body, _ := e.fetch(path, ""); st != 403 || (resp{body: body}).code() != "link_revoked" {
		t.Fatalf("revoked link: %d %s", st, body)
	}
	// Suspending the license stops its links at the next request.
	_, path = link()
	e.must(200, e.do("POST", "/v1/licenses/"+id+"/suspend", bearer(e.admin), nil))
	if st, body, _ := e.fetch(path, ""); st != 403 || (resp{body: body}).code() != "license_suspended" {
		t.Fatalf("link of a suspended license: %d %s", st, body)
	}
	e.must(200, e.do("POST", "/v1/licenses/"+id+"/reinstate", bearer(e.admin), nil))
	if st, _, _ := e.fetch(path, ""); st != 200 {
		t.Fatalf("link after reinstating: %d", st)
	}
	// Tampered, expired, and hostile tokens.
	if st, _, _ := e.fetch(path[:len(path)-2]+"xx", ""); st != 403 {
		t.Fatalf("tampered link: %d", st)
	}
	for _, bad := range []string{"/d/x", "/d/" + strings.Repeat("a", 5000), "/d/a.b.c.d", "/d/%00"} {
		if st, _, _ := e.fetch(bad, ""); st < 400 || st >= 500 {
			t.Fatalf("%.40s: %d", bad, st)
		}
	}
	e.advance(2 * time.Hour)
	if st, body, _ := e.fetch(path, ""); st != 403 || (resp{body: body}).code() != "link_expired" {
		t.Fatalf("expired link: %d %s", st, body)
	}
	// TTL above the cap, and links without a license.
	e.must(400, e.do("POST", "/v1/links", lic, map[string]any{"product": "acme", "version": "1.0.0", "filename": name, "ttl": 30 * 24 * 3600}))
	e.must(401, e.do("POST", "/v1/links", "", map[string]any{"product": "acme", "version": "1.0.0", "filename": name}))
	// Another license may not delete this license's links.
	_, other := e.license(map[string]any{"customer": "Eve", "product": "acme"})
	linkID, _ = link()
	e.must(404, e.do("DELETE", "/v1/links/"+linkID, "License "+other, nil))
}

func TestQuota(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme", "downloads_per_day": 3})
	path := "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	// Start the day near its end, so that the next day is an hour away
	// (forward only: after 23:00 UTC that is tomorrow's 23:00).
	end := e.now().Truncate(24 * time.Hour).Add(23 * time.Hour)
	if !end.After(e.now()) {
		end = end.Add(24 * time.Hour)
	}
	e.advance(end.Sub(e.now()))
	for i := 0; i < 3; i++ {
		if st, _, _ := e.fetch(path, "License "+key); st != 200 {
			t.Fatalf("download %d: %d", i+1, st)
		}
	}
	st, body, hdr := e.fetch(path, "License "+key)
	if st != 403 || (resp{body: body}).code() != "quota_exceeded" || !strings.Contains(string(body), "reset_at") || hdr.Get("Retry-After") == "" {
		t.Fatalf("4th download: %d %s", st, body)
	}
	e.advance(time.Hour)
	if st, _, _ := e.fetch(path, "License "+key); st != 200 {
		t.Fatalf("first download of the next day: %d", st)
	}
}

// TestWrongKeysAreLimitedPerAddress: 200 wrong keys from one address get
// 429s while a valid key from another address still downloads.
func TestWrongKeysAreLimitedPerAddress(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	_, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	path := "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	limited := 0
	for i := 0; i < 200; i++ {
		wrong := fmt.Sprintf("License lic_%032d", i)
		r := e.do("GET", path, wrong, nil)
		if r.status == 429 {
			limited++
		} else if r.status != 401 {
			t.Fatalf("wrong key %d: %d", i, r.status)
		}
	}
	if limited < 150 {
		t.Fatalf("only %d of 200 wrong keys were limited", limited)
	}
	// Another loopback address is another client.
	other := &http.Client{
		Transport:     &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequest("GET", e.url+path, nil)
	req.Header.Set("Authorization", "License "+key)
	res, err := other.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("valid key from another address: %d", res.StatusCode)
	}
}

// TestLedger: one row per grant after a burst of 1,000 concurrent
// downloads, all there after a clean shutdown.
func TestLedger(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	path := e.url + "/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64"
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	client := &http.Client{Transport: tr, CheckRedirect: noRedirect.CheckRedirect}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var failed sync.Map
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "License "+key)
			req.Header.Set("User-Agent", fmt.Sprintf("burst/%d", i))
			res, err := client.Do(req)
			if err != nil {
				failed.Store(i, err.Error())
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusSeeOther {
				failed.Store(i, res.Status)
			}
		}(i)
	}
	wg.Wait()
	failed.Range(func(k, v any) bool { t.Fatalf("download %v: %v", k, v); return false })
	// A clean shutdown flushes what is queued.
	if err := e.srv.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := e.ledger.Count(context.Background(), "acme", "1.0.0")
	if err != nil || n != 1000 {
		t.Fatalf("count = %d, %v; want 1000", n, err)
	}
	rows, cursor := 0, ""
	for {
		gs, next, err := e.ledger.ByLicense(context.Background(), id, cursor, 300)
		if err != nil {
			t.Fatal(err)
		}
		rows += len(gs)
		if next == "" {
			break
		}
		cursor = next
	}
	if rows != 1000 {
		t.Fatalf("ledger rows = %d, want 1000", rows)
	}
}

func TestLedgerEndpoints(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "", "linux/amd64")
	id, key := e.license(map[string]any{"customer": "Bob", "product": "acme"})
	for i := 0; i < 3; i++ {
		e.fetch("/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64", "License "+key)
	}
	e.ledger.Flush(context.Background())
	r := e.must(200, e.do("GET", "/v1/licenses/"+id+"/downloads?limit=2", bearer(e.admin), nil))
	m := r.json(t)
	if len(m["downloads"].([]any)) != 2 || m["next_cursor"] == nil {
		t.Fatalf("downloads page: %s", r.body)
	}
	row := m["downloads"].([]any)[0].(map[string]any)
	if row["version"] != "1.0.0" || row["filename"] != "acme_1.0.0_linux_amd64.tar.gz" || row["client"] == "" {
		t.Fatalf("ledger row: %v", row)
	}
	r = e.must(200, e.do("GET", "/v1/products/acme/downloads", bearer(e.admin), nil))
	if r.json(t)["downloads"].(map[string]any)["1.0.0"] != float64(3) {
		t.Fatalf("counts: %s", r.body)
	}
	r = e.must(200, e.do("GET", "/v1/me", "License "+key, nil))
	if rs := r.json(t)["releases"].([]any); len(rs) != 1 || r.json(t)["access"] != "ok" {
		t.Fatalf("/v1/me: %s", r.body)
	}
	// A constrained license is "ok"; an expired one says how it stands.
	_, constrained := e.license(map[string]any{"customer": "C", "product": "acme", "constraint": ">= 1.0, < 2.0"})
	_, maintained := e.license(map[string]any{"customer": "M", "product": "acme", "expires_at": e.now().Add(time.Hour), "on_expiry": "maintain"})
	_, ended := e.license(map[string]any{"customer": "E", "product": "acme", "expires_at": e.now().Add(time.Hour)})
	e.advance(2 * time.Hour)
	for key, want := range map[string]string{constrained: "ok", maintained: "maintained", ended: "license_expired"} {
		r := e.must(200, e.do("GET", "/v1/me", "License "+key, nil))
		if got := r.json(t)["access"]; got != want {
			t.Errorf("/v1/me access = %v, want %s", got, want)
		}
	}
}
