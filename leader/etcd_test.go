package leader_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/leader"
)

var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	etcdtest.Main(m, etcdtest.Options{}, func(c *etcdtest.Cluster) { cluster = c })
}

// ttl is the lease TTL of the tests' electors: etcd's shortest with the
// test cluster's election timeout.
const ttl = time.Second

// replica is one candidate: its own client (as a replica process has), an
// elector and a scheduler whose one job counts how many run at once.
type replica struct {
	name   string
	cli    *clientv3.Client
	el     *leader.Etcd
	s      *leader.Scheduler
	cancel context.CancelFunc
	done   chan struct{}
}

type jobCounter struct {
	active  atomic.Int32
	maxSeen atomic.Int32
	runs    sync.Map // replica name -> *atomic.Int32
}

func (c *jobCounter) job(name string) func(ctx context.Context) {
	n, _ := c.runs.LoadOrStore(name, new(atomic.Int32))
	return func(ctx context.Context) {
		n.(*atomic.Int32).Add(1)
		now := c.active.Add(1)
		for {
			m := c.maxSeen.Load()
			if now <= m || c.maxSeen.CompareAndSwap(m, now) {
				break
			}
		}
		<-ctx.Done()
		c.active.Add(-1)
	}
}

func (c *jobCounter) runsOf(name string) int32 {
	n, _ := c.runs.LoadOrStore(name, new(atomic.Int32))
	return n.(*atomic.Int32).Load()
}

func startReplica(t *testing.T, name, prefix string, jc *jobCounter) *replica {
	t.Helper()
	return runReplica(t, name, cluster.NewClient(t), prefix, ttl, jc)
}

// runReplica starts a candidate named name on cli, campaigning under prefix
// with leases of ttl, whose one job is jc's; the test's cleanup stops it.
func runReplica(t *testing.T, name string, cli *clientv3.Client, prefix string, ttl time.Duration, jc *jobCounter) *replica {
	r := &replica{name: name, cli: cli, done: make(chan struct{})}
	r.el = leader.NewEtcd(cli, prefix, leader.EtcdOptions{TTL: ttl, Value: name})
	r.s = leader.NewScheduler(r.el, nil)
	r.s.SetRetry(50 * time.Millisecond)
	r.s.Loop("count", jc.job(name))
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.s.Run(ctx); close(r.done) }()
	t.Cleanup(r.stop)
	return r
}

func (r *replica) stop() {
	r.cancel()
	<-r.done
}

func leaders(rs []*replica) []*replica {
	var out []*replica
	for _, r := range rs {
		if r.s.Leading() {
			out = append(out, r)
		}
	}
	return out
}

