package leader

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultTTL is the lease TTL of an Etcd elector when none is given: how
// long the cluster waits, after a leader stops renewing its lease (a
// crash, a partition), before another replica may lead. A replica that
// stops cleanly resigns and hands over at once.
const DefaultTTL = 10 * time.Second

// EtcdOptions tune an Etcd elector.
type EtcdOptions struct {
	// TTL is the session lease's time to live, rounded up to whole seconds
	// (default DefaultTTL). etcd raises a TTL below its minimum (one and a
	// half election timeouts, 1.5 s with etcd's defaults) to it.
	TTL time.Duration
	// Value is what this replica stores in its election key, to say who
	// leads (for example host name and process id); it may be empty.
	Value string
}

// Etcd is an Elector over an etcd election: every replica campaigns on the
// same key prefix with a key bound to its own session lease, and the one
// whose key is oldest leads. A term ends when the lease's renewals have
// gone unacknowledged for the TTL less a margin (see leaseClock), when the
// session ends (Orphan, or the client gave the lease up), or when the
// election shows another key as the leader (for example after someone
// deleted this replica's key).
type Etcd struct {
	client *clientv3.Client
	prefix string
	opts   EtcdOptions

	mu   sync.Mutex
	live map[*session]struct{}
}

// session is one campaign's session, as Orphan sees it.
type session struct {
	cancel   func() // ends the keep-alive
	orphaned atomic.Bool
}

// NewEtcd returns an elector on client for the election at prefix (a key
// prefix of its own: every candidate's key is prefix followed by its lease
// ID). The client stays the caller's to close, after the terms ended.
func NewEtcd(client *clientv3.Client, prefix string, opts EtcdOptions) *Etcd {
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	return &Etcd{client: client, prefix: prefix, opts: opts, live: map[*session]struct{}{}}
}

// Campaign starts a session (a lease with the TTL, kept alive) and waits
// until its key leads the election.
func (e *Etcd) Campaign(ctx context.Context) (Term, error) {
	// The session outlives Campaign's ctx: it lasts until the term ends.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ttl := int(math.Ceil(e.opts.TTL.Seconds()))
	// The lease is granted under sctx, bounded by ctx too.
	stop := context.AfterFunc(ctx, cancel)
	sess, clock, err := e.session(sctx, ttl)
	stop()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("leader: etcd session: %w", err)
	}
	ss := &session{cancel: cancel}
	e.track(ss)
	el := concurrency.NewElection(sess, e.prefix)
	// Campaign waits until every older key is gone; if the session dies
	// meanwhile, stop waiting.
	cctx, ccancel := context.WithCancel(ctx)
	stopC := context.AfterFunc(sess.Ctx(), ccancel)
	err = el.Campaign(cctx, e.opts.Value)
	stopC()
	ccancel()
	if err == nil {
		// Campaign can return after the session died (its key deleted
		// with the lease); make sure this key is the leader's.
		err = e.check(ctx, el, sess)
	}
	if err != nil {
		e.end(ctx, ss, sess, el)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("leader: etcd campaign: %w", err)
	}
	t := &etcdTerm{e: e, ss: ss, sess: sess, el: el, key: el.Key(), clock: clock, done: make(chan struct{})}
	go t.watch()
	return t, nil
}

