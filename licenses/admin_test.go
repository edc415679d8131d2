package licenses_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store"
)

// dump returns every key and value in the store.
func (f *fixture) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := f.db.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%q=%q\n", k, v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// records returns the audit records of license id, newest first.
func (f *fixture) records(t *testing.T, id string) []audit.Record {
	t.Helper()
	rs, _, err := audit.New(f.db).List(context.Background(), audit.Filter{TargetPrefix: "license/" + id})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestOldShapeIsRead: a license stored before licenses covered several
// products ("product": "app") is read as products ["app"], decides, lists
// and edits like a new one, and is written back in the new shape.
func TestOldShapeIsRead(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	key := secret.New(licenses.KeyPrefix)
	old := fmt.Sprintf(`{"id":"old1","customer":"Old Corp","product":"app","on_expiry":"revoke","status":"active",`+
		`"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z","key_hint":%q,"key_digest":%q}`,
		secret.Hint(key), secret.Digest(key))
	err := f.db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put([]byte("lic/l/old1"), []byte(old)); err != nil {
			return err
		}
		return tx.Put([]byte("lic/k/"+secret.Digest(key)), []byte("old1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (licenses.License, error){
		"ByKey": func() (licenses.License, error) { return f.lic.ByKey(ctx, key) },
		"Get":   func() (licenses.License, error) { return f.lic.Get(ctx, "old1") },
	} {
		l, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(l.Products) != 1 || l.Products[0] != "app" || l.Product != "" {
			t.Errorf("%s: products %v, product %q; want [app] and none", name, l.Products, l.Product)
		}
		tgt := licenses.Target{Product: "app", Version: "1.0.0", Status: releases.Published, PublishedAt: ptr(t0)}
		if err := l.Decide(tgt, t0); err != nil {
			t.Errorf("%s: Decide(app) = %v", name, err)
		}
		tgt.Product = "tool"
		if portal.ErrorCode(l.Decide(tgt, t0)) != portal.ENotEntitled {
			t.Errorf("%s: Decide(tool) allowed", name)
		}
	}
	ls, _, err := f.lic.List(ctx, licenses.Filter{Product: "app"})
	if err != nil || len(ls) != 1 || ls[0].ID != "old1" {
		t.Fatalf("List(app) = %+v, %v", ls, err)
	}
	if _, err := f.lic.Update(ctx, "old1", licenses.Patch{Customer: ptr("Old Corp Ltd")}); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	f.db.View(ctx, func(tx store.Tx) error {
		v, err := tx.Get([]byte("lic/l/old1"))
		if err == nil {
			err = json.Unmarshal(v, &raw)
		}
		return err
	})
	if _, ok := raw["product"]; ok || fmt.Sprint(raw["products"]) != "[app]" {
		t.Errorf("written back as %v", raw)
	}
}

func TestSeveralProducts(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, key, err := f.lic.Create(ctx, licenses.License{Customer: "Multi", Products: []string{"app", "tool", "app"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(l.Products) != "[app tool]" {
		t.Errorf("products %v, want [app tool] (duplicates dropped)", l.Products)
	}
	got, err := f.lic.ByKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"app", "tool"} {
		tgt := licenses.Target{Product: p, Version: "1.0.0", Status: releases.Published, PublishedAt: ptr(t0)}
		if err := got.Decide(tgt, t0); err != nil {
			t.Errorf("Decide(%s) = %v", p, err)
		}
		if err := got.RefusesAll(p, t0); err != nil {
			t.Errorf("RefusesAll(%s) = %v", p, err)
		}
	}
	err = got.Decide(licenses.Target{Product: "other", Version: "1.0.0"}, t0)
	if portal.ErrorCode(err) != portal.ENotEntitled || !strings.Contains(err.Error(), "app, tool") {
		t.Errorf("Decide(other) = %v", err)
	}
	for _, tc := range []struct {
		name string
		in   licenses.License
		code string
	}{
		{"product and products disagree", licenses.License{Customer: "x", Product: "app", Products: []string{"tool"}}, portal.EInvalid},
		{"no product", licenses.License{Customer: "x"}, portal.EInvalid},
		{"one unknown", licenses.License{Customer: "x", Products: []string{"app", "nope"}}, portal.ENotFound},
		{"bad slug", licenses.License{Customer: "x", Products: []string{"App!"}}, portal.EInvalid},
	} {
		before := f.dump(t)
		if _, _, err := f.lic.Create(ctx, tc.in); portal.ErrorCode(err) != tc.code {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
		if f.dump(t) != before {
			t.Errorf("%s: a refused create changed the store", tc.name)
		}
	}
}

func TestUpdate(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, key, err := f.lic.Create(ctx, licenses.License{Customer: "ACME", Product: "app", ExpiresAt: ptr(expiry)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.lic.ByKey(ctx, key); err != nil { // cached
		t.Fatal(err)
	}
	f.now = t0.Add(time.Hour)
	got, err := f.lic.Update(ctx, l.ID, licenses.Patch{
		Customer: ptr("ACME Inc"), Products: &[]string{"app", "tool"}, Constraint: ptr(">= 2.0"),
		Channels: &[]string{"beta"}, Platforms: &[]string{"macos"}, OnExpiry: ptr(licenses.OnExpiryMaintain),
		DownloadsPerDay: ptr(7), Metadata: &map[string]string{"crm": "42"}, SetExpiry: true, ExpiresAt: nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.Customer != "ACME Inc" || fmt.Sprint(got.Products) != "[app tool]" || got.Constraint != ">= 2.0" ||
		fmt.Sprint(got.Channels) != "[beta]" || fmt.Sprint(got.Platforms) != "[darwin]" || got.OnExpiry != licenses.OnExpiryMaintain ||
		got.DownloadsPerDay != 7 || got.Metadata["crm"] != "42" || got.ExpiresAt != nil || !got.UpdatedAt.Equal(f.now) {
		t.Fatalf("updated %+v", got)
	}
	// The key reads the edit at once (the cache dropped its copy).
	byKey, err := f.lic.ByKey(ctx, key)
	if err != nil || byKey.Customer != "ACME Inc" || !byKey.Covers("tool") {
		t.Fatalf("ByKey after update = %+v, %v", byKey, err)
	}
	rs := f.records(t, l.ID)
	if len(rs) != 2 || rs[0].Action != licenses.ActionUpdate || rs[1].Action != licenses.ActionCreate ||
		rs[0].Actor.Kind != audit.KindCLI || !strings.Contains(string(rs[0].Before), "ACME") || !strings.Contains(string(rs[0].After), "ACME Inc") {
		t.Fatalf("records %+v", rs)
	}
	for _, r := range rs {
		if strings.Contains(string(r.Before)+string(r.After), secret.Digest(key)) {
			t.Errorf("record %s holds the key digest", r.Action)
		}
	}

	// An expiry in the past is allowed: the license is now expired.
	past := t0
	got, err = f.lic.Update(ctx, l.ID, licenses.Patch{SetExpiry: true, ExpiresAt: &past, OnExpiry: ptr(licenses.OnExpiryRevoke)})
	if err != nil || got.StatusAt(f.now) != licenses.Expired || got.Status != licenses.Active {
		t.Fatalf("past expiry: %s (stored %s), %v", got.StatusAt(f.now), got.Status, err)
	}
	if got.ViewAt(f.now).Status != licenses.Expired {
		t.Errorf("view status %q", got.ViewAt(f.now).Status)
	}

	// Refusals change nothing and record nothing.
	n := len(f.records(t, l.ID))
	for _, tc := range []struct {
		name string
		p    licenses.Patch
		code string
		word string
	}{
		{"bad constraint", licenses.Patch{Constraint: ptr(">>> 1")}, portal.EInvalid, "constraint"},
		{"unknown product", licenses.Patch{Products: &[]string{"nope"}}, portal.ENotFound, "products"},
		{"no products", licenses.Patch{Products: &[]string{}}, portal.EInvalid, "products"},
		{"bad channel", licenses.Patch{Channels: &[]string{"nightly"}}, portal.EInvalid, "channels"},
		{"bad platform", licenses.Patch{Platforms: &[]string{"amiga"}}, portal.EInvalid, "platforms"},
		{"bad on_expiry", licenses.Patch{OnExpiry: ptr("never")}, portal.EInvalid, "on_expiry"},
		{"empty on_expiry", licenses.Patch{OnExpiry: ptr("")}, portal.EInvalid, "on_expiry"},
		{"negative quota", licenses.Patch{DownloadsPerDay: ptr(-1)}, portal.EInvalid, "downloads_per_day"},
		{"empty customer", licenses.Patch{Customer: ptr(" ")}, portal.EInvalid, "customer"},
		{"bad metadata", licenses.Patch{Metadata: &map[string]string{"": "x"}}, portal.EInvalid, "metadata"},
	} {
		before := f.dump(t)
		_, err := f.lic.Update(ctx, l.ID, tc.p)
		if portal.ErrorCode(err) != tc.code || !strings.Contains(err.Error(), tc.word) {
			t.Errorf("%s: %v, want %s naming %s", tc.name, err, tc.code, tc.word)
		}
		if f.dump(t) != before {
			t.Errorf("%s: the store changed", tc.name)
		}
	}
	if _, err := f.lic.Update(ctx, "nope", licenses.Patch{Customer: ptr("x")}); portal.ErrorCode(err) != portal.ENotFound {
		t.Errorf("unknown license: %v", err)
	}
	// An edit that changes nothing writes nothing.
	before := f.dump(t)
	if _, err := f.lic.Update(ctx, l.ID, licenses.Patch{Customer: ptr("ACME Inc")}); err != nil {
		t.Fatal(err)
	}
	if f.dump(t) != before {
		t.Error("a no-op edit wrote")
	}
	// Without an actor, nothing is written.
	if _, err := f.lic.Update(context.Background(), l.ID, licenses.Patch{Customer: ptr("Nobody")}); err == nil || f.dump(t) != before {
		t.Errorf("an edit without an actor: %v", err)
	}
	if len(f.records(t, l.ID)) != n {
		t.Error("refused edits were recorded")
	}
}

func TestReissue(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, oldKey, err := f.lic.Create(ctx, licenses.License{Customer: "ACME", Product: "app"})
	if err != nil {
		t.Fatal(err)
	}
	// Another Service on the store (another replica) has the old key cached.
	replica := licenses.New(f.db, releases.New(f.db, nil), nil)
	for _, s := range []*licenses.Service{f.lic, replica} {
		if _, err := s.ByKey(ctx, oldKey); err != nil {
			t.Fatal(err)
		}
	}
	got, newKey, err := f.lic.Reissue(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	if newKey == oldKey || got.KeyHint != secret.Hint(newKey) || got.ID != l.ID {
		t.Fatalf("reissued %+v", got)
	}
	if _, err := f.lic.ByKey(ctx, oldKey); err != licenses.ErrBadKey {
		t.Fatalf("old key after reissue: %v", err)
	}
	if byKey, err := f.lic.ByKey(ctx, newKey); err != nil || byKey.ID != l.ID {
		t.Fatalf("new key: %+v, %v", byKey, err)
	}
	// The replica refuses the old key once its watch delivers the change.
	deadline := time.Now().Add(licenses.CacheTTL)
	for {
		_, err := replica.ByKey(ctx, oldKey)
		if err == licenses.ErrBadKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica still accepts the old key: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	rs := f.records(t, l.ID)
	if len(rs) != 2 || rs[0].Action != licenses.ActionReissue {
		t.Fatalf("records %+v", rs)
	}
	for _, r := range rs {
		text := string(r.Before) + string(r.After)
		if strings.Contains(text, secret.Digest(newKey)) || strings.Contains(text, secret.Digest(oldKey)) || strings.Contains(text, newKey) {
			t.Errorf("record %s holds a key or digest", r.Action)
		}
	}
	// A revoked license gets no new key, and nothing changes.
	if _, err := f.lic.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	before := f.dump(t)
	if _, key, err := f.lic.Reissue(ctx, l.ID); portal.ErrorCode(err) != portal.EConflict || key != "" {
		t.Fatalf("reissue of a revoked license: %q, %v", key, err)
	}
	if f.dump(t) != before {
		t.Error("a refused reissue changed the store")
	}
	if _, _, err := f.lic.Reissue(ctx, "nope"); portal.ErrorCode(err) != portal.ENotFound {
		t.Errorf("reissue of an unknown license: %v", err)
	}
}

func TestStatusChangesAreAudited(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, _, err := f.lic.Create(ctx, licenses.License{Customer: "ACME", Product: "app"})
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []func(context.Context, string) (licenses.License, error){f.lic.Suspend, f.lic.Suspend, f.lic.Reinstate, f.lic.Revoke} {
		if _, err := op(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
	before := f.dump(t)
	if _, err := f.lic.Suspend(ctx, l.ID); portal.ErrorCode(err) != portal.EConflict || f.dump(t) != before {
		t.Fatalf("suspend of a revoked license: %v", err)
	}
	var got []string
	for _, r := range f.records(t, l.ID) {
		got = append(got, r.Action)
	}
	// Newest first; the second suspend changed nothing and is not recorded.
	if want := "[license.revoke license.reinstate license.suspend license.create]"; fmt.Sprint(got) != want {
		t.Fatalf("actions %v, want %s", got, want)
	}
	// Without an actor, no create.
	before = f.dump(t)
	if _, _, err := f.lic.Create(context.Background(), licenses.License{Customer: "x", Product: "app"}); err == nil || f.dump(t) != before {
		t.Fatalf("create without an actor: %v", err)
	}
}

func TestListFilters(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	mk := func(customer string, products []string, exp *time.Time) string {
		l, _, err := f.lic.Create(ctx, licenses.License{Customer: customer, Products: products, ExpiresAt: exp})
		if err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	bob := mk("Bob's Garage", []string{"app"}, nil)
	bobby := mk("BOBBY tables", []string{"app", "tool"}, ptr(expiry))
	alice := mk("Alice", []string{"tool"}, ptr(t0.Add(-time.Hour))) // expired
	zoe := mk("Zoë Ωmega", []string{"tool"}, nil)
	if _, err := f.lic.Suspend(ctx, zoe); err != nil {
		t.Fatal(err)
	}
	ids := func(fl licenses.Filter) string {
		t.Helper()
		ls, _, err := f.lic.List(ctx, fl)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, l := range ls {
			out = append(out, map[string]string{bob: "bob", bobby: "bobby", alice: "alice", zoe: "zoe"}[l.ID])
		}
		slicesSort(out)
		return fmt.Sprint(out)
	}
	for _, tc := range []struct {
		f    licenses.Filter
		want string
	}{
		{licenses.Filter{Customer: "bob"}, "[bob bobby]"},
		{licenses.Filter{Customer: "BOB'S"}, "[bob]"},
		{licenses.Filter{Customer: "zoë ω"}, "[zoe]"},
		{licenses.Filter{Customer: "ZOË"}, "[zoe]"},
		{licenses.Filter{Customer: "nobody"}, "[]"},
		{licenses.Filter{Product: "tool"}, "[alice bobby zoe]"},
		{licenses.Filter{Product: "tool", Customer: "b"}, "[bobby]"},
		{licenses.Filter{Status: licenses.Expired}, "[alice]"},
		{licenses.Filter{Status: licenses.Suspended}, "[zoe]"},
		{licenses.Filter{Status: licenses.Active}, "[bob bobby]"},
		{licenses.Filter{ExpiresBefore: expiry.Add(time.Second)}, "[alice bobby]"},
		{licenses.Filter{ExpiresBefore: t0}, "[alice]"},
	} {
		if got := ids(tc.f); got != tc.want {
			t.Errorf("List(%+v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	// Pages of a filtered list.
	var all []string
	cursor := ""
	for range 10 {
		ls, next, err := f.lic.List(ctx, licenses.Filter{Product: "tool", Limit: 1, Cursor: cursor})
		if err != nil || len(ls) != 1 {
			t.Fatalf("page: %d, %v", len(ls), err)
		}
		all = append(all, ls[0].ID)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(all) != 3 {
		t.Errorf("paged %d tool licenses, want 3", len(all))
	}
	for _, bad := range []licenses.Filter{{Status: "gone"}, {Limit: 1001}, {Limit: -1}, {Customer: strings.Repeat("x", 201)}} {
		if _, _, err := f.lic.List(ctx, bad); portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("List(%+v) = %v, want invalid", bad, err)
		}
	}
}

func slicesSort(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// BenchmarkListByCustomer finds one customer's licenses (a case-insensitive
// substring) among 100,000, as `portal license list --customer bob` does.
func BenchmarkListByCustomer(b *testing.B) {
	svc, _ := seedLicenses(b, 100_000)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		ls, _, err := svc.List(ctx, licenses.Filter{Customer: "Customer 99999"})
		if err != nil || len(ls) != 1 {
			b.Fatalf("%d licenses, %v", len(ls), err)
		}
	}
}
