package releases_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// clock is a settable time source for the services under test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// bg is the context of the tests' calls: every catalog change is audited
// and needs an actor.
var bg = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	db    *bolt.DB
	svc   *releases.Service
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	// Every Update function runs twice, as a store that retries on
	// conflict may run it: one with effects outside its transaction fails.
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{RunUpdatesTwice: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := newClock()
	return &fixture{db: db, svc: releases.New(db, c.Now), clock: c}
}

func (f *fixture) product(t *testing.T, slug string) {
	t.Helper()
	if _, err := f.svc.CreateProduct(bg, releases.Product{Slug: slug, Name: slug}); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) release(t *testing.T, slug, ver, channel string) releases.Release {
	t.Helper()
	r, err := f.svc.CreateRelease(bg, slug, releases.NewRelease{Version: ver, Channel: channel})
	if err != nil {
		t.Fatalf("CreateRelease(%s %s on %s): %v", slug, ver, channel, err)
	}
	return r
}

var sha = strings.Repeat("ab", 32)

func artifact(name string) releases.NewArtifact {
	return releases.NewArtifact{Filename: name, Platform: "linux", Arch: "amd64", Size: 1024, SHA256: sha}
}

func (f *fixture) addArtifact(t *testing.T, slug, ver, name string) releases.Artifact {
	t.Helper()
	a, _, err := f.svc.AddArtifact(bg, slug, ver, artifact(name), f.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("AddArtifact(%s %s %s): %v", slug, ver, name, err)
	}
	return a
}

