package webhooks

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

var sys = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})

// write audits one change, as a service would.
func write(t *testing.T, db store.DB, action, target string) {
	t.Helper()
	if err := db.Update(sys, func(tx store.Tx) error { return audit.Write(sys, tx, action, target, nil, map[string]string{"x": "y"}) }); err != nil {
		t.Fatal(err)
	}
}

// TestDeliveryLifecycle: only events after a webhook's creation reach it,
// once each however often the dispatcher runs; a delivery that keeps
// failing is given up after RetryFor; Purge removes finished deliveries
// after Retention.
func TestDeliveryLifecycle(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := New(db, Options{AllowPrivate: true, RetryBase: time.Minute, RetryMax: time.Hour, RetryFor: 3 * time.Minute, Retention: time.Hour})
	write(t, db, "license.create", "license/before")
	if more, err := s.DispatchOnce(sys); err != nil || more {
		t.Fatalf("dispatch without webhooks: %v %v", more, err)
	}
	if err := db.View(sys, func(tx store.Tx) error {
		_, err := tx.Get([]byte(positionKey))
		if err != store.ErrNotFound {
			t.Errorf("the dispatcher wrote its position without webhooks (%v)", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	h, _, err := s.Create(sys, "http://127.0.0.1:9/", []string{LicenseCreated})
	if err != nil {
		t.Fatal(err)
	}
	write(t, db, "license.create", "license/after")
	write(t, db, "license.reissue", "license/after") // no event type
	for range 3 {
		if _, err := s.DispatchOnce(sys); err != nil {
			t.Fatal(err)
		}
	}
	ds, _, err := s.Deliveries(sys, h.ID, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Event.Type != LicenseCreated || ds[0].Status != Pending {
		t.Fatalf("deliveries: %+v", ds)
	}
	d := ds[0]

	// Failures: retried after 1 and 2 minutes; the third would come after
	// RetryFor (3 minutes from the event): failed.
	at := d.Event.CreatedAt
	for i, want := range []string{Pending, Pending, Failed} {
		if err := s.record(sys, d.ID, Attempt{Time: at, StatusCode: 503}); err != nil {
			t.Fatal(err)
		}
		got, _, _ := s.Deliveries(sys, h.ID, 0, "")
		d = got[0]
		if d.Status != want || len(d.Attempts) != i+1 {
			t.Fatalf("after failure %d: %+v", i+1, d)
		}
		if want == Pending {
			if next := d.Attempts[i].NextRetry; next == nil || !next.Equal(at.Add(s.delay(i+1))) {
				t.Fatalf("attempt %d next retry %v", i+1, next)
			}
			at = *d.Attempts[i].NextRetry
		} else if d.Attempts[i].NextRetry != nil {
			t.Fatalf("the last attempt has a next retry: %+v", d.Attempts[i])
		}
	}
	if ids, next, err := s.due(sys); err != nil || len(ids) != 0 || !next.IsZero() {
		t.Fatalf("due after failing: %v %v %v", ids, next, err)
	}

	// Retention: kept until it is older than an hour.
	if n, err := s.Purge(sys); err != nil || n != 0 {
		t.Fatalf("purge: %d %v", n, err)
	}
	s.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	if n, err := s.Purge(sys); err != nil || n != 1 {
		t.Fatalf("purge later: %d %v", n, err)
	}
	if ds, _, _ := s.Deliveries(sys, h.ID, 0, ""); len(ds) != 0 {
		t.Fatalf("after purge: %+v", ds)
	}
}
