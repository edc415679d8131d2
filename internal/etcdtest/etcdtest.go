// Package etcdtest runs a real etcd cluster inside the test process, for
// tests of code that stores its state in etcd. The members are etcd's own
// server (go.etcd.io/etcd/server/v3/embed) listening on 127.0.0.1 with data
// directories under a temporary directory; nothing needs to be installed.
//
// New starts a cluster for one test and stops it at the test's cleanup.
// Start does the same without a *testing.T, for a TestMain that shares one
// cluster between the tests of a package; those tests then keep apart by
// using different key prefixes (Prefix gives one per test).
//
// The members use short heartbeat and election timeouts so that a cluster
// forms, and a new leader is elected after a member stops, in well under a
// second. They do not fsync: a stopped member keeps what it acknowledged (the
// process stays up), which is what these tests need, and a machine crash is
// outside their scope.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options tune a cluster. The zero value is a 3-member cluster with etcd's
// default limits.
type Options struct {
	// Members is the cluster size; 0 means 3.
	Members int
	// MaxTxnOps and MaxRequestBytes are etcd's --max-txn-ops and
	// --max-request-bytes; 0 keeps etcd's defaults (128 and 1.5 MiB).
	MaxTxnOps       uint
	MaxRequestBytes uint
	// Dir holds the members' data directories; "" makes a temporary
	// directory that Close removes.
	Dir string
	// Logs, when true, lets the members log at warning level to stderr
	// (for debugging a test); by default they log nothing.
	Logs bool
	// TLS, when set, makes the members serve clients over TLS (https://
	// endpoints) with these PEM files.
	TLS *TLSFiles
}

// TLSFiles are the PEM files of a TLS cluster: the members' certificate
// and key (valid for 127.0.0.1), the CA that verifies them and, when
// ClientCertAuth is set, that clients must present a certificate it signed
// (ClientCert and ClientKey are the one Client uses).
type TLSFiles struct {
	CAFile, CertFile, KeyFile string
	ClientCertAuth            bool
	ClientCert, ClientKey     string
}

// Cluster is a running etcd cluster. Its methods are safe for concurrent use.
type Cluster struct {
	opts    Options
	dir     string
	ownsDir bool

	mu           sync.Mutex
	members      []*member
	clients      []*clientv3.Client
	closed       bool
	rootUser     string // set by EnableAuth
	rootPassword string
}

type member struct {
	name     string
	cfg      *embed.Config
	etcd     *embed.Etcd // nil while stopped
	endpoint string      // the proxy's URL, which clients use
	proxy    *proxy
}

// StartTimeout bounds how long Start waits for the cluster to elect a leader
// and for a restarted member to rejoin.
const StartTimeout = 30 * time.Second

// New starts a cluster for t and stops it (and closes every client it made)
// when t's cleanup runs. It fails t when the cluster does not start.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	c, err := Start(opts)
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Main is a package's TestMain around one cluster its tests share: it
// starts a cluster with opts, hands it to use, runs the tests, closes the
// cluster and exits with the tests' code. A cluster that does not start
// fails the run.
func Main(m *testing.M, opts Options, use func(*Cluster)) {
	c, err := Start(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	use(c)
	code := m.Run()
	c.Close()
	os.Exit(code)
}

// Start starts a cluster and waits until it has a leader. The caller must
// Close it (a TestMain does so after m.Run).
func Start(opts Options) (*Cluster, error) {
	if opts.Members <= 0 {
		opts.Members = 3
	}
	c := &Cluster{opts: opts, dir: opts.Dir}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "etcdtest-")
		if err != nil {
			return nil, err
		}
		c.dir, c.ownsDir = d, true
	}
	// Ports are picked by binding :0 and releasing them; another process
	// may take one in between, in which case the whole start is retried.
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = c.start(attempt); err == nil {
			return c, nil
		}
		c.stopAll()
	}
	if c.ownsDir {
		os.RemoveAll(c.dir)
	}
	return nil, err
}

