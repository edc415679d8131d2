package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
)

// OverflowEvents is how many events testWatchOverflow commits while its
// watcher reads nothing; a driver must buffer fewer per watcher.
const OverflowEvents = 40 * store.MaxTxnOps

// watch starts a watch that ends with the test.
func watch(t *testing.T, db store.DB, prefix string) <-chan store.Event {
	t.Helper()
	c, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	ch, err := db.Watch(c, []byte(prefix))
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// next returns the next event, failing the test after five seconds.
func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatal("no event in 5s")
	}
	panic("unreachable")
}

// txnEvents reads the n events of one transaction and returns them as
// "type key" strings in key order, checking they share one revision.
func txnEvents(t *testing.T, ch <-chan store.Event, n int) ([]string, uint64) {
	t.Helper()
	var out []string
	var rev uint64
	for i := range n {
		ev := next(t, ch)
		if i == 0 {
			rev = ev.Rev
		} else if ev.Rev != rev {
			t.Fatalf("events of one transaction have revisions %d and %d", rev, ev.Rev)
		}
		out = append(out, ev.Type.String()+" "+string(ev.Key))
	}
	slices.SortFunc(out, func(a, b string) int {
		return strings.Compare(a[strings.IndexByte(a, ' '):], b[strings.IndexByte(b, ' '):])
	})
	return out, rev
}

