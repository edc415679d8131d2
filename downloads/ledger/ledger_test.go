package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
)

// openDB opens a bbolt store that runs every Update function twice, so a
// flush that had effects outside its transaction shows them.
func openDB(t testing.TB, path string) *bolt.DB {
	t.Helper()
	// etcd's transaction limit, so flushes split as they would there.
	db, err := bolt.Open(path, bolt.Options{RunUpdatesTwice: true, MaxTxnOps: store.MaxTxnOps})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newLedger(t testing.TB, db store.DB, opts ledger.Options) *ledger.Ledger {
	t.Helper()
	l := ledger.New(db, opts)
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func grant(license string, i int) ledger.Grant {
	return ledger.Grant{
		License: license, Product: "app", Version: "1.0.0", Filename: "app.tar.gz",
		Platform: "linux", Arch: "amd64", Client: fmt.Sprintf("10.0.%d.%d", i/256, i%256),
		UserAgent: "test",
	}
}

// allGrants pages through a license's grants with the given page size.
func allGrants(t *testing.T, l *ledger.Ledger, license string, page int) []ledger.Grant {
	t.Helper()
	var out []ledger.Grant
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("pagination does not end")
		}
		gs, next, err := l.ByLicense(context.Background(), license, cursor, page)
		if err != nil {
			t.Fatal(err)
		}
		if len(gs) > page {
			t.Fatalf("page of %d grants, limit %d", len(gs), page)
		}
		out = append(out, gs...)
		if next == "" {
			return out
		}
		cursor = next
	}
}

func TestBurstThenCloseLosesNothing(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portal.db")
	db := openDB(t, path)
	// A long interval: only the half-full trigger and Close write.
	l := ledger.New(db, ledger.Options{Queue: 300, FlushInterval: time.Hour})

	const n = 1000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { l.Record(grant("lic1", i)) })
	}
	wg.Wait()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Recorded != n || st.Dropped != 0 || st.Rejected != 0 || st.Queued != 0 || st.Capacity != 300 {
		t.Fatalf("stats after close = %+v, want %d recorded and nothing else", st, n)
	}

	got := allGrants(t, l, "lic1", 64)
	if len(got) != n {
		t.Fatalf("ByLicense paged %d grants, want %d", len(got), n)
	}
	seen := make(map[string]bool)
	for _, g := range got {
		if seen[g.Client] {
			t.Fatalf("grant of %s listed twice", g.Client)
		}
		seen[g.Client] = true
		if g.License != "lic1" || g.Product != "app" || g.Time.IsZero() || g.Time.Location() != time.UTC {
			t.Fatalf("grant %+v", g)
		}
	}
	if c, err := l.Count(ctx, "app", "1.0.0"); err != nil || c != n {
		t.Fatalf("Count = %d, %v; want %d", c, err, n)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened: everything is on disk.
	db = openDB(t, path)
	defer db.Close()
	l2 := newLedger(t, db, ledger.Options{})
	if c, err := l2.Count(ctx, "app", "1.0.0"); err != nil || c != n {
		t.Fatalf("after reopen Count = %d, %v; want %d", c, err, n)
	}
	if got := allGrants(t, l2, "lic1", 1000); len(got) != n {
		t.Fatalf("after reopen %d grants, want %d", len(got), n)
	}
}

