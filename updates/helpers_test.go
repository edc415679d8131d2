package updates

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// fixture is a real catalog on a real bbolt file, with a clock the test
// moves (Publish stamps PublishedAt from it).
type fixture struct {
	t   testing.TB
	ctx context.Context
	db  *bolt.DB
	cat *releases.Service
	now time.Time
}

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// Catalog changes are audited and need an actor.
	f := &fixture{t: t, ctx: audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem}), db: db, now: t0}
	f.cat = releases.New(db, func() time.Time { return f.now })
	return f
}

func (f *fixture) product(slug string) {
	f.t.Helper()
	if _, err := f.cat.CreateProduct(f.ctx, releases.Product{Slug: slug, Distribution: releases.Licensed}); err != nil {
		f.t.Fatal(err)
	}
}

// art is "filename platform arch".
type art string

// release creates, uploads and publishes a release the way the API does:
// CreateRelease, AddArtifact, Update to mark each artifact uploaded,
// Publish. The clock advances one hour per release.
func (f *fixture) release(slug, ver, channel string, rollout int, arts ...art) releases.Release {
	f.t.Helper()
	r := f.draft(slug, ver, channel, rollout, arts...)
	r, err := f.cat.Publish(f.ctx, slug, r.Version)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) draft(slug, ver, channel string, rollout int, arts ...art) releases.Release {
	f.t.Helper()
	f.now = f.now.Add(time.Hour)
	if _, err := f.cat.CreateRelease(f.ctx, slug, releases.NewRelease{Version: ver, Channel: channel, Rollout: rollout, Notes: "notes " + ver}); err != nil {
		f.t.Fatal(err)
	}
	for _, a := range arts {
		fs := strings.Fields(string(a))
		if _, _, err := f.cat.AddArtifact(f.ctx, slug, ver, releases.NewArtifact{
			Filename: fs[0], Platform: fs[1], Arch: fs[2], Size: 100, SHA256: strings.Repeat("a", 64),
		}, f.now.Add(time.Hour)); err != nil {
			f.t.Fatal(err)
		}
	}
	r, err := f.cat.Update(f.ctx, slug, ver, releases.Change{Action: "release.update"}, func(r *releases.Release) error {
		for i := range r.Artifacts {
			up := f.now
			r.Artifacts[i].Status, r.Artifacts[i].UploadedAt = releases.Uploaded, &up
		}
		return nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) index() *Index {
	f.t.Helper()
	x := NewIndex(f.cat)
	if err := x.Load(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	return x
}

// seed writes n published releases of slug (1.0.0, 1.0.1, ... by patch and
// minor) straight into the store, in batches of one transaction each, for
// the large-catalog tests and benchmarks: going through the Service costs
// four transactions per release. It uses the catalog's key layout
// ("rel/r/<slug>/<VersionKey>") and checks that the catalog reads one back,
// so a change of layout fails here loudly rather than seeding nothing.
func (f *fixture) seed(slug string, n int) []string {
	f.t.Helper()
	vers := make([]string, n)
	for i := range vers {
		vers[i] = fmt.Sprintf("1.%d.%d", i/1000, i%1000)
	}
	const batch = store.MaxTxnOps
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		err := f.db.Update(f.ctx, func(tx store.Tx) error {
			for _, ver := range vers[lo:hi] {
				pub := t0.Add(time.Minute)
				r := releases.Release{
					Product: slug, Version: ver, Channel: "stable", Status: releases.Published,
					Notes: "notes " + ver, CreatedAt: t0, PublishedAt: &pub,
					Artifacts: []releases.Artifact{
						{Filename: "app-" + ver + ".AppImage", Platform: "linux", Arch: "amd64", Size: 100, SHA256: strings.Repeat("a", 64), Status: releases.Uploaded},
						{Filename: "app-" + ver + ".zip", Platform: "darwin", Arch: "universal", Size: 100, SHA256: strings.Repeat("b", 64), Status: releases.Uploaded},
					},
				}
				v, err := releases.ParseVersion(ver)
				if err != nil {
					return err
				}
				b, err := json.Marshal(r)
				if err != nil {
					return err
				}
				if err := tx.Put(append([]byte("rel/r/"+slug+"/"), releases.VersionKey(v)...), b); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			f.t.Fatal(err)
		}
	}
	if r, err := f.cat.Release(f.ctx, slug, vers[n-1]); err != nil || r.Status != releases.Published {
		f.t.Fatalf("seeded release not readable through the catalog: %+v, %v", r, err)
	}
	return vers
}

func contextWithCancel(t testing.TB) (context.Context, context.CancelFunc) {
	return context.WithCancel(audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem}))
}

// waitFor polls cond for up to five seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
