package ledger_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/store"
)

// countKeys counts the store's keys under prefix.
func countKeys(t *testing.T, db store.DB, prefix string) int {
	t.Helper()
	n := 0
	err := db.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan([]byte(prefix), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			n++
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPurgeKeepsRollupsAndCounts: grants older than the cutoff go (in
// pages: more than one transaction's worth), newer ones stay, for open
// products and licenses alike; release totals and daily rollups stay, and
// so do quota counts of days not over.
func TestPurgeKeepsRollupsAndCounts(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{})
	ctx := context.Background()
	day0 := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC)
	const old = 300 // over store.MaxTxnOps
	for i := range old {
		g := grant("", i)
		g.Time = day0.Add(time.Duration(i) * time.Second)
		l.Record(g)
	}
	for i := range 5 {
		g := grant("lic1", i)
		g.Time = day0.Add(time.Duration(i) * time.Minute)
		l.Record(g)
	}
	day2 := day0.Add(48 * time.Hour)
	for i := range 7 {
		for _, lic := range []string{"", "lic1", "lic2"} {
			g := grant(lic, i)
			g.Time = day2.Add(time.Duration(i) * time.Second)
			l.Record(g)
		}
	}
	// Quota counts on day 0 and day 2.
	if err := l.Reserve(ctx, "lic1", 100, day0); err != nil {
		t.Fatal(err)
	}
	if err := l.Reserve(ctx, "lic1", 100, day2); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	total := uint64(old + 5 + 21)
	if n, _ := l.Count(ctx, "app", "1.0.0"); n != total {
		t.Fatalf("count before purge = %d, want %d", n, total)
	}
	dailyBefore, err := l.Daily(ctx, "app", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"2025-01-01": old + 5, "2025-01-03": 21}
	if len(dailyBefore) != 2 || dailyBefore["2025-01-01"] != want["2025-01-01"] || dailyBefore["2025-01-03"] != want["2025-01-03"] {
		t.Fatalf("daily = %v, want %v", dailyBefore, want)
	}

	n, err := l.Purge(ctx, day0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if n != old+5+1 { // grants, and lic1's quota count of day 0
		t.Fatalf("Purge = %d, want %d", n, old+5+1)
	}
	for _, c := range []struct {
		license string
		want    int
	}{{"", 7}, {"lic1", 7}, {"lic2", 7}} {
		gs := allGrants(t, l, c.license, 1000)
		if len(gs) != c.want {
			t.Fatalf("license %q: %d grants after purge, want %d", c.license, len(gs), c.want)
		}
		for _, g := range gs {
			if g.Time.Before(day2) {
				t.Fatalf("license %q: grant of %s survived", c.license, g.Time)
			}
		}
	}
	if n, _ := l.Count(ctx, "app", "1.0.0"); n != total {
		t.Fatalf("count after purge = %d, want %d", n, total)
	}
	dailyAfter, _ := l.Daily(ctx, "app", "1.0.0")
	if len(dailyAfter) != 2 || dailyAfter["2025-01-01"] != want["2025-01-01"] || dailyAfter["2025-01-03"] != want["2025-01-03"] {
		t.Fatalf("daily after purge = %v, want %v", dailyAfter, want)
	}
	if q := countKeys(t, db, "led/q/"); q != 1 {
		t.Fatalf("%d quota counts after purge, want 1 (day 2)", q)
	}
	// Nothing more to purge.
	if n, err := l.Purge(ctx, day0.Add(24*time.Hour)); n != 0 || err != nil {
		t.Fatalf("second Purge = %d, %v", n, err)
	}
}
