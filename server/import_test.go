package server_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestLicenseImport: an import creates every license or none. A bad row is
// named and leaves the store unchanged; a dry run checks without writing;
// a good import answers every key once, and each key works.
func TestLicenseImport(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.release("acme", "1.0.0", "stable", "linux/amd64")
	admin := bearer(e.admin)
	rows := func(n int, mod func(i int, r map[string]any)) []map[string]any {
		out := make([]map[string]any, n)
		for i := range out {
			out[i] = map[string]any{"customer": fmt.Sprintf("Customer %03d", i), "product": "acme"}
			if mod != nil {
				mod(i, out[i])
			}
		}
		return out
	}

	before := storeDump(t, e.db)
	bad := rows(200, func(i int, r map[string]any) {
		if i == 136 {
			r["constraint"] = ">>= 2"
		}
		if i == 150 {
			r["product"] = "nope"
		}
	})
	r := e.must(400, e.do("POST", "/v1/licenses/import", admin, map[string]any{"licenses": bad}))
	if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "row 137") || !strings.Contains(msg, "1 more") {
		t.Errorf("message %q does not name row 137 and the other bad row", msg)
	}
	if errRows := r.json(t)["error"].(map[string]any)["rows"].([]any); len(errRows) != 2 {
		t.Errorf("rows = %v", errRows)
	}
	e.must(400, e.do("POST", "/v1/licenses/import", admin, map[string]any{"licenses": []any{}}))
	e.must(400, e.do("POST", "/v1/licenses/import", admin, map[string]any{"licenses": rows(2, nil), "dryrun": true}))
	e.must(200, e.do("POST", "/v1/licenses/import", admin, map[string]any{"licenses": rows(200, nil), "dry_run": true}))
	e.must(401, e.do("POST", "/v1/licenses/import", "", map[string]any{"licenses": rows(2, nil)}))
	if after := storeDump(t, e.db); after != before {
		t.Fatalf("a refused import or a dry run changed the store:\n%s", storeDiff(before, after))
	}

	r = e.must(201, e.do("POST", "/v1/licenses/import", admin, map[string]any{"licenses": rows(200, nil)}))
	created := r.json(t)["licenses"].([]any)
	if len(created) != 200 {
		t.Fatalf("%d licenses created, want 200", len(created))
	}
	keys := map[string]bool{}
	for _, c := range created {
		key := c.(map[string]any)["key"].(string)
		if keys[key] || !strings.HasPrefix(key, "lic_") {
			t.Fatalf("key %q repeated or malformed", key)
		}
		keys[key] = true
	}
	for _, i := range []int{0, 199} {
		key := created[i].(map[string]any)["key"].(string)
		e.must(200, e.do("GET", "/v1/me", "License "+key, nil))
	}
	list := e.must(200, e.do("GET", "/v1/licenses?customer=customer+1&limit=1000", admin, nil)).json(t)["licenses"].([]any)
	if len(list) != 100 {
		t.Errorf("customer filter found %d of the imported licenses, want 100", len(list))
	}
	if strings.Contains(storeDump(t, e.db), created[0].(map[string]any)["key"].(string)) {
		t.Fatal("a key is stored in the clear")
	}
}
