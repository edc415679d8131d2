package ledger_test

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/ledger"
)

// TestDailyByRelease: the window holds exactly its days (the day before
// and the day after are left out), releases are kept apart, another
// product whose slug extends this one's is not read, a version holding
// "/" comes back as it was, and the totals agree.
func TestDailyByRelease(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{})
	ctx := context.Background()
	last := time.Date(2026, 3, 30, 15, 0, 0, 0, time.UTC)
	rec := func(product, version string, day time.Time, n int) {
		for i := range n {
			l.Record(ledger.Grant{Product: product, Version: version, Filename: "f", Time: day.Add(time.Duration(i) * time.Minute)})
		}
	}
	d := func(daysBack int) time.Time { return time.Date(2026, 3, 30-daysBack, 1, 0, 0, 0, time.UTC) }
	rec("app", "1.0.0", d(0), 3)
	rec("app", "1.0.0", d(29), 2)  // the window's first day
	rec("app", "1.0.0", d(30), 50) // the day before the window
	rec("app", "2.0.0", d(5), 4)
	rec("app", "2.0.0", d(-1), 9) // the day after the window
	rec("app", "3.0.0/x", d(1), 1)
	rec("apple", "1.0.0", d(0), 7)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	first, got, err := l.DailyByRelease(ctx, "app", last, 30)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC); !first.Equal(want) {
		t.Fatalf("first day %s, want %s", first, want)
	}
	days := func(set map[int]uint64) []uint64 {
		out := make([]uint64, 30)
		for back, n := range set {
			out[29-back] = n
		}
		return out
	}
	want := []ledger.ReleaseDays{
		{Version: "1.0.0", Days: days(map[int]uint64{0: 3, 29: 2}), Total: 5},
		{Version: "2.0.0", Days: days(map[int]uint64{5: 4}), Total: 4},
		{Version: "3.0.0/x", Days: days(map[int]uint64{1: 1}), Total: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	total, err := l.Total(ctx, "app")
	if err != nil || total != 3+2+50+4+9+1 {
		t.Fatalf("Total = %d, %v; want every release's count", total, err)
	}

	// A product without downloads, and one day alone.
	if _, got, err := l.DailyByRelease(ctx, "none", last, 30); err != nil || len(got) != 0 {
		t.Fatalf("no downloads: %+v, %v", got, err)
	}
	if _, got, err := l.DailyByRelease(ctx, "app", last, 1); err != nil || len(got) != 1 || got[0].Total != 3 {
		t.Fatalf("one day: %+v, %v", got, err)
	}
	for _, n := range []int{0, -1, ledger.MaxDays + 1} {
		if _, _, err := l.DailyByRelease(ctx, "app", last, n); portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("days %d: %v, want invalid", n, err)
		}
	}
}
