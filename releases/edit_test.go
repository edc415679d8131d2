package releases_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// newEditFixture is newFixture at etcd's transaction limit: every Update
// runs twice and writes at most store.MaxTxnOps keys, so a callback with
// outside effects or an unbounded transaction fails here.
func newEditFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"),
		bolt.Options{RunUpdatesTwice: true, MaxTxnOps: store.MaxTxnOps, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := newClock()
	return &fixture{db: db, svc: releases.New(db, c.Now), clock: c}
}

// dumpAll returns every key and value in the store, not only the catalog's.
func (f *fixture) dumpAll(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := f.db.View(bg, func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }

// written runs fn and returns the keys that transactions committed while it
// ran, from a store watch: a write of unchanged bytes shows here though no
// dump of the store can tell.
func (f *fixture) written(t *testing.T, fn func()) []string {
	t.Helper()
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	ch, err := f.db.Watch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	fn()
	const marker = "zz-written-marker"
	if err := f.db.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte(marker), nil) }); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for ev := range ch {
		if string(ev.Key) == marker {
			break
		}
		keys = append(keys, string(ev.Key))
	}
	if err := f.db.Update(ctx, func(tx store.Tx) error { return tx.Delete([]byte(marker)) }); err != nil {
		t.Fatal(err)
	}
	return keys
}

func wantMessage(t *testing.T, err error, parts ...string) {
	t.Helper()
	msg := portal.ErrorMessage(err)
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not say %q", msg, p)
		}
	}
}

func TestEditProduct(t *testing.T) {
	ctx := bg
	tests := []struct {
		name     string
		slug     string
		edit     releases.ProductEdit
		code     string   // "" = accepted
		says     []string // in the refusal's message
		wantName string
		wantDist string
	}{
		{name: "name", slug: "app", edit: releases.ProductEdit{Name: ptr("App Pro")}, wantName: "App Pro", wantDist: releases.Licensed},
		{name: "distribution", slug: "app", edit: releases.ProductEdit{Distribution: ptr(releases.Open)}, wantName: "app", wantDist: releases.Open},
		{name: "both", slug: "app", edit: releases.ProductEdit{Name: ptr("Ünïcode ✓"), Distribution: ptr(releases.Open)}, wantName: "Ünïcode ✓", wantDist: releases.Open},
		{name: "nothing", slug: "app", edit: releases.ProductEdit{}, wantName: "app", wantDist: releases.Licensed},
		{name: "same values", slug: "app", edit: releases.ProductEdit{Name: ptr("app"), Distribution: ptr(releases.Licensed)}, wantName: "app", wantDist: releases.Licensed},
		{name: "name of 200 bytes", slug: "app", edit: releases.ProductEdit{Name: ptr(strings.Repeat("n", 200))}, wantName: strings.Repeat("n", 200), wantDist: releases.Licensed},
		{name: "empty name", slug: "app", edit: releases.ProductEdit{Name: ptr("")}, code: portal.EInvalid, says: []string{"name"}},
		{name: "long name", slug: "app", edit: releases.ProductEdit{Name: ptr(strings.Repeat("n", 201))}, code: portal.EInvalid, says: []string{"name"}},
		{name: "control character in name", slug: "app", edit: releases.ProductEdit{Name: ptr("a\x1bb")}, code: portal.EInvalid, says: []string{"name"}},
		{name: "newline in name", slug: "app", edit: releases.ProductEdit{Name: ptr("a\nb")}, code: portal.EInvalid, says: []string{"name"}},
		{name: "invalid UTF-8 name", slug: "app", edit: releases.ProductEdit{Name: ptr("a\xffb")}, code: portal.EInvalid, says: []string{"name"}},
		{name: "unknown distribution", slug: "app", edit: releases.ProductEdit{Distribution: ptr("free")}, code: portal.EInvalid, says: []string{"distribution"}},
		{name: "empty distribution", slug: "app", edit: releases.ProductEdit{Distribution: ptr("")}, code: portal.EInvalid, says: []string{"distribution"}},
		{name: "distribution case", slug: "app", edit: releases.ProductEdit{Distribution: ptr("Open")}, code: portal.EInvalid, says: []string{"distribution"}},
		{name: "valid name, bad distribution", slug: "app", edit: releases.ProductEdit{Name: ptr("ok"), Distribution: ptr("x")}, code: portal.EInvalid, says: []string{"distribution"}},
		{name: "unknown product", slug: "nope", edit: releases.ProductEdit{Name: ptr("x")}, code: portal.ENotFound, says: []string{"nope"}},
		{name: "invalid slug", slug: "../app", edit: releases.ProductEdit{Name: ptr("x")}, code: portal.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEditFixture(t)
			f.product(t, "app")
			if err := f.svc.SetSigningKey(ctx, "app", []byte("sealed")); err != nil {
				t.Fatal(err)
			}
			orig, err := f.svc.Product(ctx, "app")
			if err != nil {
				t.Fatal(err)
			}
			dump := f.dumpAll(t)
			f.clock.Advance(time.Hour)
			var before, after releases.Product
			keys := f.written(t, func() { before, after, err = f.svc.EditProduct(ctx, tt.slug, tt.edit) })
			if len(keys) > 0 && (err != nil || reflect.DeepEqual(before, after)) {
				t.Errorf("an edit that changed nothing wrote %q", keys)
			}
			if tt.code != "" {
				wantCode(t, err, tt.code)
				wantMessage(t, err, tt.says...)
				if f.dumpAll(t) != dump {
					t.Error("a refused edit changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, orig) {
				t.Errorf("before = %+v, want %+v", before, orig)
			}
			want := orig
			want.Name, want.Distribution = tt.wantName, tt.wantDist
			if !reflect.DeepEqual(after, want) {
				t.Errorf("after = %+v, want %+v", after, want)
			}
			// Read back at once (the cache must not serve the old one)
			// and through a second Service on the same store.
			for i, svc := range []*releases.Service{f.svc, releases.New(f.db, nil)} {
				got, err := svc.Product(ctx, "app")
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("service %d reads %+v, %v; want %+v", i, got, err, want)
				}
			}
		})
	}
}

