package bolt_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.DB {
		db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return db
	})
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
