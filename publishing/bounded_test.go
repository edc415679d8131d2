package publishing

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
)

// TestCompleteMemoryBounded: completing a file allocates a small fraction of
// its size, whatever the size: both hashing and the Sparkle signature stream.
func TestCompleteMemoryBounded(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	e := newEnv(t, st, Options{})
	const size = 48 << 20
	data := randomBytes(size)
	a, up := e.add("big.zip", data)
	put(t, up, data, 0)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	e.verifyUploaded(got, data)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Fatalf("Complete of a %d MiB file allocated %d MiB", size>>20, alloc>>20)
	}
}

// countingStore counts Opens per object key and can hold the first Open of
// each key until released.
type countingStore struct {
	objects.ObjectStore
	mu      sync.Mutex
	opens   map[string]int
	holding atomic.Int32
	hold    chan struct{} // nil: no holding
}

func (c *countingStore) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opens[key]++
	first := c.opens[key] == 1
	c.mu.Unlock()
	if first && c.hold != nil {
		c.holding.Add(1)
		<-c.hold
		c.holding.Add(-1)
	}
	return c.ObjectStore.Open(ctx, key)
}

func (c *countingStore) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens[key]
}

// TestCompleteSameArtifactOnce: concurrent completes of one artifact read it
// once (two passes) and all answer with the same result.
func TestCompleteSameArtifactOnce(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	cs := &countingStore{ObjectStore: st, opens: map[string]int{}, hold: make(chan struct{})}
	e := newEnv(t, cs, Options{})
	data := randomBytes(1 << 20)
	a, up := e.add("app.zip", data)
	put(t, up, data, 0)

	const n = 6
	type result struct {
		sigs map[string]string
		err  error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
			results <- result{got.Signatures, err}
		}()
	}
	// The first reader holds its first Open until every call has joined.
	for cs.holding.Load() < 1 || e.svc.completeWaiters(product, version, a.Filename) < n {
		if c := cs.count(a.ObjectKey); c > 1 {
			t.Fatalf("another complete opened the artifact while the first was reading it (%d opens)", c)
		}
		runtime.Gosched()
	}
	close(cs.hold)
	var first map[string]string
	for range n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if first == nil {
			first = r.sigs
		} else if r.sigs["minisign"] != first["minisign"] || r.sigs["ed25519"] != first["ed25519"] {
			t.Fatal("concurrent completes answered with different signatures")
		}
	}
	stored := e.artifact(a.Filename)
	if c := cs.count(stored.ObjectKey); c != 2 {
		t.Fatalf("the object was opened %d times, want 2 (one complete, two passes)", c)
	}
	e.verifyUploaded(stored, data)
}

// TestCompleteConcurrencyLimit: at most MaxConcurrentCompletes read objects
// at once; the others wait for a slot, then complete.
func TestCompleteConcurrencyLimit(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	cs := &countingStore{ObjectStore: st, opens: map[string]int{}, hold: make(chan struct{})}
	e := newEnv(t, cs, Options{MaxConcurrentCompletes: 2})
	const n = 5
	names := []string{"a.zip", "b.zip", "c.zip", "d.zip", "e.zip"}
	payload := map[string][]byte{}
	for i, name := range names {
		data := randomBytes(1000 + i)
		payload[name] = data
		_, up := e.add(name, data)
		put(t, up, data, 0)
	}
	errs := make(chan error, n)
	for _, name := range names {
		go func() {
			_, err := e.svc.Complete(e.ctx, product, version, name)
			errs <- err
		}()
	}
	for !(cs.holding.Load() == 2 && e.svc.completesQueued() == n-2) {
		if h := cs.holding.Load(); h > 2 {
			t.Fatalf("%d completes read objects at once, want at most 2", h)
		}
		runtime.Gosched()
	}
	close(cs.hold)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		e.verifyUploaded(e.artifact(name), payload[name])
	}
}