// failingDB fails the Update calls whose numbers (from 1) are in fail.
type failingDB struct {
	store.DB
	n    atomic.Int32
	fail []int32
}

var errInjected = errors.New("injected store failure")

func (d *failingDB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if slices.Contains(d.fail, d.n.Add(1)) {
		return errInjected
	}
	return d.DB.Update(ctx, fn)
}

func TestDeleteProduct(t *testing.T) {
	ctx := bg
	// drafts creates n drafts of app (1.0.0, 1.0.1, ...), the first with
	// two artifacts, one of them in a multipart upload.
	drafts := func(t *testing.T, f *fixture, slug string, n int) {
		for i := range n {
			ver := fmt.Sprintf("1.%d.%d", i/100, i%100)
			f.release(t, slug, ver, "")
			if i == 0 {
				f.addArtifact(t, slug, ver, "a.zip")
				f.addArtifact(t, slug, ver, "b.zip")
				f.setStatus(t, slug, ver, "a.zip", releases.Uploaded)
				if _, err := f.svc.Update(ctx, slug, ver, releases.Change{Action: "release.update"}, func(r *releases.Release) error {
					a, _ := r.Artifact("b.zip")
					a.UploadID = "mp-1"
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	tests := []struct {
		name   string
		slug   string
		setup  func(t *testing.T, f *fixture)
		code   string
		says   []string
		drafts int // deleted, when accepted
	}{
		{name: "no releases", slug: "app", setup: func(t *testing.T, f *fixture) {}},
		{name: "drafts only", slug: "app", setup: func(t *testing.T, f *fixture) { drafts(t, f, "app", 3) }, drafts: 3},
		{name: "more drafts than one transaction may delete", slug: "app",
			setup: func(t *testing.T, f *fixture) { drafts(t, f, "app", 2*store.MaxTxnOps+5) }, drafts: 2*store.MaxTxnOps + 5},
		{name: "exactly one transaction's worth", slug: "app",
			setup: func(t *testing.T, f *fixture) { drafts(t, f, "app", store.MaxTxnOps-1) }, drafts: store.MaxTxnOps - 1},
		{name: "one more than a transaction's worth", slug: "app",
			setup: func(t *testing.T, f *fixture) { drafts(t, f, "app", store.MaxTxnOps) }, drafts: store.MaxTxnOps},
		{name: "a published release", slug: "app", setup: func(t *testing.T, f *fixture) {
			drafts(t, f, "app", 2)
			f.published(t, "app", "2.0.0", "")
		}, code: portal.EConflict, says: []string{"2.0.0", "published"}},
		{name: "a yanked release", slug: "app", setup: func(t *testing.T, f *fixture) {
			f.published(t, "app", "0.9.0", "")
			if _, err := f.svc.Yank(ctx, "app", "0.9.0"); err != nil {
				t.Fatal(err)
			}
			drafts(t, f, "app", 1)
		}, code: portal.EConflict, says: []string{"0.9.0", "yanked"}},
		{name: "a published release beyond the first batch", slug: "app", setup: func(t *testing.T, f *fixture) {
			drafts(t, f, "app", store.MaxTxnOps+10)
			f.published(t, "app", "9.0.0", "")
		}, code: portal.EConflict, says: []string{"9.0.0", "published"}},
		{name: "unknown product", slug: "nope", setup: func(t *testing.T, f *fixture) {}, code: portal.ENotFound, says: []string{"nope"}},
		{name: "invalid slug", slug: "a/b", setup: func(t *testing.T, f *fixture) {}, code: portal.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEditFixture(t)
			f.product(t, "app")
			f.product(t, "other")
			f.published(t, "other", "1.0.0", "")
			f.release(t, "other", "1.1.0", "")
			tt.setup(t, f)
			if _, err := f.svc.Product(ctx, "app"); err != nil { // fill the cache
				t.Fatal(err)
			}
			otherBefore := f.dump(t)
			for k := range otherBefore {
				if !strings.HasPrefix(k, "rel/p/other") && !strings.HasPrefix(k, "rel/r/other/") {
					delete(otherBefore, k)
				}
			}
			dump := f.dumpAll(t)
			p, gone, err := f.svc.DeleteProduct(ctx, tt.slug)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				wantMessage(t, err, tt.says...)
				if len(gone) != 0 {
					t.Errorf("refused delete returned %d deleted drafts", len(gone))
				}
				if f.dumpAll(t) != dump {
					t.Error("a refused delete changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Slug != "app" {
				t.Errorf("deleted product %+v", p)
			}
			if len(gone) != tt.drafts {
				t.Errorf("returned %d deleted drafts, want %d", len(gone), tt.drafts)
			}
			seen := map[string]bool{}
			var keys []string
			for _, r := range gone {
				if r.Product != "app" || r.Status != releases.Draft || seen[r.Version] {
					t.Errorf("returned %s %s (%s), twice or not a draft of app", r.Product, r.Version, r.Status)
				}
				seen[r.Version] = true
				for _, a := range r.Artifacts {
					keys = append(keys, a.ObjectKey)
					if a.Filename == "b.zip" && a.UploadID != "mp-1" {
						t.Errorf("b.zip returned without its multipart upload id: %+v", a)
					}
				}
			}
			if tt.drafts > 0 && (len(keys) != 2 || keys[0] == "" || keys[1] == "") {
				t.Errorf("object keys of the deleted artifacts: %q", keys)
			}
			for k := range f.dump(t) {
				if strings.HasPrefix(k, "rel/p/app") || strings.HasPrefix(k, "rel/r/app/") {
					t.Errorf("%s is left after the delete", k)
				}
			}
			other := f.dump(t)
			if !reflect.DeepEqual(other, otherBefore) {
				t.Error("deleting app changed another product")
			}
			if _, err := f.svc.Product(ctx, "app"); portal.ErrorCode(err) != portal.ENotFound {
				t.Errorf("Product after delete = %v, want not_found (stale cache?)", err)
			}
			// The slug is free again.
			if _, err := f.svc.CreateProduct(ctx, releases.Product{Slug: "app"}); err != nil {
				t.Errorf("recreating a deleted product: %v", err)
			}
			if pg, err := f.svc.Releases(ctx, "app", releases.ListOptions{}); err != nil || len(pg.Releases) != 0 {
				t.Errorf("recreated product lists %d releases, %v", len(pg.Releases), err)
			}
		})
	}
}

// A failure between DeleteProduct's transactions leaves the product and its
// remaining drafts, and returns the drafts already deleted so that the
// caller can delete their objects.
func TestDeleteProductFailsBetweenBatches(t *testing.T) {
	ctx := bg
	f := newEditFixture(t)
	f.product(t, "app")
	n := store.MaxTxnOps + 20
	for i := range n {
		ver := fmt.Sprintf("1.%d.%d", i/100, i%100)
		f.release(t, "app", ver, "")
		f.addArtifact(t, "app", ver, "a.zip")
	}
	db := &failingDB{DB: f.db, fail: []int32{2}}
	svc := releases.New(db, f.clock.Now)
	_, gone, err := svc.DeleteProduct(ctx, "app")
	if !errors.Is(err, errInjected) {
		t.Fatalf("DeleteProduct = %v, want the injected failure", err)
	}
	// A batch holds what fits with an audit record per draft, and the
	// product's deletion and record.
	if want := (store.MaxTxnOps - 3) / 2; len(gone) != want {
		t.Fatalf("returned %d deleted drafts with the error, want %d", len(gone), want)
	}
	for _, r := range gone {
		if _, err := f.svc.Release(ctx, "app", r.Version); portal.ErrorCode(err) != portal.ENotFound {
			t.Errorf("returned %s as deleted, but it is there: %v", r.Version, err)
		}
		if len(r.Artifacts) != 1 || r.Artifacts[0].ObjectKey == "" {
			t.Errorf("returned %s without its artifact's object key", r.Version)
		}
	}
	pg, err := f.svc.Releases(ctx, "app", releases.ListOptions{Limit: releases.MaxListLimit})
	if err != nil || len(pg.Releases) != n-len(gone) {
		t.Fatalf("%d releases left, %v; want %d", len(pg.Releases), err, n-len(gone))
	}
	// Trying again finishes the job.
	_, rest, err := svc.DeleteProduct(ctx, "app")
	if err != nil || len(rest) != n-len(gone) {
		t.Fatalf("second DeleteProduct = %d drafts, %v", len(rest), err)
	}
	if _, err := f.svc.Product(ctx, "app"); portal.ErrorCode(err) != portal.ENotFound {
		t.Errorf("product after the second delete: %v", err)
	}
}

func TestEditRelease(t *testing.T) {
	ctx := bg
	meta := map[string]string{"build": "42", "commit": "abc"}
	tooMany := map[string]string{}
	for i := range releases.MaxMetadataKeys + 1 {
		tooMany[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name    string
		status  string // of 1.0.0 (or of ver) before the edit
		ver     string // default "1.0.0"
		product string // default "app"
		edit    releases.ReleaseEdit
		code    string
		says    []string
		check   func(t *testing.T, before, after releases.Release)
	}{
		{name: "notes of a published release", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr("Fixed.\n\n- crash\ton start\r\n")},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Notes != "Fixed.\n\n- crash\ton start\r\n" || b.Notes != "first notes" {
					t.Errorf("notes %q -> %q", b.Notes, a.Notes)
				}
			}},
		{name: "notes removed", status: releases.Draft, edit: releases.ReleaseEdit{Notes: ptr("")},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Notes != "" {
					t.Errorf("notes %q", a.Notes)
				}
			}},
		{name: "metadata of a yanked release", status: releases.Yanked, edit: releases.ReleaseEdit{Metadata: &meta},
			check: func(t *testing.T, b, a releases.Release) {
				if !reflect.DeepEqual(a.Metadata, meta) || !reflect.DeepEqual(b.Metadata, map[string]string{"old": "1"}) {
					t.Errorf("metadata %v -> %v", b.Metadata, a.Metadata)
				}
			}},
		{name: "metadata removed", status: releases.Published, edit: releases.ReleaseEdit{Metadata: &map[string]string{}},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Metadata != nil {
					t.Errorf("metadata %v", a.Metadata)
				}
			}},
		{name: "rollout of a published release", status: releases.Published, edit: releases.ReleaseEdit{Rollout: ptr(50)},
			check: func(t *testing.T, b, a releases.Release) {
				if b.Rollout != 10 || a.Rollout != 50 {
					t.Errorf("rollout %d -> %d", b.Rollout, a.Rollout)
				}
			}},
		{name: "rollout 100 is everyone", status: releases.Published, edit: releases.ReleaseEdit{Rollout: ptr(100)},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Rollout != 0 {
					t.Errorf("rollout 100 stored as %d", a.Rollout)
				}
			}},
		{name: "rollout 1", status: releases.Draft, edit: releases.ReleaseEdit{Rollout: ptr(1)},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Rollout != 1 {
					t.Errorf("rollout %d", a.Rollout)
				}
			}},
		{name: "channel of a draft", status: releases.Draft, edit: releases.ReleaseEdit{Channel: ptr("beta")},
			check: func(t *testing.T, b, a releases.Release) {
				if b.Channel != "stable" || a.Channel != "beta" {
					t.Errorf("channel %s -> %s", b.Channel, a.Channel)
				}
			}},
		{name: "empty channel is stable", status: releases.Draft, ver: "2.0.0", edit: releases.ReleaseEdit{Channel: ptr("")},
			check: func(t *testing.T, b, a releases.Release) {
				if b.Channel != "beta" || a.Channel != "stable" {
					t.Errorf("channel %s -> %s", b.Channel, a.Channel)
				}
			}},
		{name: "same channel on a published release", status: releases.Published, edit: releases.ReleaseEdit{Channel: ptr("stable"), Notes: ptr("n")},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Channel != "stable" || a.Notes != "n" {
					t.Errorf("after %+v", a)
				}
			}},
		{name: "everything at once", status: releases.Draft, ver: "v1.0.0+build.7",
			edit: releases.ReleaseEdit{Notes: ptr("n"), Metadata: &meta, Rollout: ptr(30), Channel: ptr("rc")},
			check: func(t *testing.T, b, a releases.Release) {
				if a.Notes != "n" || !reflect.DeepEqual(a.Metadata, meta) || a.Rollout != 30 || a.Channel != "rc" {
					t.Errorf("after %+v", a)
				}
			}},
		{name: "nothing", status: releases.Published, edit: releases.ReleaseEdit{},
			check: func(t *testing.T, b, a releases.Release) {
				if !reflect.DeepEqual(a, b) {
					t.Errorf("an empty edit changed %+v into %+v", b, a)
				}
			}},
		{name: "same values", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr("first notes"), Rollout: ptr(10), Metadata: &map[string]string{"old": "1"}},
			check: func(t *testing.T, b, a releases.Release) {
				if !reflect.DeepEqual(a, b) {
					t.Errorf("a same-value edit changed %+v into %+v", b, a)
				}
			}},

		{name: "channel of a published release", status: releases.Published, edit: releases.ReleaseEdit{Channel: ptr("beta")},
			code: portal.EConflict, says: []string{"channel", "published", "draft"}},
		{name: "channel of a yanked release", status: releases.Yanked, edit: releases.ReleaseEdit{Channel: ptr("beta"), Notes: ptr("ok")},
			code: portal.EConflict, says: []string{"channel", "yanked"}},
		{name: "prerelease to stable", status: releases.Draft, ver: "2.0.0-beta.1", edit: releases.ReleaseEdit{Channel: ptr("stable")},
			code: portal.EInvalid, says: []string{"channel", "prerelease"}},
		{name: "unknown channel", status: releases.Draft, edit: releases.ReleaseEdit{Channel: ptr("nightly")},
			code: portal.EInvalid, says: []string{"channel"}},
		{name: "rollout 101", status: releases.Published, edit: releases.ReleaseEdit{Rollout: ptr(101)},
			code: portal.EInvalid, says: []string{"rollout"}},
		{name: "rollout -1", status: releases.Published, edit: releases.ReleaseEdit{Rollout: ptr(-1)},
			code: portal.EInvalid, says: []string{"rollout"}},
		{name: "valid notes, invalid rollout", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr("fine"), Rollout: ptr(1000)},
			code: portal.EInvalid, says: []string{"rollout"}},
		{name: "notes with a control character", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr("a\x00b")},
			code: portal.EInvalid, says: []string{"notes"}},
		{name: "notes too long", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr(strings.Repeat("x", releases.MaxNotes+1))},
			code: portal.EInvalid, says: []string{"notes"}},
		{name: "notes not UTF-8", status: releases.Published, edit: releases.ReleaseEdit{Notes: ptr("\xc3")},
			code: portal.EInvalid, says: []string{"notes"}},
		{name: "too many metadata keys", status: releases.Published, edit: releases.ReleaseEdit{Metadata: &tooMany},
			code: portal.EInvalid, says: []string{"metadata"}},
		{name: "empty metadata key", status: releases.Published, edit: releases.ReleaseEdit{Metadata: &map[string]string{"": "v"}},
			code: portal.EInvalid, says: []string{"metadata"}},
		{name: "metadata value with a newline", status: releases.Published, edit: releases.ReleaseEdit{Metadata: &map[string]string{"k": "a\nb"}},
			code: portal.EInvalid, says: []string{"metadata k"}},
		{name: "unknown version", status: releases.Published, ver: "9.9.9", edit: releases.ReleaseEdit{Notes: ptr("x")},
			code: portal.ENotFound, says: []string{"9.9.9"}},
		{name: "unparsable version", status: releases.Published, ver: "not-a-version", edit: releases.ReleaseEdit{Notes: ptr("x")},
			code: portal.ENotFound},
		{name: "unknown product", status: releases.Published, product: "nope", edit: releases.ReleaseEdit{Notes: ptr("x")},
			code: portal.ENotFound, says: []string{"nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEditFixture(t)
			f.product(t, "app")
			if _, err := f.svc.CreateRelease(ctx, "app", releases.NewRelease{
				Version: "1.0.0", Notes: "first notes", Metadata: map[string]string{"old": "1"}, Rollout: 10,
			}); err != nil {
				t.Fatal(err)
			}
			f.release(t, "app", "2.0.0", "beta")
			f.release(t, "app", "2.0.0-beta.1", "beta")
			ver := tt.ver
			if ver == "" {
				ver = "1.0.0"
			}
			if tt.status != releases.Draft {
				f.addArtifact(t, "app", "1.0.0", "a.zip")
				f.setStatus(t, "app", "1.0.0", "a.zip", releases.Uploaded)
				if _, err := f.svc.Publish(ctx, "app", "1.0.0"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.status == releases.Yanked {
				if _, err := f.svc.Yank(ctx, "app", "1.0.0"); err != nil {
					t.Fatal(err)
				}
			}
			product := tt.product
			if product == "" {
				product = "app"
			}
			dump := f.dumpAll(t)
			stored, _ := f.svc.Release(ctx, "app", ver)
			f.clock.Advance(time.Hour)
			var (
				before, after releases.Release
				err           error
			)
			keys := f.written(t, func() { before, after, err = f.svc.EditRelease(ctx, product, ver, tt.edit) })
			if len(keys) > 0 && (err != nil || reflect.DeepEqual(before, after)) {
				t.Errorf("an edit that changed nothing wrote %q", keys)
			}
			if tt.code != "" {
				wantCode(t, err, tt.code)
				wantMessage(t, err, tt.says...)
				if f.dumpAll(t) != dump {
					t.Error("a refused edit changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(before, stored) {
				t.Errorf("before = %+v\nwant     %+v", before, stored)
			}
			got, err := f.svc.Release(ctx, "app", ver)
			if err != nil || !reflect.DeepEqual(got, after) {
				t.Errorf("stored %+v, %v\nreturned %+v", got, err, after)
			}
			// Only the edited fields may change.
			b, a := before, after
			b.Notes, b.Metadata, b.Rollout, b.Channel = "", nil, 0, ""
			a.Notes, a.Metadata, a.Rollout, a.Channel = "", nil, 0, ""
			if !reflect.DeepEqual(a, b) {
				t.Errorf("fields beyond the edit changed:\n%+v\n%+v", b, a)
			}
			tt.check(t, before, after)
		})
	}
}

// The returned after must not share the metadata map the caller passed.
func TestEditReleaseCopiesMetadata(t *testing.T) {
	ctx := bg
	f := newEditFixture(t)
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")
	m := map[string]string{"a": "1"}
	_, after, err := f.svc.EditRelease(ctx, "app", "1.0.0", releases.ReleaseEdit{Metadata: &m})
	if err != nil {
		t.Fatal(err)
	}
	m["a"] = "changed"
	if after.Metadata["a"] != "1" {
		t.Error("the returned release shares the caller's metadata map")
	}
}

func TestDeleteDraft(t *testing.T) {
	ctx := bg
	tests := []struct {
		name    string
		status  string
		product string
		ver     string
		code    string
		says    []string
	}{
		{name: "draft", status: releases.Draft, ver: "1.0.0"},
		{name: "draft by another spelling", status: releases.Draft, ver: "v1.0.0+b"},
		{name: "published", status: releases.Published, ver: "1.0.0", code: portal.EConflict, says: []string{"published", "draft"}},
		{name: "yanked", status: releases.Yanked, ver: "1.0.0", code: portal.EConflict, says: []string{"yanked", "draft"}},
		{name: "unknown version", status: releases.Draft, ver: "3.0.0", code: portal.ENotFound, says: []string{"3.0.0"}},
		{name: "unparsable version", status: releases.Draft, ver: "../x", code: portal.ENotFound},
		{name: "unknown product", status: releases.Draft, product: "nope", ver: "1.0.0", code: portal.ENotFound, says: []string{"nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newEditFixture(t)
			f.product(t, "app")
			f.release(t, "app", "1.0.0", "")
			f.release(t, "app", "2.0.0", "")
			f.addArtifact(t, "app", "1.0.0", "a.zip")
			f.addArtifact(t, "app", "1.0.0", "b.zip")
			f.setStatus(t, "app", "1.0.0", "a.zip", releases.Uploaded)
			if tt.status == releases.Draft {
				if _, err := f.svc.Update(ctx, "app", "1.0.0", releases.Change{Action: "release.update"}, func(r *releases.Release) error {
					a, _ := r.Artifact("b.zip")
					a.UploadID = "mp-7"
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			} else {
				if _, err := f.svc.DeleteArtifact(ctx, "app", "1.0.0", "b.zip"); err != nil {
					t.Fatal(err)
				}
				if _, err := f.svc.Publish(ctx, "app", "1.0.0"); err != nil {
					t.Fatal(err)
				}
			}
			if tt.status == releases.Yanked {
				if _, err := f.svc.Yank(ctx, "app", "1.0.0"); err != nil {
					t.Fatal(err)
				}
			}
			product := tt.product
			if product == "" {
				product = "app"
			}
			stored, _ := f.svc.Release(ctx, "app", "1.0.0")
			dump := f.dumpAll(t)
			r, err := f.svc.DeleteDraft(ctx, product, tt.ver)
			if tt.code != "" {
				wantCode(t, err, tt.code)
				wantMessage(t, err, tt.says...)
				if f.dumpAll(t) != dump {
					t.Error("a refused delete changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, stored) {
				t.Errorf("returned %+v\nwant %+v", r, stored)
			}
			if len(r.Artifacts) != 2 || r.Artifacts[0].ObjectKey == "" || r.Artifacts[1].ObjectKey == "" || r.Artifacts[1].UploadID != "mp-7" {
				t.Errorf("returned artifacts lack their object keys or upload id: %+v", r.Artifacts)
			}
			if _, err := f.svc.Release(ctx, "app", "1.0.0"); portal.ErrorCode(err) != portal.ENotFound {
				t.Errorf("deleted draft still there: %v", err)
			}
			if _, err := f.svc.Release(ctx, "app", "2.0.0"); err != nil {
				t.Errorf("the other draft: %v", err)
			}
			if _, err := f.svc.DeleteDraft(ctx, "app", "1.0.0"); portal.ErrorCode(err) != portal.ENotFound {
				t.Errorf("second delete = %v, want not_found", err)
			}
			// The version is free again.
			f.release(t, "app", "1.0.0", "beta")
		})
	}
}

func TestUnyank(t *testing.T) {
	ctx := bg
	f := newEditFixture(t)
	f.product(t, "app")
	pub := f.published(t, "app", "1.0.0", "")
	f.release(t, "app", "2.0.0", "")
	f.published(t, "app", "3.0.0", "")
	f.clock.Advance(time.Hour)
	if _, err := f.svc.Yank(ctx, "app", "1.0.0"); err != nil {
		t.Fatal(err)
	}

	refusals := []struct {
		product, ver string
		code         string
		says         []string
	}{
		{"app", "2.0.0", portal.EConflict, []string{"never yanked", "draft"}},
		{"app", "3.0.0", portal.EConflict, []string{"never yanked", "published"}},
		{"app", "4.0.0", portal.ENotFound, []string{"4.0.0"}},
		{"nope", "1.0.0", portal.ENotFound, []string{"nope"}},
		{"app", "garbage", portal.ENotFound, nil},
	}
	for _, r := range refusals {
		dump := f.dumpAll(t)
		_, err := f.svc.Unyank(ctx, r.product, r.ver)
		wantCode(t, err, r.code)
		wantMessage(t, err, r.says...)
		if f.dumpAll(t) != dump {
			t.Errorf("refused Unyank(%s, %s) changed the store", r.product, r.ver)
		}
	}

	f.clock.Advance(time.Hour)
	got, err := f.svc.Unyank(ctx, "app", "v1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != releases.Published || got.YankedAt != nil || got.PublishedAt == nil || !got.PublishedAt.Equal(*pub.PublishedAt) {
		t.Errorf("unyanked %+v; want published since %v", got, pub.PublishedAt)
	}
	if !reflect.DeepEqual(got, pub) {
		t.Errorf("unyanked release %+v differs from the published one %+v", got, pub)
	}
	stored, _ := f.svc.Release(ctx, "app", "1.0.0")
	if !reflect.DeepEqual(stored, got) {
		t.Errorf("stored %+v, returned %+v", stored, got)
	}
	// Unyanking twice is refused: it is published now.
	_, err = f.svc.Unyank(ctx, "app", "1.0.0")
	wantCode(t, err, portal.EConflict)
	// And it can be yanked again.
	if y, err := f.svc.Yank(ctx, "app", "1.0.0"); err != nil || y.Status != releases.Yanked {
		t.Errorf("Yank after Unyank = %+v, %v", y, err)
	}
}
