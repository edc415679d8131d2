package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// plainTx hides a driver's SequenceTx, as a driver without it would.
type plainTx struct{ store.Tx }

func TestRaiseSequence(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		name  string
		wrap  func(store.Tx) store.Tx
		raise uint64
		want  uint64 // the next value drawn after the raise
	}{
		{"driver", func(tx store.Tx) store.Tx { return tx }, 41, 42},
		{"driver never lowers", func(tx store.Tx) store.Tx { return tx }, 5, 43},
		{"fallback", func(tx store.Tx) store.Tx { return plainTx{tx} }, 99, 100},
		// The fallback draws a value even when the counter is past: a gap.
		{"fallback never lowers", func(tx store.Tx) store.Tx { return plainTx{tx} }, 7, 102},
	} {
		t.Run(c.name, func(t *testing.T) {
			var next uint64
			err := db.Update(ctx, func(tx store.Tx) error {
				if err := store.RaiseSequence(c.wrap(tx), "s", c.raise); err != nil {
					return err
				}
				var err error
				next, err = tx.NextSequence("s")
				return err
			})
			if err != nil || next != c.want {
				t.Fatalf("next %d, %v; want %d", next, err, c.want)
			}
		})
	}
	var got map[string]uint64
	err = db.View(ctx, func(tx store.Tx) error {
		got = map[string]uint64{}
		if err := store.Sequences(plainTx{tx}, func(string, uint64) error { return nil }); !errors.Is(err, store.ErrNoSequences) {
			t.Errorf("Sequences without SequenceTx: %v", err)
		}
		return store.Sequences(tx, func(name string, last uint64) error { got[name] = last; return nil })
	})
	if err != nil || len(got) != 1 || got["s"] != 102 {
		t.Fatalf("sequences %v, %v", got, err)
	}
	// Raising is a write: refused in a View.
	err = db.View(ctx, func(tx store.Tx) error { return store.RaiseSequence(tx, "s", 500) })
	if !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("raise in a View: %v", err)
	}
}
