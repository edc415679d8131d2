package downloads

import (
	"fmt"
	"testing"
	"time"
)

func TestRecentGrantsRepeatAndBound(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newRecentGrants(100)
	k := grantKey{license: "l1", product: "app", version: "1.0.0", filename: "a.zip"}
	if r.repeat(k, now) {
		t.Fatal("a first grant is a repeat")
	}
	r.note(k, now.Add(5*time.Minute), now)
	if !r.repeat(k, now.Add(4*time.Minute)) {
		t.Fatal("a grant within the earlier URL's life is not a repeat")
	}
	if r.repeat(k, now.Add(5*time.Minute)) {
		t.Fatal("a grant once the earlier URL expired is a repeat")
	}
	other := k
	other.license = "l2"
	if r.repeat(other, now) {
		t.Fatal("another license's grant is a repeat")
	}
	// A later URL extends the window; an earlier one does not shorten it.
	r.note(k, now.Add(10*time.Minute), now)
	r.note(k, now.Add(time.Minute), now)
	if !r.repeat(k, now.Add(9*time.Minute)) {
		t.Fatal("the window was not extended")
	}
	// Bounded: live entries beyond max are forgotten, never kept.
	for i := range 1000 {
		r.note(grantKey{license: fmt.Sprint(i)}, now.Add(time.Hour), now)
		if r.len() > 100 {
			t.Fatalf("%d entries, more than 100", r.len())
		}
	}
}
