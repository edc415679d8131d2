package bolt_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/store/storetest"
)

func TestConformance(t *testing.T) {
	for name, opts := range map[string]bolt.Options{
		"default": {},
		// etcd's default limit, as code written for every store sees it.
		"portable limit": {MaxTxnOps: store.MaxTxnOps},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.DB {
				db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), opts)
				if err != nil {
					t.Fatal(err)
				}
				return db
			})
		})
	}
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	_, err = bolt.Open(path, bolt.Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("second open hung for %v", time.Since(start))
	}
}

func TestRunUpdatesTwice(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{RunUpdatesTwice: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events, err := db.Watch(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	var seq uint64
	err = db.Update(ctx, func(tx store.Tx) error {
		runs++
		var err error
		if seq, err = tx.NextSequence("s"); err != nil {
			return err
		}
		return tx.Put([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 || seq != 1 {
		t.Fatalf("fn ran %d times and drew sequence %d; want 2 runs, the first rolled back", runs, seq)
	}
	if ev := <-events; string(ev.Key) != "k" {
		t.Fatalf("event %s %q", ev.Type, ev.Key)
	}
	select {
	case ev := <-events:
		t.Fatalf("the rolled-back first run was reported: %s %q", ev.Type, ev.Key)
	case <-time.After(20 * time.Millisecond):
	}
	// An error in the first run is returned without a second.
	runs = 0
	boom := errors.New("boom")
	if err := db.Update(ctx, func(tx store.Tx) error { runs++; return boom }); !errors.Is(err, boom) || runs != 1 {
		t.Fatalf("failing fn: %v after %d runs", err, runs)
	}
}
