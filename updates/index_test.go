package updates

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// check runs q and compares the offered version ("" = nothing) and, when
// wantFile is set, the chosen artifact.
func check(t *testing.T, x *Index, q Query, want, wantFile string) {
	t.Helper()
	r, a, ok, err := x.Latest(q)
	if err != nil {
		t.Fatalf("Latest(%+v): %v", q, err)
	}
	got := ""
	if ok {
		got = r.Version
	}
	if got != want {
		t.Fatalf("Latest(%+v) = %q, want %q", q, got, want)
	}
	if ok && wantFile != "" && a.Filename != wantFile {
		t.Fatalf("Latest(%+v) artifact = %s, want %s", q, a.Filename, wantFile)
	}
	if ok {
		if r.Status != releases.Published {
			t.Fatalf("offered a %s release", r.Status)
		}
		if a.Status != releases.Uploaded {
			t.Fatalf("offered a %s artifact", a.Status)
		}
	}
}

func TestChannels(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("app.AppImage linux amd64")
	f.release("app", "1.0.0", "stable", 0, lin)
	f.release("app", "1.1.0-beta.1", "beta", 0, lin)
	f.release("app", "1.1.0-rc.1", "rc", 0, lin)
	f.release("app", "1.2.0-alpha.1", "alpha", 0, lin)
	f.release("app", "1.3.0-dev.1", "dev", 0, lin)
	f.draft("app", "9.0.0", "stable", 0, lin) // never published
	x := f.index()
	for _, tc := range []struct{ channel, current, want string }{
		{"", "", "1.0.0"},
		{"stable", "", "1.0.0"},
		{"stable", "0.9.0", "1.0.0"},
		{"stable", "1.0.0", ""},
		{"rc", "", "1.1.0-rc.1"},
		{"beta", "", "1.1.0-rc.1"}, // rc.1 > beta.1, and beta sees rc
		{"beta", "1.1.0-rc.1", ""},
		{"alpha", "", "1.2.0-alpha.1"},
		{"dev", "", "1.3.0-dev.1"},
		{"dev", "1.3.0-dev.1", ""},
	} {
		t.Run(tc.channel+"/"+tc.current, func(t *testing.T) {
			check(t, x, Query{Product: "app", Current: tc.current, Channel: tc.channel, Platform: "linux", Arch: "amd64"}, tc.want, "")
		})
	}
	// A beta client stays on the newest release visible to beta: a newer
	// stable release supersedes the prereleases.
	f.release("app", "1.1.0", "stable", 0, lin)
	if err := x.Refresh(f.ctx, "app"); err != nil {
		t.Fatal(err)
	}
	check(t, x, Query{Product: "app", Current: "1.1.0-rc.1", Channel: "beta", Platform: "linux", Arch: "amd64"}, "1.1.0", "")
	check(t, x, Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64"}, "1.1.0", "")
}

func TestStrictlyNewerAndConstraint(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("app.tar.gz linux amd64")
	for _, v := range []string{"1.0.0", "1.5.0", "2.0.0", "2.1.0"} {
		f.release("app", v, "stable", 0, lin)
	}
	x := f.index()
	for _, tc := range []struct{ current, constraint, want string }{
		{"2.1.0", "", ""},
		{"v2.1.0", "", ""},          // another spelling of the newest
		{"2.1.0+build.7", "", ""},   // build metadata does not make it older
		{"2.1.0.0", "", ""},         // trailing zero segment
		{"2.1.0-rc.1", "", "2.1.0"}, // a prerelease of 2.1.0 is older
		{"3.0.0", "", ""},           // newer than anything published
		{"1.0.0", "", "2.1.0"},
		{"1.0.0", "< 2.0", "1.5.0"},
		{"1.5.0", "< 2.0", ""},
		{"1.0.0", ">= 2.0, < 2.1", "2.0.0"},
		{"", "~> 1.0", "1.5.0"},
		{"", "> 5", ""},
	} {
		t.Run(tc.current+" "+tc.constraint, func(t *testing.T) {
			check(t, x, Query{Product: "app", Current: tc.current, Constraint: tc.constraint, Platform: "linux", Arch: "x86_64"}, tc.want, "")
		})
	}
}

func TestInvalidQuery(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	f.release("app", "1.0.0", "stable", 0, "a.zip linux amd64")
	x := f.index()
	good := Query{Product: "app", Platform: "linux", Arch: "amd64"}
	for name, tc := range map[string]struct {
		mod  func(*Query)
		code string
	}{
		"channel":     {func(q *Query) { q.Channel = "nightly" }, portal.EInvalid},
		"platform":    {func(q *Query) { q.Platform = "beos" }, portal.EInvalid},
		"no platform": {func(q *Query) { q.Platform = "" }, portal.EInvalid},
		"arch":        {func(q *Query) { q.Arch = "sparc" }, portal.EInvalid},
		"no arch":     {func(q *Query) { q.Arch = "" }, portal.EInvalid},
		"current":     {func(q *Query) { q.Current = "one point oh" }, portal.EInvalid},
		"long":        {func(q *Query) { q.Current = "1." + string(make([]byte, 200)) }, portal.EInvalid},
		"constraint":  {func(q *Query) { q.Constraint = ">>= 1" }, portal.EInvalid},
		"product":     {func(q *Query) { q.Product = "nope" }, portal.ENotFound},
	} {
		t.Run(name, func(t *testing.T) {
			q := good
			tc.mod(&q)
			_, _, ok, err := x.Latest(q)
			if ok || portal.ErrorCode(err) != tc.code {
				t.Fatalf("Latest = %v, %v; want code %s", ok, err, tc.code)
			}
		})
	}
	// The cached parse of a valid value must not leak into an invalid one.
	check(t, x, good, "1.0.0", "")
}

func TestPlatforms(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	f.release("app", "1.0.0", "stable", 0, "app-1.exe windows amd64", "app-1-arm.exe windows arm64", "app-1.zip darwin universal")
	f.release("app", "2.0.0", "stable", 0, "app-2.AppImage linux amd64", "app-2-arm64.zip darwin arm64")
	f.release("app", "3.0.0", "stable", 0, "app-3.jar any any")
	// 4.0.0 has a Windows artifact whose upload failed: published releases
	// cannot have one through the Service, so write it directly.
	r := f.release("app", "4.0.0", "stable", 0, "app-4.AppImage linux amd64")
	if _, err := f.cat.Update(f.ctx, "app", r.Version, releases.Change{Action: "release.update"}, func(r *releases.Release) error {
		r.Artifacts = append(r.Artifacts, releases.Artifact{Filename: "app-4.exe", Platform: "windows", Arch: "amd64", Status: releases.Failed})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	x := f.index()
	for _, tc := range []struct{ current, plat, arch, want, file string }{
		{"", "linux", "amd64", "4.0.0", "app-4.AppImage"},
		{"", "windows", "x64", "3.0.0", "app-3.jar"}, // the failed exe is never offered
		{"2.9.0", "windows", "x64", "3.0.0", "app-3.jar"},
		{"0.1.0", "windows", "arm64", "3.0.0", "app-3.jar"},
		{"", "macos", "aarch64", "3.0.0", "app-3.jar"},
		{"2.9.0", "freebsd", "amd64", "3.0.0", "app-3.jar"},
		{"", "linux", "arm64", "3.0.0", "app-3.jar"},
	} {
		check(t, x, Query{Product: "app", Current: tc.current, Platform: tc.plat, Arch: tc.arch}, tc.want, tc.file)
	}
	// Yank the platform-neutral release: now each platform falls back to
	// the newest release built for it, and some to nothing.
	if _, err := f.cat.Yank(f.ctx, "app", "3.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := x.Refresh(f.ctx, "app"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ plat, arch, want, file string }{
		{"windows", "amd64", "1.0.0", "app-1.exe"},
		{"windows", "arm64", "1.0.0", "app-1-arm.exe"},
		{"darwin", "arm64", "2.0.0", "app-2-arm64.zip"},
		{"darwin", "amd64", "1.0.0", "app-1.zip"}, // universal serves Intel Macs
		{"freebsd", "amd64", "", ""},
		{"linux", "arm64", "", ""},
	} {
		check(t, x, Query{Product: "app", Platform: tc.plat, Arch: tc.arch}, tc.want, tc.file)
	}
}

func TestYankAndRefresh(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("a linux amd64")
	f.release("app", "1.0.0", "stable", 0, lin)
	f.release("app", "1.1.0", "stable", 0, lin)
	x := f.index()
	q := Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64"}
	check(t, x, q, "1.1.0", "")
	etag := x.ETag("app")
	if _, err := f.cat.Yank(f.ctx, "app", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	check(t, x, q, "1.1.0", "") // not watched: the snapshot is unchanged until Refresh
	if err := x.Refresh(f.ctx, "app"); err != nil {
		t.Fatal(err)
	}
	check(t, x, q, "", "")
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64"}, "1.0.0", "")
	if e := x.ETag("app"); e == etag || e == "" {
		t.Fatalf("ETag %q after a refresh, was %q", e, etag)
	}
	if rs := x.Releases("app"); len(rs) != 1 || rs[0].Version != "1.0.0" {
		t.Fatalf("Releases = %+v", rs)
	}
	if x.ETag("nope") != "" || x.Releases("nope") != nil {
		t.Fatal("unknown product has an ETag or releases")
	}
}

func TestWatch(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("a linux amd64")
	f.release("app", "1.0.0", "stable", 0, lin)
	x := f.index()
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	if err := x.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := x.Watch(ctx); err != nil { // a second call must not start twice
		t.Fatal(err)
	}
	q := Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64"}
	f.release("app", "1.1.0", "stable", 0, lin)
	waitFor(t, func() bool { _, _, ok, _ := x.Latest(q); return ok })
	check(t, x, q, "1.1.0", "")
	if _, err := f.cat.Yank(f.ctx, "app", "1.1.0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, _, ok, _ := x.Latest(q); return !ok })
	// A product created after Load appears with its first release.
	f.product("new")
	f.release("new", "0.1.0", "stable", 0, lin)
	waitFor(t, func() bool { return len(x.Releases("new")) == 1 })
	// Writes by another catalog on the same store (another replica), and
	// straight into the store, arrive through the watch as well.
	other := releases.New(f.db, func() time.Time { return f.now })
	if _, err := other.Yank(f.ctx, "new", "0.1.0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(x.Releases("new")) == 0 })
	f.seed("app", 300)
	waitFor(t, func() bool { return len(x.Releases("app")) == 300 })
	// After ctx ends, changes are no longer applied.
	cancel()
	time.Sleep(20 * time.Millisecond)
	f.release("new", "0.2.0", "stable", 0, lin)
	time.Sleep(50 * time.Millisecond)
	if n := len(x.Releases("new")); n != 0 {
		t.Fatalf("a change after the watch ended was applied: %d releases", n)
	}
}

// TestWatchAfterLoadCatchesUp: Watch is meant to start before Load; a change
// committed between Load and a later Watch is still picked up.
func TestWatchAfterLoadCatchesUp(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("a linux amd64")
	f.release("app", "1.0.0", "stable", 0, lin)
	x := f.index()
	f.release("app", "1.1.0", "stable", 0, lin) // between Load and Watch
	ctx, cancel := contextWithCancel(t)
	defer cancel()
	if err := x.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(x.Releases("app")) == 2 })
}

// TestWatchReset: when the watch falls behind, the store sends a reset and
// the index reloads everything, products it never heard of included.
func TestWatchReset(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), bolt.Options{NoSync: true, WatchBuffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem}))
	defer cancel()
	cat := releases.New(db, nil)
	x := NewIndex(cat)
	if err := x.Watch(ctx); err != nil {
		t.Fatal(err)
	}
	if err := x.Load(ctx); err != nil {
		t.Fatal(err)
	}
	// One transaction, far more events than the watch buffers: the index
	// learns of it only through the reset.
	pub := t0
	err = db.Update(ctx, func(tx store.Tx) error {
		if err := store.PutJSON(tx, []byte("rel/p/bulk"), releases.Product{Slug: "bulk", Name: "bulk", Distribution: releases.Open}); err != nil {
			return err
		}
		for i := range store.MaxTxnOps - 1 {
			ver := fmt.Sprintf("1.0.%d", i)
			v, err := releases.ParseVersion(ver)
			if err != nil {
				return err
			}
			r := releases.Release{Product: "bulk", Version: ver, Channel: "stable", Status: releases.Published, CreatedAt: t0, PublishedAt: &pub,
				Artifacts: []releases.Artifact{{Filename: "a", Platform: "linux", Arch: "amd64", Size: 1, SHA256: strings.Repeat("a", 64), Status: releases.Uploaded}}}
			if err := store.PutJSON(tx, append([]byte("rel/r/bulk/"), releases.VersionKey(v)...), r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(x.Releases("bulk")) == store.MaxTxnOps-1 })
}

func TestReleasesNewestFirst(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("a linux amd64")
	for _, v := range []string{"1.0.0", "1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.0"} {
		ch := "stable"
		if v == "1.2.0-rc.1" {
			ch = "rc"
		}
		f.release("app", v, ch, 0, lin)
	}
	f.draft("app", "5.0.0", "stable", 0, lin)
	x := f.index()
	var got []string
	for _, r := range x.Releases("app") {
		got = append(got, r.Version)
	}
	if fmt.Sprint(got) != "[1.10.0 1.2.0 1.2.0-rc.1 1.0.0 0.9.0]" {
		t.Fatalf("Releases = %v", got)
	}
}

func TestLicense(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	f.product("other")
	lin := art("a.AppImage linux amd64")
	// The fixture clock publishes 1.0.0 at t0+1h, 1.5.0 at t0+2h, ...,
	// 2.2.0 at t0+6h.
	f.release("app", "1.0.0", "stable", 0, lin, "a.exe windows amd64")
	f.release("app", "1.5.0", "stable", 0, lin, "a.exe windows amd64")
	f.release("app", "1.6.0-beta.1", "beta", 0, lin)
	f.release("app", "2.0.0", "stable", 0, lin)
	f.release("app", "2.1.0", "stable", 0, lin, "docs.pdf any any")
	f.release("app", "2.2.0", "stable", 0, lin)
	x := f.index()
	now := t0.Add(100 * time.Hour)
	// expiry between the releases published at t0+h and t0+h+1.
	expiry := func(h int) *time.Time {
		e := t0.Add(time.Duration(h)*time.Hour + 30*time.Minute)
		return &e
	}
	future := t0.Add(1000 * time.Hour)
	lic := func(mod func(*licenses.License)) *licenses.License {
		l := &licenses.License{ID: "lic1", Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke}
		if mod != nil {
			mod(l)
		}
		return l
	}
	type tcase struct {
		name                     string
		l                        *licenses.License
		current, channel, plat   string
		want, wantCode, wantFile string
	}
	for _, tc := range []tcase{
		{name: "plain", l: lic(nil), want: "2.2.0"},
		{name: "constraint", l: lic(func(l *licenses.License) { l.Constraint = ">= 1.0, < 2.0" }), want: "1.5.0"},
		{name: "constraint, up to date", l: lic(func(l *licenses.License) { l.Constraint = "< 2.0" }), current: "1.5.0", want: ""},
		// go-version: a constraint without a prerelease excludes prereleases.
		{name: "constraint on beta", l: lic(func(l *licenses.License) { l.Constraint = "< 2.0" }), channel: "beta", current: "1.5.0", want: ""},
		{name: "beta channel", l: lic(nil), channel: "beta", current: "1.5.0", want: "2.2.0"},
		{name: "stable-only license asks beta", l: lic(func(l *licenses.License) { l.Channels = []string{"stable"}; l.Constraint = "< 1.9" }), channel: "beta", want: "1.5.0"},
		{name: "beta-only license", l: lic(func(l *licenses.License) { l.Channels = []string{"beta"} }), channel: "beta", want: "1.6.0-beta.1"},
		{name: "platform entitled", l: lic(func(l *licenses.License) { l.Platforms = []string{"windows"} }), plat: "windows", current: "2.1.0", want: ""},
		{name: "platform entitled, older", l: lic(func(l *licenses.License) { l.Platforms = []string{"windows"}; l.Constraint = "< 2" }), plat: "windows", want: "1.5.0", wantFile: "a.exe"},
		{name: "platform not entitled: only platform-neutral files", l: lic(func(l *licenses.License) { l.Platforms = []string{"windows"} }), want: "2.1.0", wantFile: "docs.pdf"},
		{name: "platform not entitled, up to date", l: lic(func(l *licenses.License) { l.Platforms = []string{"windows"} }), current: "2.1.0", want: ""},
		{name: "maintain keeps releases before expiry", l: lic(func(l *licenses.License) { l.ExpiresAt = expiry(2); l.OnExpiry = licenses.OnExpiryMaintain }), want: "1.5.0"},
		{name: "maintain, expired before any release", l: lic(func(l *licenses.License) { l.ExpiresAt = expiry(0); l.OnExpiry = licenses.OnExpiryMaintain }), want: ""},
		{name: "maintain, not yet expired", l: lic(func(l *licenses.License) { l.ExpiresAt = &future; l.OnExpiry = licenses.OnExpiryMaintain }), want: "2.2.0"},
		{name: "revoke, not yet expired", l: lic(func(l *licenses.License) { l.ExpiresAt = &future }), want: "2.2.0"},
		{name: "revoke, expired", l: lic(func(l *licenses.License) { l.ExpiresAt = expiry(2) }), wantCode: portal.ELicenseExpired},
		{name: "revoked", l: lic(func(l *licenses.License) { l.Status = licenses.Revoked }), wantCode: portal.ELicenseRevoked},
		{name: "suspended", l: lic(func(l *licenses.License) { l.Status = licenses.Suspended }), wantCode: portal.ELicenseSuspended},
		{name: "another product", l: lic(func(l *licenses.License) { l.Product = "other" }), wantCode: portal.ENotEntitled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plat := tc.plat
			if plat == "" {
				plat = "linux"
			}
			q := Query{Product: "app", Current: tc.current, Channel: tc.channel, Platform: plat, Arch: "amd64", License: tc.l, Now: now}
			if tc.wantCode != "" {
				_, _, ok, err := x.Latest(q)
				if ok || portal.ErrorCode(err) != tc.wantCode {
					t.Fatalf("Latest = %v, %v; want %s", ok, err, tc.wantCode)
				}
				return
			}
			check(t, x, q, tc.want, tc.wantFile)
			// Whatever is offered, the license's own decision agrees.
			if r, a, ok, _ := x.Latest(q); ok {
				if err := tc.l.Decide(licenses.TargetOf(r, a.Platform), now); err != nil {
					t.Fatalf("offered %s, which Decide refuses: %v", r.Version, err)
				}
			}
		})
	}
}

func TestBucket(t *testing.T) {
	seen := map[int]bool{}
	for i := range 10000 {
		b := Bucket(fmt.Sprintf("lic_%d", i), "app", "1.0.0")
		if b < 0 || b > 99 {
			t.Fatalf("bucket %d out of range", b)
		}
		if b != Bucket(fmt.Sprintf("lic_%d", i), "app", "1.0.0") {
			t.Fatal("bucket is not deterministic")
		}
		seen[b] = true
	}
	if len(seen) != 100 {
		t.Fatalf("10,000 ids filled %d of 100 buckets", len(seen))
	}
	// Per release: the same id lands in different buckets for different
	// versions (at least for most ids).
	same := 0
	for i := range 1000 {
		id := fmt.Sprintf("lic_%d", i)
		if Bucket(id, "app", "1.0.0") == Bucket(id, "app", "1.0.1") {
			same++
		}
	}
	if same > 50 {
		t.Fatalf("%d of 1000 ids share a bucket across two releases", same)
	}
	// Known value, so the function cannot change silently (cohorts would
	// reshuffle mid-rollout): SHA-256("lic_1/app/1.0.0").
	if got := Bucket("lic_1", "app", "1.0.0"); got != knownBucket {
		t.Fatalf("Bucket(lic_1, app, 1.0.0) = %d, want %d", got, knownBucket)
	}
	if n := testing.AllocsPerRun(100, func() { Bucket("lic_0123456789abcdef", "some-product", "1.2.3-beta.4") }); n != 0 {
		t.Fatalf("Bucket allocates %v times", n)
	}
}

func TestRollout(t *testing.T) {
	f := newFixture(t)
	f.product("app")
	lin := art("a linux amd64")
	f.release("app", "1.0.0", "stable", 0, lin)
	f.release("app", "1.1.0", "stable", 0, lin)
	f.release("app", "1.2.0", "stable", 30, lin)
	x := f.index()
	const n = 10000
	got := 0
	for i := range n {
		l := &licenses.License{ID: fmt.Sprintf("lic_%d", i), Product: "app", Status: licenses.Active}
		q := Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64", License: l}
		r, _, ok, err := x.Latest(q)
		if err != nil || !ok {
			t.Fatalf("Latest: %v %v", ok, err)
		}
		inCohort := Bucket(l.ID, "app", "1.2.0") < 30
		switch {
		case inCohort && r.Version == "1.2.0":
			got++
		case !inCohort && r.Version == "1.1.0": // falls through to the older release
		default:
			t.Fatalf("%s (bucket %d) got %s", l.ID, Bucket(l.ID, "app", "1.2.0"), r.Version)
		}
		// Deterministic: the same license gets the same answer again.
		if r2, _, _, _ := x.Latest(q); r2.Version != r.Version {
			t.Fatalf("%s got %s then %s", l.ID, r.Version, r2.Version)
		}
	}
	// Binomial(10000, 0.3): sd ~46; allow 5 sd.
	if math.Abs(float64(got)-0.3*n) > 230 {
		t.Fatalf("%d of %d licenses got the 30%% release", got, n)
	}
	// Anonymous callers: a client id works like a license id; no identity
	// gets only fully rolled-out releases.
	check(t, x, Query{Product: "app", Current: "1.0.0", Platform: "linux", Arch: "amd64"}, "1.1.0", "")
	in, out := "", ""
	for i := 0; in == "" || out == ""; i++ {
		id := fmt.Sprintf("client-%d", i)
		if Bucket(id, "app", "1.2.0") < 30 {
			in = id
		} else {
			out = id
		}
	}
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64", ClientID: in}, "1.2.0", "")
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64", ClientID: out}, "1.1.0", "")
	// With a license, the license ID decides, not the client id.
	l := &licenses.License{ID: out, Product: "app", Status: licenses.Active}
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64", ClientID: in, License: l}, "1.1.0", "")
	// The Bucket hook replaces the function.
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64", ClientID: out, Bucket: func(string, string, string) int { return 29 }}, "1.2.0", "")
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64", ClientID: in, Bucket: func(string, string, string) int { return 30 }}, "1.1.0", "")
	// Raising the rollout to everyone reaches the anonymous caller.
	if _, err := f.cat.Update(f.ctx, "app", "1.2.0", releases.Change{Action: "release.update"}, func(r *releases.Release) error { r.Rollout = 0; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := x.Refresh(f.ctx, "app"); err != nil {
		t.Fatal(err)
	}
	check(t, x, Query{Product: "app", Platform: "linux", Arch: "amd64"}, "1.2.0", "")
}

func TestManyReleases(t *testing.T) {
	f := newFixture(t)
	f.product("big")
	vers := f.seed("big", 10000)
	start := time.Now()
	x := f.index()
	t.Logf("loaded 10,000 releases in %v", time.Since(start))
	newest := vers[len(vers)-1]
	check(t, x, Query{Product: "big", Current: vers[0], Platform: "linux", Arch: "amd64"}, newest, "app-"+newest+".AppImage")
	check(t, x, Query{Product: "big", Current: newest, Platform: "linux", Arch: "amd64"}, "", "")
	check(t, x, Query{Product: "big", Current: "1.0.0", Constraint: "< 1.5", Platform: "darwin", Arch: "arm64"}, "1.4.999", "app-1.4.999.zip")
	if len(x.Releases("big")) != 10000 || x.Releases("big")[0].Version != newest {
		t.Fatal("Releases is not the 10,000 releases newest first")
	}
	// A reload replaces the snapshot while readers keep reading.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			if _, _, ok, err := x.Latest(Query{Product: "big", Current: "1.0.0", Platform: "linux", Arch: "amd64"}); !ok || err != nil {
				t.Errorf("Latest during reload: %v %v", ok, err)
				return
			}
		}
	}()
	start = time.Now()
	if err := x.Refresh(f.ctx, "big"); err != nil {
		t.Fatal(err)
	}
	t.Logf("refreshed 10,000 releases in %v", time.Since(start))
	<-done
	// Allocation-free hot path for a known current version.
	q := Query{Product: "big", Current: "1.3.7", Platform: "linux", Arch: "amd64", Channel: "stable", Now: t0}
	if n := testing.AllocsPerRun(100, func() { x.Latest(q) }); n != 0 {
		t.Fatalf("Latest allocates %v times", n)
	}
}

// knownBucket is int(big-endian uint64 of SHA-256("lic_1/app/1.0.0")[:8]) % 100,
// computed independently.
const knownBucket = 5
