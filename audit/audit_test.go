package audit_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// open opens a real bbolt file that runs every Update function twice and
// allows only the portable number of keys per transaction, as etcd does.
func open(t *testing.T, path string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(path, bolt.Options{RunUpdatesTwice: true, MaxTxnOps: store.MaxTxnOps})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newDB(t *testing.T) (*bolt.DB, string) {
	path := filepath.Join(t.TempDir(), "portal.db")
	return open(t, path), path
}

// clock makes Write's clock read t0 until the test sets the time it
// returns. (A clock that ticks per call would not do: the store runs each
// Update function twice.)
func clock(t *testing.T) *time.Time {
	t.Helper()
	cur := t0
	restore := audit.SetClock(func() time.Time { return cur })
	t.Cleanup(restore)
	return &cur
}

func cliCtx() context.Context {
	return audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
}

func listAll(t *testing.T, l *audit.Log, f audit.Filter) []audit.Record {
	t.Helper()
	var all []audit.Record
	for i := 0; ; i++ {
		recs, next, err := l.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, recs...)
		if next == "" {
			return all
		}
		if i > 10000 {
			t.Fatal("List never ends")
		}
		f.Cursor = next
	}
}

func TestWriteCommitsWithTheChange(t *testing.T) {
	db, path := newDB(t)
	clock(t)
	ctx := audit.WithRequest(cliCtx(), "192.0.2.7", "req-1")
	before := map[string]any{"id": "L1", "status": "active", "customer": "Bob"}
	after := map[string]any{"id": "L1", "status": "suspended", "customer": "Bob"}
	runs := 0
	err := db.Update(ctx, func(tx store.Tx) error {
		runs++
		if err := store.PutJSON(tx, []byte("lic/l/L1"), after); err != nil {
			return err
		}
		return audit.Write(ctx, tx, "license.suspend", "license/L1", before, after)
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("the store ran the Update %d times, want 2 (RunUpdatesTwice)", runs)
	}
	check := func(l *audit.Log) {
		t.Helper()
		recs := listAll(t, l, audit.Filter{})
		if len(recs) != 1 {
			t.Fatalf("a retried Update left %d records, want exactly 1: %+v", len(recs), recs)
		}
		r := recs[0]
		if !r.Time.Equal(t0) || r.Actor != (audit.Actor{Kind: "cli"}) || r.Action != "license.suspend" ||
			r.Target != "license/L1" || r.Client != "192.0.2.7" || r.RequestID != "req-1" {
			t.Errorf("record = %+v", r)
		}
		// Only the changed fields are kept.
		if string(r.Before) != `{"status":"active"}` || string(r.After) != `{"status":"suspended"}` {
			t.Errorf("before %s after %s, want only the status", r.Before, r.After)
		}
	}
	check(audit.New(db))

	// Records are in the store: they survive a restart.
	db.Close()
	check(audit.New(open(t, path)))
}

func TestFailedTransactionLeavesNoRecord(t *testing.T) {
	db, _ := newDB(t)
	clock(t)
	boom := errors.New("boom")
	cases := map[string]struct {
		ctx context.Context
		fn  func(ctx context.Context, tx store.Tx) error
		is  error
	}{
		"the change fails after its record": {cliCtx(), func(ctx context.Context, tx store.Tx) error {
			if err := audit.Write(ctx, tx, "product.delete", "product/app", map[string]any{"slug": "app"}, nil); err != nil {
				return err
			}
			return boom
		}, boom},
		"no actor in the context": {context.Background(), func(ctx context.Context, tx store.Tx) error {
			return audit.Write(ctx, tx, "product.delete", "product/app", nil, nil)
		}, audit.ErrNoActor},
		"an action that is not object.verb": {cliCtx(), func(ctx context.Context, tx store.Tx) error {
			return audit.Write(ctx, tx, "Delete", "product/app", nil, nil)
		}, nil},
		"no target": {cliCtx(), func(ctx context.Context, tx store.Tx) error {
			return audit.Write(ctx, tx, "product.delete", "", nil, nil)
		}, nil},
		"a value JSON cannot encode": {cliCtx(), func(ctx context.Context, tx store.Tx) error {
			return audit.Write(ctx, tx, "product.delete", "product/app", nil, map[string]any{"f": func() {}})
		}, nil},
		"the panic of a change": {cliCtx(), func(ctx context.Context, tx store.Tx) error {
			if err := audit.Write(ctx, tx, "product.delete", "product/app", nil, nil); err != nil {
				return err
			}
			panic("boom")
		}, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := func() (err error) {
				defer func() {
					if p := recover(); p != nil {
						err = fmt.Errorf("panic: %v", p)
					}
				}()
				return db.Update(c.ctx, func(tx store.Tx) error {
					if err := tx.Put([]byte("rel/p/app"), []byte("{}")); err != nil {
						return err
					}
					return c.fn(c.ctx, tx)
				})
			}()
			if err == nil {
				t.Fatal("the Update succeeded")
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("err = %v, want %v", err, c.is)
			}
			if recs := listAll(t, audit.New(db), audit.Filter{}); len(recs) != 0 {
				t.Errorf("records after a failed transaction: %+v", recs)
			}
			err = db.View(context.Background(), func(tx store.Tx) error {
				_, err := tx.Get([]byte("rel/p/app"))
				return err
			})
			if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("the change was kept without its record: %v", err)
			}
		})
	}
}

