package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/portaldist/portal/store"
)

func testTxnOpsLimit(t *testing.T, db store.DB) {
	limit := db.MaxTxnOps()
	if limit < store.MaxTxnOps {
		t.Fatalf("MaxTxnOps() = %d, below the portable %d", limit, store.MaxTxnOps)
	}
	putN := func(tx store.Tx, tag string, n int) error {
		for i := range n {
			if err := tx.Put([]byte(fmt.Sprintf("%s/%04d", tag, i)), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}
	cases := []struct {
		name string
		fn   func(tx store.Tx) error
		ok   bool
	}{
		{"exactly MaxTxnOps() puts", func(tx store.Tx) error { return putN(tx, "a", limit) }, true},
		{"one key rewritten counts once", func(tx store.Tx) error {
			if err := putN(tx, "b", limit); err != nil {
				return err
			}
			if err := tx.Delete([]byte("b/0000")); err != nil {
				return err
			}
			return putN(tx, "b", limit)
		}, true},
		{"puts and a sequence", func(tx store.Tx) error {
			if err := putN(tx, "c", limit-1); err != nil {
				return err
			}
			for range 3 {
				if _, err := tx.NextSequence("one"); err != nil {
					return err
				}
			}
			return nil
		}, true},
		{"one put too many", func(tx store.Tx) error { return putN(tx, "d", limit+1) }, false},
		{"deletes count", func(tx store.Tx) error {
			if err := putN(tx, "e", limit); err != nil {
				return err
			}
			return tx.Delete([]byte("never-there"))
		}, false},
		{"a second sequence too many", func(tx store.Tx) error {
			if err := putN(tx, "f", limit-1); err != nil {
				return err
			}
			if _, err := tx.NextSequence("one"); err != nil {
				return err
			}
			_, err := tx.NextSequence("two")
			return err
		}, false},
		{"error ignored by fn", func(tx store.Tx) error {
			putN(tx, "g", limit+5)
			return nil
		}, false},
	}
	for _, c := range cases {
		err := db.Update(ctx, c.fn)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && !errors.Is(err, store.ErrTxnTooLarge) {
			t.Errorf("%s: %v, want ErrTxnTooLarge", c.name, err)
		}
	}
	for _, tag := range []string{"d", "e", "g"} {
		if n := count(t, db, tag+"/"); n != 0 {
			t.Errorf("a refused transaction committed %d keys under %s/", n, tag)
		}
	}
	if n := count(t, db, "a/"); n != limit {
		t.Errorf("%d keys under a/, want %d", n, limit)
	}
}

func testContextEndsUpdate(t *testing.T, db store.DB) {
	c, cancel := context.WithCancel(ctx)
	err := db.Update(c, func(tx store.Tx) error {
		if err := tx.Put([]byte("k"), []byte("v")); err != nil {
			return err
		}
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update whose ctx ended inside fn: %v, want context.Canceled", err)
	}
	if _, err := get(t, db, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Update whose ctx ended committed: %v", err)
	}
	if err := db.Update(c, func(tx store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with an ended ctx: %v", err)
	}
	if err := db.View(c, func(tx store.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("View with an ended ctx: %v", err)
	}
}

// count returns how many keys have the prefix.
func count(t *testing.T, db store.DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte(prefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
