package licenses_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store/bolt"
)

type fixture struct {
	path string
	db   *bolt.DB
	lic  *licenses.Service
	now  time.Time
}

// actorCtx is the context of an offline command: the audit records name
// the cli actor.
func actorCtx() context.Context {
	return audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portal.db")
	// Every Update function runs twice, as a store that retries on
	// conflict may run it: one with effects outside its transaction fails.
	db, err := bolt.Open(path, bolt.Options{RunUpdatesTwice: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fixture{path: path, db: db, now: t0}
	clock := func() time.Time { return f.now }
	catalog := releases.New(db, clock)
	for _, slug := range []string{"app", "tool"} {
		if _, err := catalog.CreateProduct(actorCtx(), releases.Product{Slug: slug}); err != nil {
			t.Fatal(err)
		}
	}
	f.lic = licenses.New(db, catalog, clock)
	return f
}

// fileBytes closes the database and returns the whole file.
func (f *fixture) fileBytes(t *testing.T) []byte {
	t.Helper()
	if err := f.db.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCreateAndByKey(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, key, err := f.lic.Create(ctx, licenses.License{
		Customer: "ACME", Product: "app", Constraint: ">= 2.0, < 3.0", Channels: []string{"stable"},
		ExpiresAt: ptr(expiry), OnExpiry: licenses.OnExpiryMaintain, DownloadsPerDay: 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(key, "lic_")
	if !ok {
		t.Fatalf("key %q does not start with lic_", key)
	}
	// base32: 5 bits a character.
	if bits := len(rest) * 5; bits < 128 {
		t.Fatalf("key carries %d bits, want >= 128", bits)
	}
	if !secret.WellFormed(key, licenses.KeyPrefix) {
		t.Fatalf("key %q is not well-formed", key)
	}
	if l.ID == "" || l.Status != licenses.Active || !l.CreatedAt.Equal(t0) || !l.UpdatedAt.Equal(t0) {
		t.Errorf("created %+v", l)
	}
	if l.KeyHint != secret.Hint(key) || !strings.HasPrefix(key, l.KeyHint) || len(l.KeyHint) >= len(key)/2 {
		t.Errorf("hint %q for key %q", l.KeyHint, key)
	}
	if l.KeyDigest != secret.Digest(key) || l.Public().KeyDigest != "" {
		t.Errorf("digest %q; public digest %q", l.KeyDigest, l.Public().KeyDigest)
	}

	got, err := f.lic.ByKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != l.ID || got.Customer != "ACME" || got.Constraint != ">= 2.0, < 3.0" || got.OnExpiry != licenses.OnExpiryMaintain {
		t.Errorf("ByKey = %+v", got)
	}
	byID, err := f.lic.Get(ctx, l.ID)
	if err != nil || byID.ID != l.ID || byID.KeyDigest != l.KeyDigest {
		t.Errorf("Get = %+v, %v", byID, err)
	}
	// The license read back decides like the one created (the constraint is
	// re-parsed from its text).
	if err := got.Decide(licenses.Target{Product: "app", Version: "3.0.0", Status: releases.Published, PublishedAt: ptr(t0)}, t0); portal.ErrorCode(err) != portal.ENotEntitled {
		t.Errorf("stored license decided %v for 3.0.0", err)
	}

	// A second license has a different key and id.
	l2, key2, err := f.lic.Create(ctx, licenses.License{Customer: "Other", Product: "tool"})
	if err != nil {
		t.Fatal(err)
	}
	if key2 == key || l2.ID == l.ID {
		t.Fatal("two licenses share a key or id")
	}
	if got, err := f.lic.ByKey(ctx, key2); err != nil || got.ID != l2.ID {
		t.Errorf("ByKey(second) = %+v, %v", got, err)
	}

	// Wrong and malformed keys.
	flipped := []byte(key)
	if flipped[len(flipped)-1] == 'a' {
		flipped[len(flipped)-1] = 'b'
	} else {
		flipped[len(flipped)-1] = 'a'
	}
	wrong := []string{
		"",
		"lic_",
		"lic",
		string(flipped),
		secret.New(licenses.KeyPrefix), // well-formed, unknown
		strings.ToUpper(key),
		key + "a",
		key[:len(key)-1],
		" " + key,
		key + "\n",
		"ptk_" + rest, // the right random part with a token prefix
		l.KeyDigest,
		l.KeyHint,
		l.ID,
		strings.Repeat("x", 10000),
	}
	for _, w := range wrong {
		_, err := f.lic.ByKey(ctx, w)
		if portal.ErrorCode(err) != portal.EUnauthorized {
			t.Errorf("ByKey(%.30q) = %v, want unauthorized", w, err)
		}
	}

	// No key in the database file; the digests are there (so the scan is
	// of the right file).
	file := f.fileBytes(t)
	for _, k := range []string{key, key2} {
		if bytes.Contains(file, []byte(k)) {
			t.Errorf("the database file holds license key %s", k[:8])
		}
		if bytes.Contains(file, []byte(strings.TrimPrefix(k, "lic_"))) {
			t.Errorf("the database file holds the random part of key %s", k[:8])
		}
		if !bytes.Contains(file, []byte(secret.Digest(k))) {
			t.Errorf("the database file lacks the digest of %s: scanning the wrong file?", k[:8])
		}
	}
}

func TestCreateRefusals(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	tests := []struct {
		name string
		in   licenses.License
		code string
	}{
		{"unknown product", licenses.License{Customer: "ACME", Product: "nope"}, portal.ENotFound},
		{"bad constraint", licenses.License{Customer: "ACME", Product: "app", Constraint: "lots"}, portal.EInvalid},
		{"unknown channel", licenses.License{Customer: "ACME", Product: "app", Channels: []string{"nightly"}}, portal.EInvalid},
		{"bad on_expiry", licenses.License{Customer: "ACME", Product: "app", OnExpiry: "forever"}, portal.EInvalid},
		{"negative quota", licenses.License{Customer: "ACME", Product: "app", DownloadsPerDay: -5}, portal.EInvalid},
		{"no customer", licenses.License{Product: "app"}, portal.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, key, err := f.lic.Create(ctx, tt.in)
			if got := portal.ErrorCode(err); got != tt.code {
				t.Fatalf("Create = %v (code %q), want %q", err, got, tt.code)
			}
			if key != "" || l.ID != "" {
				t.Errorf("refused Create returned key %q, id %q", key, l.ID)
			}
		})
	}
	ls, _, err := f.lic.List(ctx, licenses.Filter{})
	if err != nil || len(ls) != 0 {
		t.Errorf("after refused creates the store holds %d licenses (%v)", len(ls), err)
	}
}

func TestStatusTransitions(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, key, err := f.lic.Create(ctx, licenses.License{Customer: "ACME", Product: "app"})
	if err != nil {
		t.Fatal(err)
	}
	type step struct {
		op      string
		want    string // status after, or "" for no change
		code    string // error code, "" for success
		advance bool
	}
	ops := map[string]func(context.Context, string) (licenses.License, error){
		"suspend": f.lic.Suspend, "reinstate": f.lic.Reinstate, "revoke": f.lic.Revoke,
	}
	steps := []step{
		{op: "reinstate", want: licenses.Active}, // already active: no-op
		{op: "suspend", want: licenses.Suspended, advance: true},
		{op: "suspend", want: licenses.Suspended}, // idempotent
		{op: "reinstate", want: licenses.Active, advance: true},
		{op: "suspend", want: licenses.Suspended, advance: true},
		{op: "revoke", want: licenses.Revoked, advance: true},
		{op: "revoke", want: licenses.Revoked}, // idempotent
		{op: "reinstate", code: portal.EConflict},
		{op: "suspend", code: portal.EConflict},
	}
	status, updated := licenses.Active, t0
	for i, s := range steps {
		if s.advance {
			f.now = f.now.Add(time.Minute)
			updated = f.now
		} else {
			f.now = f.now.Add(time.Second) // a no-op must not touch UpdatedAt
		}
		got, err := ops[s.op](ctx, l.ID)
		if s.code != "" {
			if c := portal.ErrorCode(err); c != s.code {
				t.Fatalf("step %d %s: %v (code %q), want %q", i, s.op, err, c, s.code)
			}
		} else {
			if err != nil {
				t.Fatalf("step %d %s: %v", i, s.op, err)
			}
			status = s.want
			if got.Status != status {
				t.Fatalf("step %d %s: status %q, want %q", i, s.op, got.Status, status)
			}
		}
		stored, err := f.lic.Get(ctx, l.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Status != status || !stored.UpdatedAt.Equal(updated) {
			t.Fatalf("step %d %s: stored status %q updated %v, want %q %v", i, s.op, stored.Status, stored.UpdatedAt, status, updated)
		}
		// The key keeps finding the license; Decide refuses it by status.
		byKey, err := f.lic.ByKey(ctx, key)
		if err != nil || byKey.Status != status {
			t.Fatalf("step %d: ByKey = %+v, %v", i, byKey, err)
		}
		wantCode := map[string]string{licenses.Active: "", licenses.Suspended: portal.ELicenseSuspended, licenses.Revoked: portal.ELicenseRevoked}[status]
		tgt := licenses.Target{Product: "app", Version: "1.0.0", Status: releases.Published, PublishedAt: ptr(t0)}
		if c := portal.ErrorCode(byKey.Decide(tgt, f.now)); c != wantCode {
			t.Fatalf("step %d: Decide code %q, want %q", i, c, wantCode)
		}
	}

	for name, op := range ops {
		for _, id := range []string{"nope", "", strings.Repeat("a", 65), "../" + l.ID} {
			_, err := op(ctx, id)
			if c := portal.ErrorCode(err); c != portal.ENotFound {
				t.Errorf("%s(%.20q) = %v (code %q), want not_found", name, id, err, c)
			}
		}
	}
	_, err = f.lic.Get(ctx, "nope")
	if portal.ErrorCode(err) != portal.ENotFound {
		t.Errorf("Get(nope) = %v", err)
	}
}

func TestList(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	var ids []string
	for i, p := range []string{"app", "tool", "app", "app", "tool"} {
		l, _, err := f.lic.Create(ctx, licenses.License{Customer: "c" + string(rune('0'+i)), Product: p})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l.ID)
	}
	all, next, err := f.lic.List(ctx, licenses.Filter{})
	if err != nil || len(all) != 5 || next != "" {
		t.Fatalf("List = %d, %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID >= all[i].ID {
			t.Errorf("List not in id order: %s, %s", all[i-1].ID, all[i].ID)
		}
	}
	apps, _, _ := f.lic.List(ctx, licenses.Filter{Product: "app"})
	if len(apps) != 3 {
		t.Errorf("List(app) = %d licenses, want 3", len(apps))
	}
	for _, l := range apps {
		if !l.Covers("app") {
			t.Errorf("List(app) holds a %v license", l.Products)
		}
	}
	// Paging by id.
	var paged []licenses.License
	after := ""
	for range 10 {
		page, next, err := f.lic.List(ctx, licenses.Filter{Cursor: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, page...)
		if next == "" {
			break
		}
		after = next
	}
	if !reflect.DeepEqual(paged, all) {
		t.Errorf("paged listing differs from the full one")
	}
}

// TestCacheFollowsTheStore: a license changed by another Service on the same
// store (as another replica would change it) is seen through the store
// watch, well before CacheTTL, by key and by id.
func TestCacheFollowsTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	l, key, err := f.lic.Create(ctx, licenses.License{Customer: "ACME", Product: "app"})
	if err != nil {
		t.Fatal(err)
	}
	// Cache both copies.
	if _, err := f.lic.ByKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lic.Get(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	other := licenses.New(f.db, releases.New(f.db, nil), nil)
	if _, err := other.Suspend(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(licenses.CacheTTL / 4)
	for {
		byKey, err1 := f.lic.ByKey(ctx, key)
		byID, err2 := f.lic.Get(ctx, l.ID)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if byKey.Status == licenses.Suspended && byID.Status == licenses.Suspended {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("another Service's write not seen within a quarter of the cache TTL: by key %s, by id %s", byKey.Status, byID.Status)
		}
		time.Sleep(time.Millisecond)
	}
	// Own writes are seen at once.
	if _, err := f.lic.Revoke(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.lic.ByKey(ctx, key); got.Status != licenses.Revoked {
		t.Fatalf("own write not read back: %s", got.Status)
	}
}

func TestPutManyLicenses(t *testing.T) {
	f := newFixture(t)
	ctx := actorCtx()
	const n = 3*licenses.PutBatch + 5
	ls := make([]licenses.License, n)
	keys := make([]string, n)
	for i := range ls {
		keys[i] = secret.New(licenses.KeyPrefix)
		ls[i] = licenses.License{
			ID: fmt.Sprintf("id%04d", i), Customer: "c", Product: "app", Status: licenses.Active,
			OnExpiry: licenses.OnExpiryRevoke, CreatedAt: t0, UpdatedAt: t0,
			KeyHint: secret.Hint(keys[i]), KeyDigest: secret.Digest(keys[i]),
		}
	}
	if err := f.lic.Put(ctx, ls); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, licenses.PutBatch, n - 1} {
		if got, err := f.lic.ByKey(ctx, keys[i]); err != nil || got.ID != ls[i].ID {
			t.Fatalf("license %d by key: %+v, %v", i, got, err)
		}
	}
	all, _, err := f.lic.List(ctx, licenses.Filter{Limit: licenses.MaxListLimit})
	if err != nil || len(all) != n {
		t.Fatalf("List: %d licenses, %v; want %d", len(all), err, n)
	}
}
