package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/portaldist/portal/store"
)

// testReadOwnWrites: Get and Scan inside an Update see its own writes
// (puts, replacements and deletions), merged in key order with the stored
// keys, both ways and after a cursor.
func testReadOwnWrites(t *testing.T, db store.DB) {
	Put(t, db, "r/1", "v:r/1", "r/3", "v:r/3", "r/5", "v:r/5")
	err := db.Update(ctx, func(tx store.Tx) error {
		for _, op := range []func() error{
			func() error { return tx.Put([]byte("r/2"), []byte("v:r/2")) },
			func() error { return tx.Delete([]byte("r/3")) },
			func() error { return tx.Put([]byte("r/5"), []byte("v:r/5")) },
			func() error { return tx.Put([]byte("r/6"), []byte("v:r/6")) },
			func() error { return tx.Put([]byte("r/0"), []byte("v:r/0")) },
			func() error { return tx.Delete([]byte("r/9")) },
		} {
			if err := op(); err != nil {
				return err
			}
		}
		if v, err := tx.Get([]byte("r/2")); err != nil || string(v) != "v:r/2" {
			return fmt.Errorf("Get of an own put: %q, %v", v, err)
		}
		if _, err := tx.Get([]byte("r/3")); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("Get of an own delete: %v, want ErrNotFound", err)
		}
		for _, c := range []struct {
			opts  store.ScanOptions
			limit int
			want  string
		}{
			{store.ScanOptions{}, 0, "[r/0 r/1 r/2 r/5 r/6]"},
			{store.ScanOptions{Reverse: true}, 0, "[r/6 r/5 r/2 r/1 r/0]"},
			{store.ScanOptions{After: []byte("r/1")}, 0, "[r/2 r/5 r/6]"},
			{store.ScanOptions{After: []byte("r/5"), Reverse: true}, 0, "[r/2 r/1 r/0]"},
			{store.ScanOptions{}, 3, "[r/0 r/1 r/2]"},
		} {
			var keys []string
			err := tx.Scan([]byte("r/"), c.opts, func(k, v []byte) (bool, error) {
				if string(v) != "v:"+string(k) {
					return false, fmt.Errorf("value of %q is %q", k, v)
				}
				keys = append(keys, string(k))
				return c.limit == 0 || len(keys) < c.limit, nil
			})
			if err != nil {
				return err
			}
			if fmt.Sprint(keys) != c.want {
				return fmt.Errorf("scan %+v inside the update: %v, want %s", c.opts, keys, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := scan(t, db, "r/", store.ScanOptions{}, 0); fmt.Sprint(got) != "[r/0 r/1 r/2 r/5 r/6]" {
		t.Fatalf("after commit: %v", got)
	}
}

// testScanSkew: Updates that decide from a Scan are serializable too. Each
// worker claims a slot only while the prefix holds none ("at most one
// claim"), and removes a member only while two remain ("at least one
// member"): a store that checked only the keys fn read, missing a key
// inserted into or deleted from the scanned range, would end with several
// claims or none left.
func testScanSkew(t *testing.T, db store.DB) {
	const workers = 6
	scanTx := func(tx store.Tx, prefix string) (int, []string, error) {
		var keys []string
		err := tx.Scan([]byte(prefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			keys = append(keys, string(k))
			return true, nil
		})
		return len(keys), keys, err
	}
	members := make([]string, 0, 2*workers)
	for i := range workers {
		members = append(members, fmt.Sprintf("m/%d", i), "x")
	}
	Put(t, db, members...)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(2)
		go func() {
			defer wg.Done()
			err := db.Update(ctx, func(tx store.Tx) error {
				n, _, err := scanTx(tx, "claim/")
				if err != nil || n > 0 {
					return err
				}
				return tx.Put([]byte(fmt.Sprintf("claim/%d", i)), []byte("x"))
			})
			if err != nil {
				t.Error(err)
			}
		}()
		go func() {
			defer wg.Done()
			err := db.Update(ctx, func(tx store.Tx) error {
				n, keys, err := scanTx(tx, "m/")
				if err != nil || n < 2 {
					return err
				}
				// Each worker removes a different member than the others
				// would, so only the range check can see the conflict.
				return tx.Delete([]byte(keys[i%n]))
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := count(t, db, "claim/"); n != 1 {
		t.Errorf("%d claims, want exactly 1: inserts into a scanned range went unseen", n)
	}
	if n := count(t, db, "m/"); n != 1 {
		t.Errorf("%d members left, want exactly 1: deletions in a scanned range went unseen", n)
	}
}

// testManyReads: an Update may read far more keys than it may write and
// still commit, serializably.
func testManyReads(t *testing.T, db store.DB) {
	// More keys than one etcd transaction takes compares.
	const n = store.MaxTxnOps + 32
	for start := 0; start < n; start += store.MaxTxnOps {
		var kv []string
		for i := start; i < min(start+store.MaxTxnOps, n); i++ {
			kv = append(kv, fmt.Sprintf("many/%04d", i), "1")
		}
		Put(t, db, kv...)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.Update(ctx, func(tx store.Tx) error {
				sum := 0
				for i := range n {
					v, err := tx.Get([]byte(fmt.Sprintf("many/%04d", i)))
					if err != nil {
						return err
					}
					var x int
					fmt.Sscan(string(v), &x)
					sum += x
				}
				return tx.Put([]byte(fmt.Sprintf("many/%04d", (w*97)%n)), []byte(fmt.Sprint(sum)))
			})
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	sum := 0
	for i := range n {
		v, err := get(t, db, fmt.Sprintf("many/%04d", i))
		if err != nil {
			t.Fatal(err)
		}
		var x int
		fmt.Sscan(v, &x)
		sum += x
	}
	// Run one after another, each update replaces a 1 (its targets are
	// distinct) by the total it read: total' = 2*total - 1, whatever the
	// order.
	want := n
	for range 4 {
		want = 2*want - 1
	}
	if sum != want {
		t.Fatalf("total %d after 4 read-everything updates, want %d: an update committed on stale reads", sum, want)
	}
}
