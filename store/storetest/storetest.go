// Package storetest is the conformance suite every store driver must pass.
// A driver's test calls Run with a function that opens a fresh, empty DB.
//
// The suite assumes a driver buffers fewer than OverflowEvents events for a
// watcher that does not read (see store.DB.Watch).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
)

// Run runs the whole suite. open must return a new empty database; the suite
// closes it.
func Run(t *testing.T, open func(t *testing.T) store.DB) {
	tests := []struct {
		name string
		fn   func(t *testing.T, db store.DB)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"FailedUpdateLeavesNothing", testFailedUpdate},
		{"PanicInUpdateLeavesNothing", testPanicUpdate},
		{"SnapshotReads", testSnapshot},
		{"SerializableUpdates", testSerializable},
		{"SerializableScans", testScanSkew},
		{"ManyReads", testManyReads},
		{"ReadOwnWrites", testReadOwnWrites},
		{"OrderedPrefixScan", testScan},
		{"Sequences", testSequences},
		{"ReadOnlyView", testReadOnly},
		{"Limits", testLimits},
		{"TxnOpsLimit", testTxnOpsLimit},
		{"ContextEndsUpdate", testContextEndsUpdate},
		{"WatchOrderAndPrefix", testWatchOrder},
		{"WatchCommittedOnly", testWatchCommittedOnly},
		{"WatchAfterCommit", testWatchAfterCommit},
		{"WatchCancel", testWatchCancel},
		{"WatchClose", testWatchClose},
		{"WatchOverflow", testWatchOverflow},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t)
			defer db.Close()
			tc.fn(t, db)
		})
	}
}

var ctx = context.Background()

