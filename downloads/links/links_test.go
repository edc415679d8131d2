package links_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// actorCtx is the context of an offline command, whose writes the audit
// log records as the cli actor.
func actorCtx() context.Context {
	return audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var secret = bytes.Repeat([]byte("k"), 32)

type fixture struct {
	db    *bolt.DB
	clock *clock
	svc   *links.Service
}

func setup(t *testing.T) fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 500, time.UTC)}
	svc, err := links.New(db, secret, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{db: db, clock: c, svc: svc}
}

func sample(license string) links.Link {
	return links.Link{License: license, Product: "app", Version: "1.2.0", Filename: "app-1.2.0-linux-amd64.tar.gz", CreatedBy: "lic_abcd"}
}

func (f fixture) create(t *testing.T, l links.Link, ttl time.Duration) (links.Link, string) {
	t.Helper()
	l, tok, err := f.svc.Create(actorCtx(), l, ttl, links.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	return l, tok
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := portal.ErrorCode(err); got != code {
		t.Fatalf("err = %v (code %q), want code %q", err, got, code)
	}
}

func TestRoundTrip(t *testing.T) {
	f := setup(t)
	l, tok := f.create(t, sample("0123456789abcdef"), time.Hour)
	if len(l.ID) != 16 || strings.Trim(l.ID, "0123456789abcdef") != "" {
		t.Fatalf("ID %q is not 16 hex digits", l.ID)
	}
	if !l.CreatedAt.Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) || !l.ExpiresAt.Equal(l.CreatedAt.Add(time.Hour)) {
		t.Fatalf("times %v .. %v", l.CreatedAt, l.ExpiresAt)
	}
	if !strings.HasPrefix(tok, l.ID+".") || len(tok) > 80 {
		t.Fatalf("token %q", tok)
	}
	got, err := f.svc.Verify(actorCtx(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, l) {
		t.Fatalf("Verify = %+v, want %+v", got, l)
	}
	// A second link to the same artifact is a different link.
	l2, tok2 := f.create(t, sample("0123456789abcdef"), time.Hour)
	if l2.ID == l.ID || tok2 == tok {
		t.Fatal("two links share an ID or token")
	}
}

func TestTampered(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	l, tok := f.create(t, sample("lic1"), time.Hour)
	other, otherTok := f.create(t, sample("lic2"), 2*time.Hour)
	parts := strings.Split(tok, ".")
	otherParts := strings.Split(otherTok, ".")

	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	expLater := strings.TrimSuffix(parts[1], "0") + "9"
	cases := map[string]string{
		"id flipped":            flip(parts[0], 3) + "." + parts[1] + "." + parts[2],
		"id of another link":    other.ID + "." + parts[1] + "." + parts[2],
		"expiry extended":       parts[0] + "." + expLater + "." + parts[2],
		"expiry of another":     parts[0] + "." + otherParts[1] + "." + parts[2],
		"tag first half":        parts[0] + "." + parts[1] + "." + flip(parts[2], 2),
		"tag second half":       parts[0] + "." + parts[1] + "." + flip(parts[2], 30),
		"tag of another link":   parts[0] + "." + parts[1] + "." + otherParts[2],
		"tag halves swapped":    parts[0] + "." + parts[1] + "." + parts[2][22:] + parts[2][:21],
		"tag non-canonical end": parts[0] + "." + parts[1] + "." + parts[2][:42] + nonCanonical(parts[2][42]),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			if bad == tok {
				t.Fatal("test did not change the token")
			}
			_, err := f.svc.Verify(ctx, bad)
			wantCode(t, err, portal.ESignatureInvalid)
		})
	}

	// Another secret refuses every token of this one.
	svc2, err := links.New(f.db, bytes.Repeat([]byte("x"), 32), f.clock.now)
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc2.Verify(ctx, tok)
	wantCode(t, err, portal.ESignatureInvalid)

	// The record changed behind the token (another artifact): the token
	// does not follow it.
	if err := f.db.Update(ctx, func(tx store.Tx) error {
		l.Filename = "other.zip"
		v, _ := json.Marshal(l)
		return tx.Put([]byte("lnk/"+l.ID), v)
	}); err != nil {
		t.Fatal(err)
	}
	// Written behind the service's back, as another replica would: seen
	// through the store's watch.
	refusedWithin(t, f.svc, tok, portal.ESignatureInvalid, time.Second)
	if _, err := f.svc.Verify(ctx, otherTok); err != nil {
		t.Fatalf("the untouched link: %v", err)
	}
}

