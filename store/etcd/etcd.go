package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portaldist/portal/store"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Options configure Open.
type Options struct {
	// Endpoints are the cluster members' client URLs
	// ("https://etcd1:2379"). Required unless Client is set.
	Endpoints []string
	// Prefix starts every key the driver writes; "" means DefaultPrefix.
	Prefix string
	// Username and Password authenticate to etcd when set.
	Username string
	Password string `json:"-"`
	// TLS, when set, secures the connections (and client certificates
	// authenticate, if it has them).
	TLS *tls.Config
	// DialTimeout bounds the connection and the first request Open makes;
	// zero means 5 seconds.
	DialTimeout time.Duration
	// Client, when set, is used instead of dialing Endpoints; Close leaves
	// it open.
	Client *clientv3.Client

	// MaxTxnOps is the server's --max-txn-ops; zero means etcd's default,
	// store.MaxTxnOps (128). Values below it are raised to it.
	MaxTxnOps int
	// MaxRequestBytes is the server's --max-request-bytes; zero means
	// etcd's default, DefaultMaxRequestBytes.
	MaxRequestBytes int
	// WatchBuffer is how many events each watcher may have queued before
	// it gets a store.EventReset instead; zero means DefaultWatchBuffer.
	WatchBuffer int
	// ScanPage is how many keys a Scan reads per request; zero means
	// DefaultScanPage.
	ScanPage int
	// TombstoneTTL is the lease time of deletions' tombstones (see the
	// package comment); zero means DefaultTombstoneTTL. At least 2s.
	TombstoneTTL time.Duration
}

const (
	// DefaultPrefix is the default Options.Prefix.
	DefaultPrefix = "portal/"
	// DefaultMaxRequestBytes is etcd's default --max-request-bytes.
	DefaultMaxRequestBytes = 1536 * 1024
	// requestMargin is kept from MaxRequestBytes for a transaction's
	// compares, lease IDs and framing.
	requestMargin = 64 * 1024
	// DefaultWatchBuffer is the default Options.WatchBuffer.
	DefaultWatchBuffer = 1024
	// DefaultScanPage is the default Options.ScanPage.
	DefaultScanPage = 128
	// DefaultTombstoneTTL is the default Options.TombstoneTTL.
	DefaultTombstoneTTL = 20 * time.Minute
)

// Value tags: the first byte of every stored value.
const (
	tagValue     = 'v'
	tagTombstone = 't'
)

// DB is a store.DB on an etcd cluster. It is safe for concurrent use.
type DB struct {
	cli       *clientv3.Client
	ownClient bool
	prefix    string // Options.Prefix
	data      string // prefix + "d/"
	dataEnd   string // store.PrefixEnd(data)
	seq       string // prefix + "s/"
	seqEnd    string
	maxOps    int
	maxBytes  int // the most bytes of keys and values one Update may write
	reqBytes  int // Options.MaxRequestBytes
	watchBuf  int
	scanPage  int
	tombTTL   time.Duration
	endpoints []string

	retry chan struct{} // capacity 1: held by the Update running again after a conflict

	leaseMu     sync.Mutex
	lease       clientv3.LeaseID
	leaseExpiry time.Time // local estimate of when the lease ends

	memberMu    sync.Mutex // guards the two below, and one count at a time
	memberCount int
	memberAt    time.Time

	watchMu  sync.Mutex
	watchers map[*watcher]struct{}
	closed   atomic.Bool
	closeMu  sync.Mutex
	closeErr error
	done     chan struct{} // closed by Close
}

