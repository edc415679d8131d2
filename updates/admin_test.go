package updates

import (
	"testing"

	"github.com/portaldist/portal/releases"
)

// The catalog's administrative calls (releases/edit.go) reach the index
// like any other catalog write: after a Refresh, and by themselves through
// Watch. Rollout edits and unyanks change what update checks offer, and the
// ETag with it.
func TestAdminEditsReachTheIndex(t *testing.T) {
	lin := art("a linux amd64")
	// bucket places the caller at 30: inside a rollout above 30 only.
	bucket := func(string, string, string) int { return 30 }
	q := Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64", ClientID: "c", Bucket: bucket}
	pint := func(n int) *int { return &n }

	for _, mode := range []string{"refresh", "watch"} {
		t.Run(mode, func(t *testing.T) {
			f := newFixture(t)
			f.product("app")
			f.release("app", "1.0.0", "stable", 0, lin)
			f.release("app", "1.1.0", "stable", 0, lin)
			f.release("app", "1.2.0", "stable", 10, lin)
			x := NewIndex(f.cat)
			ctx, cancel := contextWithCancel(t)
			defer func() { cancel(); x.Wait() }()
			if mode == "watch" {
				if err := x.Watch(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := x.Load(f.ctx); err != nil {
				t.Fatal(err)
			}
			// apply makes a catalog change and waits until the index
			// shows it: at once after Refresh, or when the watch has
			// reloaded the product (its ETag changes).
			apply := func(change func() error) {
				t.Helper()
				etag := x.ETag("app")
				if err := change(); err != nil {
					t.Fatal(err)
				}
				if mode == "refresh" {
					if err := x.Refresh(f.ctx, "app"); err != nil {
						t.Fatal(err)
					}
				} else {
					waitFor(t, func() bool { return x.ETag("app") != etag })
				}
				if x.ETag("app") == etag {
					t.Fatal("the ETag did not change")
				}
			}
			check(t, x, q, "1.1.0", "")

			// 10 -> 50: the caller's bucket (30) is now inside.
			apply(func() error {
				_, _, err := f.cat.EditRelease(f.ctx, "app", "1.2.0", releases.ReleaseEdit{Rollout: pint(50)})
				return err
			})
			check(t, x, q, "1.2.0", "")
			if r := x.Releases("app")[0]; r.Version != "1.2.0" || r.Rollout != 50 {
				t.Fatalf("index holds %s at rollout %d", r.Version, r.Rollout)
			}
			// 50 -> 20: outside again.
			apply(func() error {
				_, _, err := f.cat.EditRelease(f.ctx, "app", "1.2.0", releases.ReleaseEdit{Rollout: pint(20)})
				return err
			})
			check(t, x, q, "1.1.0", "")
			// 100: everyone, even a caller without an identity.
			apply(func() error {
				_, _, err := f.cat.EditRelease(f.ctx, "app", "1.2.0", releases.ReleaseEdit{Rollout: pint(100)})
				return err
			})
			check(t, x, q, "1.2.0", "")
			check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64"}, "1.2.0", "")

			// Notes edited after publication reach the feeds' copy.
			apply(func() error {
				_, _, err := f.cat.EditRelease(f.ctx, "app", "1.2.0", releases.ReleaseEdit{Notes: new("fixed notes")})
				return err
			})
			if r := x.Releases("app")[0]; r.Notes != "fixed notes" {
				t.Fatalf("index holds notes %q", r.Notes)
			}

			// Yank, then unyank: the release leaves and comes back.
			apply(func() error { _, err := f.cat.Yank(f.ctx, "app", "1.2.0"); return err })
			check(t, x, q, "1.1.0", "")
			apply(func() error { _, err := f.cat.Unyank(f.ctx, "app", "1.2.0"); return err })
			check(t, x, q, "1.2.0", "")
			if len(x.Releases("app")) != 3 {
				t.Fatalf("index holds %d releases after the unyank, want 3", len(x.Releases("app")))
			}
		})
	}
}