// waitLeader waits until exactly one of rs (other than not) leads, and
// returns it with how long that took.
func waitLeader(t *testing.T, rs []*replica, not *replica, within time.Duration) (*replica, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		ls := leaders(rs)
		if len(ls) == 1 && ls[0] != not {
			return ls[0], time.Since(start)
		}
		if len(ls) > 1 {
			t.Fatalf("%d replicas lead at once", len(ls))
		}
		if time.Since(start) > within {
			t.Fatalf("no new leader within %s", within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Three replicas: one leads; when it stops cleanly it resigns and another
// takes over at once; the jobs never run on two replicas at a time.
func TestEtcdOneLeaderAndHandover(t *testing.T) {
	prefix := etcdtest.Prefix(t) + "leader/"
	jc := &jobCounter{}
	rs := []*replica{
		startReplica(t, "a", prefix, jc),
		startReplica(t, "b", prefix, jc),
		startReplica(t, "c", prefix, jc),
	}
	first, took := waitLeader(t, rs, nil, 10*time.Second)
	t.Logf("first leader %s after %s", first.name, took)
	// The election's key says who leads.
	resp, err := first.cli.Get(context.Background(), prefix, clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != first.name {
		t.Fatalf("election leader = %v, %v; want %s", resp, err, first.name)
	}
	time.Sleep(100 * time.Millisecond)
	if ls := leaders(rs); len(ls) != 1 {
		t.Fatalf("%d leaders after settling", len(ls))
	}

	first.stop()
	second, took := waitLeader(t, rs, first, 5*time.Second)
	t.Logf("handover after a clean stop: %s in %s", second.name, took)
	if took > ttl {
		t.Errorf("a resigned leader was replaced after %s, not at once (TTL %s)", took, ttl)
	}
	second.stop()
	third, took := waitLeader(t, rs, second, 5*time.Second)
	t.Logf("second handover: %s in %s", third.name, took)
	if third == first {
		t.Fatal("a stopped replica leads")
	}
	if m := jc.maxSeen.Load(); m != 1 {
		t.Fatalf("the job ran on %d replicas at once", m)
	}
}

// A leader that stops renewing its lease, as a crashed process does
// (Orphan: no resign, no revoke), stops its jobs at once; another replica
// leads once the lease expires; the orphaned one campaigns again and waits
// its turn.
func TestEtcdCrashedLeaderIsReplaced(t *testing.T) {
	prefix := etcdtest.Prefix(t) + "leader/"
	jc := &jobCounter{}
	rs := []*replica{startReplica(t, "a", prefix, jc), startReplica(t, "b", prefix, jc)}
	first, _ := waitLeader(t, rs, nil, 10*time.Second)

	changed := first.s.Changed()
	crashed := time.Now()
	first.el.Orphan()
	select {
	case <-changed:
	case <-time.After(2 * time.Second):
		t.Fatal("the orphaned leader kept leading")
	}
	if first.s.Leading() {
		t.Fatal("the orphaned leader still leads")
	}
	second, _ := waitLeader(t, rs, first, 5*ttl)
	took := time.Since(crashed)
	t.Logf("takeover after a crash: %s in %s (TTL %s)", second.name, took, ttl)
	if took < ttl/2 {
		t.Errorf("takeover after %s: the crashed leader's key was deleted, not left to expire", took)
	}
	time.Sleep(3 * ttl / 2)
	if !second.s.Leading() || first.s.Leading() {
		t.Fatalf("after the takeover: %s leads %v, %s leads %v", second.name, second.s.Leading(), first.name, first.s.Leading())
	}
	if first.s.Terms() != 1 || jc.runsOf(first.name) != 1 {
		t.Fatalf("the crashed replica led again (%d terms)", first.s.Terms())
	}

	// When the new leader stops, the old one, which campaigned again,
	// takes over.
	second.stop()
	if l, _ := waitLeader(t, rs, second, 5*time.Second); l != first {
		t.Fatalf("%s leads, want %s", l.name, first.name)
	}
	if jc.maxSeen.Load() != 1 {
		t.Fatalf("the job ran on %d replicas at once", jc.maxSeen.Load())
	}
}

// A lease that disappears under a leader (revoked by an operator, or
// expired on the cluster while the replica was cut off) ends the term at
// once, and the replica campaigns again.
func TestEtcdRevokedLeaseEndsTheTerm(t *testing.T) {
	prefix := etcdtest.Prefix(t) + "leader/"
	jc := &jobCounter{}
	r := startReplica(t, "a", prefix, jc)
	waitLeader(t, []*replica{r}, nil, 10*time.Second)
	resp, err := r.cli.Get(context.Background(), prefix, clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("leader key: %v, %v", resp, err)
	}
	changed := r.s.Changed()
	if _, err := r.cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	case <-time.After(3 * time.Second):
		t.Fatal("the term outlived its lease")
	}
	waitLeader(t, []*replica{r}, nil, 5*time.Second)
	waitFor(t, 5*time.Second, "the job started again", func() bool { return jc.runsOf("a") == 2 })
	if r.s.Terms() != 2 {
		t.Fatalf("terms %d, job runs %d; want 2, 2", r.s.Terms(), jc.runsOf("a"))
	}
}

// The leader keeps leading while one etcd member stops (the cluster keeps
// its quorum), and a campaign made while the member is down succeeds.
func TestEtcdLeaderSurvivesAMemberStop(t *testing.T) {
	c := etcdtest.New(t, etcdtest.Options{})
	prefix := etcdtest.Prefix(t) + "leader/"
	jc := &jobCounter{}
	mk := func(name string) *replica {
		// A TTL the client's reconnection to another member fits in, even
		// on a loaded machine (the term ends a fifth of it early).
		return runReplica(t, name, c.NewClient(t), prefix, 4*time.Second, jc)
	}
	a := mk("a")
	waitLeader(t, []*replica{a}, nil, 10*time.Second)
	c.StopMember(max(c.Leader(), 0))
	time.Sleep(5 * time.Second) // longer than the TTL: renewals went on
	if !a.s.Leading() || a.s.Terms() != 1 {
		t.Fatalf("after a member stop: leading %v, terms %d", a.s.Leading(), a.s.Terms())
	}
	b := mk("b")
	a.stop()
	if l, _ := waitLeader(t, []*replica{a, b}, a, 5*time.Second); l != b {
		t.Fatal("b did not take over")
	}
}

// A leader cut off from the cluster (a partition between it and the etcd
// members) stops its jobs once its client sees its lease lapse; the other
// replica leads once the cluster lets the lease go. When the partition
// heals, the old leader campaigns again and waits its turn.
func TestEtcdPartitionedLeaderStops(t *testing.T) {
	c := etcdtest.New(t, etcdtest.Options{})
	prefix := etcdtest.Prefix(t) + "leader/"
	jc := &jobCounter{}
	eps := c.Endpoints()
	mk := func(name string, endpoints []string) *replica {
		cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		return runReplica(t, name, cli, prefix, 2*time.Second, jc)
	}
	// A reaches the cluster only through member 0; B through the others.
	a := mk("a", eps[:1])
	waitLeader(t, []*replica{a}, nil, 10*time.Second)
	b := mk("b", eps[1:])
	time.Sleep(200 * time.Millisecond)
	if b.s.Leading() {
		t.Fatal("b leads while a does")
	}

	cut := time.Now()
	c.Disconnect(0)
	var aStopped, bLed time.Duration
	for aStopped == 0 || bLed == 0 {
		if time.Since(cut) > 15*time.Second {
			t.Fatalf("after the partition: a leads %v, b leads %v", a.s.Leading(), b.s.Leading())
		}
		if aStopped == 0 && !a.s.Leading() {
			aStopped = time.Since(cut)
		}
		if bLed == 0 && b.s.Leading() {
			bLed = time.Since(cut)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Logf("partitioned leader stopped after %s, the other led after %s (TTL 2s)", aStopped.Round(time.Millisecond), bLed.Round(time.Millisecond))
	// The margin (a fifth of the TTL) puts a's end well before the
	// cluster's expiry of its lease: no overlap.
	if aStopped >= bLed {
		t.Errorf("b led %s before the partitioned a stopped", aStopped-bLed)
	}

	c.Reconnect(0)
	time.Sleep(time.Second)
	if a.s.Leading() || !b.s.Leading() {
		t.Fatalf("after the partition healed: a leads %v, b leads %v", a.s.Leading(), b.s.Leading())
	}
	b.stop()
	waitLeader(t, []*replica{a, b}, b, 10*time.Second)
}
