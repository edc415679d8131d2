package audit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
)

func TestPurge(t *testing.T) {
	db, _ := newDB(t)
	now := clock(t)
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})
	// 300 records, one a second from t0, in transactions of 50.
	for b := range 6 {
		err := db.Update(ctx, func(tx store.Tx) error {
			for i := range 50 {
				*now = t0.Add(time.Duration(b*50+i) * time.Second)
				if err := audit.Write(ctx, tx, "thing.touch", fmt.Sprintf("thing/%03d", b*50+i), nil, nil); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	*now = t0.Add(time.Hour)
	log := audit.New(db)
	n, err := log.Purge(ctx, t0.Add(200*time.Second))
	if err != nil || n != 200 {
		t.Fatalf("Purge = %d, %v; want 200", n, err)
	}
	left := listAll(t, log, audit.Filter{Action: "thing.touch"})
	if len(left) != 100 || left[len(left)-1].Target != "thing/200" || left[0].Target != "thing/299" {
		t.Fatalf("%d records left, oldest %s", len(left), left[len(left)-1].Target)
	}
	// 126 records per transaction at the portable limit: two purge
	// records, saying what each deleted.
	purges := listAll(t, log, audit.Filter{Action: "audit.purge"})
	if len(purges) != 2 || string(purges[0].After) != `{"before":"2026-03-01T12:03:20Z","deleted":74}` ||
		string(purges[1].After) != `{"before":"2026-03-01T12:03:20Z","deleted":126}` || purges[0].Actor.Kind != "system" {
		t.Fatalf("purge records: %+v", purges)
	}

	// A cutoff in the future stops at now.
	*now = t0.Add(250 * time.Second)
	n, err = log.Purge(ctx, t0.Add(48*time.Hour))
	if err != nil || n != 50 {
		t.Fatalf("Purge to now = %d, %v; want 50", n, err)
	}
	if left := listAll(t, log, audit.Filter{}); len(left) != 53 {
		t.Fatalf("%d records left, want 50 newer than now and 3 purge records", len(left))
	}
	if n, err := log.Purge(ctx, t0); err != nil || n != 0 {
		t.Fatalf("nothing to purge: %d, %v", n, err)
	}
}

func TestPurgeWithAClockSteppingBack(t *testing.T) {
	db, _ := newDB(t)
	now := clock(t)
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})
	for i := range 10 {
		*now = t0.Add(time.Duration(i) * time.Second)
		if err := db.Update(ctx, func(tx store.Tx) error { return audit.Write(ctx, tx, "thing.touch", "thing/x", nil, nil) }); err != nil {
			t.Fatal(err)
		}
	}
	// From here every reading of the clock is a second earlier than the
	// last, so Purge's own records fall before its cutoff: it must not
	// delete them, page after page, forever.
	back := t0.Add(100 * time.Second)
	defer audit.SetClock(func() time.Time { back = back.Add(-time.Second); return back })()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := audit.New(db).Purge(ctx, t0.Add(time.Hour))
	if err != nil || n != 10 {
		t.Fatalf("Purge = %d, %v; want 10", n, err)
	}
	recs := listAll(t, audit.New(db), audit.Filter{})
	if len(recs) != 1 || recs[0].Action != "audit.purge" {
		t.Fatalf("left %+v, want the one purge record", recs)
	}
}
