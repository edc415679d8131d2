package tokens_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

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
	svc   *tokens.Service
	clock *clock
}

// newFixture opens a real bbolt file at etcd's transaction limit, with
// every Update run twice, and a clock half a second past t0.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"),
		bolt.Options{RunUpdatesTwice: true, MaxTxnOps: store.MaxTxnOps, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := &clock{t: t0.Add(500 * time.Millisecond)}
	return &fixture{db: db, svc: tokens.New(db, c.Now), clock: c}
}

func (f *fixture) dump(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := f.db.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%s=%s\n", k, v)
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCreateWithExpiry(t *testing.T) {
	ctx := bg
	now := t0.Add(500 * time.Millisecond)
	tests := []struct {
		name    string
		expires time.Time
		code    string
		want    time.Time // stored ExpiresAt; zero = none
	}{
		{name: "never", expires: time.Time{}},
		{name: "in an hour", expires: t0.Add(time.Hour), want: t0.Add(time.Hour)},
		{name: "sub-second, kept to the second", expires: t0.Add(time.Hour + 700*time.Millisecond), want: t0.Add(time.Hour)},
		{name: "other zone, stored in UTC", expires: t0.Add(24 * time.Hour).In(time.FixedZone("X", 5*3600)), want: t0.Add(24 * time.Hour)},
		{name: "in a second", expires: t0.Add(time.Second), want: t0.Add(time.Second)},
		{name: "now", expires: now, code: portal.EInvalid},
		{name: "within the current second", expires: t0.Add(900 * time.Millisecond), code: portal.EInvalid},
		{name: "a minute ago", expires: t0.Add(-time.Minute), code: portal.EInvalid},
		{name: "long ago", expires: time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC), code: portal.EInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			dump := f.dump(t)
			tok, raw, err := f.svc.CreateWith(ctx, tokens.NewToken{Role: tokens.Admin, ExpiresAt: tt.expires})
			if tt.code != "" {
				if portal.ErrorCode(err) != tt.code || !strings.Contains(portal.ErrorMessage(err), "expires_at") {
					t.Fatalf("CreateWith = %v, want %s naming expires_at", err, tt.code)
				}
				if raw != "" || f.dump(t) != dump {
					t.Error("a refused create returned a secret or changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.IsZero() != (tok.ExpiresAt == nil) || tok.ExpiresAt != nil && (!tok.ExpiresAt.Equal(tt.want) || tok.ExpiresAt.Location() != time.UTC) {
				t.Fatalf("ExpiresAt = %v, want %v UTC", tok.ExpiresAt, tt.want)
			}
			got, err := f.svc.Authenticate(ctx, raw)
			if err != nil || !reflect.DeepEqual(got.ExpiresAt, tok.ExpiresAt) {
				t.Fatalf("Authenticate = %+v, %v", got, err)
			}
			if tt.want.IsZero() {
				f.clock.Advance(100 * 365 * 24 * time.Hour)
				if _, err := f.svc.Authenticate(ctx, raw); err != nil {
					t.Errorf("a token without expiry stopped: %v", err)
				}
				return
			}
			// Up to the last instant before the expiry it works; from the
			// expiry on it is refused, saying why.
			f.clock.Advance(tt.want.Sub(f.clock.Now()) - time.Nanosecond)
			if _, err := f.svc.Authenticate(ctx, raw); err != nil {
				t.Errorf("a nanosecond before expiry: %v", err)
			}
			for _, d := range []time.Duration{time.Nanosecond, time.Hour} {
				f.clock.Advance(d)
				_, err := f.svc.Authenticate(ctx, raw)
				if portal.ErrorCode(err) != portal.EUnauthorized || portal.ErrorMessage(err) != "token expired" {
					t.Errorf("after expiry: %v, want unauthorized \"token expired\"", err)
				}
			}
			// A malformed or unknown token still says so, not "expired".
			if _, err := f.svc.Authenticate(ctx, raw+"x"); portal.ErrorMessage(err) == "token expired" {
				t.Error("a malformed token is called expired")
			}
		})
	}
}

func TestListAndUsage(t *testing.T) {
	ctx := bg
	f := newFixture(t)
	admin, adminRaw, err := f.svc.Create(ctx, "ops", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	exp := t0.Add(48 * time.Hour)
	pub, pubRaw, err := f.svc.CreateWith(ctx, tokens.NewToken{Name: "ci", Role: tokens.Publisher, Products: []string{"app", "tool"}, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	list, err := f.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != admin.ID || list[1].ID != pub.ID {
		t.Fatalf("List = %+v, want the admin then the publisher token", list)
	}
	for i, want := range []tokens.Token{admin.Public(), pub.Public()} {
		if !reflect.DeepEqual(list[i], want) {
			t.Errorf("List[%d] = %+v, want %+v", i, list[i], want)
		}
		if list[i].Digest != "" || list[i].LastUsedAt != nil {
			t.Errorf("List[%d] carries a digest or a use: %+v", i, list[i])
		}
	}

	// Authenticating writes nothing, but List on this process sees it.
	dump := f.dump(t)
	f.clock.Advance(10 * time.Second)
	used := f.clock.Now().Truncate(time.Second)
	for range 100 {
		if _, err := f.svc.Authenticate(ctx, adminRaw); err != nil {
			t.Fatal(err)
		}
	}
	if f.dump(t) != dump {
		t.Fatal("Authenticate wrote to the store")
	}
	lastUsed := func(svc *tokens.Service, id string) *time.Time {
		t.Helper()
		list, err := svc.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range list {
			if tok.ID == id {
				return tok.LastUsedAt
			}
		}
		t.Fatalf("List lacks %s", id)
		return nil
	}
	if got := lastUsed(f.svc, admin.ID); got == nil || !got.Equal(used) {
		t.Fatalf("last_used_at on this process = %v, want %v", got, used)
	}
	if got := lastUsed(f.svc, pub.ID); got != nil {
		t.Fatalf("unused token has last_used_at %v", got)
	}
	// Another process on the same store sees nothing before a flush.
	other := tokens.New(f.db, f.clock.Now)
	if got := lastUsed(other, admin.ID); got != nil {
		t.Fatalf("another process sees %v before a flush", got)
	}

	flush := func(want int) {
		t.Helper()
		n, err := f.svc.FlushUsage(ctx)
		if err != nil || n != want {
			t.Fatalf("FlushUsage = %d, %v; want %d written", n, err, want)
		}
	}
	flush(1)
	if got := lastUsed(other, admin.ID); got == nil || !got.Equal(used) {
		t.Fatalf("another process after a flush: %v, want %v", got, used)
	}
	flush(0) // nothing new

	// Within UsageInterval of the last write nothing is written, however
	// often the token is used and FlushUsage called; List here is exact.
	for range 5 {
		f.clock.Advance(10 * time.Second)
		if _, err := f.svc.Authenticate(ctx, adminRaw); err != nil {
			t.Fatal(err)
		}
		flush(0)
	}
	latest := f.clock.Now().Truncate(time.Second)
	if got := lastUsed(f.svc, admin.ID); !got.Equal(latest) {
		t.Errorf("this process says %v, want %v", got, latest)
	}
	if got := lastUsed(other, admin.ID); !got.Equal(used) {
		t.Errorf("the store says %v, want the flushed %v", got, used)
	}
	f.clock.Advance(10 * time.Second) // a minute since the write
	flush(1)
	if got := lastUsed(other, admin.ID); !got.Equal(latest) {
		t.Errorf("the store says %v after the minute, want %v", got, latest)
	}

	// A later time written by another process is never moved backwards.
	f.clock.Advance(2 * time.Minute)
	if _, err := f.svc.Authenticate(ctx, pubRaw); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	if _, err := other.Authenticate(ctx, pubRaw); err != nil {
		t.Fatal(err)
	}
	newer := f.clock.Now().Truncate(time.Second)
	if n, err := other.FlushUsage(ctx); err != nil || n != 1 {
		t.Fatalf("other FlushUsage = %d, %v", n, err)
	}
	flush(0)
	if got := lastUsed(f.svc, pub.ID); !got.Equal(newer) {
		t.Errorf("after two processes flushed: %v, want the later %v", got, newer)
	}

	// A token deleted elsewhere is not written back by a flush.
	f.clock.Advance(2 * time.Minute)
	if _, err := f.svc.Authenticate(ctx, pubRaw); err != nil {
		t.Fatal(err)
	}
	if err := other.Delete(ctx, pub.ID); err != nil {
		t.Fatal(err)
	}
	dump = f.dump(t)
	flush(0)
	if f.dump(t) != dump {
		t.Error("a flush wrote a deleted token back")
	}
	if list, _ := f.svc.List(ctx); len(list) != 1 || list[0].ID != admin.ID {
		t.Errorf("List after delete = %+v", list)
	}

	// After an idle hour the memory entry goes; the stored time stays.
	f.clock.Advance(2 * time.Hour)
	flush(0)
	if got := lastUsed(f.svc, admin.ID); !got.Equal(latest) {
		t.Errorf("after the idle drop: %v, want %v", got, latest)
	}
	// And a later use starts a new entry from the stored time.
	if _, err := f.svc.Authenticate(ctx, adminRaw); err != nil {
		t.Fatal(err)
	}
	flush(1)
	if got := lastUsed(other, admin.ID); !got.Equal(f.clock.Now().Truncate(time.Second)) {
		t.Errorf("after a use past the idle drop: %v", got)
	}
}

// FlushUsage of more tokens than one transaction may write.
func TestFlushUsageManyTokens(t *testing.T) {
	ctx := bg
	f := newFixture(t)
	n := 2*store.MaxTxnOps + 7
	var raws []string
	for i := range n {
		_, raw, err := f.svc.Create(ctx, fmt.Sprint("t", i), tokens.Admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	f.clock.Advance(time.Minute)
	for _, raw := range raws {
		if _, err := f.svc.Authenticate(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := f.svc.FlushUsage(ctx); err != nil || got != n {
		t.Fatalf("FlushUsage = %d, %v; want %d", got, err, n)
	}
	list, err := tokens.New(f.db, f.clock.Now).List(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("List = %d tokens, %v", len(list), err)
	}
	for _, tok := range list {
		if tok.LastUsedAt == nil || !tok.LastUsedAt.Equal(f.clock.Now().Truncate(time.Second)) {
			t.Fatalf("%s: last_used_at %v", tok.ID, tok.LastUsedAt)
		}
	}
}

// FlushUsage stops at a failed transaction and keeps the unwritten times.
func TestFlushUsageKeepsTimesOnError(t *testing.T) {
	ctx := bg
	f := newFixture(t)
	tok, raw, err := f.svc.Create(ctx, "", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authenticate(ctx, raw); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.svc.FlushUsage(cctx); err == nil {
		t.Fatal("FlushUsage with an ended context succeeded")
	}
	if n, err := f.svc.FlushUsage(ctx); err != nil || n != 1 {
		t.Fatalf("FlushUsage after the failure = %d, %v; want 1", n, err)
	}
	list, _ := tokens.New(f.db, nil).List(ctx)
	if len(list) != 1 || list[0].ID != tok.ID || list[0].LastUsedAt == nil {
		t.Fatalf("List = %+v", list)
	}
}

// Authenticate, List, FlushUsage and Delete at once (run with -race).
func TestUsageConcurrent(t *testing.T) {
	ctx := bg
	f := newFixture(t)
	var raws []string
	for range 8 {
		_, raw, err := f.svc.Create(ctx, "", tokens.Admin, nil)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				f.svc.Authenticate(ctx, raws[(g+i)%len(raws)])
				if i%50 == 0 {
					f.clock.Advance(time.Minute)
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := f.svc.FlushUsage(ctx); err != nil {
				t.Error(err)
			}
			if _, err := f.svc.List(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Go(func() {
		list, _ := f.svc.List(ctx)
		if err := f.svc.Delete(ctx, list[0].ID); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	if _, err := f.svc.FlushUsage(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := tokens.New(f.db, nil).List(ctx)
	if err != nil || len(list) != 7 {
		t.Fatalf("List = %d, %v; want 7", len(list), err)
	}
	for _, tok := range list {
		if tok.LastUsedAt == nil {
			t.Errorf("%s was used but has no stored last_used_at", tok.ID)
		}
	}
}