// setStatus sets an artifact's status the way the publishing package does
// once it has verified (or failed) an upload.
func (f *fixture) setStatus(t *testing.T, slug, ver, name, status string) {
	t.Helper()
	_, err := f.svc.Update(bg, slug, ver, releases.Change{Action: "release.update"}, func(r *releases.Release) error {
		a, ok := r.Artifact(name)
		if !ok {
			return fmt.Errorf("no artifact %s", name)
		}
		a.Status = status
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// published creates a release with one uploaded artifact and publishes it.
func (f *fixture) published(t *testing.T, slug, ver, channel string) releases.Release {
	t.Helper()
	f.release(t, slug, ver, channel)
	f.addArtifact(t, slug, ver, "app.tar.gz")
	f.setStatus(t, slug, ver, "app.tar.gz", releases.Uploaded)
	r, err := f.svc.Publish(bg, slug, ver)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// dump returns every key and value in the store, to prove that a failed
// call changed nothing at all.
func (f *fixture) dump(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := f.db.View(bg, func(tx store.Tx) error {
		return tx.Scan([]byte("rel/"), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			out[string(k)] = string(v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", code)
	}
	if got := portal.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestCreateProduct(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	p, err := f.svc.CreateProduct(ctx, releases.Product{Slug: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "app" || p.Distribution != releases.Licensed || !p.CreatedAt.Equal(f.clock.Now()) {
		t.Errorf("defaults: %+v", p)
	}
	tests := []struct {
		name string
		in   releases.Product
		code string
	}{
		{"duplicate", releases.Product{Slug: "app", Name: "Other"}, portal.EConflict},
		{"duplicate open", releases.Product{Slug: "app", Distribution: releases.Open}, portal.EConflict},
		{"empty slug", releases.Product{Slug: ""}, portal.EInvalid},
		{"upper-case slug", releases.Product{Slug: "App"}, portal.EInvalid},
		{"slug with slash", releases.Product{Slug: "a/b"}, portal.EInvalid},
		{"long slug", releases.Product{Slug: strings.Repeat("a", 65)}, portal.EInvalid},
		{"bad distribution", releases.Product{Slug: "other", Distribution: "public"}, portal.EInvalid},
		{"distribution case", releases.Product{Slug: "other", Distribution: "Open"}, portal.EInvalid},
		{"control char in name", releases.Product{Slug: "other", Name: "a\x00b"}, portal.EInvalid},
		{"long name", releases.Product{Slug: "other", Name: strings.Repeat("n", 201)}, portal.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dump(t)
			_, err := f.svc.CreateProduct(ctx, tt.in)
			wantCode(t, err, tt.code)
			if after := f.dump(t); !reflect.DeepEqual(before, after) {
				t.Error("a refused CreateProduct changed the store")
			}
		})
	}
	if _, err := f.svc.CreateProduct(ctx, releases.Product{Slug: "tool", Name: "Tool", Distribution: releases.Open}); err != nil {
		t.Fatal(err)
	}
	got, err := f.svc.Product(ctx, "app")
	if err != nil || got.Name != "app" {
		t.Fatalf("Product(app) = %+v, %v (the refused duplicate must not overwrite)", got, err)
	}
	ps, err := f.svc.Products(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Slug != "app" || ps[1].Slug != "tool" || ps[1].Distribution != releases.Open {
		t.Errorf("Products = %+v", ps)
	}
	for _, slug := range []string{"nope", "", "../app", strings.Repeat("x", 500)} {
		_, err := f.svc.Product(ctx, slug)
		wantCode(t, err, portal.ENotFound)
	}
}

func TestCreateRelease(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.release(t, "app", "1.2.3", "")
	f.release(t, "app", "2.0.0-beta.1", "beta")

	tests := []struct {
		name string
		slug string
		in   releases.NewRelease
		code string
	}{
		{"prerelease on stable", "app", releases.NewRelease{Version: "3.0.0-rc.1", Channel: "stable"}, portal.EInvalid},
		{"prerelease on default channel", "app", releases.NewRelease{Version: "3.0.0-rc.1"}, portal.EInvalid},
		{"duplicate", "app", releases.NewRelease{Version: "1.2.3"}, portal.EConflict},
		{"duplicate with v", "app", releases.NewRelease{Version: "v1.2.3"}, portal.EConflict},
		{"duplicate with build", "app", releases.NewRelease{Version: "1.2.3+x", Channel: "beta"}, portal.EConflict},
		{"duplicate with fourth zero", "app", releases.NewRelease{Version: "1.2.3.0"}, portal.EConflict},
		{"duplicate prerelease", "app", releases.NewRelease{Version: "v2.0.0-beta.1+b", Channel: "beta"}, portal.EConflict},
		{"unknown product", "nope", releases.NewRelease{Version: "1.0.0"}, portal.ENotFound},
		{"invalid product slug", "../app", releases.NewRelease{Version: "1.0.0"}, portal.ENotFound},
		{"bad version", "app", releases.NewRelease{Version: "one"}, portal.EInvalid},
		{"empty version", "app", releases.NewRelease{}, portal.EInvalid},
		{"bad channel", "app", releases.NewRelease{Version: "3.0.0", Channel: "nightly"}, portal.EInvalid},
		{"control char in notes", "app", releases.NewRelease{Version: "3.0.0", Notes: "a\x00"}, portal.EInvalid},
		{"notes too long", "app", releases.NewRelease{Version: "3.0.0", Notes: strings.Repeat("n", releases.MaxNotes+1)}, portal.EInvalid},
		{"metadata key empty", "app", releases.NewRelease{Version: "3.0.0", Metadata: map[string]string{"": "x"}}, portal.EInvalid},
		{"metadata value newline", "app", releases.NewRelease{Version: "3.0.0", Metadata: map[string]string{"k": "a\nb"}}, portal.EInvalid},
		{"rollout negative", "app", releases.NewRelease{Version: "3.0.0", Rollout: -1}, portal.EInvalid},
		{"rollout above 100", "app", releases.NewRelease{Version: "3.0.0", Rollout: 101}, portal.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dump(t)
			_, err := f.svc.CreateRelease(ctx, tt.slug, tt.in)
			wantCode(t, err, tt.code)
			if after := f.dump(t); !reflect.DeepEqual(before, after) {
				t.Error("a refused CreateRelease changed the store")
			}
		})
	}

	r, err := f.svc.CreateRelease(ctx, "app", releases.NewRelease{
		Version: "v3.0.0", Notes: "line 1\nline 2\ttab", Metadata: map[string]string{"min_os": "12"}, Rollout: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != releases.Draft || r.Channel != "stable" || r.Rollout != 0 || r.Version != "v3.0.0" || len(r.Artifacts) != 0 || r.Artifacts == nil {
		t.Errorf("created %+v", r)
	}
	// Any spelling finds it; the stored record is what CreateRelease returned.
	for _, spelling := range []string{"3.0.0", "v3.0.0", "3.0.0+meta", "3", "3.0.0.0"} {
		got, err := f.svc.Release(ctx, "app", spelling)
		if err != nil {
			t.Fatalf("Release(%s): %v", spelling, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("Release(%s) = %+v, want %+v", spelling, got, r)
		}
	}
	for _, missing := range []string{"3.0.1", "3.0.0-rc.1", "garbage", "", strings.Repeat("9", 300)} {
		_, err := f.svc.Release(ctx, "app", missing)
		wantCode(t, err, portal.ENotFound)
	}
	_, err = f.svc.Release(ctx, "nope", "1.2.3")
	wantCode(t, err, portal.ENotFound)
}

// TestReleasesPagination lists 25 releases 10 at a time: three pages,
// newest version first, no duplicates and no gaps.
func TestReleasesPagination(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.product(t, "app-2") // its releases must never leak into app's listing (prefix "rel/r/app-2/" vs "rel/r/app/")
	f.product(t, "ap")
	var versions []string
	for i := range 25 {
		var v string
		switch {
		case i%5 == 0:
			v = fmt.Sprintf("1.%d.0-rc.%d", i, i%3+1)
		case i%7 == 0:
			v = fmt.Sprintf("1.%d.0.%d", i, i)
		default:
			v = fmt.Sprintf("1.%d.%d", i, i%4)
		}
		versions = append(versions, v)
	}
	// Create them out of order: listing order must come from versions.
	for _, i := range []int{7, 3, 24, 0, 12, 18, 1, 9, 22, 5, 15, 10, 2, 20, 6, 13, 4, 23, 17, 11, 8, 19, 14, 21, 16} {
		ch := "stable"
		if strings.Contains(versions[i], "-") {
			ch = "rc"
		}
		f.release(t, "app", versions[i], ch)
	}
	f.release(t, "app-2", "9.9.9", "")
	f.release(t, "ap", "9.9.9", "")

	var got []string
	cursor := ""
	pages := 0
	for {
		page, err := f.svc.Releases(ctx, "app", releases.ListOptions{Limit: 10, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		wantLen := 10
		if pages == 3 {
			wantLen = 5
		}
		if len(page.Releases) != wantLen {
			t.Fatalf("page %d has %d releases, want %d", pages, len(page.Releases), wantLen)
		}
		for _, r := range page.Releases {
			if r.Product != "app" {
				t.Fatalf("listing of app holds a release of %s", r.Product)
			}
			got = append(got, r.Version)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if pages != 3 {
		t.Fatalf("%d pages, want 3", pages)
	}
	want := slices.Clone(versions)
	slices.SortFunc(want, func(a, b string) int { return mustVersion(t, b).Compare(mustVersion(t, a)) })
	if !slices.Equal(got, want) {
		t.Errorf("listing\n got %v\nwant %v", got, want)
	}

	// Each lists oldest first, the same set.
	var each []string
	if err := f.svc.Each(ctx, "app", func(r releases.Release) error { each = append(each, r.Version); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(each)
	if !slices.Equal(each, want) {
		t.Errorf("Each (reversed) = %v, want %v", each, want)
	}

	// Limits: 0 means the default, above the maximum is capped.
	all, err := f.svc.Releases(ctx, "app", releases.ListOptions{})
	if err != nil || len(all.Releases) != 25 || all.NextCursor != "" {
		t.Errorf("default limit: %d releases, cursor %q, %v", len(all.Releases), all.NextCursor, err)
	}
	exact, err := f.svc.Releases(ctx, "app", releases.ListOptions{Limit: 25})
	if err != nil || len(exact.Releases) != 25 || exact.NextCursor != "" {
		t.Errorf("limit equal to the count: %d releases, cursor %q (a cursor to an empty page), %v", len(exact.Releases), exact.NextCursor, err)
	}
	big, err := f.svc.Releases(ctx, "app", releases.ListOptions{Limit: 1 << 30})
	if err != nil || len(big.Releases) != 25 {
		t.Errorf("huge limit: %d releases, %v", len(big.Releases), err)
	}
}

func TestReleasesFilters(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	byChannel := map[string][]string{
		"stable": {"1.0.0", "1.1.0", "2.0.0"},
		"rc":     {"2.1.0-rc.1", "2.1.0-rc.2"},
		"beta":   {"2.1.0-beta.1", "3.0.0-beta.1"},
		"alpha":  {"3.0.0-alpha.1"},
		"dev":    {"4.0.0-dev.1", "4.0.0-dev.2", "4.0.0-dev.3"},
	}
	for ch, vs := range byChannel {
		for _, v := range vs {
			f.release(t, "app", v, ch)
		}
	}
	// Publish a few; yank one.
	for _, v := range []string{"1.0.0", "2.0.0", "2.1.0-rc.1", "3.0.0-beta.1", "4.0.0-dev.2"} {
		f.addArtifact(t, "app", v, "app.zip")
		f.setStatus(t, "app", v, "app.zip", releases.Uploaded)
		if _, err := f.svc.Publish(ctx, "app", v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.svc.Yank(ctx, "app", "2.0.0"); err != nil {
		t.Fatal(err)
	}

	list := func(opt releases.ListOptions) []string {
		t.Helper()
		var out []string
		for {
			page, err := f.svc.Releases(ctx, "app", opt)
			if err != nil {
				t.Fatalf("Releases(%+v): %v", opt, err)
			}
			for _, r := range page.Releases {
				out = append(out, r.Version)
			}
			if page.NextCursor == "" {
				return out
			}
			opt.Cursor = page.NextCursor
		}
	}
	tests := []struct {
		opt  releases.ListOptions
		want []string
	}{
		{releases.ListOptions{Channel: "stable"}, []string{"2.0.0", "1.1.0", "1.0.0"}},
		{releases.ListOptions{Channel: "rc"}, []string{"2.1.0-rc.2", "2.1.0-rc.1", "2.0.0", "1.1.0", "1.0.0"}},
		{releases.ListOptions{Channel: "beta"}, []string{"3.0.0-beta.1", "2.1.0-rc.2", "2.1.0-rc.1", "2.1.0-beta.1", "2.0.0", "1.1.0", "1.0.0"}},
		{releases.ListOptions{Channel: "alpha"}, []string{"3.0.0-beta.1", "3.0.0-alpha.1", "2.1.0-rc.2", "2.1.0-rc.1", "2.1.0-beta.1", "2.0.0", "1.1.0", "1.0.0"}},
		{releases.ListOptions{Channel: "dev", Limit: 3}, []string{"4.0.0-dev.3", "4.0.0-dev.2", "4.0.0-dev.1", "3.0.0-beta.1", "3.0.0-alpha.1", "2.1.0-rc.2", "2.1.0-rc.1", "2.1.0-beta.1", "2.0.0", "1.1.0", "1.0.0"}},
		{releases.ListOptions{Status: releases.Published}, []string{"4.0.0-dev.2", "3.0.0-beta.1", "2.1.0-rc.1", "1.0.0"}},
		{releases.ListOptions{Status: releases.Yanked}, []string{"2.0.0"}},
		{releases.ListOptions{Status: releases.Draft, Channel: "rc", Limit: 1}, []string{"2.1.0-rc.2", "1.1.0"}},
		{releases.ListOptions{Status: releases.Published, Channel: "beta", Limit: 1}, []string{"3.0.0-beta.1", "2.1.0-rc.1", "1.0.0"}},
		{releases.ListOptions{Status: releases.Yanked, Channel: "dev"}, []string{"2.0.0"}},
	}
	for _, tt := range tests {
		if got := list(tt.opt); !slices.Equal(got, tt.want) {
			t.Errorf("Releases(%+v)\n got %v\nwant %v", tt.opt, got, tt.want)
		}
	}

	// A filter that matches nothing is an empty page, not nil, not an error.
	f.product(t, "empty")
	page, err := f.svc.Releases(ctx, "empty", releases.ListOptions{Channel: "dev"})
	if err != nil || page.Releases == nil || len(page.Releases) != 0 || page.NextCursor != "" {
		t.Errorf("empty listing = %+v, %v", page, err)
	}

	long := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 513))
	bad := []struct {
		name string
		slug string
		opt  releases.ListOptions
		code string
	}{
		{"cursor not base64", "app", releases.ListOptions{Cursor: "!!!"}, portal.EInvalid},
		{"cursor padded base64", "app", releases.ListOptions{Cursor: "AAAA===="}, portal.EInvalid},
		{"cursor too long", "app", releases.ListOptions{Cursor: long}, portal.EInvalid},
		{"unknown channel", "app", releases.ListOptions{Channel: "nightly"}, portal.EInvalid},
		{"unknown status", "app", releases.ListOptions{Status: "gone"}, portal.EInvalid},
		{"unknown product", "nope", releases.ListOptions{}, portal.ENotFound},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.svc.Releases(ctx, tt.slug, tt.opt)
			wantCode(t, err, tt.code)
		})
	}
	// A well-formed cursor that is not a version key is harmless: it pages
	// from that position.
	if _, err := f.svc.Releases(ctx, "app", releases.ListOptions{Cursor: base64.RawURLEncoding.EncodeToString([]byte{0xff, 0xff})}); err != nil {
		t.Errorf("arbitrary cursor: %v", err)
	}
}

func TestAddArtifact(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")
	exp := f.clock.Now().Add(time.Hour)

	bad := []struct {
		name string
		ver  string
		in   releases.NewArtifact
		code string
	}{
		{"bad filename", "1.0.0", releases.NewArtifact{Filename: "../x", Platform: "linux", Arch: "amd64", Size: 1, SHA256: sha}, portal.EInvalid},
		{"slash in filename", "1.0.0", releases.NewArtifact{Filename: "a/b", Platform: "linux", Arch: "amd64", Size: 1, SHA256: sha}, portal.EInvalid},
		{"bad platform", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "beos", Arch: "amd64", Size: 1, SHA256: sha}, portal.EInvalid},
		{"bad arch", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "mips", Size: 1, SHA256: sha}, portal.EInvalid},
		{"zero size", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: 0, SHA256: sha}, portal.EInvalid},
		{"negative size", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: -1, SHA256: sha}, portal.EInvalid},
		{"size above 5 TiB", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: releases.MaxArtifactSize + 1, SHA256: sha}, portal.EInvalid},
		{"upper-case sha256", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: 1, SHA256: strings.ToUpper(sha)}, portal.EInvalid},
		{"short sha256", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: 1, SHA256: sha[:62]}, portal.EInvalid},
		{"no sha256", "1.0.0", releases.NewArtifact{Filename: "a", Platform: "linux", Arch: "amd64", Size: 1}, portal.EInvalid},
		{"unknown release", "9.9.9", artifact("a"), portal.ENotFound},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dump(t)
			_, old, err := f.svc.AddArtifact(ctx, "app", tt.ver, tt.in, exp)
			wantCode(t, err, tt.code)
			if old != nil {
				t.Error("a refused AddArtifact returned a replaced artifact")
			}
			if after := f.dump(t); !reflect.DeepEqual(before, after) {
				t.Error("a refused AddArtifact changed the store")
			}
		})
	}
	_, _, err := f.svc.AddArtifact(ctx, "nope", "1.0.0", artifact("a"), exp)
	wantCode(t, err, portal.ENotFound)

	// Good declarations: aliases normalized, waiting, unique generated keys.
	a, old, err := f.svc.AddArtifact(ctx, "app", "v1.0.0", releases.NewArtifact{
		Filename: "App 1.0 – x64.AppImage", Platform: "Linux", Arch: "x86_64", Size: releases.MaxArtifactSize, SHA256: sha,
	}, exp)
	if err != nil {
		t.Fatal(err)
	}
	if old != nil {
		t.Errorf("first declaration returned old %+v", old)
	}
	if a.Status != releases.Waiting || a.Platform != "linux" || a.Arch != "amd64" || a.Size != releases.MaxArtifactSize ||
		a.UploadExpiresAt == nil || !a.UploadExpiresAt.Equal(exp) || !a.CreatedAt.Equal(f.clock.Now()) {
		t.Errorf("declared %+v", a)
	}
	keys := map[string]bool{a.ObjectKey: true}
	for i := range 20 {
		b := f.addArtifact(t, "app", "1.0.0", fmt.Sprintf("file-%d.zip", i))
		if !strings.HasPrefix(b.ObjectKey, "p/app/") || len(b.ObjectKey) < len("p/app/")+16 {
			t.Errorf("object key %q is not a generated key under p/app/", b.ObjectKey)
		}
		if strings.Contains(b.ObjectKey, b.Filename) || strings.Contains(b.ObjectKey, "..") {
			t.Errorf("object key %q is derived from the client's filename", b.ObjectKey)
		}
		if keys[b.ObjectKey] {
			t.Errorf("object key %q generated twice", b.ObjectKey)
		}
		keys[b.ObjectKey] = true
	}
	stored, err := f.svc.Release(ctx, "app", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Artifacts) != 21 {
		t.Fatalf("%d artifacts stored, want 21", len(stored.Artifacts))
	}
	if got, _ := stored.Artifact(a.Filename); !reflect.DeepEqual(*got, a) {
		t.Errorf("stored %+v, returned %+v", *got, a)
	}

	// Re-declaring a waiting artifact replaces it and returns the old one.
	w1 := f.addArtifact(t, "app", "1.0.0", "retry.zip")
	in := artifact("retry.zip")
	in.Size = 2048
	w2, old, err := f.svc.AddArtifact(ctx, "app", "1.0.0", in, exp)
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || old.ObjectKey != w1.ObjectKey {
		t.Fatalf("replacing a waiting artifact returned old %+v, want the first declaration", old)
	}
	if w2.ObjectKey == w1.ObjectKey || w2.Size != 2048 {
		t.Errorf("replacement %+v reuses the old object key or lost the new size", w2)
	}
	// ... and a failed one too.
	f.setStatus(t, "app", "1.0.0", "retry.zip", releases.Failed)
	w3, old, err := f.svc.AddArtifact(ctx, "app", "1.0.0", artifact("retry.zip"), exp)
	if err != nil {
		t.Fatal(err)
	}
	if old == nil || old.ObjectKey != w2.ObjectKey || old.Status != releases.Failed || w3.Status != releases.Waiting {
		t.Fatalf("replacing a failed artifact: old %+v, new %+v", old, w3)
	}
	stored, _ = f.svc.Release(ctx, "app", "1.0.0")
	n := 0
	for _, x := range stored.Artifacts {
		if x.Filename == "retry.zip" {
			n++
			if x.ObjectKey != w3.ObjectKey {
				t.Errorf("stored retry.zip has key %q, want the latest %q", x.ObjectKey, w3.ObjectKey)
			}
		}
	}
	if n != 1 {
		t.Errorf("retry.zip stored %d times", n)
	}

	// An uploaded artifact is never replaced.
	f.setStatus(t, "app", "1.0.0", "retry.zip", releases.Uploaded)
	before := f.dump(t)
	_, old, err = f.svc.AddArtifact(ctx, "app", "1.0.0", artifact("retry.zip"), exp)
	wantCode(t, err, portal.EConflict)
	if old != nil {
		t.Error("a refused replacement returned old")
	}
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("a refused replacement changed the store")
	}

	// The artifact limit.
	f.release(t, "app", "2.0.0", "")
	for i := range releases.MaxArtifacts {
		f.addArtifact(t, "app", "2.0.0", fmt.Sprintf("f%d", i))
	}
	_, _, err = f.svc.AddArtifact(ctx, "app", "2.0.0", artifact("one-too-many"), exp)
	wantCode(t, err, portal.EInvalid)
	// Replacing one at the limit is still fine.
	if _, old, err := f.svc.AddArtifact(ctx, "app", "2.0.0", artifact("f0"), exp); err != nil || old == nil {
		t.Errorf("replacing at the limit: old %v, %v", old, err)
	}

	// Nothing can be added to a published or yanked release.
	f.published(t, "app", "3.0.0", "")
	before = f.dump(t)
	_, _, err = f.svc.AddArtifact(ctx, "app", "3.0.0", artifact("late.zip"), exp)
	wantCode(t, err, portal.EConflict)
	_, _, err = f.svc.AddArtifact(ctx, "app", "3.0.0", artifact("app.tar.gz"), exp)
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("a refused AddArtifact on a published release changed the store")
	}
	if _, err := f.svc.Yank(ctx, "app", "3.0.0"); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.svc.AddArtifact(ctx, "app", "3.0.0", artifact("late.zip"), exp)
	wantCode(t, err, portal.EConflict)
	if r, _ := f.svc.Release(ctx, "app", "3.0.0"); len(r.Artifacts) != 1 {
		t.Errorf("yanked release has %d artifacts", len(r.Artifacts))
	}
}

func TestPublishAndYank(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")

	// No artifacts.
	before := f.dump(t)
	_, err := f.svc.Publish(ctx, "app", "1.0.0")
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("refused Publish changed the store")
	}
	// Yanking a draft.
	_, err = f.svc.Yank(ctx, "app", "1.0.0")
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("refused Yank changed the store")
	}

	// One uploaded, one waiting, one failed.
	f.addArtifact(t, "app", "1.0.0", "a.zip")
	f.addArtifact(t, "app", "1.0.0", "b.zip")
	f.setStatus(t, "app", "1.0.0", "a.zip", releases.Uploaded)
	for _, status := range []string{releases.Waiting, releases.Failed} {
		f.setStatus(t, "app", "1.0.0", "b.zip", status)
		before := f.dump(t)
		_, err := f.svc.Publish(ctx, "app", "1.0.0")
		wantCode(t, err, portal.EConflict)
		if !strings.Contains(portal.ErrorMessage(err), "b.zip") {
			t.Errorf("refusal %q does not name the %s artifact", portal.ErrorMessage(err), status)
		}
		if !reflect.DeepEqual(before, f.dump(t)) {
			t.Errorf("Publish refused for a %s artifact changed the store", status)
		}
	}

	// Deleting the unfinished one makes the release publishable.
	gone, err := f.svc.DeleteArtifact(ctx, "app", "1.0.0", "b.zip")
	if err != nil || gone.Filename != "b.zip" || gone.ObjectKey == "" {
		t.Fatalf("DeleteArtifact = %+v, %v", gone, err)
	}
	f.clock.Advance(time.Minute)
	pubAt := f.clock.Now()
	r, err := f.svc.Publish(ctx, "app", "v1.0.0+meta")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != releases.Published || r.PublishedAt == nil || !r.PublishedAt.Equal(pubAt) || r.YankedAt != nil {
		t.Fatalf("published %+v", r)
	}
	// Idempotent: PublishedAt stays.
	f.clock.Advance(time.Hour)
	r2, err := f.svc.Publish(ctx, "app", "1.0.0")
	if err != nil || !reflect.DeepEqual(r2, r) {
		t.Fatalf("second Publish = %+v, %v; want %+v", r2, err, r)
	}
	stored, _ := f.svc.Release(ctx, "app", "1.0.0")
	if !reflect.DeepEqual(stored, r) {
		t.Errorf("stored %+v, want %+v", stored, r)
	}

	// A published release's artifacts can no longer change.
	before = f.dump(t)
	_, err = f.svc.DeleteArtifact(ctx, "app", "1.0.0", "a.zip")
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("refused DeleteArtifact changed the store")
	}

	// Yank, twice.
	yankAt := f.clock.Now()
	y, err := f.svc.Yank(ctx, "app", "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if y.Status != releases.Yanked || y.YankedAt == nil || !y.YankedAt.Equal(yankAt) || !y.PublishedAt.Equal(pubAt) {
		t.Fatalf("yanked %+v", y)
	}
	f.clock.Advance(time.Hour)
	y2, err := f.svc.Yank(ctx, "app", "1.0.0")
	if err != nil || !reflect.DeepEqual(y2, y) {
		t.Fatalf("second Yank = %+v, %v; want %+v", y2, err, y)
	}
	// A yanked release cannot be published again.
	before = f.dump(t)
	_, err = f.svc.Publish(ctx, "app", "1.0.0")
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("refused re-publish changed the store")
	}

	for _, call := range []func() error{
		func() error { _, err := f.svc.Publish(ctx, "app", "9.9.9"); return err },
		func() error { _, err := f.svc.Yank(ctx, "app", "9.9.9"); return err },
		func() error { _, err := f.svc.Publish(ctx, "nope", "1.0.0"); return err },
		func() error { _, err := f.svc.Yank(ctx, "nope", "1.0.0"); return err },
	} {
		wantCode(t, call(), portal.ENotFound)
	}
}

func TestDeleteArtifact(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")
	a := f.addArtifact(t, "app", "1.0.0", "a.zip")
	f.addArtifact(t, "app", "1.0.0", "b.zip")
	f.addArtifact(t, "app", "1.0.0", "c.zip")
	f.setStatus(t, "app", "1.0.0", "a.zip", releases.Uploaded)

	tests := []struct {
		name, slug, ver, file, code string
	}{
		{"missing file", "app", "1.0.0", "d.zip", portal.ENotFound},
		{"hostile file", "app", "1.0.0", "../a.zip", portal.ENotFound},
		{"missing release", "app", "2.0.0", "a.zip", portal.ENotFound},
		{"missing product", "nope", "1.0.0", "a.zip", portal.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dump(t)
			_, err := f.svc.DeleteArtifact(ctx, tt.slug, tt.ver, tt.file)
			wantCode(t, err, tt.code)
			if !reflect.DeepEqual(before, f.dump(t)) {
				t.Error("a refused DeleteArtifact changed the store")
			}
		})
	}
	// Even an uploaded artifact may go while the release is a draft.
	gone, err := f.svc.DeleteArtifact(ctx, "app", "1.0.0", "a.zip")
	if err != nil || !reflect.DeepEqual(gone, func() releases.Artifact { x := a; x.Status = releases.Uploaded; return x }()) {
		t.Fatalf("DeleteArtifact = %+v, %v", gone, err)
	}
	r, _ := f.svc.Release(ctx, "app", "1.0.0")
	var names []string
	for _, x := range r.Artifacts {
		names = append(names, x.Filename)
	}
	if !slices.Equal(names, []string{"b.zip", "c.zip"}) {
		t.Errorf("after delete: %v", names)
	}
	_, err = f.svc.DeleteArtifact(ctx, "app", "1.0.0", "a.zip")
	wantCode(t, err, portal.ENotFound)
	// And it can then be declared again.
	if _, old, err := f.svc.AddArtifact(ctx, "app", "1.0.0", artifact("a.zip"), f.clock.Now()); err != nil || old != nil {
		t.Errorf("re-declare after delete: old %v, %v", old, err)
	}
}

