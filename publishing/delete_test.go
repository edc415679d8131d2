package publishing

import (
	"testing"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
)

// Deleting a draft, or a product of drafts, deletes the objects of their
// artifacts, uploaded or not; a published release is refused and keeps its
// objects.
func TestDeleteDraftAndProductDeleteObjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) { testDeleteDraftAndProduct(t, objs) })
}

func testDeleteDraftAndProduct(t *testing.T, objs objects.ObjectStore) {
	e := newEnv(t, objs, Options{})
	data := randomBytes(1000)
	a, up := e.add("a.zip", data)
	put(t, up, data, 0)
	if _, err := e.svc.Complete(e.ctx, product, version, a.Filename); err != nil {
		t.Fatal(err)
	}
	w, _ := e.add("w.zip", randomBytes(10)) // waiting, nothing uploaded

	r, err := e.svc.DeleteDraft(e.ctx, product, version)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != version || len(r.Artifacts) != 2 {
		t.Fatalf("deleted %+v", r)
	}
	e.expectGone(a.ObjectKey)
	e.expectGone(w.ObjectKey)
	if _, err := e.cat.Release(e.ctx, product, version); !portal.IsCode(err, portal.ENotFound) {
		t.Fatalf("release after delete: %v", err)
	}

	// A product with one draft holding an uploaded file.
	if _, err := e.cat.CreateRelease(e.ctx, product, releases.NewRelease{Version: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	b, upb, err := e.svc.AddArtifact(e.ctx, product, "2.0.0", declaration("b.zip", int64(len(data)), sha256Hex(data)), "")
	if err != nil {
		t.Fatal(err)
	}
	put(t, upb, data, 0)
	if _, err := e.svc.DeleteProduct(e.ctx, product); err != nil {
		t.Fatal(err)
	}
	e.expectGone(b.ObjectKey)
	if _, err := e.cat.Product(e.ctx, product); !portal.IsCode(err, portal.ENotFound) {
		t.Fatalf("product after delete: %v", err)
	}
}

// A published release is not deleted, and neither are its objects.
func TestDeleteDraftRefusesPublished(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) { testDeleteRefusesPublished(t, objs) })
}

func testDeleteRefusesPublished(t *testing.T, objs objects.ObjectStore) {
	e := newEnv(t, objs, Options{})
	data := randomBytes(100)
	a, up := e.add("a.zip", data)
	put(t, up, data, 0)
	if _, err := e.svc.Complete(e.ctx, product, version, a.Filename); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.Publish(e.ctx, product, version); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.DeleteDraft(e.ctx, product, version); !portal.IsCode(err, portal.EConflict) {
		t.Fatalf("DeleteDraft of a published release: %v", err)
	}
	if _, err := e.svc.DeleteProduct(e.ctx, product); !portal.IsCode(err, portal.EConflict) {
		t.Fatalf("DeleteProduct with a published release: %v", err)
	}
	if _, err := e.objects.Stat(e.ctx, a.ObjectKey); err != nil {
		t.Fatalf("object of the published release: %v", err)
	}
}
