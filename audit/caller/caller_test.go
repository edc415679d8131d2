package caller_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/audit/caller"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

func TestActorOfEachCaller(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{RunUpdatesTwice: true, MaxTxnOps: store.MaxTxnOps})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admin := tokens.Token{ID: "a1b2", Name: "ops", Role: tokens.Admin, Digest: "d1"}
	pub := tokens.Token{ID: "c3d4", Name: "ci", Role: tokens.Publisher, Products: []string{"app"}, Digest: "d2"}
	lic := licenses.License{ID: "L5", Customer: "Bob", Product: "app", KeyDigest: "d3"}
	bg := context.Background()
	cases := []struct {
		name string
		ctx  context.Context
		want audit.Actor
	}{
		{"admin token", caller.NewContext(bg, access.ForToken(admin)), audit.Actor{Kind: "admin", ID: "a1b2", Name: "ops"}},
		{"publisher token", caller.NewContext(bg, access.ForToken(pub)), audit.Actor{Kind: "publisher", ID: "c3d4", Name: "ci"}},
		{"license", caller.NewContext(bg, access.ForLicense(lic)), audit.Actor{Kind: "license", ID: "L5"}},
		{"anonymous", caller.NewContext(bg, access.Caller{}), audit.Actor{Kind: "anonymous"}},
		{"offline command", audit.WithActor(bg, audit.Actor{Kind: audit.KindCLI}), audit.Actor{Kind: "cli"}},
		{"background job", audit.WithActor(bg, audit.Actor{Kind: audit.KindSystem}), audit.Actor{Kind: "system"}},
		// The authenticated caller replaces an actor the context carried.
		{"caller over an earlier actor", caller.NewContext(audit.WithActor(bg, audit.Actor{Kind: audit.KindSystem}), access.ForLicense(lic)), audit.Actor{Kind: "license", ID: "L5"}},
	}
	log := audit.New(db)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := "thing/" + c.name
			err := db.Update(c.ctx, func(tx store.Tx) error {
				return audit.Write(c.ctx, tx, "thing.touch", target, nil, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			recs, _, err := log.List(bg, audit.Filter{TargetPrefix: target})
			if err != nil || len(recs) != 1 {
				t.Fatalf("%+v %v", recs, err)
			}
			if recs[0].Actor != c.want {
				t.Errorf("actor %+v, want %+v", recs[0].Actor, c.want)
			}
			// NewContext also sets the access caller, so the two agree.
			if got := caller.Actor(access.FromContext(c.ctx)); c.want.Kind != "cli" && c.want.Kind != "system" && got != c.want {
				t.Errorf("access caller in the context gives %+v, want %+v", got, c.want)
			}
		})
	}

	// A context without an actor records nothing, and so changes nothing.
	err = db.Update(bg, func(tx store.Tx) error {
		if err := tx.Put([]byte("x"), []byte("y")); err != nil {
			return err
		}
		return audit.Write(bg, tx, "thing.touch", "thing/none", nil, nil)
	})
	if !errors.Is(err, audit.ErrNoActor) {
		t.Fatalf("no actor: err = %v, want ErrNoActor", err)
	}
}
