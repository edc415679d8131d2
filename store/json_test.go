package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

func TestJSON(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	type doc struct{ A string }
	if err := db.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, []byte("k"), doc{"x"}); err != nil {
			return err
		}
		return tx.Put([]byte("bad"), []byte("{"))
	}); err != nil {
		t.Fatal(err)
	}
	db.View(ctx, func(tx store.Tx) error {
		var d doc
		if err := store.GetJSON(tx, []byte("k"), &d); err != nil || d.A != "x" {
			t.Errorf("GetJSON = %+v, %v", d, err)
		}
		if err := store.GetJSON(tx, []byte("none"), &d); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing key: %v", err)
		}
		if err := store.GetJSON(tx, []byte("bad"), &d); err == nil {
			t.Error("malformed JSON decoded")
		}
		return nil
	})
}
