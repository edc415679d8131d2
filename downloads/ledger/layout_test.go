package ledger_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// writeOldGrants stores grants as the layout before the log did (one key
// led/l/<license>/<seq> per grant), as a database written by an older
// version holds them.
func writeOldGrants(t *testing.T, db store.DB, gs []ledger.Grant) {
	t.Helper()
	err := db.Update(context.Background(), func(tx store.Tx) error {
		for _, g := range gs {
			seq, err := tx.NextSequence("ledger")
			if err != nil {
				return err
			}
			v, err := json.Marshal(g)
			if err != nil {
				return err
			}
			if err := tx.Put(binary.BigEndian.AppendUint64([]byte("led/l/"+g.License+"/"), seq), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func clients(gs []ledger.Grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Client
	}
	return out
}

// A license's grants are listed newest first, once each, wherever they
// are: in the older layout, in the index, or in the log beyond it; for
// every page size and for open products.
func TestByLicenseAcrossLayouts(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(lic string, i int) ledger.Grant {
		g := grant(lic, i)
		g.Time = base.Add(time.Duration(i) * time.Second)
		return g
	}
	var old []ledger.Grant
	for i := range 30 {
		old = append(old, at([]string{"lic1", "lic2", ""}[i%3], i))
	}
	writeOldGrants(t, db, old)

	// Rollups every 7 grants, then a ledger that does not roll up in this
	// test: grants in the index and beyond it.
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, RollupGrants: 7})
	for i := 30; i < 90; i++ {
		l.Record(at([]string{"lic1", "lic2", ""}[i%3], i))
		if i%5 == 0 {
			if err := l.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Indexed != 60 {
		t.Fatalf("%d of 60 grants indexed", st.Indexed)
	}
	tail := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	for i := 90; i < 100; i++ {
		tail.Record(at([]string{"lic1", "lic2", ""}[i%3], i))
		if err := tail.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := tail.Stats(); st.Indexed != 0 {
		t.Fatalf("%d grants indexed before the rollup was due", st.Indexed)
	}
	for _, lic := range []string{"lic1", "lic2", ""} {
		var want []string
		for i := 99; i >= 0; i-- {
			if []string{"lic1", "lic2", ""}[i%3] == lic {
				want = append(want, grant(lic, i).Client)
			}
		}
		for _, page := range []int{1, 3, 10, 34, 1000} {
			got := clients(allGrants(t, l, lic, page))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("license %q, pages of %d:\n got %v\nwant %v", lic, page, got, want)
			}
		}
	}

	// Purge: the old keys, the log's old grants and the index keys naming
	// only purged grants go; the rest is still listed.
	n, err := l.Purge(ctx, base.Add(50*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n < 50 {
		t.Fatalf("Purge deleted %d keys, want at least the 50 old grants", n)
	}
	if k := countKeys(t, db, "led/l/"); k != 0 {
		t.Fatalf("%d grants of the old layout left", k)
	}
	for _, lic := range []string{"lic1", "lic2", ""} {
		gs := allGrants(t, l, lic, 4)
		if len(gs) < 16 || len(gs) > 17 {
			t.Fatalf("license %q: %d grants after purge, want those of seconds 50-99", lic, len(gs))
		}
		for _, g := range gs {
			if g.Time.Before(base.Add(50 * time.Second)) {
				t.Fatalf("grant of %s survived the purge", g.Time)
			}
		}
	}
	// Index keys that named only purged grants are gone; purging everything
	// leaves no index key behind.
	if _, err := l.Purge(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"led/g/", "led/i/", "led/r/", "led/l/"} {
		if k := countKeys(t, db, p); k != 0 {
			t.Fatalf("%d keys under %s after purging everything", k, p)
		}
	}
	if n, _ := l.Count(ctx, "app", "1.0.0"); n != 70 {
		t.Fatalf("release count = %d after purge, want the 70 grants recorded through the ledger", n)
	}
}

// A rollup of more licenses than one transaction may write is split, and
// every grant ends up indexed once.
func TestRollupSplitsTransactions(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db")) // etcd's 128 keys a transaction
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, RollupGrants: 1000})
	const licenses, n = 300, 1200
	for i := range n {
		l.Record(grant(fmt.Sprintf("lic%d", i%licenses), i))
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Indexed != n {
		t.Fatalf("%d grants indexed, want %d", st.Indexed, n)
	}
	// One range, split over several transactions: a key a license.
	if k := countKeys(t, db, "led/i/"); k != licenses {
		t.Fatalf("%d index keys for %d licenses in one range", k, licenses)
	}
	for _, lic := range []string{"lic0", "lic299"} {
		if gs := allGrants(t, l, lic, 3); len(gs) != n/licenses {
			t.Fatalf("%s: %d grants, want %d", lic, len(gs), n/licenses)
		}
	}
}

// Two ledgers on one store (two replicas) log and index concurrently:
// each grant is listed exactly once.
func TestTwoLedgersShareTheLog(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	a := newLedger(t, db, ledger.Options{FlushInterval: time.Millisecond, RollupGrants: 5})
	b := newLedger(t, db, ledger.Options{FlushInterval: time.Millisecond, RollupGrants: 5})
	const n = 400
	var wg sync.WaitGroup
	for _, l := range []*ledger.Ledger{a, b} {
		wg.Go(func() {
			for i := range n {
				l.Record(grant(fmt.Sprintf("lic%d", i%4), i))
			}
		})
	}
	wg.Wait()
	for _, l := range []*ledger.Ledger{a, b} {
		if err := l.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ia, ib := a.Stats().Indexed, b.Stats().Indexed; ia+ib == 0 || ia+ib > 2*n {
		t.Fatalf("indexed %d + %d of %d grants", ia, ib, 2*n)
	}
	total := 0
	for i := range 4 {
		gs := allGrants(t, a, fmt.Sprintf("lic%d", i), 37)
		seen := map[string]int{}
		for _, g := range gs {
			seen[g.Client]++
		}
		for c, k := range seen {
			if k != 2 { // the same client numbers from both ledgers
				t.Fatalf("lic%d: grant of %s listed %d times, want 2", i, c, k)
			}
		}
		total += len(gs)
	}
	if total != 2*n {
		t.Fatalf("%d grants listed, want %d", total, 2*n)
	}
}

// Two ledgers on one store, as two replicas: each learns the other's
// flushed quota counts through the store's watch, so together they allow
// the limit, plus at most what the other had not flushed yet.
func TestQuotaAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	a := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	b := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const limit = 10
	reserve := func(l *ledger.Ledger, lic string, k int) int {
		ok := 0
		for range k {
			err := l.Reserve(ctx, lic, limit, now)
			switch {
			case err == nil:
				ok++
			case !portal.IsCode(err, portal.EQuotaExceeded):
				t.Fatal(err)
			}
		}
		return ok
	}
	// waitUsed waits for l's count of lic to reach want (the watch's lag).
	waitUsed := func(l *ledger.Ledger, lic string, want uint64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			used, _, err := l.Used(ctx, lic, now)
			if err != nil {
				t.Fatal(err)
			}
			if used == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("count of %s = %d, want %d: the other replica's flush was not seen", lic, used, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	// Both have loaded the count; a then serves 6 downloads and flushes.
	if got := reserve(b, "lic1", 1); got != 1 {
		t.Fatal("b refused the first download")
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitUsed(a, "lic1", 1)
	if got := reserve(a, "lic1", 6); got != 6 {
		t.Fatalf("a allowed %d of 6", got)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// b learns a's 6 (stored 7, nothing of its own pending) and allows 3 more.
	waitUsed(b, "lic1", 7)
	if got := reserve(b, "lic1", 5); got != 3 {
		t.Fatalf("b allowed %d more after a's flush, want 3", got)
	}
	// b's own unflushed reservations stay counted while it reloads: a flush
	// of a with nothing for lic1 changes nothing, and a's count learns b's
	// once b flushes.
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitUsed(a, "lic1", limit)
	waitUsed(b, "lic1", limit)
	if got := reserve(a, "lic1", 3) + reserve(b, "lic1", 3); got != 0 {
		t.Fatalf("%d downloads allowed over the limit after both flushed", got)
	}

	// The worst case: reservations neither has flushed are invisible to the
	// other, so each allows the whole limit; the overshoot is what the other
	// replica held unflushed, and the first flush ends it.
	if got := reserve(a, "lic2", limit) + reserve(b, "lic2", limit); got != 2*limit {
		t.Fatalf("allowed %d with nothing flushed, want %d (each replica its limit)", got, 2*limit)
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitUsed(a, "lic2", 2*limit)
	waitUsed(b, "lic2", 2*limit)
	if got := reserve(a, "lic2", 1) + reserve(b, "lic2", 1); got != 0 {
		t.Fatalf("%d allowed after the flushes", got)
	}
	// A count deleted in the store (a purge of that day) is reloaded as 0
	// plus what is pending.
	if st := a.Stats(); st.Reloads == 0 {
		t.Fatal("a reloaded no count from the watch")
	}
}

// A rollup that fails between its transactions is finished by the next one,
// which lists every grant once.
func TestRollupResumesAfterFailure(t *testing.T) {
	ctx := context.Background()
	bdb := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer bdb.Close()
	w := newLedger(t, bdb, ledger.Options{FlushInterval: time.Hour})
	const licenses, n = 300, 1200
	for i := range n {
		w.Record(grant(fmt.Sprintf("lic%d", i%licenses), i))
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	db := &flakyDB{DB: bdb}
	// Its flush writes the grant (1), records the range's end (2), and
	// fails writing the first index keys (3).
	db.failAt = 3
	r := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, RollupGrants: 1})
	r.Record(grant("lic0", n))
	if err := r.Flush(ctx); err == nil {
		t.Fatal("flush with a failing rollup returned nil")
	}
	if k := countKeys(t, bdb, "led/wt"); k != 1 {
		t.Fatalf("%d led/wt keys after the interrupted rollup, want 1", k)
	}
	// More grants meanwhile: the next round finishes the recorded range
	// first, then indexes them.
	r.Record(grant("lic1", n+1))
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if k := countKeys(t, bdb, "led/wt"); k != 0 {
		t.Fatalf("%d led/wt keys after the rollup finished", k)
	}
	if st := r.Stats(); st.Indexed != n+2 {
		t.Fatalf("%d grants indexed, want %d", st.Indexed, n+2)
	}
	for _, c := range []struct {
		lic  string
		want int
	}{{"lic0", n/licenses + 1}, {"lic1", n/licenses + 1}, {"lic2", n / licenses}} {
		gs := allGrants(t, r, c.lic, 2)
		if len(gs) != c.want {
			t.Fatalf("%s: %d grants listed, want %d", c.lic, len(gs), c.want)
		}
		seen := map[string]bool{}
		for _, g := range gs {
			if seen[g.Client] {
				t.Fatalf("%s: grant of %s listed twice", c.lic, g.Client)
			}
			seen[g.Client] = true
		}
	}
}

// A watcher that falls behind gets a Reset: the ledger then reloads every
// count it holds, and still learns the other replica's downloads.
func TestQuotaReloadAfterWatchReset(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{WatchBuffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	b := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if used, _, err := a.Used(ctx, "lic1", now); err != nil || used != 0 {
		t.Fatalf("Used = %d, %v", used, err)
	}
	// b flushes many counts in a row: more events than a's watch buffer.
	for round := range 20 {
		for i := range 50 {
			if err := b.Reserve(ctx, fmt.Sprintf("other%d", i), 0, now); err != nil {
				t.Fatal(err)
			}
		}
		if round == 10 {
			for range 3 {
				if err := b.Reserve(ctx, "lic1", 10, now); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := b.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		used, _, err := a.Used(ctx, "lic1", now)
		if err != nil {
			t.Fatal(err)
		}
		if used == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's count of lic1 = %d after b's flushes, want 3", used)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Rollups go by count by default; RollupInterval adds one by time.
func TestRollupTriggers(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	byCount := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, RollupGrants: 3})
	byTime := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, RollupGrants: 1000, RollupInterval: time.Millisecond})
	for i := range 2 {
		byCount.Record(grant("lic1", i))
	}
	if err := byCount.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := byCount.Stats().Indexed; n != 0 {
		t.Fatalf("%d grants indexed below RollupGrants", n)
	}
	byCount.Record(grant("lic1", 2))
	if err := byCount.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := byCount.Stats().Indexed; n != 3 {
		t.Fatalf("%d grants indexed at RollupGrants, want 3", n)
	}
	byTime.Record(grant("lic2", 0))
	time.Sleep(5 * time.Millisecond)
	if err := byTime.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := byTime.Stats().Indexed; n != 1 {
		t.Fatalf("%d grants indexed after RollupInterval, want 1", n)
	}
	if gs := allGrants(t, byTime, "lic1", 2); len(gs) != 3 {
		t.Fatalf("lic1: %d grants listed, want 3", len(gs))
	}
}
