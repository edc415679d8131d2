package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/etcd"
	"github.com/portaldist/portal/store/storetest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cluster is one 3-member cluster shared by the package's tests, each under
// a prefix of its own. The members keep etcd's default limits
// (--max-txn-ops 128, --max-request-bytes 1.5 MiB), which the driver's
// defaults match.
var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	etcdtest.Main(m, etcdtest.Options{}, func(c *etcdtest.Cluster) { cluster = c })
}

var bg = context.Background()

// open opens a DB under a fresh prefix, on a client of its own.
func open(t testing.TB, opts etcd.Options) *etcd.DB {
	t.Helper()
	if opts.Endpoints == nil && opts.Client == nil {
		opts.Endpoints = cluster.Endpoints()
	}
	if opts.Prefix == "" {
		opts.Prefix = etcdtest.Prefix(t)
	}
	db, err := etcd.Open(bg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	cli := cluster.NewClient(t)
	storetest.Run(t, func(t *testing.T) store.DB {
		// One client for all: Close leaves a given client open.
		db := open(t, etcd.Options{Client: cli})
		if db.MaxTxnOps() != store.MaxTxnOps {
			t.Fatalf("MaxTxnOps() = %d, want etcd's default %d", db.MaxTxnOps(), store.MaxTxnOps)
		}
		return db
	})
}

func keys(t testing.TB, db store.DB, prefix string, opts store.ScanOptions) []string {
	t.Helper()
	var out []string
	if err := db.View(bg, func(tx store.Tx) error {
		return tx.Scan([]byte(prefix), opts, func(k, v []byte) (bool, error) {
			out = append(out, string(k))
			return true, nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPagedScan scans more keys than a page holds, both ways and from
// cursors, with deletions (tombstones) and the transaction's own writes
// among them.
func TestPagedScan(t *testing.T) {
	db := open(t, etcd.Options{ScanPage: 7})
	var kv, want []string
	for i := range 100 {
		kv = append(kv, fmt.Sprintf("p/%03d", i), "v")
		if i%10 != 3 {
			want = append(want, fmt.Sprintf("p/%03d", i))
		}
	}
	storetest.Put(t, db, kv...)
	if err := db.Update(bg, func(tx store.Tx) error {
		for i := 3; i < 100; i += 10 {
			if err := tx.Delete([]byte(fmt.Sprintf("p/%03d", i))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, db, "p/", store.ScanOptions{}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("forward: %v", got)
	}
	rev := append([]string(nil), want...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if got := keys(t, db, "p/", store.ScanOptions{Reverse: true}); fmt.Sprint(got) != fmt.Sprint(rev) {
		t.Fatalf("reverse: %v", got)
	}
	if got := keys(t, db, "p/", store.ScanOptions{After: []byte("p/050")}); fmt.Sprint(got) != fmt.Sprint(want[46:]) {
		t.Fatalf("after p/050: %v, want %v", got, want[46:])
	}
	// Inside an Update, with writes interleaved across pages.
	err := db.Update(bg, func(tx store.Tx) error {
		tx.Put([]byte("p/0005"), []byte("v")) // between p/000 and p/001
		tx.Delete([]byte("p/001"))
		tx.Put([]byte("p/999"), []byte("v"))
		var got []string
		if err := tx.Scan([]byte("p/"), store.ScanOptions{}, func(k, v []byte) (bool, error) {
			got = append(got, string(k))
			return true, nil
		}); err != nil {
			return err
		}
		exp := append([]string{"p/000", "p/0005"}, want[2:]...)
		exp = append(exp, "p/999")
		if fmt.Sprint(got) != fmt.Sprint(exp) {
			return fmt.Errorf("scan in update: %v, want %v", got, exp)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPrefixesKeepPortalsApart(t *testing.T) {
	cli := cluster.NewClient(t)
	a := open(t, etcd.Options{Client: cli})
	b := open(t, etcd.Options{Client: cli})
	storetest.Put(t, a, "k", "a")
	storetest.Put(t, b, "k", "b", "only-b", "x")
	if got := keys(t, a, "", store.ScanOptions{}); fmt.Sprint(got) != "[k]" {
		t.Fatalf("a sees %v", got)
	}
	// Sequences and reserved keys are outside the keyspace.
	a.Update(bg, func(tx store.Tx) error { _, err := tx.NextSequence("s"); return err })
	if _, err := cli.Put(bg, a.ReservedPrefix("leader")+"x", "y"); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, a, "", store.ScanOptions{}); fmt.Sprint(got) != "[k]" {
		t.Fatalf("a sees %v after a sequence and a reserved key", got)
	}
	if !strings.HasPrefix(a.ReservedPrefix("leader"), a.Prefix()) {
		t.Fatalf("reserved prefix %q outside %q", a.ReservedPrefix("leader"), a.Prefix())
	}
}

func TestRequestSizeLimit(t *testing.T) {
	db := open(t, etcd.Options{})
	big := make([]byte, store.MaxValueSize)
	if err := db.Update(bg, func(tx store.Tx) error { return tx.Put([]byte("one"), big) }); err != nil {
		t.Fatalf("one largest value: %v", err)
	}
	err := db.Update(bg, func(tx store.Tx) error {
		if err := tx.Put([]byte("a"), big); err != nil {
			return err
		}
		return tx.Put([]byte("b"), big)
	})
	if !errors.Is(err, store.ErrTxnTooLarge) {
		t.Fatalf("two largest values: %v, want ErrTxnTooLarge", err)
	}
	// Rewriting a key replaces its size.
	if err := db.Update(bg, func(tx store.Tx) error {
		for range 3 {
			if err := tx.Put([]byte("a"), big); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("one key written three times: %v", err)
	}
	// And fn ignoring the error does not commit the rest.
	err = db.Update(bg, func(tx store.Tx) error {
		tx.Put([]byte("x"), big)
		tx.Put([]byte("y"), big)
		return nil
	})
	if !errors.Is(err, store.ErrTxnTooLarge) {
		t.Fatalf("ignored error: %v", err)
	}
	if got := keys(t, db, "x", store.ScanOptions{}); len(got) != 0 {
		t.Fatalf("refused transaction committed %v", got)
	}
}

// TestRetriesOnConflict: fn runs again when a key it read changed before
// the commit, and the final run's writes are the ones kept.
func TestRetriesOnConflict(t *testing.T) {
	db := open(t, etcd.Options{})
	storetest.Put(t, db, "n", "0")
	runs := 0
	err := db.Update(bg, func(tx store.Tx) error {
		runs++
		v, err := tx.Get([]byte("n"))
		if err != nil {
			return err
		}
		if runs == 1 {
			// Another writer commits between the read and the commit.
			storetest.Put(t, db, "n", "10")
		}
		return tx.Put([]byte("n"), append(v, '+'))
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Fatalf("fn ran %d times, want 2", runs)
	}
	if v := get(t, db, "n"); v != "10+" {
		t.Fatalf("n = %q, want 10+", v)
	}
}

func get(t testing.TB, db store.DB, k string) string {
	t.Helper()
	var v []byte
	if err := db.View(bg, func(tx store.Tx) error {
		var err error
		v, err = tx.Get([]byte(k))
		return err
	}); err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	return string(v)
}

// TestTombstonesExpire: a deletion's tombstone goes away with its lease,
// and an Update slower than a quarter of the tombstones' life runs again.
func TestTombstonesExpire(t *testing.T) {
	cli := cluster.NewClient(t)
	db := open(t, etcd.Options{Client: cli, TombstoneTTL: 2 * time.Second})
	storetest.Put(t, db, "gone", "x")
	if err := db.Update(bg, func(tx store.Tx) error { return tx.Delete([]byte("gone")) }); err != nil {
		t.Fatal(err)
	}
	raw := db.Prefix() + "d/gone"
	if r, err := cli.Get(bg, raw); err != nil || len(r.Kvs) != 1 {
		t.Fatalf("tombstone: %v %v", r, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := cli.Get(bg, raw)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("tombstone still there 10s after its 2s lease")
		}
		time.Sleep(200 * time.Millisecond)
	}
	storetest.Put(t, db, "slow", "0")
	runs := 0
	err := db.Update(bg, func(tx store.Tx) error {
		runs++
		if _, err := tx.Get([]byte("slow")); err != nil {
			return err
		}
		if runs == 1 {
			time.Sleep(600 * time.Millisecond) // beyond TombstoneTTL/4
		}
		return tx.Put([]byte("slow"), []byte("1"))
	})
	if err != nil || runs < 2 {
		t.Fatalf("slow update: %v after %d runs, want a second run", err, runs)
	}
}

// TestWritesSurviveMemberStop stops a member (the leader) under a stream
// of Updates and restarts it: every Update acknowledged is there, read
// from the restarted member alone.
func TestWritesSurviveMemberStop(t *testing.T) {
	db := open(t, etcd.Options{})
	var (
		acked   sync.Map
		n       atomic.Int64
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		failed  atomic.Int64
		lastErr atomic.Value
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("acked/%d/%05d", w, i)
				ctx, cancel := context.WithTimeout(bg, 5*time.Second)
				err := db.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.NextSequence("writes"); err != nil {
						return err
					}
					return tx.Put([]byte(k), []byte("v"))
				})
				cancel()
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					continue
				}
				acked.Store(k, true)
				n.Add(1)
			}
		}()
	}
	waitFor := func(target int64) {
		deadline := time.Now().Add(15 * time.Second)
		for n.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("only %d writes acknowledged (%d failed, last: %v)", n.Load(), failed.Load(), lastErr.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(20)
	victim := cluster.Leader()
	if victim < 0 {
		t.Fatal("no leader")
	}
	t.Cleanup(func() { cluster.RestartMember(victim) }) // for the next tests, should this one fail
	cluster.StopMember(victim)
	before := n.Load()
	waitFor(before + 20) // writes go on with two members
	if err := cluster.RestartMember(victim); err != nil {
		t.Fatal(err)
	}
	waitFor(n.Load() + 10)
	close(stop)
	wg.Wait()

	one := open(t, etcd.Options{Endpoints: cluster.Endpoints()[victim : victim+1], Prefix: db.Prefix()})
	have := map[string]bool{}
	for _, k := range keys(t, one, "acked/", store.ScanOptions{}) {
		have[k] = true
	}
	missing := 0
	acked.Range(func(k, _ any) bool {
		if !have[k.(string)] {
			missing++
		}
		return true
	})
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes missing", missing, n.Load())
	}
	var last uint64
	one.View(bg, func(tx store.Tx) error {
		return store.Sequences(tx, func(name string, v uint64) error {
			if name == "writes" {
				last = v
			}
			return nil
		})
	})
	if last < uint64(n.Load()) {
		t.Fatalf("sequence at %d after %d acknowledged draws", last, n.Load())
	}
	t.Logf("%d writes acknowledged, %d failed while a member was down (last: %v)", n.Load(), failed.Load(), lastErr.Load())
}

// TestWatchResumes: a watch on a client whose only member stops and comes
// back gets every change made meanwhile through the other members, in
// order and without a Reset; after a compaction of what it missed, it gets
// a Reset and then the later changes.
func TestWatchResumes(t *testing.T) {
	target := (cluster.Leader() + 1) % cluster.Size() // a follower
	t.Cleanup(func() {                                // for the next tests, should this one fail
		cluster.RestartMember(target)
		cluster.Reconnect(target)
	})
	// The writer reaches the other members only: a write cut off with the
	// target's connections would have an unknown outcome.
	var others []string
	for i, ep := range cluster.Endpoints() {
		if i != target {
			others = append(others, ep)
		}
	}
	writer := open(t, etcd.Options{Endpoints: others})
	watchDB := open(t, etcd.Options{Endpoints: cluster.Endpoints()[target : target+1], Prefix: writer.Prefix()})
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	ch, err := watchDB.Watch(ctx, []byte("w/"))
	if err != nil {
		t.Fatal(err)
	}
	next := func() store.Event {
		t.Helper()
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch closed")
			}
			return ev
		case <-time.After(15 * time.Second):
			t.Fatal("no event in 15s")
		}
		panic("unreachable")
	}
	storetest.Put(t, writer, "w/0", "v")
	if ev := next(); string(ev.Key) != "w/0" {
		t.Fatalf("first event %v %q", ev.Type, ev.Key)
	}

	cluster.StopMember(target)
	for i := 1; i <= 5; i++ {
		storetest.Put(t, writer, fmt.Sprintf("w/%d", i), "v")
	}
	if err := cluster.RestartMember(target); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if ev := next(); ev.Type != store.EventPut || string(ev.Key) != fmt.Sprintf("w/%d", i) {
			t.Fatalf("after the restart: %v %q, want put w/%d", ev.Type, ev.Key, i)
		}
	}

	// Now miss changes that a compaction then removes: the watch's member
	// runs on (and applies the compaction) while its clients are cut off.
	cluster.Disconnect(target)
	for i := 6; i <= 8; i++ {
		storetest.Put(t, writer, fmt.Sprintf("w/%d", i), "v")
	}
	cli := cluster.NewClient(t)
	r, err := cli.Get(bg, "x")
	if err != nil {
		t.Fatal(err)
	}
	rev := r.Header.Revision
	if _, err := cli.Compact(bg, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if err := cluster.WaitApplied(ctx); err != nil {
		t.Fatal(err)
	}
	cluster.Reconnect(target)
	ev := next()
	if ev.Type != store.EventReset || ev.Rev < uint64(rev) {
		t.Fatalf("after a compaction: %v %q at %d, want a reset at %d or later", ev.Type, ev.Key, ev.Rev, rev)
	}
	storetest.Put(t, writer, "w/9", "v")
	if ev := next(); string(ev.Key) != "w/9" {
		t.Fatalf("after the reset: %v %q", ev.Type, ev.Key)
	}
}

// TestStatus reports reachability and the watch's position.
func TestStatus(t *testing.T) {
	db := open(t, etcd.Options{})
	var _ store.StatusReporter = db
	ctx, cancel := context.WithCancel(bg)
	defer cancel()
	ch, err := db.Watch(ctx, []byte("s/"))
	if err != nil {
		t.Fatal(err)
	}
	storetest.Put(t, db, "s/1", "v")
	<-ch
	st := db.Status(bg)
	if st.Driver != "etcd" || !st.Reachable || st.Members != 3 || st.MembersReachable != 3 || st.Watches != 1 {
		t.Fatalf("status %+v", st)
	}
	if st.WatchRevision == 0 || st.WatchRevision > st.Revision {
		t.Fatalf("watch at %d, store at %d", st.WatchRevision, st.Revision)
	}
	// Writes elsewhere in the cluster: the idle watch catches up through
	// progress notices.
	storetest.Put(t, db, "other", "v")
	deadline := time.Now().Add(10 * time.Second)
	for {
		st = db.Status(bg)
		if st.WatchLag == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watch lag stays %d: %+v", st.WatchLag, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	db.Close()
	if st := db.Status(bg); st.Reachable {
		t.Fatalf("closed DB reachable: %+v", st)
	}
}

func TestOpenUnreachable(t *testing.T) {
	start := time.Now()
	_, err := etcd.Open(bg, etcd.Options{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 500 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("Open of a closed port: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Open took %v with a 500ms dial timeout", d)
	}
	if _, err := etcd.Open(bg, etcd.Options{}); err == nil {
		t.Fatal("Open without endpoints succeeded")
	}
}

// TestUpdateOutlivesCompaction: an Update whose snapshot etcd compacts
// away under it runs again on a fresh one, and a View reports the error.
func TestUpdateOutlivesCompaction(t *testing.T) {
	// One member answers both the reads and the compaction, which it has
	// applied when Compact returns (WithCompactPhysical): another member
	// might still serve the old revision.
	cli, err := clientv3.New(clientv3.Config{Endpoints: cluster.Endpoints()[:1]})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	db := open(t, etcd.Options{Client: cli})
	storetest.Put(t, db, "a", "1", "b", "1")
	compact := func() {
		storetest.Put(t, db, "bump", "x")
		r, err := cli.Get(bg, "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Compact(bg, r.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
	}
	runs := 0
	err = db.Update(bg, func(tx store.Tx) error {
		runs++
		if _, err := tx.Get([]byte("a")); err != nil {
			return err
		}
		if runs == 1 {
			compact()
		}
		if _, err := tx.Get([]byte("b")); err != nil {
			return err
		}
		return tx.Put([]byte("c"), []byte("1"))
	})
	if err != nil || runs != 2 {
		t.Fatalf("Update: %v after %d runs, want success on the second", err, runs)
	}
	err = db.View(bg, func(tx store.Tx) error {
		if _, err := tx.Get([]byte("a")); err != nil {
			return err
		}
		compact()
		_, err := tx.Get([]byte("b"))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("View across a compaction: %v", err)
	}
}