func TestFlushIntervalWritesWithoutClose(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: 10 * time.Millisecond})
	l.Record(grant("lic1", 1))
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := l.Count(ctx, "app", "1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if c == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the grant was not flushed by the interval")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCountsAndFlush(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	for i, v := range []string{"1.0.0", "1.0.0", "2.0.0-beta.1", "1.0.0"} {
		g := grant("", i)
		g.Version = v
		l.Record(g)
	}
	other := grant("lic2", 9)
	other.Product = "app-pro" // shares a prefix with "app": must not be counted there
	l.Record(other)
	if c, _ := l.Count(ctx, "app", "1.0.0"); c != 0 {
		t.Fatalf("Count before Flush = %d: Record must not write", c)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := l.Counts(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["1.0.0"] != 3 || got["2.0.0-beta.1"] != 1 {
		t.Fatalf("Counts = %v", got)
	}
	if c, err := l.Count(ctx, "app", "9.9.9"); err != nil || c != 0 {
		t.Fatalf("Count of an unknown version = %d, %v", c, err)
	}
	// Open products' grants are listed under the empty license.
	if open := allGrants(t, l, "", 10); len(open) != 4 {
		t.Fatalf("open grants = %d, want 4", len(open))
	}
}

func TestPagination(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 25 {
		g := grant("lic1", i)
		g.Time = base.Add(time.Duration(i) * time.Minute)
		l.Record(g)
		if i%7 == 0 {
			l.Flush(ctx) // grants split across several flushes keep their order
		}
	}
	l.Record(grant("lic10", 0)) // a license whose ID extends lic1's
	l.Record(grant("lic1/x", 0))
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var pages [][]ledger.Grant
	cursor := ""
	for {
		gs, next, err := l.ByLicense(ctx, "lic1", cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, gs)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(pages) != 3 || len(pages[0]) != 10 || len(pages[1]) != 10 || len(pages[2]) != 5 {
		t.Fatalf("page sizes: %d pages", len(pages))
	}
	want := 24
	for _, p := range pages {
		for _, g := range p {
			if !g.Time.Equal(base.Add(time.Duration(want) * time.Minute)) {
				t.Fatalf("grant at %s, want the one of minute %d (newest first)", g.Time, want)
			}
			want--
		}
	}

	for _, id := range []string{"lic10", "lic1/x"} {
		if gs := allGrants(t, l, id, 10); len(gs) != 1 || gs[0].License != id {
			t.Fatalf("grants of %q = %+v", id, gs)
		}
	}

	// Exactly a full page: no next cursor pointing at an empty page.
	gs, next, err := l.ByLicense(ctx, "lic10", "", 1)
	if err != nil || len(gs) != 1 || next != "" {
		t.Fatalf("single page = %d grants, next %q, %v", len(gs), next, err)
	}

	for _, bad := range []string{"x", "zzzzzzzzzzzzzzzz", "00000000000000001", strings.Repeat("0", 5000)} {
		_, _, err := l.ByLicense(ctx, "lic1", bad, 10)
		if !portal.IsCode(err, portal.EInvalid) {
			t.Fatalf("cursor %.20q: err = %v, want invalid", bad, err)
		}
	}
}

func TestRecordNormalizes(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.FixedZone("X", 3600))
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour, Now: func() time.Time { return now }})

	g := grant("lic1", 0)
	g.UserAgent = strings.Repeat("a", 255) + "é" + strings.Repeat("b", 100) // é straddles byte 256
	l.Record(g)
	for _, bad := range []ledger.Grant{
		{License: "lic1", Version: "1.0.0"},
		{License: "lic1", Product: "app"},
		{License: strings.Repeat("l", 2000), Product: "app", Version: "1.0.0"},
	} {
		l.Record(bad)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Rejected != 3 || st.Recorded != 1 {
		t.Fatalf("stats = %+v, want 3 rejected and 1 recorded", st)
	}
	gs, _, err := l.ByLicense(ctx, "lic1", "", 10)
	if err != nil || len(gs) != 1 {
		t.Fatalf("grants = %v, %v", gs, err)
	}
	ua := gs[0].UserAgent
	if len(ua) != 255 || !utf8.ValidString(ua) {
		t.Fatalf("user agent of %d bytes (valid UTF-8: %v), want 255", len(ua), utf8.ValidString(ua))
	}
	if !gs[0].Time.Equal(now) || gs[0].Time.Location() != time.UTC {
		t.Fatalf("time = %v, want %v in UTC", gs[0].Time, now)
	}
}

// flakyDB fails Update while fail is set, and the Update numbered failAt
// (counting from 1) when it is set.
type flakyDB struct {
	store.DB
	fail    atomic.Bool
	updates atomic.Int64
	failAt  int64
}

func (d *flakyDB) Update(ctx context.Context, fn func(store.Tx) error) error {
	if n := d.updates.Add(1); d.fail.Load() || n == d.failAt {
		return errors.New("disk on fire")
	}
	return d.DB.Update(ctx, fn)
}

func TestLargeFlushIsSplitAndResumes(t *testing.T) {
	ctx := context.Background()
	bdb := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer bdb.Close()
	// The third transaction fails: the first two stay committed, the rest
	// is written by the next flush, nothing twice.
	db := &flakyDB{DB: bdb, failAt: 3}
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	const n = 1000
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := range n {
		g := grant(fmt.Sprintf("lic%d", i%3), i)
		g.Version = fmt.Sprintf("1.0.%d", i%300) // many release counters
		l.Record(g)
	}
	for i := range 2 * store.MaxTxnOps { // many quota counters
		if err := l.Reserve(ctx, fmt.Sprintf("q%d", i), 5, now); err != nil {
			t.Fatal(err)
		}
	}
	err := l.Flush(ctx)
	if err == nil {
		t.Fatal("flush with a failing transaction returned nil")
	}
	st := l.Stats()
	if st.Recorded == 0 || st.Recorded >= n || st.Queued != n-int(st.Recorded) {
		t.Fatalf("after a failed third transaction: %+v", st)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if db.updates.Load() < 10 {
		t.Fatalf("%d transactions for %d grants: the flush was not split", db.updates.Load(), n)
	}
	if st := l.Stats(); st.Recorded != n || st.Queued != 0 {
		t.Fatalf("stats = %+v, want %d recorded", st, n)
	}
	total := 0
	for i := range 3 {
		total += len(allGrants(t, l, fmt.Sprintf("lic%d", i), 1000))
	}
	if total != n {
		t.Fatalf("%d grants stored, want %d", total, n)
	}
	counts, err := l.Counts(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	sum := uint64(0)
	for _, c := range counts {
		sum += c
	}
	if len(counts) != 300 || sum != n {
		t.Fatalf("%d release counters summing to %d, want 300 and %d", len(counts), sum, n)
	}
	// Every quota count was persisted once.
	l2 := newLedger(t, bdb, ledger.Options{FlushInterval: time.Hour})
	for i := range 2 * store.MaxTxnOps {
		lic := fmt.Sprintf("q%d", i)
		if err := l2.Reserve(ctx, lic, 2, now); err != nil {
			t.Fatalf("%s: count over-persisted: %v", lic, err)
		}
		if err := l2.Reserve(ctx, lic, 2, now); !portal.IsCode(err, portal.EQuotaExceeded) {
			t.Fatalf("%s: count not persisted: %v", lic, err)
		}
	}
}

func TestFullQueueWaitsThenDropsAndCounts(t *testing.T) {
	ctx := context.Background()
	bdb := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer bdb.Close()
	db := &flakyDB{DB: bdb}
	db.fail.Store(true)
	l := newLedger(t, db, ledger.Options{Queue: 4, FlushInterval: 20 * time.Millisecond, FullWait: 30 * time.Millisecond})

	for i := range 4 {
		l.Record(grant("lic1", i)) // fits: the failing flushes keep these
	}
	start := time.Now()
	l.Record(grant("lic1", 4))
	waited := time.Since(start)
	if waited < 30*time.Millisecond || waited > 2*time.Second {
		t.Fatalf("Record on a full queue returned after %s, want about FullWait", waited)
	}
	st := l.Stats()
	if st.Dropped != 1 || st.Queued != 4 || st.FlushErrors == 0 {
		t.Fatalf("stats = %+v, want 1 dropped, 4 queued, some flush errors", st)
	}
	if err := l.Flush(ctx); err == nil {
		t.Fatal("Flush on a failing store returned nil")
	}

	// The store recovers: the kept grants are written, in order.
	db.fail.Store(false)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	gs := allGrants(t, l, "lic1", 10)
	if len(gs) != 4 {
		t.Fatalf("%d grants written after recovery, want 4", len(gs))
	}
	for i, g := range gs {
		if want := fmt.Sprintf("10.0.0.%d", 3-i); g.Client != want {
			t.Fatalf("grant %d from %s, want %s", i, g.Client, want)
		}
	}
}

func TestFullQueueWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	// A tiny queue and no timer flushes: every Record beyond the queue
	// must wait for the flush it triggers, and none may drop.
	l := newLedger(t, db, ledger.Options{Queue: 2, FlushInterval: time.Hour, FullWait: 10 * time.Second})
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() { l.Record(grant("lic1", i)) })
	}
	wg.Wait()
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Dropped != 0 || st.Recorded != 200 {
		t.Fatalf("stats = %+v, want 200 recorded, none dropped", st)
	}
}