func testWatchOrder(t *testing.T, db store.DB) {
	Put(t, db, "w/old", "x") // committed before the watch: not reported
	ch := watch(t, db, "w/")
	all := watch(t, db, "")
	Put(t, db, "w/b", "1", "w/a", "1", "x/1", "1", "w", "1", "w0", "1")
	if err := db.Update(ctx, func(tx store.Tx) error {
		for _, op := range []func() error{
			func() error { return tx.Delete([]byte("w/a")) },
			func() error { return tx.Put([]byte("w/c"), []byte("1")) },
			func() error { return tx.Put([]byte("w/c"), []byte("2")) }, // one event, the last write
			func() error { return tx.Put([]byte("w/d"), []byte("1")) },
			func() error { return tx.Delete([]byte("w/d")) },
			func() error { return tx.Put([]byte("y"), []byte("1")) },
		} {
			if err := op(); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	Put(t, db, "w/z", "1")

	got1, rev1 := txnEvents(t, ch, 2)
	got2, rev2 := txnEvents(t, ch, 3)
	got3, rev3 := txnEvents(t, ch, 1)
	want := [][]string{{"put w/a", "put w/b"}, {"delete w/a", "put w/c", "delete w/d"}, {"put w/z"}}
	for i, got := range [][]string{got1, got2, got3} {
		if fmt.Sprint(got) != fmt.Sprint(want[i]) {
			t.Fatalf("transaction %d: events %q, want %q", i+1, got, want[i])
		}
	}
	if !(rev1 < rev2 && rev2 < rev3) {
		t.Fatalf("revisions %d, %d, %d do not increase with commits", rev1, rev2, rev3)
	}
	select {
	case ev := <-ch:
		t.Fatalf("unexpected event %s %q", ev.Type, ev.Key)
	case <-time.After(50 * time.Millisecond):
	}

	// The empty prefix watches everything.
	gotAll, _ := txnEvents(t, all, 5)
	if fmt.Sprint(gotAll) != fmt.Sprint([]string{"put w", "put w/a", "put w/b", "put w0", "put x/1"}) {
		t.Fatalf("whole-keyspace watch: %q", gotAll)
	}
	if ev := next(t, all); ev.Rev != rev2 {
		t.Fatalf("whole-keyspace watch: second transaction at revision %d, want %d", ev.Rev, rev2)
	}
}

func testWatchCommittedOnly(t *testing.T, db store.DB) {
	ch := watch(t, db, "")
	boom := errors.New("boom")
	db.Update(ctx, func(tx store.Tx) error {
		tx.Put([]byte("failed"), []byte("x"))
		return boom
	})
	func() {
		defer func() { recover() }()
		db.Update(ctx, func(tx store.Tx) error {
			tx.Put([]byte("panicked"), []byte("x"))
			panic("boom")
		})
	}()
	c, cancel := context.WithCancel(ctx)
	db.Update(c, func(tx store.Tx) error {
		tx.Put([]byte("cancelled"), []byte("x"))
		cancel()
		return nil
	})
	db.Update(ctx, func(tx store.Tx) error {
		for i := range db.MaxTxnOps() + 1 {
			tx.Put([]byte(fmt.Sprintf("toolarge/%d", i)), []byte("x"))
		}
		return nil
	})
	db.View(ctx, func(tx store.Tx) error { return tx.Put([]byte("readonly"), []byte("x")) })
	Put(t, db, "committed", "x")
	if ev := next(t, ch); ev.Type != store.EventPut || string(ev.Key) != "committed" {
		t.Fatalf("first event %s %q, want put committed: a rolled-back transaction was reported", ev.Type, ev.Key)
	}
}

func testWatchAfterCommit(t *testing.T, db store.DB) {
	ch := watch(t, db, "c/")
	const n = 50
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			k := fmt.Sprintf("c/%03d", i)
			if err := db.Update(ctx, func(tx store.Tx) error { return tx.Put([]byte(k), []byte("v")) }); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	var last uint64
	for i := range n {
		ev := next(t, ch)
		if want := fmt.Sprintf("c/%03d", i); string(ev.Key) != want || ev.Type != store.EventPut {
			t.Fatalf("event %d: %s %q, want put %s (commit order)", i, ev.Type, ev.Key, want)
		}
		if ev.Rev <= last {
			t.Fatalf("revision %d after %d", ev.Rev, last)
		}
		last = ev.Rev
		// Delivered after the commit: a view started now sees the write.
		if _, err := get(t, db, string(ev.Key)); err != nil {
			t.Fatalf("event for %s delivered before its write is visible: %v", ev.Key, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// closed waits for ch to be closed, discarding events.
func closed(t *testing.T, ch <-chan store.Event, what string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open 5s after %s", what)
		}
	}
}

func testWatchCancel(t *testing.T, db store.DB) {
	c, cancel := context.WithCancel(ctx)
	ch, err := db.Watch(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := watch(t, db, "")
	Put(t, db, "a", "1") // queued, never read
	cancel()
	closed(t, ch, "its ctx ended")
	// The other watch and the writers carry on.
	Put(t, db, "b", "1")
	if ev := next(t, other); string(ev.Key) != "a" {
		t.Fatalf("other watch: %q, want a", ev.Key)
	}
	if ev := next(t, other); string(ev.Key) != "b" {
		t.Fatalf("other watch: %q, want b", ev.Key)
	}
	if _, err := db.Watch(c, nil); err == nil {
		t.Fatal("Watch with an ended ctx succeeded")
	}
}

func testWatchClose(t *testing.T, db store.DB) {
	ch := watch(t, db, "")
	idle := watch(t, db, "nothing/")
	Put(t, db, "a", "1")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	closed(t, ch, "Close")
	closed(t, idle, "Close")
	if _, err := db.Watch(ctx, nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Watch after Close: %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func testWatchOverflow(t *testing.T, db store.DB) {
	ch := watch(t, db, "o/")
	// Nobody reads: the writer must not be held up.
	done := make(chan error, 1)
	go func() {
		for txn := range OverflowEvents / store.MaxTxnOps {
			err := db.Update(ctx, func(tx store.Tx) error {
				for i := range store.MaxTxnOps {
					if err := tx.Put([]byte(fmt.Sprintf("o/%03d/%03d", txn, i)), []byte("v")); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("writes blocked by a watcher that does not read")
	}
	Put(t, db, "o/after", "v")

	// The watcher gets events in revision order, a Reset where it fell
	// behind, and after it the changes committed later.
	var last uint64
	resets, n := 0, 0
	for {
		ev := next(t, ch)
		n++
		if ev.Rev < last {
			t.Fatalf("revision %d after %d", ev.Rev, last)
		}
		last = ev.Rev
		switch ev.Type {
		case store.EventReset:
			resets++
			if ev.Key != nil {
				t.Fatalf("reset with key %q", ev.Key)
			}
		case store.EventPut:
			if string(ev.Key) == "o/after" {
				if resets == 0 {
					t.Fatalf("%d events of %d delivered without a reset: the buffer is not bounded below %d", n, OverflowEvents+1, OverflowEvents)
				}
				return
			}
		default:
			t.Fatalf("unexpected %s %q", ev.Type, ev.Key)
		}
		if n > OverflowEvents+1 {
			t.Fatal("more events than were written")
		}
	}
}
