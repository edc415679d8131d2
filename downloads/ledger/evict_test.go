package ledger

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/store/bolt"
)

func TestOldDaysAreEvicted(t *testing.T) {
	ctx := context.Background()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := New(db, Options{FlushInterval: time.Hour})
	defer l.Close(ctx)

	day1 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	size := func() int {
		l.quota.mu.Lock()
		defer l.quota.mu.Unlock()
		return len(l.quota.entries)
	}
	for _, lic := range []string{"a", "b"} {
		if err := l.Reserve(ctx, lic, 5, day1); err != nil {
			t.Fatal(err)
		}
	}
	// Day 2 begins before day 1's counts are persisted: they stay until the
	// flush has written them.
	if err := l.Reserve(ctx, "a", 5, day2); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != 3 {
		t.Fatalf("%d entries before the flush, want 3 (day 1 still pending)", n)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := size(); n != 1 {
		t.Fatalf("%d entries after the flush, want only day 2's", n)
	}
	// An evicted day is reloaded from the store when asked again.
	if err := l.Reserve(ctx, "b", 2, day1); err != nil {
		t.Fatal(err)
	}
	if err := l.Reserve(ctx, "b", 2, day1); err == nil {
		t.Fatal("reloaded day 1 count of b lost its stored value")
	}
}

func TestDayOf(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), "20250301"},
		{time.Date(2025, 3, 1, 23, 59, 59, 999, time.UTC), "20250301"},
		{time.Date(2025, 3, 1, 23, 0, 0, 0, time.FixedZone("X", -3600)), "20250302"},
		{time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), "19691231"},
	} {
		if got := dayStart(dayOf(tc.t)).Format("20060102"); got != tc.want {
			t.Errorf("day of %v = %s, want %s", tc.t, got, tc.want)
		}
	}
}

func TestSegments(t *testing.T) {
	for _, s := range []string{"abc", "a/b", "a%2Fb", "%", "", "1.0.0+build.5"} {
		if got := unseg(seg(s)); got != s {
			t.Errorf("unseg(seg(%q)) = %q", s, got)
		}
	}
	if seg("a/b") == seg("a%2Fb") {
		t.Error("distinct values share a key segment")
	}
}
