package updates

import (
	"testing"
	"time"
)

// WatchStats count the products waiting for a reload, the one being
// reloaded included, and age the oldest change not yet applied.
func TestWatchStats(t *testing.T) {
	f := newFixture(t)
	x := NewIndex(f.cat)
	if st := x.WatchStats(); st != (WatchStats{}) {
		t.Fatalf("fresh index: %+v", st)
	}
	before := time.Now()
	x.markDirty("a")
	x.markDirty("b")
	x.markDirty("a")
	st := x.WatchStats()
	if st.Pending != 2 {
		t.Fatalf("two products changed: pending %d", st.Pending)
	}
	if lag := x.WatchStats().Lag; lag <= 0 || lag > time.Since(before) {
		t.Fatalf("lag %v is not the age of the first change (at most %v)", lag, time.Since(before))
	}
	p, all, ok := x.nextDirty()
	if !ok || all {
		t.Fatalf("nextDirty: %q %v %v", p, all, ok)
	}
	if st := x.WatchStats(); st.Pending != 2 || st.Lag <= 0 {
		t.Fatalf("one reloading, one waiting: %+v", st)
	}
	x.loaded()
	if st := x.WatchStats(); st.Pending != 1 {
		t.Fatalf("one reloaded: %+v", st)
	}
	x.markAllDirty()
	if st := x.WatchStats(); st.Pending < 1 || st.Lag <= 0 {
		t.Fatalf("after a reset: %+v", st)
	}
	if _, all, ok := x.nextDirty(); !ok || !all {
		t.Fatal("a reset reloads everything")
	}
	x.loaded()
	if _, _, ok := x.nextDirty(); ok {
		t.Fatal("nothing should be left after a full reload")
	}
	if st := x.WatchStats(); st != (WatchStats{}) {
		t.Fatalf("all applied: %+v", st)
	}
}