// Open connects to the cluster and checks that it answers (a linearizable
// read within DialTimeout).
func Open(ctx context.Context, opts Options) (*DB, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.MaxTxnOps < store.MaxTxnOps {
		opts.MaxTxnOps = store.MaxTxnOps
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.MaxRequestBytes < store.MaxValueSize+store.MaxKeySize+requestMargin+64 {
		return nil, fmt.Errorf("store: etcd: MaxRequestBytes %d is too small for one value of %d bytes", opts.MaxRequestBytes, store.MaxValueSize)
	}
	if opts.WatchBuffer <= 0 {
		opts.WatchBuffer = DefaultWatchBuffer
	}
	if opts.ScanPage <= 0 {
		opts.ScanPage = DefaultScanPage
	}
	if opts.TombstoneTTL == 0 {
		opts.TombstoneTTL = DefaultTombstoneTTL
	}
	if opts.TombstoneTTL < 2*time.Second {
		return nil, fmt.Errorf("store: etcd: TombstoneTTL %v is below 2s", opts.TombstoneTTL)
	}
	d := &DB{
		cli:       opts.Client,
		prefix:    opts.Prefix,
		data:      opts.Prefix + "d/",
		seq:       opts.Prefix + "s/",
		maxOps:    opts.MaxTxnOps,
		reqBytes:  opts.MaxRequestBytes,
		maxBytes:  opts.MaxRequestBytes - requestMargin,
		watchBuf:  opts.WatchBuffer,
		scanPage:  opts.ScanPage,
		tombTTL:   opts.TombstoneTTL,
		endpoints: opts.Endpoints,
		watchers:  make(map[*watcher]struct{}),
		done:      make(chan struct{}),
		retry:     make(chan struct{}, 1),
	}
	d.dataEnd = string(store.PrefixEnd([]byte(d.data)))
	d.seqEnd = string(store.PrefixEnd([]byte(d.seq)))
	if d.cli == nil {
		if len(opts.Endpoints) == 0 {
			return nil, errors.New("store: etcd: no endpoints")
		}
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   opts.Endpoints,
			Username:    opts.Username,
			Password:    opts.Password,
			TLS:         opts.TLS,
			DialTimeout: opts.DialTimeout,
			// A broken connection is noticed within seconds, so a
			// watch moves to another member.
			DialKeepAliveTime:    10 * time.Second,
			DialKeepAliveTimeout: 5 * time.Second,
			// Requests up to the server's limit, and its answers (a
			// scan page of large values) whatever their size.
			MaxCallSendMsgSize: opts.MaxRequestBytes + requestMargin,
			// Reconnect to a member that comes back within two
			// seconds (gRPC's default backoff grows to two minutes).
			DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: opts.DialTimeout,
			})},
			Logger: zap.NewNop(),
		})
		if err != nil {
			// With credentials the client signs in while it dials, so a
			// refused TLS handshake shows here as a timeout.
			return nil, fmt.Errorf("store: etcd %s does not answer within %v (check the endpoints, TLS files and credentials): %w", strings.Join(opts.Endpoints, ","), opts.DialTimeout, err)
		}
		d.cli, d.ownClient = cli, true
	} else {
		d.endpoints = d.cli.Endpoints()
	}
	pctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := d.Ping(pctx); err != nil {
		d.Close()
		return nil, fmt.Errorf("store: etcd %s does not answer within %v (check the endpoints, TLS files and credentials): %w", strings.Join(d.endpoints, ","), opts.DialTimeout, err)
	}
	return d, nil
}

// Client is the etcd client the DB uses, for code that keeps other state in
// the same cluster (under ReservedPrefix). It is closed by Close when Open
// made it.
func (d *DB) Client() *clientv3.Client { return d.cli }

// ReservedPrefix returns the key prefix, under Options.Prefix, that the store
// leaves to other code sharing the cluster: name must be a non-empty
// path-safe word ("leader"); the result ends with "/".
func (d *DB) ReservedPrefix(name string) string { return d.prefix + "x/" + name + "/" }

// Prefix is Options.Prefix.
func (d *DB) Prefix() string { return d.prefix }

// MaxTxnOps implements store.DB.
func (d *DB) MaxTxnOps() int { return d.maxOps }

// Ping does a linearizable read of one key: it answers only when a quorum
// of the cluster and a leader do.
func (d *DB) Ping(ctx context.Context) error {
	if d.closed.Load() {
		return store.ErrClosed
	}
	_, err := d.cli.Get(ctx, d.prefix+"ping", clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("store: etcd: %w", err)
	}
	return nil
}

// Close ends every watch and, when Open made the client, closes it. Later
// calls return the first call's result.
func (d *DB) Close() error {
	d.closeMu.Lock()
	defer d.closeMu.Unlock()
	if d.closed.Swap(true) {
		return d.closeErr
	}
	close(d.done)
	d.watchMu.Lock()
	d.watchers = nil
	d.watchMu.Unlock()
	if d.ownClient {
		if err := d.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
			d.closeErr = err
		}
	}
	return d.closeErr
}

// View runs fn on a snapshot (see the package comment).
func (d *DB) View(ctx context.Context, fn func(store.Tx) error) error {
	if d.closed.Load() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	t := &tx{db: d, ctx: ctx}
	if err := fn(t); err != nil {
		return err
	}
	return ctx.Err()
}

// errConflict makes Update run fn again.
var errConflict = errors.New("store: etcd: conflict")

