package releases_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/releases"
)

// records returns the audit log, oldest first, as "action target" lines.
func (f *fixture) records(t *testing.T) []audit.Record {
	t.Helper()
	recs, _, err := audit.New(f.db).List(bg, audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := 0, len(recs)-1; i < j; i, j = i+1, j-1 {
		recs[i], recs[j] = recs[j], recs[i]
	}
	return recs
}

func lines(recs []audit.Record) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.Action + " " + r.Target + "\n")
	}
	return b.String()
}

// Every catalog change writes one audit record in its transaction, named
// after the object it changed, holding no signing or object key; a change
// that changes nothing and a refusal write none.
func TestCatalogChangesAreAudited(t *testing.T) {
	f := newEditFixture(t)
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindAdmin, ID: "t1", Name: "root"})
	if _, err := f.svc.CreateProduct(ctx, releases.Product{Slug: "app", SigningKey: []byte("sealed-key")}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := f.svc.EditProduct(ctx, "app", releases.ProductEdit{Name: ptr("App")})
	must(err)
	_, _, err = f.svc.EditProduct(ctx, "app", releases.ProductEdit{Name: ptr("App")}) // no change
	must(err)
	_, err = f.svc.CreateRelease(ctx, "app", releases.NewRelease{Version: "1.0.0"})
	must(err)
	_, _, err = f.svc.AddArtifact(ctx, "app", "1.0.0", artifact("a.zip"), f.clock.Now().Add(1e12))
	must(err)
	_, err = f.svc.Update(ctx, "app", "1.0.0", releases.Change{Action: "artifact.uploaded", Filename: "a.zip"}, func(r *releases.Release) error {
		a, _ := r.Artifact("a.zip")
		a.Status = releases.Uploaded
		return nil
	})
	must(err)
	_, err = f.svc.Publish(ctx, "app", "1.0.0")
	must(err)
	_, err = f.svc.Publish(ctx, "app", "1.0.0") // no change
	must(err)
	_, _, err = f.svc.EditRelease(ctx, "app", "1.0.0", releases.ReleaseEdit{Rollout: ptr(50)})
	must(err)
	if _, _, err := f.svc.EditRelease(ctx, "app", "1.0.0", releases.ReleaseEdit{Channel: ptr("beta")}); err == nil {
		t.Fatal("channel change of a published release accepted")
	}
	_, err = f.svc.Yank(ctx, "app", "1.0.0")
	must(err)
	_, err = f.svc.Unyank(ctx, "app", "1.0.0")
	must(err)
	if _, err := f.svc.Unyank(ctx, "app", "1.0.0"); err == nil {
		t.Fatal("unyank of a published release accepted")
	}
	_, err = f.svc.CreateRelease(ctx, "app", releases.NewRelease{Version: "2.0.0"})
	must(err)
	_, _, err = f.svc.AddArtifact(ctx, "app", "2.0.0", artifact("b.zip"), f.clock.Now().Add(1e12))
	must(err)
	_, err = f.svc.DeleteArtifact(ctx, "app", "2.0.0", "b.zip")
	must(err)
	_, err = f.svc.DeleteDraft(ctx, "app", "2.0.0")
	must(err)
	_, err = f.svc.CreateProduct(ctx, releases.Product{Slug: "gone"})
	must(err)
	_, err = f.svc.CreateRelease(ctx, "gone", releases.NewRelease{Version: "0.1.0"})
	must(err)
	_, _, err = f.svc.DeleteProduct(ctx, "gone")
	must(err)

	recs := f.records(t)
	want := `product.create product/app
product.update product/app
release.create release/app/1.0.0
artifact.create artifact/app/1.0.0/a.zip
artifact.uploaded artifact/app/1.0.0/a.zip
release.publish release/app/1.0.0
release.update release/app/1.0.0
release.yank release/app/1.0.0
release.unyank release/app/1.0.0
release.create release/app/2.0.0
artifact.create artifact/app/2.0.0/b.zip
artifact.delete artifact/app/2.0.0/b.zip
release.delete release/app/2.0.0
product.create product/gone
release.create release/gone/0.1.0
release.delete release/gone/0.1.0
product.delete product/gone
`
	if got := lines(recs); got != want {
		t.Fatalf("records:\n%s\nwant:\n%s", got, want)
	}
	for _, r := range recs {
		if r.Actor.Kind != audit.KindAdmin || r.Actor.ID != "t1" {
			t.Errorf("%s: actor %+v", r.Action, r.Actor)
		}
		for _, side := range []string{string(r.Before), string(r.After)} {
			for _, bad := range []string{"signing_key", "object_key", "c2VhbGVkLWtleQ", "p/app/"} {
				if strings.Contains(side, bad) {
					t.Errorf("%s %s holds %q: %s", r.Action, r.Target, bad, side)
				}
			}
		}
	}
	// The rollout edit records the changed field only.
	if r := recs[6]; string(r.Before) != `{}` || string(r.After) != `{"rollout":50}` {
		t.Errorf("release.update before %s after %s", r.Before, r.After)
	}
}

// A change without an actor in its context is refused, and nothing is
// written.
func TestCatalogChangeWithoutActor(t *testing.T) {
	f := newEditFixture(t)
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")
	before := f.dumpAll(t)
	ctx := context.Background()
	errs := []error{}
	_, err := f.svc.CreateProduct(ctx, releases.Product{Slug: "other"})
	errs = append(errs, err)
	_, _, err = f.svc.EditRelease(ctx, "app", "1.0.0", releases.ReleaseEdit{Notes: ptr("x")})
	errs = append(errs, err)
	_, err = f.svc.DeleteDraft(ctx, "app", "1.0.0")
	errs = append(errs, err)
	_, _, err = f.svc.DeleteProduct(ctx, "app")
	errs = append(errs, err)
	for i, err := range errs {
		if !errors.Is(err, audit.ErrNoActor) {
			t.Errorf("call %d: %v, want audit.ErrNoActor", i, err)
		}
	}
	if after := f.dumpAll(t); after != before {
		t.Error("a change without an actor changed the store")
	}
}