// nonCanonical returns another base64url character that decodes to the same
// data bits as c (the last character of a 32-byte encoding carries 4 data
// bits and 2 zero bits): the same bytes, written differently.
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i|1])
}

func TestExpired(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	_, tok := f.create(t, sample("lic1"), time.Hour)
	f.clock.add(time.Hour - time.Second) // CreatedAt was truncated by 500ns
	if _, err := f.svc.Verify(ctx, tok); err != nil {
		t.Fatalf("just before expiry: %v", err)
	}
	f.clock.add(time.Second)
	_, err := f.svc.Verify(ctx, tok)
	wantCode(t, err, portal.ELinkExpired)
	if !strings.Contains(portal.ErrorMessage(err), "2025-03-01T13:00:00Z") {
		t.Fatalf("message %q does not say when", portal.ErrorMessage(err))
	}
}

func TestRevoke(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	l, tok := f.create(t, sample("lic1"), time.Hour)

	wantCode(t, f.svc.Revoke(ctx, l.ID, "lic2"), portal.ENotFound)
	if _, err := f.svc.Verify(ctx, tok); err != nil {
		t.Fatalf("another license's revoke touched the link: %v", err)
	}
	wantCode(t, f.svc.Revoke(ctx, "0000000000000000", "lic1"), portal.ENotFound)
	wantCode(t, f.svc.Revoke(ctx, "../../etc", ""), portal.ENotFound)
	wantCode(t, f.svc.Revoke(ctx, strings.Repeat("\x00", 5000), ""), portal.ENotFound)

	if err := f.svc.Revoke(ctx, l.ID, "lic1"); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Verify(ctx, tok)
	wantCode(t, err, portal.ELinkRevoked)

	first := f.clock.now().UTC().Truncate(time.Second)
	f.clock.add(time.Minute)
	if err := f.svc.Revoke(ctx, l.ID, "lic1"); err != nil {
		t.Fatalf("second revoke: %v", err)
	}
	ls, err := f.svc.List(ctx, "lic1")
	if err != nil || len(ls) != 1 || ls[0].RevokedAt == nil || !ls[0].RevokedAt.Equal(first) {
		t.Fatalf("List after revoke = %+v, %v; want revoked at %v", ls, err, first)
	}

	// Admins revoke any license's link.
	l2, tok2 := f.create(t, sample("lic2"), time.Hour)
	if err := f.svc.Revoke(ctx, l2.ID, ""); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Verify(ctx, tok2)
	wantCode(t, err, portal.ELinkRevoked)
}

func TestDeletedRecord(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	l, tok := f.create(t, sample("lic1"), time.Hour)
	if err := f.db.Update(ctx, func(tx store.Tx) error { return tx.Delete([]byte("lnk/" + l.ID)) }); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Verify(ctx, tok)
	wantCode(t, err, portal.ELinkRevoked)
}

func TestGarbageTokens(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	_, tok := f.create(t, sample("lic1"), time.Hour)
	parts := strings.Split(tok, ".")
	for _, bad := range []string{
		"", ".", "..", "...", "a.b.c", tok + ".", "." + tok, tok + "." + parts[2],
		strings.Replace(tok, ".", "..", 1),
		strings.Repeat("a", 5000),
		strings.Repeat(".", 5000),
		tok + strings.Repeat("A", 5000),
		strings.Repeat("\x00", 70),
		parts[0] + "\x00." + parts[1] + "." + parts[2],
		parts[0] + "." + parts[1] + "\x00." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "\x00",
		strings.ToUpper(parts[0]) + "." + parts[1] + "." + parts[2],
		parts[0] + ".0" + parts[1] + "." + parts[2],
		parts[0] + ".-" + parts[1] + "." + parts[2],
		parts[0] + ".+" + parts[1] + "." + parts[2],
		parts[0] + ".0." + parts[2],
		parts[0] + ".99999999999999999999." + parts[2],
		parts[0] + ".9223372036854775808." + parts[2],
		parts[0] + "." + parts[1] + "." + parts[2] + "=",
		parts[0] + "." + parts[1] + "." + parts[2][:42],
		parts[0] + "." + parts[1] + "." + parts[2][:5] + "/" + parts[2][6:],
		parts[0] + "." + parts[1] + "." + "é" + parts[2][2:],
	} {
		if bad == tok {
			t.Fatalf("case %.30q is the valid token", bad)
		}
		_, err := f.svc.Verify(ctx, bad)
		wantCode(t, err, portal.ESignatureInvalid)
	}
}