func TestWriteCountsTwoKeys(t *testing.T) {
	db, _ := newDB(t)
	clock(t)
	ctx := cliCtx()
	limit := db.MaxTxnOps()
	update := func(puts, writes int) error {
		return db.Update(ctx, func(tx store.Tx) error {
			for i := range puts {
				if err := tx.Put(fmt.Appendf(nil, "x/%04d", i), []byte("v")); err != nil {
					return err
				}
			}
			for i := range writes {
				if err := audit.Write(ctx, tx, "thing.create", fmt.Sprintf("thing/%d", i), nil, map[string]int{"i": i}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := update(limit-2, 1); err != nil {
		t.Fatalf("%d keys and one record: %v", limit-2, err)
	}
	if err := update(limit-1, 1); !errors.Is(err, store.ErrTxnTooLarge) {
		t.Fatalf("%d keys and one record: err = %v, want ErrTxnTooLarge", limit-1, err)
	}
	// The sequence counts once per transaction: n records cost n+1 keys.
	if err := update(limit-4, 3); err != nil {
		t.Fatalf("%d keys and three records: %v", limit-4, err)
	}
	if n := len(listAll(t, audit.New(db), audit.Filter{})); n != 4 {
		t.Fatalf("%d records, want 4", n)
	}
}

// seed writes one record per entry, a second apart from t0, in one
// transaction each.
type entry struct {
	actor          audit.Actor
	action, target string
}

func seed(t *testing.T, db store.DB, es []entry) {
	t.Helper()
	now := clock(t)
	for i, e := range es {
		*now = t0.Add(time.Duration(i) * time.Second)
		ctx := audit.WithActor(context.Background(), e.actor)
		err := db.Update(ctx, func(tx store.Tx) error {
			return audit.Write(ctx, tx, e.action, e.target, nil, map[string]string{"target": e.target})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestListFilters(t *testing.T) {
	db, _ := newDB(t)
	admin := audit.Actor{Kind: audit.KindAdmin, ID: "a1", Name: "ops"}
	pub := audit.Actor{Kind: audit.KindPublisher, ID: "p1", Name: "ci"}
	lic := audit.Actor{Kind: audit.KindLicense, ID: "L9"}
	cli := audit.Actor{Kind: audit.KindCLI}
	seed(t, db, []entry{
		{cli, "token.create", "token/a1"},                      // t0
		{admin, "product.create", "product/app"},               // t0+1s
		{admin, "license.create", "license/L9"},                // t0+2s
		{pub, "release.create", "release/app/1.0.0"},           // t0+3s
		{pub, "release.publish", "release/app/1.0.0"},          // t0+4s
		{lic, "link.create", "link/k1"},                        // t0+5s
		{admin, "license.suspend", "license/L9"},               // t0+6s
		{admin, "release.yank", "release/app/1.0.0"},           // t0+7s
		{pub, "release.create", "release/apple/2.0.0"},         // t0+8s
		{audit.Actor{Kind: "system"}, "link.purge", "link/k1"}, // t0+9s
	})
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	cases := map[string]struct {
		f    audit.Filter
		want []string // targets, newest first
	}{
		"everything":                        {audit.Filter{}, []string{"link/k1", "release/apple/2.0.0", "release/app/1.0.0", "license/L9", "link/k1", "release/app/1.0.0", "release/app/1.0.0", "license/L9", "product/app", "token/a1"}},
		"actor id":                          {audit.Filter{Actor: "p1"}, []string{"release/apple/2.0.0", "release/app/1.0.0", "release/app/1.0.0"}},
		"actor kind":                        {audit.Filter{Actor: "cli"}, []string{"token/a1"}},
		"actor kind:id":                     {audit.Filter{Actor: "license:L9"}, []string{"link/k1"}},
		"actor unknown":                     {audit.Filter{Actor: "nobody"}, nil},
		"action":                            {audit.Filter{Action: "release.create"}, []string{"release/apple/2.0.0", "release/app/1.0.0"}},
		"object":                            {audit.Filter{Action: "license"}, []string{"license/L9", "license/L9"}},
		"object is not a prefix of another": {audit.Filter{Action: "lin"}, nil},
		"target prefix":                     {audit.Filter{TargetPrefix: "release/app/"}, []string{"release/app/1.0.0", "release/app/1.0.0", "release/app/1.0.0"}},
		"since":                             {audit.Filter{Since: at(8)}, []string{"link/k1", "release/apple/2.0.0"}},
		"until is exclusive":                {audit.Filter{Until: at(2)}, []string{"product/app", "token/a1"}},
		"range":                             {audit.Filter{Since: at(3), Until: at(6)}, []string{"link/k1", "release/app/1.0.0", "release/app/1.0.0"}},
		"all at once":                       {audit.Filter{Actor: "a1", Action: "release", TargetPrefix: "release/", Since: at(1), Until: at(9)}, []string{"release/app/1.0.0"}},
		"range before everything":           {audit.Filter{Until: t0}, nil},
		"range after everything":            {audit.Filter{Since: at(10)}, nil},
	}
	log := audit.New(db)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, limit := range []int{0, 1, 2, 1000} {
				f := c.f
				f.Limit = limit
				var got []string
				var prev time.Time
				for _, r := range listAll(t, log, f) {
					if !prev.IsZero() && !r.Time.Before(prev) {
						t.Errorf("limit %d: %s not older than %s", limit, r.Time, prev)
					}
					prev = r.Time
					got = append(got, r.Target)
				}
				if strings.Join(got, " ") != strings.Join(c.want, " ") {
					t.Errorf("limit %d: got %v, want %v", limit, got, c.want)
				}
			}
		})
	}
}

func TestPagination(t *testing.T) {
	db, _ := newDB(t)
	// All 25 records have the same time: the sequence orders them.
	clock(t)
	ctx := cliCtx()
	for b := range 5 {
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := range 5 {
				if err := audit.Write(ctx, tx, "thing.create", fmt.Sprintf("thing/%02d", b*5+i), nil, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	log := audit.New(db)
	var pages []int
	var got []string
	f := audit.Filter{Limit: 10}
	for {
		recs, next, err := log.List(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(recs))
		for _, r := range recs {
			got = append(got, strings.TrimPrefix(r.Target, "thing/"))
		}
		if next == "" {
			break
		}
		f.Cursor = next
	}
	if fmt.Sprint(pages) != "[10 10 5]" {
		t.Errorf("pages %v, want [10 10 5]", pages)
	}
	var want []string
	for i := 24; i >= 0; i-- {
		want = append(want, fmt.Sprintf("%02d", i))
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v, want newest (last written) first %v", got, want)
	}

	// A page that ends exactly at the last record has no cursor.
	recs, next, err := log.List(context.Background(), audit.Filter{Limit: 25})
	if err != nil || len(recs) != 25 || next != "" {
		t.Errorf("limit 25 of 25: %d records, cursor %q, %v", len(recs), next, err)
	}
}

func TestListScanBudget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "portal.db")
	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock(t)
	ctx := cliCtx()
	total := audit.ScanBudget + 50
	for start := 0; start < total; start += 5000 {
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := start; i < min(start+5000, total); i++ {
				action := "thing.touch"
				if i == 0 {
					action = "thing.create" // the oldest, beyond one budget
				}
				if err := audit.Write(ctx, tx, action, "thing/x", nil, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	log := audit.New(db)
	recs, next, err := log.List(context.Background(), audit.Filter{Action: "thing.create"})
	if err != nil || len(recs) != 0 || next == "" {
		t.Fatalf("first page: %d records, cursor %q, %v; want none and a cursor", len(recs), next, err)
	}
	recs, next, err = log.List(context.Background(), audit.Filter{Action: "thing.create", Cursor: next})
	if err != nil || len(recs) != 1 || next != "" {
		t.Fatalf("second page: %d records, cursor %q, %v; want the one record and no cursor", len(recs), next, err)
	}
}