func (c *Cluster) start(attempt int) error {
	n := c.opts.Members
	ports, err := freePorts(3 * n)
	if err != nil {
		return err
	}
	token := fmt.Sprintf("etcdtest-%d-%d", time.Now().UnixNano(), attempt)
	var initial []string
	c.members = make([]*member, n)
	for i := range n {
		name := fmt.Sprintf("m%d", i)
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[3*i])
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+1])
		front := fmt.Sprintf("127.0.0.1:%d", ports[3*i+2])
		initial = append(initial, name+"="+peer)
		cfg := embed.NewConfig()
		cfg.Name = name
		cfg.Dir = fmt.Sprintf("%s/%s-%d", c.dir, name, attempt)
		pu, _ := url.Parse(peer)
		cu, _ := url.Parse(client)
		cfg.ListenPeerUrls = []url.URL{*pu}
		cfg.AdvertisePeerUrls = []url.URL{*pu}
		cfg.ListenClientUrls = []url.URL{*cu}
		cfg.InitialClusterToken = token
		cfg.ClusterState = embed.ClusterStateFlagNew
		// 25 ms heartbeats and a 250 ms election timeout: a leader within
		// a second of start or of the leader's stop, with room for a
		// loaded machine (race detector, parallel packages) not to cause
		// spurious elections.
		cfg.TickMs = 25
		cfg.ElectionMs = 250
		cfg.UnsafeNoFsync = true
		cfg.SnapshotCount = 10000
		if c.opts.MaxTxnOps > 0 {
			cfg.MaxTxnOps = c.opts.MaxTxnOps
		}
		if c.opts.MaxRequestBytes > 0 {
			cfg.MaxRequestBytes = c.opts.MaxRequestBytes
		}
		if c.opts.Logs {
			cfg.LogLevel = "warn"
		} else {
			cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		}
		if t := c.opts.TLS; t != nil {
			// Members serve clients over TLS; peers stay on http.
			cu.Scheme = "https"
			cfg.ListenClientUrls = []url.URL{*cu}
			cfg.ClientTLSInfo = transport.TLSInfo{
				CertFile: t.CertFile, KeyFile: t.KeyFile, TrustedCAFile: t.CAFile,
				ClientCertAuth: t.ClientCertAuth,
			}
		}
		fu, _ := url.Parse(c.scheme() + "://" + front)
		cfg.AdvertiseClientUrls = []url.URL{*fu}
		p, err := newProxy(front, cu.Host)
		if err != nil {
			return err
		}
		c.members[i] = &member{name: name, cfg: cfg, endpoint: c.scheme() + "://" + front, proxy: p}
	}
	for _, m := range c.members {
		m.cfg.InitialCluster = strings.Join(initial, ",")
	}
	// Every member must be started before any can finish joining.
	for _, m := range c.members {
		e, err := embed.StartEtcd(m.cfg)
		if err != nil {
			return fmt.Errorf("start %s: %w", m.name, err)
		}
		m.etcd = e
	}
	for _, m := range c.members {
		if err := waitReady(m.etcd); err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
	}
	return nil
}

func waitReady(e *embed.Etcd) error {
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		return err
	case <-time.After(StartTimeout):
		return errors.New("not ready after " + StartTimeout.String())
	}
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Endpoints returns every member's client URL ("http://127.0.0.1:PORT"),
// running or not, in member order. Each is a TCP proxy in front of the
// member, which StopMember cuts, so that clients see the member go away at
// once.
func (c *Cluster) Endpoints() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.endpoint
	}
	return eps
}

func (c *Cluster) scheme() string {
	if c.opts.TLS != nil {
		return "https"
	}
	return "http"
}

// Client returns a new client connected to every member (with the
// cluster's TLS files, and as user root when EnableAuth was called); the
// cluster closes it on Close (a caller may close it earlier).
func (c *Cluster) Client() (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   c.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	if t := c.opts.TLS; t != nil {
		info := transport.TLSInfo{TrustedCAFile: t.CAFile, CertFile: t.ClientCert, KeyFile: t.ClientKey}
		tc, err := info.ClientConfig()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	c.mu.Lock()
	cfg.Username, cfg.Password = c.rootUser, c.rootPassword
	c.mu.Unlock()
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cli.Close()
		return nil, errors.New("etcdtest: cluster is closed")
	}
	c.clients = append(c.clients, cli)
	return cli, nil
}

// NewClient is Client for a test: it fails t on error.
func (c *Cluster) NewClient(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := c.Client()
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	return cli
}

// Size is the number of members, running or not.
func (c *Cluster) Size() int { return len(c.members) }

// StopMember stops member i (0-based) without handing over leadership
// first, as a member that dies would, keeping its data directory; the
// others keep a quorum as long as a majority runs (a stopped leader is
// replaced within about a second). Stopping a stopped member does nothing.
func (c *Cluster) StopMember(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[i]
	if m.etcd != nil {
		// Cut the clients' connections first, as a dead machine would;
		// etcd would otherwise wait seconds for open watch streams.
		m.proxy.cut()
		stop(m.etcd)
		m.etcd = nil
	}
}

// stop stops e's raft loop at once (no leadership transfer, which would
// wait for a peer that may itself be stopping), then closes its listeners.
func stop(e *embed.Etcd) {
	if e.Server != nil {
		e.Server.HardStop()
	}
	e.Close()
}