func TestRecordAfterCloseIsCounted(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := ledger.New(db, ledger.Options{})
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	l.Record(grant("lic1", 0))
	if st := l.Stats(); st.Dropped != 1 {
		t.Fatalf("stats = %+v, want the late grant counted as dropped", st)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestQuota(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	day := time.Date(2025, 3, 1, 23, 59, 0, 0, time.FixedZone("X", -5*3600)) // 2025-03-02 04:59 UTC
	const limit = 3
	for i := range limit {
		if err := l.Reserve(ctx, "lic1", limit, day); err != nil {
			t.Fatalf("reserve %d: %v", i+1, err)
		}
	}
	err := l.Reserve(ctx, "lic1", limit, day.Add(time.Hour))
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Code != portal.EQuotaExceeded {
		t.Fatalf("reserve %d: err = %v, want quota_exceeded", limit+1, err)
	}
	if pe.Details["limit"] != limit || pe.Details["reset_at"] != "2025-03-03T00:00:00Z" {
		t.Fatalf("details = %v", pe.Details)
	}
	if !strings.Contains(pe.Message, "2025-03-03T00:00:00Z") {
		t.Fatalf("message %q does not say when the quota resets", pe.Message)
	}
	// Other licenses and unlimited ones are unaffected.
	if err := l.Reserve(ctx, "lic2", limit, day); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := l.Reserve(ctx, "lic3", 0, day); err != nil {
			t.Fatalf("unlimited: %v", err)
		}
		if err := l.Reserve(ctx, "", limit, day); err != nil {
			t.Fatalf("open product: %v", err)
		}
	}
	// Unlimited licenses are counted, never refused; Used says each count
	// and when it resets.
	for _, c := range []struct {
		license string
		want    uint64
	}{{"lic1", limit}, {"lic2", 1}, {"lic3", 10}, {"", 0}, {"nobody", 0}} {
		used, reset, err := l.Used(ctx, c.license, day)
		if err != nil || used != c.want || !reset.Equal(time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("Used(%q) = %d, %v, %v; want %d at 2025-03-03", c.license, used, reset, err, c.want)
		}
	}
	// The next UTC day starts afresh.
	next := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	if err := l.Reserve(ctx, "lic1", limit, next); err != nil {
		t.Fatalf("first reserve of the next day: %v", err)
	}
	// A raised limit takes effect at once.
	if err := l.Reserve(ctx, "lic1", limit+1, day); err != nil {
		t.Fatalf("after raising the limit: %v", err)
	}
}

func TestQuotaConcurrent(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, filepath.Join(t.TempDir(), "portal.db"))
	defer db.Close()
	l := newLedger(t, db, ledger.Options{FlushInterval: time.Millisecond})
	now := time.Now()
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 1000 {
		wg.Go(func() {
			err := l.Reserve(ctx, "lic1", 10, now)
			switch {
			case err == nil:
				ok.Add(1)
			case portal.IsCode(err, portal.EQuotaExceeded):
				refused.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 10 || refused.Load() != 990 {
		t.Fatalf("%d allowed, %d refused; want 10 and 990", ok.Load(), refused.Load())
	}
}

func TestQuotaSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "portal.db")
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

	db := openDB(t, path)
	l := ledger.New(db, ledger.Options{FlushInterval: time.Hour})
	for range 3 {
		if err := l.Reserve(ctx, "lic1", 5, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	l = newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	for i := range 2 {
		if err := l.Reserve(ctx, "lic1", 5, now.Add(time.Hour)); err != nil {
			t.Fatalf("reserve %d after restart: %v", 4+i, err)
		}
	}
	if err := l.Reserve(ctx, "lic1", 5, now.Add(2*time.Hour)); !portal.IsCode(err, portal.EQuotaExceeded) {
		t.Fatalf("6th reserve of the day after restart: err = %v, want quota_exceeded", err)
	}
	// Flushed twice in a row: the stored count is a sum of deltas, not
	// doubled.
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l3 := newLedger(t, db, ledger.Options{FlushInterval: time.Hour})
	if err := l3.Reserve(ctx, "lic1", 6, now); err != nil {
		t.Fatalf("count was over-persisted: %v", err)
	}
	if err := l3.Reserve(ctx, "lic1", 6, now); !portal.IsCode(err, portal.EQuotaExceeded) {
		t.Fatalf("count was under-persisted: %v", err)
	}
}

func BenchmarkRecord(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := ledger.New(db, ledger.Options{Queue: 100000})
	g := grant("lic1", 1)
	g.Time = time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Record(g)
		}
	})
	b.StopTimer()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	if st := l.Stats(); st.Dropped != 0 {
		b.Logf("%d of %d grants dropped", st.Dropped, b.N)
	}
}