// Update runs fn and commits its writes in one etcd transaction, running it
// again while the transaction conflicts with writes committed since its
// snapshot (see the package comment).
func (d *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	locked := false
	defer func() {
		if locked {
			<-d.retry
		}
	}()
	for attempt := 0; ; attempt++ {
		if d.closed.Load() {
			return store.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		t := &tx{db: d, ctx: ctx, writable: true, start: time.Now()}
		err := fn(t)
		if err == nil && t.tooLarge != nil {
			err = t.tooLarge
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = t.commit()
		} else if t.compacted && ctx.Err() == nil {
			// fn failed on a read of a compacted snapshot (a long
			// transaction): a fresh snapshot may do.
			err = errConflict
		}
		if !errors.Is(err, errConflict) {
			return err
		}
		// Updates of this process that conflicted run again one at a
		// time: contention between goroutines of one replica (a hot
		// counter) then costs one wasted run each instead of a storm of
		// them. Against other replicas, back off a random while, longer
		// after each conflict, so that writers take turns.
		if !locked {
			if err := d.lockRetry(ctx); err != nil {
				return err
			}
			locked = true
			continue
		}
		wait := time.Duration(rand.Int64N(int64(time.Millisecond) << min(attempt, 6)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.done:
			return store.ErrClosed
		case <-time.After(wait):
		}
	}
}

// lockRetry takes the right to run a conflicted Update again, waiting for
// the one holding it; receiving from d.retry gives it back.
func (d *DB) lockRetry(ctx context.Context) error {
	select {
	case d.retry <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-d.done:
		return store.ErrClosed
	}
}

// tombstoneLease returns a lease that has at least TombstoneTTL/2 to run.
func (d *DB) tombstoneLease(ctx context.Context) (clientv3.LeaseID, error) {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	if d.lease != 0 && time.Until(d.leaseExpiry) > d.tombTTL/2 {
		return d.lease, nil
	}
	asked := time.Now()
	resp, err := d.cli.Grant(ctx, int64(d.tombTTL/time.Second))
	if err != nil {
		return 0, fmt.Errorf("store: etcd: lease for tombstones: %w", err)
	}
	d.lease = resp.ID
	d.leaseExpiry = asked.Add(time.Duration(resp.TTL) * time.Second)
	return d.lease, nil
}

// dropLease forgets lease id (etcd no longer has it).
func (d *DB) dropLease(id clientv3.LeaseID) {
	d.leaseMu.Lock()
	if d.lease == id {
		d.lease = 0
	}
	d.leaseMu.Unlock()
}

// isLeaseNotFound reports etcd's refusal of a put on an expired lease.
func isLeaseNotFound(err error) bool {
	return errors.Is(err, rpctypes.ErrLeaseNotFound) || (err != nil && strings.Contains(err.Error(), rpctypes.ErrLeaseNotFound.Error()))
}

// membersReachable counts the endpoints that answer a status request, asked
// in parallel within ctx; the count is kept for memberCheckEvery, since each
// request dials its endpoint anew.
func (d *DB) membersReachable(ctx context.Context) int {
	d.memberMu.Lock()
	defer d.memberMu.Unlock()
	if !d.memberAt.IsZero() && time.Since(d.memberAt) < memberCheckEvery {
		return d.memberCount
	}
	var (
		wg        sync.WaitGroup
		reachable atomic.Int64
	)
	for _, ep := range d.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A member that does not answer within 2 s counts as
			// unreachable, whatever ctx allows.
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			if _, err := d.cli.Status(sctx, ep); err == nil {
				reachable.Add(1)
			}
		}()
	}
	wg.Wait()
	d.memberCount, d.memberAt = int(reachable.Load()), time.Now()
	return d.memberCount
}

// memberCheckEvery is how long Status reuses its count of reachable members.
const memberCheckEvery = 5 * time.Second

// Status implements store.StatusReporter. It does a linearizable read and
// asks every endpoint for its status (at most every 5 s); the watch
// figures are those of the watches' last answers from etcd, and it asks
// etcd to send each watch a progress notice, so that an idle watch is seen
// to be current at the next call.
func (d *DB) Status(ctx context.Context) store.Status {
	st := store.Status{Driver: "etcd", Members: len(d.endpoints)}
	if resp, err := d.cli.Get(ctx, d.prefix+"ping", clientv3.WithCountOnly()); err == nil && !d.closed.Load() {
		st.Reachable = true
		st.Revision = uint64(resp.Header.Revision)
	}
	st.MembersReachable = d.membersReachable(ctx)

	d.watchMu.Lock()
	var (
		oldest int64 = -1
		quiet  time.Duration
	)
	now := time.Now()
	for w := range d.watchers {
		st.Watches++
		if s := w.seen.Load(); oldest < 0 || s < oldest {
			oldest = s
		}
		quiet = max(quiet, now.Sub(time.Unix(0, w.heard.Load())))
	}
	d.watchMu.Unlock()
	if st.Watches > 0 {
		st.WatchRevision = uint64(oldest)
		st.WatchQuiet = quiet
		if st.Revision > st.WatchRevision {
			st.WatchLag = st.Revision - st.WatchRevision
		}
		if st.Reachable {
			// The watches run on require-leader streams: ask on those.
			d.cli.RequestProgress(clientv3.WithRequireLeader(ctx))
		}
	}
	return st
}