func FuzzVerify(f *testing.F) {
	db, err := bolt.Open(filepath.Join(f.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	svc, _ := links.New(db, secret, time.Now)
	_, tok, err := svc.Create(actorCtx(), sample("lic1"), time.Hour, 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add("0123456789abcdef.1.AAAA")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := svc.Verify(actorCtx(), s)
		if err == nil && s != tok {
			t.Fatalf("%q verified as %+v", s, l)
		}
	})
}

func TestTTL(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	for _, tc := range []struct {
		name        string
		ttl, maxTTL time.Duration
		ok          bool
		mention     string
	}{
		{"zero", 0, time.Hour, false, "1h0m0s"},
		{"negative", -time.Minute, time.Hour, false, "positive"},
		{"above max", time.Hour + time.Second, time.Hour, false, "maximum of 1h0m0s"},
		{"at max", time.Hour, time.Hour, true, ""},
		{"config above 7 days is capped", 8 * 24 * time.Hour, 30 * 24 * time.Hour, false, "maximum of 168h0m0s"},
		{"no config max means 7 days", 7 * 24 * time.Hour, 0, true, ""},
		{"7 days and a second", 7*24*time.Hour + time.Second, 0, false, "168h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, tok, err := f.svc.Create(ctx, sample("lic1"), tc.ttl, tc.maxTTL)
			if !tc.ok {
				wantCode(t, err, portal.EInvalid)
				if !strings.Contains(portal.ErrorMessage(err), tc.mention) {
					t.Fatalf("message %q does not mention %q", portal.ErrorMessage(err), tc.mention)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := l.ExpiresAt.Sub(l.CreatedAt); got != tc.ttl {
				t.Fatalf("lives %s, want %s", got, tc.ttl)
			}
			if _, err := f.svc.Verify(ctx, tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCreateValidates(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	for name, mut := range map[string]func(*links.Link){
		"no license":        func(l *links.Link) { l.License = "" },
		"license with /":    func(l *links.Link) { l.License = "a/b" },
		"bad product":       func(l *links.Link) { l.Product = "App!" },
		"no version":        func(l *links.Link) { l.Version = "" },
		"version with NUL":  func(l *links.Link) { l.Version = "1.0\x00" },
		"filename with /":   func(l *links.Link) { l.Filename = "../x" },
		"oversize creator":  func(l *links.Link) { l.CreatedBy = strings.Repeat("x", 201) },
		"oversize filename": func(l *links.Link) { l.Filename = strings.Repeat("x", 300) },
	} {
		t.Run(name, func(t *testing.T) {
			l := sample("lic1")
			mut(&l)
			_, _, err := f.svc.Create(ctx, l, time.Hour, 0)
			wantCode(t, err, portal.EInvalid)
		})
	}
	if ls, err := f.svc.List(ctx, ""); err != nil || len(ls) != 0 {
		t.Fatalf("refused links were stored: %v, %v", ls, err)
	}
	if _, err := links.New(f.db, secret[:31], nil); err == nil {
		t.Fatal("New accepted a 31-byte secret")
	}
}

func TestListAndPurge(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	a1, _ := f.create(t, sample("lic1"), time.Hour)
	f.clock.add(time.Second)
	b1, _ := f.create(t, sample("lic10"), 3*time.Hour)
	f.clock.add(time.Second)
	a2, tokA2 := f.create(t, sample("lic1"), 3*time.Hour)

	ids := func(ls []links.Link) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	ls, err := f.svc.List(ctx, "lic1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(ls), []string{a2.ID, a1.ID}; !reflect.DeepEqual(got, want) {
		t.Fatalf("List(lic1) = %v, want %v (newest first, not lic10's)", got, want)
	}
	all, err := f.svc.List(ctx, "")
	if err != nil || len(all) != 3 || all[1].ID != b1.ID {
		t.Fatalf("List(all) = %v, %v", ids(all), err)
	}
	if ls, err := f.svc.List(ctx, "nobody"); err != nil || len(ls) != 0 {
		t.Fatalf("List(nobody) = %v, %v", ls, err)
	}

	f.clock.add(2 * time.Hour)
	n, err := f.svc.Purge(ctx, f.clock.now())
	if err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	ls, _ = f.svc.List(ctx, "lic1")
	if got := ids(ls); !reflect.DeepEqual(got, []string{a2.ID}) {
		t.Fatalf("List after purge = %v", got)
	}
	if _, err := f.svc.Verify(ctx, tokA2); err != nil {
		t.Fatalf("a live link after purge: %v", err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "secrets")
	path := filepath.Join(dir, "link-secret")
	s1, err := links.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != links.MinSecretLen || bytes.Equal(s1, make([]byte, len(s1))) {
		t.Fatalf("secret %x", s1)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Fatalf("%s has mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
	}
	s2, err := links.LoadOrCreateSecret(path)
	if err != nil || !bytes.Equal(s1, s2) {
		t.Fatalf("second load = %x, %v; want the same secret", s2, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("%d files left in %s, want only the secret", len(entries), dir)
	}

	// Concurrent first starts agree on one secret.
	path2 := filepath.Join(t.TempDir(), "s")
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			b, err := links.LoadOrCreateSecret(path2)
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	wg.Wait()
	for _, b := range got[1:] {
		if !bytes.Equal(b, got[0]) {
			t.Fatal("concurrent starts made different secrets")
		}
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := links.LoadOrCreateSecret(path); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("a world-readable secret: err = %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("too short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := links.LoadOrCreateSecret(short); err == nil {
		t.Fatal("a 9-byte secret file was accepted")
	}
}

// A purge of more expired links than one transaction may delete goes in
// pages and removes them all.
func TestPurgeMany(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	const n = 150
	f.svc.SetPerLicense(1000)
	for range n {
		f.create(t, sample("lic1"), time.Hour)
	}
	keep, _ := f.create(t, sample("lic1"), 5*time.Hour)
	f.clock.add(2 * time.Hour)
	got, err := f.svc.Purge(ctx, f.clock.now())
	if err != nil || got != n {
		t.Fatalf("Purge = %d, %v; want %d", got, err, n)
	}
	ls, err := f.svc.List(ctx, "lic1")
	if err != nil || len(ls) != 1 || ls[0].ID != keep.ID {
		t.Fatalf("List after purge = %d links, %v", len(ls), err)
	}
}

// TestLinksPerLicense: a license holds at most SetPerLicense links; when
// all are live the next is a conflict naming the way out, and dead ones
// (revoked or expired) make room, so the stored links never exceed the cap.
func TestLinksPerLicense(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	f.svc.SetPerLicense(3)
	var made []links.Link
	for range 3 {
		l, _ := f.create(t, sample("lic1"), time.Hour)
		made = append(made, l)
	}
	_, _, err := f.svc.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	wantCode(t, err, portal.EConflict)
	if !strings.Contains(err.Error(), "3 live share links") {
		t.Fatalf("conflict does not say why: %v", err)
	}
	// Another license is not affected.
	f.create(t, sample("lic2"), time.Hour)

	count := func() int {
		ls, err := f.svc.List(ctx, "lic1")
		if err != nil {
			t.Fatal(err)
		}
		return len(ls)
	}
	// A revoked link makes room: it is deleted when the next is created.
	if err := f.svc.Revoke(ctx, made[0].ID, "lic1"); err != nil {
		t.Fatal(err)
	}
	f.create(t, sample("lic1"), time.Hour)
	if n := count(); n != 3 {
		t.Fatalf("%d links stored, want 3", n)
	}
	_, _, err = f.svc.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	wantCode(t, err, portal.EConflict)

	// Expired links make room too, however many are created over time.
	f.clock.add(2 * time.Hour)
	for range 10 {
		f.create(t, sample("lic1"), time.Minute)
		f.clock.add(2 * time.Minute)
	}
	if n := count(); n != 3 {
		t.Fatalf("%d links stored after 10 short-lived ones, want 3", n)
	}
}

// TestPerLicenseRefusalChangesNothing: a refused Create leaves the store
// as it was.
func TestPerLicenseRefusalChangesNothing(t *testing.T) {
	f := setup(t)
	ctx := actorCtx()
	f.svc.SetPerLicense(1)
	f.create(t, sample("lic1"), time.Hour)
	before := dump(t, f.db)
	_, _, err := f.svc.Create(ctx, sample("lic1"), time.Hour, links.MaxTTL)
	wantCode(t, err, portal.EConflict)
	if dump(t, f.db) != before {
		t.Fatal("a refused Create changed the store")
	}
}

func dump(t *testing.T, db store.DB) string {
	t.Helper()
	var b strings.Builder
	err := db.View(actorCtx(), func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			b.WriteString(string(k) + "=" + string(v) + "\n")
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
