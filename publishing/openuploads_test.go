package publishing

import (
	"testing"
	"time"

	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
)

// OpenUploads follows declarations, completes, failures and deletions at
// once, and a sweep recounts it from the catalog (including what another
// Service on the same catalog, a replica, did).
func TestOpenUploads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		e := newEnv(t, objs, Options{UploadTTL: 10 * time.Minute, UploadGrace: time.Minute})
		want := func(step string, n int) {
			t.Helper()
			if got := e.svc.OpenUploads(); got != n {
				t.Fatalf("%s: OpenUploads %d, want %d", step, got, n)
			}
		}
		want("start", 0)
		good, goodUp := e.add("good.zip", []byte("good"))
		bad, _ := e.add("bad.zip", []byte("bad!"))
		e.add("gone.zip", []byte("gone"))
		e.add("gone.zip", []byte("gone")) // declared again: still one
		stale, _ := e.add("stale.zip", []byte("stale"))
		want("four declared", 4)

		put(t, goodUp, []byte("good"), 0)
		if _, err := e.svc.Complete(e.ctx, product, version, good.Filename); err != nil {
			t.Fatal(err)
		}
		want("one completed", 3)
		// Other bytes, stored behind the portal's back: failed on complete.
		sneak, err := objs.PresignPut(e.ctx, bad.ObjectKey, 4, sha256Hex([]byte("BAD!")), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		put(t, Upload{Method: sneak.Method, URL: sneak.URL, Headers: sneak.Headers}, []byte("BAD!"), 0)
		if _, err := e.svc.Complete(e.ctx, product, version, bad.Filename); err == nil {
			t.Fatal("a mismatch completed")
		}
		want("one failed", 2)
		if err := e.svc.DeleteArtifact(e.ctx, product, version, "gone.zip"); err != nil {
			t.Fatal(err)
		}
		want("one deleted", 1)

		// A replica declares on the same catalog: seen at the next sweep.
		other := New(e.cat, objs, keyMap{product: e.key}, Options{Now: e.clock.Now})
		if _, _, err := other.AddArtifact(e.ctx, product, version, declaration("other.zip", 5, sha256Hex([]byte("other"))), ""); err != nil {
			t.Fatal(err)
		}
		want("before the sweep", 1)
		if _, err := e.svc.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
		want("swept", 2)
		// The sweep fails the expired ones and counts them out.
		e.clock.Set(stale.UploadExpiresAt.Add(time.Hour))
		if n, err := e.svc.Sweep(e.ctx); err != nil || n != 2 {
			t.Fatalf("Sweep: %d, %v", n, err)
		}
		want("expired", 0)
		if got := e.artifact(stale.Filename).Status; got != releases.Failed {
			t.Fatalf("stale is %s", got)
		}
	})
}