// Put writes the key/value pairs kv (key, value, key, value...) in one
// Update, and fails t if it fails.
func Put(t testing.TB, db store.DB, kv ...string) {
	t.Helper()
	if err := db.Update(ctx, func(tx store.Tx) error {
		for i := 0; i < len(kv); i += 2 {
			if err := tx.Put([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, db store.DB, k string) (string, error) {
	t.Helper()
	var v []byte
	err := db.View(ctx, func(tx store.Tx) error {
		var err error
		v, err = tx.Get([]byte(k))
		return err
	})
	return string(v), err
}

func testGetPutDelete(t *testing.T, db store.DB) {
	if _, err := get(t, db, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing key: got %v, want ErrNotFound", err)
	}
	Put(t, db, "a", "1", "b", "")
	if v, err := get(t, db, "a"); err != nil || v != "1" {
		t.Fatalf("get a = %q, %v", v, err)
	}
	if v, err := get(t, db, "b"); err != nil || v != "" {
		t.Fatalf("empty value: get b = %q, %v", v, err)
	}
	// The returned value is a copy that outlives the transaction.
	var kept []byte
	db.View(ctx, func(tx store.Tx) error { kept, _ = tx.Get([]byte("a")); return nil })
	Put(t, db, "a", "2")
	if string(kept) != "1" {
		t.Fatalf("value changed under the caller: %q", kept)
	}
	if err := db.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete([]byte("a")); err != nil {
			return err
		}
		return tx.Delete([]byte("never-there"))
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, db, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
}

func testFailedUpdate(t *testing.T, db store.DB) {
	Put(t, db, "keep", "old")
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx store.Tx) error {
		tx.Put([]byte("keep"), []byte("new"))
		tx.Put([]byte("new"), []byte("x"))
		tx.Delete([]byte("keep2"))
		if _, err := tx.NextSequence("s"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if v, _ := get(t, db, "keep"); v != "old" {
		t.Fatalf("failed update changed a value: %q", v)
	}
	if _, err := get(t, db, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed update left a key behind: %v", err)
	}
}

func testPanicUpdate(t *testing.T, db store.DB) {
	func() {
		defer func() { recover() }()
		db.Update(ctx, func(tx store.Tx) error {
			tx.Put([]byte("p"), []byte("x"))
			panic("boom")
		})
	}()
	if _, err := get(t, db, "p"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("panicking update left a key behind: %v", err)
	}
	Put(t, db, "after", "ok") // the store is still usable
}

func testSnapshot(t *testing.T, db store.DB) {
	Put(t, db, "k", "before")
	inView := make(chan struct{})
	written := make(chan error, 1)
	var seen1, seen2 string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := db.View(ctx, func(tx store.Tx) error {
			v, _ := tx.Get([]byte("k"))
			seen1 = string(v)
			close(inView)
			// A driver may hold a writer back until open readers finish
			// (bbolt does when it must grow its file), so wait for the
			// write only briefly; either way this snapshot must not see it.
			select {
			case err := <-written:
				if err != nil {
					return err
				}
			case <-time.After(300 * time.Millisecond):
			}
			v, _ = tx.Get([]byte("k"))
			seen2 = string(v)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-inView
	go func() {
		written <- db.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte("k"), []byte("after")) })
	}()
	wg.Wait()
	if seen1 != "before" || seen2 != "before" {
		t.Fatalf("snapshot saw %q then %q, want before twice", seen1, seen2)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, _ := get(t, db, "k"); v == "after" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the write never became visible to a later view")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testSerializable(t *testing.T, db store.DB) {
	// Concurrent read-modify-write increments must not lose an update.
	Put(t, db, "n", "0")
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := db.Update(ctx, func(tx store.Tx) error {
					v, err := tx.Get([]byte("n"))
					if err != nil {
						return err
					}
					var n int
					fmt.Sscan(string(v), &n)
					return tx.Put([]byte("n"), []byte(fmt.Sprint(n+1)))
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if v, _ := get(t, db, "n"); v != fmt.Sprint(workers*each) {
		t.Fatalf("counter = %s, want %d", v, workers*each)
	}
}

func scan(t *testing.T, db store.DB, prefix string, opts store.ScanOptions, limit int) []string {
	t.Helper()
	var keys []string
	err := db.View(ctx, func(tx store.Tx) error {
		return tx.Scan([]byte(prefix), opts, func(k, v []byte) (bool, error) {
			if !bytes.Equal(v, []byte("v:"+string(k))) {
				return false, fmt.Errorf("value of %q is %q", k, v)
			}
			keys = append(keys, string(k))
			return limit == 0 || len(keys) < limit, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func testScan(t *testing.T, db store.DB) {
	var kv []string
	for _, k := range []string{"a/2", "a/10", "a/1", "a/", "a0", "b/1", "a/3\xff", "a/\xff\xff", "`"} {
		kv = append(kv, k, "v:"+k)
	}
	Put(t, db, kv...)
	want := []string{"a/", "a/1", "a/10", "a/2", "a/3\xff", "a/\xff\xff"}
	cases := []struct {
		name   string
		prefix string
		opts   store.ScanOptions
		limit  int
		want   []string
	}{
		{"forward", "a/", store.ScanOptions{}, 0, want},
		{"reverse", "a/", store.ScanOptions{Reverse: true}, 0, reverse(want)},
		{"stop early", "a/", store.ScanOptions{}, 2, want[:2]},
		{"after", "a/", store.ScanOptions{After: []byte("a/10")}, 0, want[3:]},
		{"after missing key", "a/", store.ScanOptions{After: []byte("a/11")}, 0, want[3:]},
		{"reverse after", "a/", store.ScanOptions{After: []byte("a/2"), Reverse: true}, 0, reverse(want[:3])},
		{"reverse after missing", "a/", store.ScanOptions{After: []byte("a/11"), Reverse: true}, 0, reverse(want[:3])},
		{"after beyond prefix", "a/", store.ScanOptions{After: []byte("b")}, 0, nil},
		{"no match", "c/", store.ScanOptions{}, 0, nil},
		{"reverse no match", "c/", store.ScanOptions{Reverse: true}, 0, nil},
		{"reverse last prefix", "b/", store.ScanOptions{Reverse: true}, 0, []string{"b/1"}},
		{"whole keyspace", "", store.ScanOptions{}, 0, []string{"`", "a/", "a/1", "a/10", "a/2", "a/3\xff", "a/\xff\xff", "a0", "b/1"}},
	}
	for _, c := range cases {
		got := scan(t, db, c.prefix, c.opts, c.limit)
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", c.want) {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func reverse(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

func testSequences(t *testing.T, db store.DB) {
	var got []uint64
	for i := 0; i < 3; i++ {
		db.Update(ctx, func(tx store.Tx) error {
			n, err := tx.NextSequence("a")
			got = append(got, n)
			return err
		})
	}
	var other uint64
	db.Update(ctx, func(tx store.Tx) error { other, _ = tx.NextSequence("b"); return nil })
	if got[0] != 1 || got[1] <= got[0] || got[2] <= got[1] {
		t.Fatalf("sequence a = %v, want increasing from 1", got)
	}
	if other != 1 {
		t.Fatalf("sequence b starts at %d, want 1 (sequences are independent)", other)
	}
}

func testReadOnly(t *testing.T, db store.DB) {
	err := db.View(ctx, func(tx store.Tx) error { return tx.Put([]byte("x"), []byte("y")) })
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Put in View: %v, want ErrReadOnly", err)
	}
	err = db.View(ctx, func(tx store.Tx) error { _, err := tx.NextSequence("s"); return err })
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("NextSequence in View: %v, want ErrReadOnly", err)
	}
}

func testLimits(t *testing.T, db store.DB) {
	for name, fn := range map[string]func(tx store.Tx) error{
		"empty key":   func(tx store.Tx) error { return tx.Put(nil, []byte("v")) },
		"long key":    func(tx store.Tx) error { return tx.Put(make([]byte, store.MaxKeySize+1), nil) },
		"large value": func(tx store.Tx) error { return tx.Put([]byte("k"), make([]byte, store.MaxValueSize+1)) },
	} {
		if err := db.Update(ctx, fn); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
	}
}