// TestUpdateErrorLeavesStoreUnchanged checks that a callback error rolls
// back, even after the callback modified its copy.
func TestUpdateErrorLeavesStoreUnchanged(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	f.release(t, "app", "1.0.0", "")
	f.addArtifact(t, "app", "1.0.0", "a.zip")
	before := f.dump(t)
	_, err := f.svc.Update(ctx, "app", "1.0.0", releases.Change{Action: "release.update"}, func(r *releases.Release) error {
		r.Notes = "changed"
		r.Artifacts[0].Status = releases.Uploaded
		r.Artifacts = append(r.Artifacts, releases.Artifact{Filename: "x"})
		return portal.Errorf(portal.EConflict, "no")
	})
	wantCode(t, err, portal.EConflict)
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("an Update whose callback failed changed the store")
	}
	// A callback that changes the version to something unparsable fails too.
	_, err = f.svc.Update(ctx, "app", "1.0.0", releases.Change{Action: "release.update"}, func(r *releases.Release) error {
		r.Version = "garbage"
		return nil
	})
	if err == nil {
		t.Error("Update stored a release with an unparsable version")
	}
	if !reflect.DeepEqual(before, f.dump(t)) {
		t.Error("a failed Update changed the store")
	}
}

func TestWatch(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	f.product(t, "app")
	ch, err := f.svc.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var products []string
	// drain reads the events committed so far: a final write to a key
	// outside the catalog is not reported, so mark the end with a product.
	drain := func() []string {
		t.Helper()
		f.product(t, fmt.Sprintf("end%d", len(products)))
		var got []string
		for {
			select {
			case ev := <-ch:
				p, ok := releases.ProductOfKey(ev.Key)
				if !ok {
					t.Fatalf("catalog watch reported %s %q", ev.Type, ev.Key)
				}
				if strings.HasPrefix(p, "end") {
					products = append(products, got...)
					return got
				}
				got = append(got, p)
			case <-time.After(5 * time.Second):
				t.Fatal("no event in 5s")
			}
		}
	}
	f.release(t, "app", "1.0.0", "")
	f.addArtifact(t, "app", "1.0.0", "a.zip")
	f.addArtifact(t, "app", "1.0.0", "b.zip")
	if _, err := f.svc.DeleteArtifact(ctx, "app", "1.0.0", "b.zip"); err != nil {
		t.Fatal(err)
	}
	f.setStatus(t, "app", "1.0.0", "a.zip", releases.Uploaded)
	if _, err := f.svc.Publish(ctx, "app", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Yank(ctx, "app", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	f.product(t, "other")
	f.release(t, "other", "1.0.0", "")
	if err := f.svc.SetSigningKey(ctx, "other", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	want := []string{"app", "app", "app", "app", "app", "app", "app", "other", "other", "other"}
	if got := drain(); !slices.Equal(got, want) {
		t.Fatalf("changed products\n got %v\nwant %v", got, want)
	}

	// Refused calls change nothing and report nothing.
	f.svc.CreateRelease(ctx, "app", releases.NewRelease{Version: "1.0.0"})
	f.svc.CreateRelease(ctx, "app", releases.NewRelease{Version: "2.0.0-rc.1"})
	f.svc.CreateProduct(ctx, releases.Product{Slug: "app"})
	f.svc.AddArtifact(ctx, "app", "1.0.0", artifact("c.zip"), f.clock.Now())
	f.svc.Publish(ctx, "app", "9.0.0")
	f.svc.DeleteArtifact(ctx, "app", "1.0.0", "a.zip")
	if got := drain(); len(got) != 0 {
		t.Errorf("refused calls reported changes of %v", got)
	}
}

func TestProductOfKey(t *testing.T) {
	for _, tc := range []struct {
		key, slug string
		ok        bool
	}{
		{"rel/p/app", "app", true},
		{"rel/r/app/\x01\x02", "app", true},
		{"rel/r/app-pro/x", "app-pro", true},
		{"rel/p/", "", false},
		{"rel/p/a/b", "", false},
		{"rel/r/app", "", false},
		{"rel/r//x", "", false},
		{"rel/x/app", "", false},
		{"lic/l/app", "", false},
		{"", "", false},
	} {
		slug, ok := releases.ProductOfKey([]byte(tc.key))
		if slug != tc.slug || ok != tc.ok {
			t.Errorf("ProductOfKey(%q) = %q, %v; want %q, %v", tc.key, slug, ok, tc.slug, tc.ok)
		}
	}
}

// TestProductCacheFollowsTheStore: a product written by another Service on
// the same store (as another replica would) is seen through the watch, well
// before ProductCacheTTL.
func TestProductCacheFollowsTheStore(t *testing.T) {
	f := newFixture(t)
	ctx := bg
	f.product(t, "app")
	other := releases.New(f.db, nil)
	if p, err := f.svc.Product(ctx, "app"); err != nil || p.SigningKey != nil {
		t.Fatalf("product = %+v, %v", p, err)
	}
	if err := other.SetSigningKey(ctx, "app", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(releases.ProductCacheTTL / 4)
	for {
		p, err := f.svc.Product(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		if string(p.SigningKey) == "k1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("another Service's write not seen within a quarter of the cache TTL")
		}
		time.Sleep(time.Millisecond)
	}
	// Its own write is seen at once.
	if err := f.svc.SetSigningKey(ctx, "app", []byte("k2")); err != nil {
		t.Fatal(err)
	}
	if p, _ := f.svc.Product(ctx, "app"); string(p.SigningKey) != "k2" {
		t.Fatalf("own write not read back: %q", p.SigningKey)
	}
}
