package keyset_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

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

// Many adds and deletes through the store's watch, enough to merge the
// changes into the sorted array several times, leave the Set agreeing with
// the store on every digest ever written; a fresh Set loaded from the store
// agrees too.
func TestSetFollowsManyChanges(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const n = 12000
	name := func(i int) string { return fmt.Sprint("key-", i) }
	write := func(from, to int, del func(i int) bool) {
		t.Helper()
		for batch := from; batch < to; batch += 500 {
			if err := db.Update(ctx, func(tx store.Tx) error {
				for i := batch; i < min(batch+500, to); i++ {
					_, h := digest(name(i))
					var err error
					if del != nil && del(i) {
						err = tx.Delete([]byte("k/" + h))
					} else if del == nil {
						err = tx.Put([]byte("k/"+h), []byte("1"))
					}
					if err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(0, n/2, nil) // loaded at Follow
	s := keyset.Follow(db, "k/")
	write(n/2, n, nil)                                      // added through the watch
	write(0, n, func(i int) bool { return i%3 == 0 })       // a third deleted
	write(0, n/3, nil)                                      // some put back
	want := func(i int) bool { return i%3 != 0 || i < n/3 } // present now
	check := func(s *keyset.Set, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for i := 0; i < n; i++ {
			d, _ := digest(name(i))
			for s.MayHave(d) != want(i) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: MayHave(%s) = %v, want %v", what, name(i), s.MayHave(d), want(i))
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	check(s, "followed")
	check(keyset.Follow(db, "k/"), "reloaded")
}