// RestartMember starts stopped member i again on the same ports and data
// directory and waits until it has rejoined the cluster. Restarting a
// running member does nothing.
func (c *Cluster) RestartMember(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("etcdtest: cluster is closed")
	}
	m := c.members[i]
	if m.etcd != nil {
		return nil
	}
	// The member's data directory already names the cluster; etcd
	// ignores the initial-cluster settings when it finds it.
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		var e *embed.Etcd
		if e, err = embed.StartEtcd(m.cfg); err == nil {
			if err = waitReady(e); err == nil {
				m.etcd = e
				m.proxy.up()
				return nil
			}
			e.Close()
		}
		// The old listeners may linger for a moment after Close.
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("etcdtest: restart %s: %w", m.name, err)
}

// Running reports whether member i runs.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].etcd != nil
}

// Leader returns the index of the member that is currently the leader, or
// -1 when no running member knows one.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.etcd == nil {
			continue
		}
		lead := m.etcd.Server.Leader()
		if lead == 0 {
			continue
		}
		for j, o := range c.members {
			if o.etcd != nil && uint64(o.etcd.Server.MemberID()) == uint64(lead) {
				return j
			}
		}
	}
	return -1
}

// Close closes the clients it made, stops every member and removes the
// data directories it created. Calling it more than once is harmless.
func (c *Cluster) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	clients := c.clients
	c.clients = nil
	c.mu.Unlock()
	for _, cli := range clients {
		cli.Close()
	}
	c.stopAll()
	if c.ownsDir {
		os.RemoveAll(c.dir)
	}
}

func (c *Cluster) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range c.members {
		if m == nil || m.etcd == nil {
			continue
		}
		wg.Add(1)
		m.proxy.cut()
		go func(e *embed.Etcd) {
			defer wg.Done()
			stop(e)
		}(m.etcd)
		m.etcd = nil
	}
	wg.Wait()
	for _, m := range c.members {
		if m != nil && m.proxy != nil {
			m.proxy.close()
		}
	}
}

var prefixes struct {
	sync.Mutex
	n int
}

// Prefix returns a key prefix unique within the process, derived from t's
// name ("etcdtest/<n>-<name>/"), so that tests sharing one cluster do not see
// each other's keys.
func Prefix(t testing.TB) string {
	prefixes.Lock()
	prefixes.n++
	n := prefixes.n
	prefixes.Unlock()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return fmt.Sprintf("etcdtest/%d-%s/", n, name)
}

// WaitHealthy waits until a linearizable read through cli succeeds (the
// cluster has a leader and a quorum), or ctx ends.
func WaitHealthy(ctx context.Context, cli *clientv3.Client) error {
	for {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := cli.Get(rctx, "etcdtest-health")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: cluster not healthy: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// EnableAuth turns etcd's authentication on: it creates user root with
// rootPassword (the clients of Client use it from then on) and user name
// with password, whose role may read and write the keys under prefix and
// nothing else.
func (c *Cluster) EnableAuth(ctx context.Context, rootPassword, name, password, prefix string) error {
	cli, err := c.Client()
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { _, err := cli.UserAdd(ctx, "root", rootPassword); return err },
		func() error { _, err := cli.RoleAdd(ctx, "root"); return err },
		func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := cli.UserAdd(ctx, name, password); return err },
		func() error { _, err := cli.RoleAdd(ctx, name); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, name, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserGrantRole(ctx, name, name); return err },
		func() error { _, err := cli.AuthEnable(ctx); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return fmt.Errorf("etcdtest: enable auth: %w", err)
		}
	}
	c.mu.Lock()
	c.rootUser, c.rootPassword = "root", rootPassword
	c.mu.Unlock()
	return nil
}

// Disconnect cuts the clients' connections to member i and refuses new ones
// until Reconnect, while the member itself keeps running with the cluster:
// a network partition between clients and one member.
func (c *Cluster) Disconnect(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members[i].proxy.cut()
}

// Reconnect lets clients reach member i again (a running one).
func (c *Cluster) Reconnect(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.members[i].etcd != nil {
		c.members[i].proxy.up()
	}
}

// WaitApplied waits until every running member has applied every entry the
// cluster had committed when it was called (say, a compaction), or ctx
// ends.
func (c *Cluster) WaitApplied(ctx context.Context) error {
	var target uint64
	c.mu.Lock()
	for _, m := range c.members {
		if m.etcd != nil {
			target = max(target, m.etcd.Server.CommittedIndex())
		}
	}
	c.mu.Unlock()
	for {
		behind := false
		c.mu.Lock()
		for _, m := range c.members {
			if m.etcd != nil && m.etcd.Server.AppliedIndex() < target {
				behind = true
			}
		}
		c.mu.Unlock()
		if !behind {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcdtest: members behind index %d: %w", target, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
