package links_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// countingDB counts the store reads made through it (each View, and each
// Get and Scan inside any transaction). With noWatch it refuses Watch, as
// a store whose watch is down would leave a Service: then only its own
// evictions and the expiry keep its copies right.
type countingDB struct {
	store.DB
	reads   atomic.Int64
	noWatch bool
}

type countingTx struct {
	store.Tx
	db *countingDB
}

func (d *countingDB) View(ctx context.Context, fn func(store.Tx) error) error {
	d.reads.Add(1)
	return d.DB.View(ctx, func(tx store.Tx) error { return fn(countingTx{tx, d}) })
}

func (d *countingDB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return d.DB.Update(ctx, func(tx store.Tx) error { return fn(countingTx{tx, d}) })
}

func (d *countingDB) Watch(ctx context.Context, prefix []byte) (<-chan store.Event, error) {
	if d.noWatch {
		return nil, errors.New("watch refused by the test")
	}
	return d.DB.Watch(ctx, prefix)
}

func (tx countingTx) Get(k []byte) ([]byte, error) {
	tx.db.reads.Add(1)
	return tx.Tx.Get(k)
}

func (tx countingTx) Scan(prefix []byte, opts store.ScanOptions, fn func(k, v []byte) (bool, error)) error {
	tx.db.reads.Add(1)
	return tx.Tx.Scan(prefix, opts, fn)
}

func openBolt(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// replica returns a link service on db, as another process on the same
// store would have, serving records from memory for ttl.
func replica(t *testing.T, db store.DB, ttl time.Duration) *links.Service {
	t.Helper()
	svc, err := links.New(db, secret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	links.SetCacheTTL(svc, ttl)
	return svc
}

// refusedWithin polls until tok is refused with code, failing after d.
func refusedWithin(t *testing.T, svc *links.Service, tok, code string, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, err := svc.Verify(actorCtx(), tok)
		if portal.ErrorCode(err) == code {
			return time.Since(start)
		}
		if err != nil {
			t.Fatalf("err = %v, want code %q", err, code)
		}
		if time.Since(start) > d {
			t.Fatalf("still opens %s after the change, want it refused with %q", d, code)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// caughtUp returns once reader's watch has delivered every change committed
// through writer (another Service on the same store) so far: it revokes a
// fresh link on writer and waits until reader refuses it, which only the
// watch can make it do (readers here are given a long TTL), and the watch
// delivers in commit order. A reader's copies loaded after caughtUp are
// then dropped only by later changes.
func caughtUp(t *testing.T, writer, reader *links.Service) {
	t.Helper()
	ctx := actorCtx()
	l, tok, err := writer.Create(ctx, sample("sentinel"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := writer.Revoke(ctx, l.ID, ""); err != nil {
		t.Fatal(err)
	}
	refusedWithin(t, reader, tok, portal.ELinkRevoked, time.Second)
}

func TestVerifyHitReadsNoStore(t *testing.T) {
	bdb := openBolt(t)
	db := &countingDB{DB: bdb}
	svc := replica(t, db, time.Hour)
	ctx := actorCtx()
	_, tok1, err := svc.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	_, tok2, err := svc.Create(ctx, sample("lic2"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	// The creations' own watch events drop nothing after this.
	caughtUp(t, replica(t, bdb, time.Hour), svc)
	for _, tok := range []string{tok1, tok2} {
		before := db.reads.Load()
		if _, err := svc.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
		if n := db.reads.Load() - before; n == 0 {
			t.Fatal("the first open of a link read nothing from the store")
		}
	}
	before := db.reads.Load()
	for range 50 {
		for _, tok := range []string{tok1, tok2} {
			if _, err := svc.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := db.reads.Load() - before; n != 0 {
		t.Fatalf("100 opens of two links held in memory read the store %d times, want 0", n)
	}
}

func TestRevokeReachesTheOtherReplica(t *testing.T) {
	db := openBolt(t)
	// A has no watch: only Revoke's own eviction can make it refuse at
	// once. B has one, and a TTL far too long to be what refuses.
	dbA := &countingDB{DB: db, noWatch: true}
	dbB := &countingDB{DB: db}
	a := replica(t, dbA, time.Hour)
	b := replica(t, dbB, time.Hour)
	ctx := actorCtx()
	revoked, tokRevoked, err := a.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	_, tokKept, err := a.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	caughtUp(t, a, b)
	for _, svc := range []*links.Service{a, b} {
		for _, tok := range []string{tokRevoked, tokKept} {
			if _, err := svc.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		}
	}

	if err := a.Revoke(ctx, revoked.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = a.Verify(ctx, tokRevoked)
	wantCode(t, err, portal.ELinkRevoked)
	took := refusedWithin(t, b, tokRevoked, portal.ELinkRevoked, time.Second)
	t.Logf("refused on the other replica %s after the revocation", took)

	// The other link is untouched, and still answered from memory.
	for _, svc := range []struct {
		*links.Service
		db *countingDB
	}{{a, dbA}, {b, dbB}} {
		before := svc.db.reads.Load()
		if _, err := svc.Verify(ctx, tokKept); err != nil {
			t.Fatalf("the link not revoked: %v", err)
		}
		if n := svc.db.reads.Load() - before; n != 0 {
			t.Fatalf("the link not revoked was read from the store (%d reads)", n)
		}
	}

	// A revocation is final: the record read again says so.
	_, err = b.Verify(ctx, tokRevoked)
	wantCode(t, err, portal.ELinkRevoked)
}

// TestRevokeWithoutWatchWithinTTL: with no watch at all, the expiry alone
// makes another replica refuse a revoked link within CacheTTL.
func TestRevokeWithoutWatchWithinTTL(t *testing.T) {
	db := openBolt(t)
	a := replica(t, db, links.CacheTTL)
	b := replica(t, &countingDB{DB: db, noWatch: true}, links.CacheTTL)
	ctx := actorCtx()
	l, tok, err := a.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(ctx, l.ID, ""); err != nil {
		t.Fatal(err)
	}
	// The copy was loaded before the revocation, so it expires less than
	// CacheTTL after it; the slack is for a loaded machine.
	refusedWithin(t, b, tok, portal.ELinkRevoked, links.CacheTTL+time.Second)
}

// TestMissIsNotRemembered: a token whose record this replica has not seen
// yet (another replica's commit is on its way) opens as soon as the record
// is in the store, without waiting for any watch or expiry.
func TestMissIsNotRemembered(t *testing.T) {
	elsewhere := replica(t, openBolt(t), time.Hour)
	db := &countingDB{DB: openBolt(t), noWatch: true}
	here := replica(t, db, time.Hour)
	ctx := actorCtx()
	l, tok, err := elsewhere.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		before := db.reads.Load()
		_, err := here.Verify(ctx, tok)
		wantCode(t, err, portal.ELinkRevoked)
		if db.reads.Load() == before {
			t.Fatal("an unknown link was refused without reading the store")
		}
	}
	// The other replica's write lands (the record as it stores it).
	if err := db.Update(ctx, func(tx store.Tx) error { return store.PutJSON(tx, []byte("lnk/"+l.ID), l) }); err != nil {
		t.Fatal(err)
	}
	if _, err := here.Verify(ctx, tok); err != nil {
		t.Fatalf("the link, now stored: %v", err)
	}
}
