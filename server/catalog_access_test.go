package server_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestDeadLicensesReadNoCatalog: a revoked, suspended or expired (on_expiry
// revoke) license reads nothing of the licensed product it can no longer
// download, on every catalog read, with the license's own refusal code;
// the product listing leaves the product out. A license expired with
// on_expiry maintain and a live one still read it.
//
// The product's public signing keys are public on purpose: apps embed
// them, they let anyone verify a file and reveal nothing a signature does
// not, so GET .../keys answers every caller, these licenses and anonymous
// callers included.
func TestDeadLicensesReadNoCatalog(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("free", "open")
	e.release("acme", "1.0.0", "stable", "linux/amd64")
	e.release("free", "1.0.0", "stable", "linux/amd64")
	const file = "acme_1.0.0_linux_amd64.tar.gz"
	admin := bearer(e.admin)

	newLicense := func(extra map[string]any) (string, string) {
		body := map[string]any{"customer": "c", "product": "acme"}
		for k, v := range extra {
			body[k] = v
		}
		id, key := e.license(body)
		return id, "License " + key
	}
	soon := e.now().Add(time.Hour).Format(time.RFC3339)
	_, live := newLicense(nil)
	revokedID, revoked := newLicense(nil)
	suspendedID, suspended := newLicense(nil)
	_, expired := newLicense(map[string]any{"expires_at": soon, "on_expiry": "revoke"})
	_, maintained := newLicense(map[string]any{"expires_at": soon, "on_expiry": "maintain"})
	e.must(200, e.do("POST", "/v1/licenses/"+revokedID+"/revoke", admin, nil))
	e.must(200, e.do("POST", "/v1/licenses/"+suspendedID+"/suspend", admin, nil))
	e.advance(2 * time.Hour)

	reads := []string{
		"/v1/products/acme",
		"/v1/products/acme/releases",
		"/v1/products/acme/releases/1.0.0",
		"/v1/products/acme/releases/latest",
		"/v1/products/acme/releases/1.0.0/artifacts/" + file,
		"/v1/products/acme/releases/1.0.0/artifacts/" + file + ".minisig",
		"/v1/products/acme/releases/1.0.0/files/" + file + ".minisig",
	}
	for _, c := range []struct {
		name, auth, code string
	}{
		{"revoked", revoked, "license_revoked"},
		{"suspended", suspended, "license_suspended"},
		{"expired", expired, "license_expired"},
		{"maintained", maintained, ""},
		{"live", live, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, p := range reads {
				r := e.get(p, c.auth)
				if c.code == "" {
					if r.status != 200 {
						t.Errorf("%s: %d %s, want 200", p, r.status, r.body)
					}
					continue
				}
				if r.status != 403 || r.code() != c.code {
					t.Errorf("%s: %d %s, want 403 %s", p, r.status, r.body, c.code)
				}
				if r.status == 200 {
					t.Errorf("%s: the catalog answered: %.200s", p, r.body)
				}
			}
			var list struct {
				Products []struct{ Slug string }
			}
			r := e.must(200, e.get("/v1/products", c.auth))
			if err := json.Unmarshal(r.body, &list); err != nil {
				t.Fatal(err)
			}
			var slugs []string
			for _, p := range list.Products {
				slugs = append(slugs, p.Slug)
			}
			if want := c.code == ""; slices.Contains(slugs, "acme") != want || !slices.Contains(slugs, "free") {
				t.Errorf("/v1/products lists %v; acme listed should be %v, free always", slugs, want)
			}
			// Keys are public.
			if r := e.get("/v1/products/acme/keys", c.auth); r.status != 200 || r.json(t)["minisign"] == nil {
				t.Errorf("keys: %d %s", r.status, r.body)
			}
		})
	}
	if r := e.get("/v1/products/acme/keys", ""); r.status != 200 {
		t.Errorf("keys without a license: %d %s", r.status, r.body)
	}
}
