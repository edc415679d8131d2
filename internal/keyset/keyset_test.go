package keyset_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/internal/keyset"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

func digest(s string) ([sha256.Size]byte, string) {
	d := sha256.Sum256([]byte(s))
	return d, hex.EncodeToString(d[:])
}

func TestSet(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stored, storedHex := digest("stored")
	err = db.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Put([]byte("k/"+storedHex), []byte("1")); err != nil {
			return err
		}
		// Keys of other shapes under the prefix are ignored.
		return tx.Put([]byte("k/short"), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s := keyset.Follow(db, "k/")
	if !s.MayHave(stored) {
		t.Fatal("a key stored before Follow is unknown")
	}
	missing, _ := digest("missing")
	if s.MayHave(missing) {
		t.Fatal("an absent key may exist")
	}
	added, addedHex := digest("added")
	s.Add(addedHex)
	if !s.MayHave(added) {
		t.Fatal("an added key is unknown")
	}
}

// A store that refuses the watch leaves a Set that sheds nothing.
type noWatch struct{ store.DB }

func (noWatch) Watch(context.Context, []byte) (<-chan store.Event, error) {
	return nil, store.ErrClosed
}

func TestSetWithoutWatchSaysMaybe(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := keyset.Follow(noWatch{db}, "k/")
	missing, _ := digest("missing")
	if !s.MayHave(missing) {
		t.Fatal("a set that cannot follow the store refused a key")
	}
}