// session grants a lease of ttl seconds and returns a Session on it, with a
// leaseClock that follows its renewals. Both end with ctx.
func (e *Etcd) session(ctx context.Context, ttl int) (*concurrency.Session, *leaseClock, error) {
	granted := time.Now()
	lease, err := e.client.Grant(ctx, int64(ttl))
	if err != nil {
		return nil, nil, err
	}
	// A keep-alive of our own on the Session's lease (the client sends one
	// renewal for both), to see each renewal the cluster acknowledges.
	acks, err := e.client.KeepAlive(ctx, lease.ID)
	if err != nil {
		e.client.Revoke(context.WithoutCancel(ctx), lease.ID)
		return nil, nil, err
	}
	clock := followLease(acks, granted, time.Duration(ttl)*time.Second)
	sess, err := concurrency.NewSession(e.client, concurrency.WithLease(lease.ID), concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
	if err != nil {
		e.client.Revoke(context.WithoutCancel(ctx), lease.ID)
		return nil, nil, err
	}
	return sess, clock, nil
}

// leaseClock knows until when this replica may count on its lease: the
// cluster expires a lease TTL after its last renewal, and the renewal was
// made before its acknowledgement arrived here, so "acknowledged + TTL" is
// a little late; a margin of a fifth of the TTL (at most 2 s) makes the
// term end before the cluster can let another replica lead, for any round
// trip shorter than the margin. The etcd client's own check of the
// keep-alive runs once a second and with no margin, so a Session alone
// would let a cut-off leader run on for up to a second after another took
// over.
type leaseClock struct {
	deadline atomic.Int64  // Unix nanoseconds
	gone     chan struct{} // closed when the keep-alive channel closes
}

func followLease(acks <-chan *clientv3.LeaseKeepAliveResponse, granted time.Time, ttl time.Duration) *leaseClock {
	margin := min(ttl/5, 2*time.Second)
	c := &leaseClock{gone: make(chan struct{})}
	c.deadline.Store(granted.Add(ttl - margin).UnixNano())
	go func() {
		defer close(c.gone)
		for ack := range acks {
			c.deadline.Store(time.Now().Add(time.Duration(ack.TTL)*time.Second - margin).UnixNano())
		}
	}()
	return c
}

// until returns how long the lease may still be counted on (<= 0: no more).
func (c *leaseClock) until() time.Duration {
	return time.Until(time.Unix(0, c.deadline.Load()))
}

var errNotLeader = errors.New("the election names another leader")

func (e *Etcd) check(ctx context.Context, el *concurrency.Election, sess *concurrency.Session) error {
	select {
	case <-sess.Done():
		return errors.New("the session ended during the campaign")
	default:
	}
	resp, err := el.Leader(ctx)
	if err != nil {
		return err
	}
	if string(resp.Kvs[0].Key) != el.Key() {
		return errNotLeader
	}
	return nil
}

// end gives up a session: unless it was orphaned, resign what Campaign may
// have left and revoke the lease (deleting the session's keys at once).
func (e *Etcd) end(ctx context.Context, ss *session, sess *concurrency.Session, el *concurrency.Election) error {
	e.mu.Lock()
	delete(e.live, ss)
	e.mu.Unlock()
	ss.cancel()
	<-sess.Done()
	if ss.orphaned.Load() {
		return nil
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), resignTimeout)
	defer rcancel()
	err := el.Resign(rctx)
	// A lease that is already gone (expired, or revoked elsewhere) took
	// the key with it: nothing is left to give up.
	if _, rerr := e.client.Revoke(rctx, sess.Lease()); err == nil && !errors.Is(rerr, rpctypes.ErrLeaseNotFound) {
		err = rerr
	}
	return err
}

func (e *Etcd) track(ss *session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.live[ss] = struct{}{}
}

// Orphan stops renewing every session this elector holds, without revoking
// the leases or deleting the keys: to the cluster this replica looks as if
// it had crashed. Its term ends at once; another replica leads once the
// lease expires (the TTL), and this one may campaign again afterwards.
// For an operator cutting a replica off whose state is doubtful, and for
// tests of a leader's crash.
func (e *Etcd) Orphan() {
	e.mu.Lock()
	live := e.live
	e.live = map[*session]struct{}{}
	e.mu.Unlock()
	for ss := range live {
		ss.orphaned.Store(true)
		ss.cancel()
	}
}

type etcdTerm struct {
	e    *Etcd
	ss   *session
	sess *concurrency.Session
	el   *concurrency.Election
	key  string // el.Key(), read once: Election is not safe for concurrent use

	clock *leaseClock

	once    sync.Once
	done    chan struct{}
	endOnce sync.Once
	endErr  error
}

func (t *etcdTerm) Done() <-chan struct{} { return t.done }

func (t *etcdTerm) finish() { t.once.Do(func() { close(t.done) }) }

// watch ends the term when the session ends, when the lease's renewals
// stop being acknowledged (see leaseClock), or when the election shows
// another leader. An observation that stops (the watch failed, for example
// after a compaction) ends the term too: leading without knowing is worse
// than a new campaign.
func (t *etcdTerm) watch() {
	defer t.finish()
	ctx, cancel := context.WithCancel(t.sess.Ctx())
	defer cancel()
	obs := t.el.Observe(ctx)
	timer := time.NewTimer(max(t.clock.until(), 0))
	defer timer.Stop()
	for {
		select {
		case <-t.sess.Done():
			return
		case <-t.clock.gone:
			return
		case <-timer.C:
			left := t.clock.until()
			if left <= 0 {
				return
			}
			timer.Reset(left)
		case <-t.done:
			return
		case r, ok := <-obs:
			if !ok {
				return
			}
			if len(r.Kvs) == 0 || string(r.Kvs[0].Key) != t.key {
				return
			}
		}
	}
}

// Resign deletes this term's key (another candidate leads at once) and
// revokes the session's lease, unless the session was orphaned. The term
// ends even when etcd does not answer; the lease then expires after the
// TTL.
func (t *etcdTerm) Resign(ctx context.Context) error {
	t.finish()
	t.endOnce.Do(func() { t.endErr = t.e.end(ctx, t.ss, t.sess, t.el) })
	return t.endErr
}
