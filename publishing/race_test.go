package publishing

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/releases"
)

// hookStore runs onOpen before each Open: the moment Complete reads the
// object back, with no catalog transaction open.
type hookStore struct {
	objects.ObjectStore
	onOpen func()
}

func (h *hookStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if h.onOpen != nil {
		h.onOpen()
	}
	return h.ObjectStore.Open(ctx, key)
}

// TestChangedDuringComplete: an artifact declared again or deleted while
// Complete reads its object is a conflict, and the newer state is kept.
func TestChangedDuringComplete(t *testing.T) {
	for _, c := range []struct {
		name   string
		change func(e *env, filename string)
		check  func(t *testing.T, e *env, old releases.Artifact)
	}{
		{"declared again", func(e *env, filename string) {
			if _, _, err := e.cat.AddArtifact(e.ctx, product, version, declaration(filename, 3, sha256Hex([]byte("abc"))), time.Now().Add(time.Hour)); err != nil {
				e.t.Error(err)
			}
		}, func(t *testing.T, e *env, old releases.Artifact) {
			if got := e.artifact(old.Filename); got.ObjectKey == old.ObjectKey || got.Status != releases.Waiting || got.Size != 3 {
				t.Fatalf("%+v, want the new declaration", got)
			}
		}},
		{"deleted", func(e *env, filename string) {
			if _, err := e.cat.DeleteArtifact(e.ctx, product, version, filename); err != nil {
				e.t.Error(err)
			}
		}, func(t *testing.T, e *env, old releases.Artifact) {
			if n := len(e.release().Artifacts); n != 0 {
				t.Fatalf("%d artifacts, want none", n)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			st, _ := objectstest.LocalStore(t)
			hs := &hookStore{ObjectStore: st}
			e := newEnv(t, hs, Options{})
			data := []byte("the file")
			a, up := e.add("app.zip", data)
			put(t, up, data, 0)
			// Once: Complete opens the object twice (two passes).
			hs.onOpen = func() { c.change(e, a.Filename); hs.onOpen = nil }
			_, err := e.svc.Complete(e.ctx, product, version, a.Filename)
			portalError(t, err, portal.EConflict)
			c.check(t, e, a)
		})
	}
}

// TestCompleteAfterAssembled: a Complete that assembled a multipart upload
// but stopped before recording it is finished by the next call.
func TestCompleteAfterAssembled(t *testing.T) {
	objs := s3test.Store(t)
	const mib = 1 << 20
	e := newEnv(t, objs, Options{MultipartThreshold: 6 * mib, PartSize: 5 * mib})
	g := generated{seed: 5, size: 7 * mib, partSize: 5 * mib}
	a, up := e.declareGenerated("resumed.zip", g)
	if err := uploadParts(up, g, nil); err != nil {
		t.Fatal(err)
	}
	stored := e.artifact(a.Filename)
	if err := objs.CompleteMultipart(e.ctx, stored.ObjectKey, stored.UploadID); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	e.verifyUploaded(got, g.bytes())
}

// TestNoSigningKey: a product without a usable key is a server fault; the
// artifact stays waiting and completes once the key is there.
func TestNoSigningKey(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	e := newEnv(t, st, Options{})
	keys := keyMap{}
	e.svc.keys = keys
	data := []byte("the file")
	a, up := e.add("app.zip", data)
	put(t, up, data, 0)
	_, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	portalError(t, err, portal.EInternal)
	if got := e.artifact(a.Filename); got.Status != releases.Waiting {
		t.Fatalf("status %s, want waiting", got.Status)
	}
	keys[product] = e.key
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatal(err)
	}
	e.verifyUploaded(got, data)
}
