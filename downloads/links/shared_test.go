package links_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

func systemCtx() context.Context {
	return audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})
}

func sealer(t *testing.T, master []byte) *signing.Sealer {
	t.Helper()
	s, err := signing.NewSealer(master)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two services on one store stand for two replicas on one etcd cluster:
// each gets the secret from the store, so a link minted by one verifies on
// the other, and a revocation on one is refused by the other at once (the
// links read their record from the store on every use).
func TestSharedSecretReplicasAgree(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sl := sealer(t, nil)

	// Both start at once: one secret wins, both get it.
	var wg sync.WaitGroup
	secrets := make([][]byte, 4)
	errs := make([]error, 4)
	for i := range secrets {
		wg.Go(func() { secrets[i], errs[i] = links.SharedSecret(systemCtx(), db, sl) })
	}
	wg.Wait()
	for i := range secrets {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(secrets[i]) < links.MinSecretLen || !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("secret %d differs from the first, or is short (%d bytes)", i, len(secrets[i]))
		}
	}
	n := countActions(t, db, links.ActionSecretCreate)
	if n != 1 {
		t.Fatalf("%d %s audit records; want 1", n, links.ActionSecretCreate)
	}

	a, err := links.New(db, secrets[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := links.New(db, secrets[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	l, tok, err := a.Create(actorCtx(), sample("lic_1"), time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Verify(context.Background(), tok); err != nil || got.ID != l.ID {
		t.Fatalf("replica B verifies A's link: %v, %v", got.ID, err)
	}
	// The secret is not a link: lists and purges skip it.
	all, err := b.List(context.Background(), "")
	if err != nil || len(all) != 1 {
		t.Fatalf("List = %d links, %v; want 1", len(all), err)
	}
	if err := a.Revoke(actorCtx(), l.ID, ""); err != nil {
		t.Fatal(err)
	}
	// B learns of the revocation through the store's watch, just after
	// A's commit (asynchronously): within the replicas' one second.
	for deadline := time.Now().Add(time.Second); ; time.Sleep(time.Millisecond) {
		if _, err = b.Verify(context.Background(), tok); err != nil || time.Now().After(deadline) {
			break
		}
	}
	wantCode(t, err, "link_revoked")
	if _, err := b.Purge(context.Background(), time.Now().Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	again, err := links.SharedSecret(systemCtx(), db, sl)
	if err != nil || !bytes.Equal(again, secrets[0]) {
		t.Fatalf("after a purge the secret changed (%v)", err)
	}
}

// A secret stored before a master key was configured is sealed at the next
// start with one, keeping its value; the wrong master key is refused.
func TestSharedSecretSealedLater(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plain, err := links.SharedSecret(systemCtx(), db, sealer(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	master := make([]byte, signing.MasterKeySize)
	rand.Read(master)
	sealed, err := links.SharedSecret(systemCtx(), db, sealer(t, master))
	if err != nil || !bytes.Equal(sealed, plain) {
		t.Fatalf("under a master key: equal %v, err %v", bytes.Equal(sealed, plain), err)
	}
	if n := countActions(t, db, links.ActionSecretSeal); n != 1 {
		t.Fatalf("%d %s records; want 1", n, links.ActionSecretSeal)
	}
	other := make([]byte, signing.MasterKeySize)
	rand.Read(other)
	if _, err := links.SharedSecret(systemCtx(), db, sealer(t, other)); err == nil {
		t.Fatal("another master key opened the secret")
	}
	// Without an actor nothing is written, and the call fails.
	db2, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if _, err := links.SharedSecret(context.Background(), db2, sealer(t, nil)); err == nil {
		t.Fatal("created a secret without an audit actor")
	}
}

// Links signed with the secret of the file the links used before keep
// verifying after the move into the store; new ones use the store's.
func TestAcceptAlsoOldFile(t *testing.T) {
	f := setup(t) // signs with `secret`, standing for the old file's
	old, tokOld := f.create(t, sample("lic_1"), time.Hour)

	path := filepath.Join(t.TempDir(), "link-key")
	if _, err := links.ReadSecretFile(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadSecretFile of no file = %v", err)
	}
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	fromFile, err := links.ReadSecretFile(path)
	if err != nil || !bytes.Equal(fromFile, secret) {
		t.Fatalf("ReadSecretFile = %v", err)
	}
	shared, err := links.SharedSecret(systemCtx(), f.db, sealer(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := links.New(f.db, shared, f.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(context.Background(), tokOld); err == nil {
		t.Fatal("a link of the old secret verified without AcceptAlso")
	}
	svc.AcceptAlso(fromFile)
	if got, err := svc.Verify(context.Background(), tokOld); err != nil || got.ID != old.ID {
		t.Fatalf("old link after AcceptAlso: %v", err)
	}
	_, tokNew, err := svc.Create(actorCtx(), sample("lic_2"), time.Hour, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Verify(context.Background(), tokNew); err == nil {
		t.Fatal("a new link was signed with the old secret")
	}
	if _, err := svc.Verify(context.Background(), tokNew); err != nil {
		t.Fatal(err)
	}
}

func countActions(t *testing.T, db store.DB, action string) int {
	t.Helper()
	entries, _, err := audit.New(db).List(context.Background(), audit.Filter{Action: action, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}
