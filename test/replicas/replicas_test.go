// Package replicas holds the tests of several portal replicas sharing one
// catalog: full portals (package app's wiring, real listeners) on one real
// 3-member etcd cluster (internal/etcdtest) and one S3 bucket (versitygw,
// started by scripts/test.sh), as an operator runs them behind a load
// balancer.
//
// They check that what one replica changes, every other one enforces
// within a second (and log how long it took), that writes acknowledged
// while an etcd member stops are kept, and that the cluster-wide jobs move
// to another replica when the one running them dies.
package replicas

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/client"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/leader"
	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/tokens"
)

// target is how soon a change made on one replica must be enforced, or
// offered, by every other one.
const target = time.Second

// leaseTTL is the replicas' election lease in these tests: how long the
// others wait for a replica that died without resigning. Short, but with
// room for a loaded machine's pauses (a term ends when renewals go
// unacknowledged for four fifths of it).
const leaseTTL = 2 * time.Second

var cluster *etcdtest.Cluster

func TestMain(m *testing.M) {
	etcdtest.Main(m, etcdtest.Options{}, func(c *etcdtest.Cluster) { cluster = c })
}

// cliCtx acts as an offline command: the tests' direct service calls are
// audited as the CLI's.
var cliCtx = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

// env is what the replicas of one test share: the etcd cluster and key
// prefix, the S3 bucket, and the clock.
type env struct {
	t       *testing.T
	cluster *etcdtest.Cluster
	prefix  string
	s3      s3store.Config
	now     func() time.Time
	extra   map[string]string // more configuration keys
}

func newEnv(t *testing.T) *env {
	return &env{t: t, cluster: cluster, prefix: etcdtest.Prefix(t), s3: s3test.Config(t)}
}

// replica is one portal process: an App serving on a real listener.
type replica struct {
	name  string
	app   *app.App
	url   string
	logs  *syncBuffer
	done  chan error
	close sync.Once
}

// syncBuffer collects a replica's log lines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// config is the configuration of one replica: its own data directory and
// address, the shared etcd prefix and bucket. It goes through
// configs.Load, as `portal serve` reads it.
func (e *env) config(dir, url string) *configs.Config {
	e.t.Helper()
	flags := map[string]string{
		"data_dir": dir, "public_url": url, "log.access": "false",
		"store.backend": "etcd", "store.etcd.endpoints": strings.Join(e.cluster.Endpoints(), ","),
		"store.etcd.prefix": e.prefix,
		"objects.backend":   "s3", "objects.s3.bucket": e.s3.Bucket, "objects.s3.region": e.s3.Region,
		"objects.s3.endpoint": e.s3.Endpoint, "objects.s3.path_style": "true",
		"objects.s3.access_key": e.s3.AccessKey, "objects.s3.secret_key": e.s3.SecretKey,
		// Grants reach the ledger (and the quotas) at once.
		"downloads.ledger_flush_interval": "50ms",
		"admin.socket":                    "",
	}
	for k, v := range e.extra {
		flags[k] = v
	}
	cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// start opens a replica and serves it until the test ends (or kill).
func (e *env) start(name string) *replica {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	r := &replica{name: name, url: url, logs: &syncBuffer{}, done: make(chan error, 1)}
	log := slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := context.Background()
	a, err := app.Open(ctx, e.config(e.t.TempDir(), url), app.Options{Logger: log, LeaseTTL: leaseTTL, Now: e.now})
	if err != nil {
		ln.Close()
		e.t.Fatalf("open replica %s: %v", name, err)
	}
	r.app = a
	go func() { r.done <- a.Serve(ctx, ln) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop closes the replica cleanly: it resigns its leadership.
func (r *replica) stop(t *testing.T) {
	r.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.app.Close(ctx); err != nil {
			t.Errorf("close replica %s: %v", r.name, err)
		}
		if err := <-r.done; err != nil {
			t.Errorf("replica %s served: %v", r.name, err)
		}
	})
}

// kill stops the replica as a crash would, as far as the cluster sees it:
// its election lease is no longer renewed and never revoked, so the other
// replicas must wait for it to expire. Then the process's resources are
// released.
func (r *replica) kill(t *testing.T) {
	el, ok := r.app.Leader.Elector().(*leader.Etcd)
	if !ok {
		t.Fatalf("replica %s does not elect through etcd", r.name)
	}
	el.Orphan()
	r.stop(t)
}

// admin returns an admin token, created on r's store (shared by all).
func admin(t *testing.T, r *replica) string {
	t.Helper()
	_, raw, err := r.app.Tokens.Create(cliCtx, "replicas test", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return client.Bearer(raw)
}

// noRedirect is an HTTP client that shows redirects instead of following
// them.
var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// call sends one request and returns the status and body.
func call(t *testing.T, method, url, auth string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return res.StatusCode, b
}

// must is call that fails the test unless the status is want; it decodes
// the body into out when out is not nil.
func must(t *testing.T, want int, method, url, auth string, in, out any) {
	t.Helper()
	status, b := call(t, method, url, auth, in)
	if status != want {
		t.Fatalf("%s %s: %d %s; want %d", method, url, status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
}

// errorCode is the code of a portal error body, or "".
func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(b, &e)
	return e.Error.Code
}

// propagation records how long each change took to reach the other
// replica, for the log.
type propagation struct {
	mu   sync.Mutex
	seen map[string][]time.Duration
}

var measured = &propagation{seen: map[string][]time.Duration{}}

func (p *propagation) add(what string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[what] = append(p.seen[what], d)
}

// until polls check (every 2 ms) until it holds, and returns how long that
// took since start; it fails the test when that is beyond limit, naming
// what was awaited.
func until(t *testing.T, start time.Time, limit time.Duration, what string, check func() bool) time.Duration {
	t.Helper()
	for {
		if check() {
			d := time.Since(start)
			if d > limit {
				t.Errorf("%s: took %s, beyond %s", what, d.Round(time.Millisecond), limit)
			}
			return d
		}
		if time.Since(start) > limit+5*time.Second {
			t.Fatalf("%s: not after %s", what, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// propagate is until with the one-second target, recorded under what.
func propagate(t *testing.T, start time.Time, what string, check func() bool) {
	t.Helper()
	d := until(t, start, target, what, check)
	measured.add(what, d)
	t.Logf("%s: %s", what, d.Round(100*time.Microsecond))
}

// build is one file of a release.
type build struct {
	filename string
	content  []byte
}

func (b build) sha256() string {
	s := sha256.Sum256(b.content)
	return hex.EncodeToString(s[:])
}

func linuxBuild(product, version string) build {
	return build{
		filename: fmt.Sprintf("%s-%s-x86_64.AppImage", product, version),
		content:  []byte(strings.Repeat(product+" "+version+" ", 1000)),
	}
}

// publish creates, uploads (to S3, through the presigned PUT), completes
// and publishes a release with one linux/amd64 build, through r's API.
func publish(t *testing.T, r *replica, auth, product, version string) build {
	t.Helper()
	ctx := context.Background()
	c := client.New(r.url, auth)
	b := linuxBuild(product, version)
	if _, err := c.CreateRelease(ctx, product, client.NewRelease{Version: version}); err != nil {
		t.Fatal(err)
	}
	_, up, err := c.DeclareArtifact(ctx, product, version, client.NewArtifact{
		Filename: b.filename, Platform: "linux", Arch: "amd64", Size: int64(len(b.content)), SHA256: b.sha256(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.UploadFile(ctx, up, bytes.NewReader(b.content), int64(len(b.content)), client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CompleteArtifact(ctx, product, version, b.filename); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, product, version); err != nil {
		t.Fatal(err)
	}
	return b
}

// newLicense creates a license for product through r's API and returns
// its id and key.
func newLicense(t *testing.T, r *replica, auth, product string) (string, string) {
	t.Helper()
	var out struct {
		License struct{ ID string } `json:"license"`
		Key     string              `json:"key"`
	}
	must(t, 201, "POST", r.url+"/v1/licenses", auth, map[string]any{"customer": "Replica Test Ltd", "product": product}, &out)
	return out.License.ID, out.Key
}

// upgradeTo returns the version r's upgrade API offers from current, or ""
// (204).
func upgradeTo(t *testing.T, r *replica, lic, product, current string) string {
	t.Helper()
	status, b := call(t, "GET", r.url+"/v1/products/"+product+"/upgrade?platform=linux&arch=amd64&current="+current, lic, nil)
	switch status {
	case 204:
		return ""
	case 200:
		var out struct{ Version string }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out.Version
	}
	t.Fatalf("upgrade on %s: %d %s", r.name, status, b)
	return ""
}

// electronVersion returns the version of r's electron-updater feed for
// linux x64, or "" when the feed has none (404).
func electronVersion(t *testing.T, r *replica, lic, product string) string {
	t.Helper()
	status, b := call(t, "GET", r.url+"/feeds/"+product+"/electron/latest-linux.yml", lic, nil)
	if status == 404 {
		return ""
	}
	if status != 200 {
		t.Fatalf("electron feed on %s: %d %s", r.name, status, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "version: "); ok {
			return strings.Trim(v, `'"`)
		}
	}
	t.Fatalf("electron feed without a version: %s", b)
	return ""
}

// download asks r for the build of version (one request, with Accept:
// application/json) and fetches it from S3 through the minted URL; it
// returns the portal's status and error code, and the bytes when granted.
func download(t *testing.T, r *replica, lic, product, version string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", r.url+"/v1/products/"+product+"/releases/"+version+"/download?platform=linux&arch=amd64", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", lic)
	req.Header.Set("Accept", "application/json")
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		return res.StatusCode, errorCode(b), nil
	}
	var g struct{ URL string }
	if err := json.Unmarshal(b, &g); err != nil || g.URL == "" {
		t.Fatalf("grant on %s: %s (%v)", r.name, b, err)
	}
	return 200, "", fetch(t, g.URL)
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET the minted URL: %d, %v", res.StatusCode, err)
	}
	return b
}

// TestReplicasAgree: two replicas, A and B, on one etcd prefix and one
// bucket. What one changes, the other enforces or offers within a second.
func TestReplicasAgree(t *testing.T) {
	e := newEnv(t)
	a := e.start("A")
	b := e.start("B")
	auth := admin(t, a)
	const product = "replicated"
	must(t, 201, "POST", a.url+"/v1/products", auth, map[string]any{"slug": product, "name": "Replicated", "distribution": "licensed"}, nil)
	licID, key := newLicense(t, b, auth, product)
	lic := client.License(key)

	// Publish on A; download through B, from the shared bucket.
	v1 := publish(t, a, auth, product, "1.0.0")
	published := time.Now()
	propagate(t, published, "publish on A -> offered by B's upgrade API", func() bool {
		return upgradeTo(t, b, lic, product, "0.9.0") == "1.0.0"
	})
	propagate(t, published, "publish on A -> in B's electron feed", func() bool {
		return electronVersion(t, b, lic, product) == "1.0.0"
	})
	if status, code, got := download(t, b, lic, product, "1.0.0"); status != 200 || !bytes.Equal(got, v1.content) {
		t.Fatalf("download through B: %d %s, %d bytes; want the published bytes", status, code, len(got))
	}

	// A second publish, on a product both replicas already hold.
	publish(t, a, auth, product, "1.1.0")
	published = time.Now()
	propagate(t, published, "publish on A -> offered by B's upgrade API", func() bool {
		return upgradeTo(t, b, lic, product, "1.0.0") == "1.1.0"
	})
	propagate(t, published, "publish on A -> in B's electron feed", func() bool {
		return electronVersion(t, b, lic, product) == "1.1.0"
	})

	// Yank on B: gone from A's upgrade API and feed, and refused there.
	must(t, 200, "POST", b.url+"/v1/products/"+product+"/releases/1.1.0/yank", auth, nil, nil)
	yanked := time.Now()
	propagate(t, yanked, "yank on B -> gone from A's upgrade API", func() bool {
		return upgradeTo(t, a, lic, product, "1.0.0") == ""
	})
	propagate(t, yanked, "yank on B -> gone from A's electron feed", func() bool {
		return electronVersion(t, a, lic, product) == "1.0.0"
	})
	if status, _, _ := download(t, a, lic, product, "1.1.0"); status == 200 {
		t.Fatal("A grants a release yanked on B")
	}

	// A share link made on A opens on B (the link secret is shared); a
	// revocation on A is refused by B.
	var link struct{ ID, URL string }
	must(t, 201, "POST", a.url+"/v1/links", lic, map[string]any{"product": product, "version": "1.0.0", "filename": v1.filename, "ttl": "1h"}, &link)
	_, token, _ := strings.Cut(link.URL, "/d/")
	if status, body := call(t, "GET", b.url+"/d/"+token, "", nil); status != 303 {
		t.Fatalf("A's share link on B: %d %s", status, body)
	}
	must(t, 204, "DELETE", a.url+"/v1/links/"+link.ID, lic, nil, nil)
	revoked := time.Now()
	propagate(t, revoked, "link revoked on A -> refused by B", func() bool {
		status, body := call(t, "GET", b.url+"/d/"+token, "", nil)
		return status == 403 && errorCode(body) == "link_revoked"
	})

	// Suspend on B: A refuses the license's downloads and its links.
	var link2 struct{ ID, URL string }
	must(t, 201, "POST", b.url+"/v1/links", lic, map[string]any{"product": product, "version": "1.0.0", "filename": v1.filename, "ttl": "1h"}, &link2)
	_, token2, _ := strings.Cut(link2.URL, "/d/")
	if status, _, _ := download(t, a, lic, product, "1.0.0"); status != 200 {
		t.Fatalf("download on A before the suspension: %d", status)
	}
	must(t, 200, "POST", b.url+"/v1/licenses/"+licID+"/suspend", auth, nil, nil)
	suspended := time.Now()
	propagate(t, suspended, "suspend on B -> download refused by A", func() bool {
		status, code, _ := download(t, a, lic, product, "1.0.0")
		return status == 403 && code == "license_suspended"
	})
	propagate(t, suspended, "suspend on B -> share link refused by A", func() bool {
		status, _ := call(t, "GET", a.url+"/d/"+token2, "", nil)
		return status == 403
	})
	propagate(t, suspended, "suspend on B -> upgrade check refused by A", func() bool {
		status, _ := call(t, "GET", a.url+"/v1/products/"+product+"/upgrade?platform=linux&arch=amd64&current=0.1.0", lic, nil)
		return status == 403
	})

	// Reinstate on A: B serves the license again.
	must(t, 200, "POST", a.url+"/v1/licenses/"+licID+"/reinstate", auth, nil, nil)
	reinstated := time.Now()
	propagate(t, reinstated, "reinstate on A -> download granted by B", func() bool {
		status, _, _ := download(t, b, lic, product, "1.0.0")
		return status == 200
	})

	// Revoke an admin token on A: B refuses it.
	var tok struct{ ID, Token string }
	must(t, 201, "POST", a.url+"/v1/tokens", auth, map[string]any{"name": "short-lived", "role": "admin"}, &tok)
	must(t, 200, "GET", b.url+"/v1/products", client.Bearer(tok.Token), nil, nil)
	must(t, 204, "DELETE", a.url+"/v1/tokens/"+tok.ID, auth, nil, nil)
	deleted := time.Now()
	propagate(t, deleted, "token deleted on A -> refused by B", func() bool {
		status, _ := call(t, "GET", b.url+"/v1/products", client.Bearer(tok.Token), nil)
		return status == 401
	})

	// Exactly one of the two runs the cluster-wide jobs (waited for: a
	// term may be changing hands on a loaded machine).
	until(t, time.Now(), 3*leaseTTL, "exactly one replica leads", func() bool {
		return a.app.Leader.Leading() != b.app.Leader.Leading()
	})
}

// TestWritesSurviveAMemberStop: while both replicas take a stream of
// writes (license creations), one etcd member stops (the cluster's
// leader, the worst case) and comes back; every write a replica
// acknowledged is then readable through both.
func TestWritesSurviveAMemberStop(t *testing.T) {
	e := newEnv(t)
	e.cluster = etcdtest.New(t, etcdtest.Options{}) // its own, to stop a member of
	a := e.start("A")
	b := e.start("B")
	auth := admin(t, a)
	const product = "durable"
	must(t, 201, "POST", a.url+"/v1/products", auth, map[string]any{"slug": product, "name": "Durable"}, nil)

	var (
		mu      sync.Mutex
		acked   []string
		refused = map[int]int{}
	)
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		r := []*replica{a, b}[w%2]
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				body, _ := json.Marshal(map[string]any{"customer": fmt.Sprintf("writer %d #%d", w, i), "product": product})
				req, _ := http.NewRequestWithContext(ctx, "POST", r.url+"/v1/licenses", bytes.NewReader(body))
				req.Header.Set("Authorization", auth)
				req.Header.Set("Content-Type", "application/json")
				res, err := noRedirect.Do(req)
				if err != nil {
					continue // no answer: not acknowledged
				}
				var out struct {
					License struct{ ID string } `json:"license"`
				}
				json.NewDecoder(res.Body).Decode(&out)
				res.Body.Close()
				mu.Lock()
				if res.StatusCode == 201 && out.License.ID != "" {
					acked = append(acked, out.License.ID)
				} else {
					refused[res.StatusCode]++
				}
				mu.Unlock()
			}
		})
	}
	t0 := time.Now()
	time.Sleep(time.Second)
	before := count()
	stopped := max(e.cluster.Leader(), 0)
	e.cluster.StopMember(stopped)
	down := count()
	t.Logf("etcd member %d (the cluster's leader) stopped after %d acknowledged writes (%d when its stop returned, after %s)",
		stopped, before, down, time.Since(t0).Round(time.Millisecond))
	time.Sleep(time.Second)
	whileDown := count() - down
	if err := e.cluster.RestartMember(stopped); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d writes acknowledged in %s by 4 writers, %d of them in the second the member was down; refused: %v",
		len(acked), time.Since(t0).Round(time.Millisecond), whileDown, refused)
	if whileDown == 0 {
		t.Fatal("no write was acknowledged while the member was down")
	}
	for _, r := range []*replica{a, b} {
		for _, id := range acked {
			must(t, 200, "GET", r.url+"/v1/licenses/"+id, auth, nil, nil)
		}
	}
	// And nothing beyond: the store holds exactly the acknowledged
	// licenses, besides those whose answer was lost.
	ids := map[string]bool{}
	if err := client.New(a.url, auth).ListAll(context.Background(), "/v1/licenses", nil, "licenses", func(items []json.RawMessage) error {
		for _, it := range items {
			var l struct{ ID string }
			json.Unmarshal(it, &l)
			ids[l.ID] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		if !ids[id] {
			t.Errorf("acknowledged license %s missing from the list", id)
		}
	}
	if lost := len(ids) - len(acked); lost < 0 || lost > refused[0]+refused[500]+refused[503]+4 {
		t.Errorf("%d licenses stored, %d acknowledged, refusals %v", len(ids), len(acked), refused)
	}
}

// clock is the replicas' shared clock, which a test moves forward.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// TestSweepMovesWhenItsReplicaDies: with three replicas, the expired-upload
// sweep runs on the one that leads, only there; when that replica dies
// without resigning, exactly one of the others takes the jobs over once
// its lease expires.
func TestSweepMovesWhenItsReplicaDies(t *testing.T) {
	e := newEnv(t)
	c := &clock{}
	e.now = c.now
	e.extra = map[string]string{"uploads.sweep_interval": "100ms"}
	a := e.start("A")
	until(t, time.Now(), 5*time.Second, "A leads", a.app.Leader.Leading)
	b := e.start("B")
	c3 := e.start("C")
	auth := admin(t, a)
	const product = "swept"
	must(t, 201, "POST", b.url+"/v1/products", auth, map[string]any{"slug": product, "name": "Swept"}, nil)
	cl := client.New(b.url, auth)
	ctx := context.Background()

	// declareExpired declares an artifact on B that is never uploaded, and
	// moves the clock past its upload URL's expiry and grace.
	declareExpired := func(version string) {
		t.Helper()
		if _, err := cl.CreateRelease(ctx, product, client.NewRelease{Version: version}); err != nil {
			t.Fatal(err)
		}
		bd := linuxBuild(product, version)
		if _, _, err := cl.DeclareArtifact(ctx, product, version, client.NewArtifact{
			Filename: bd.filename, Platform: "linux", Arch: "amd64", Size: int64(len(bd.content)), SHA256: bd.sha256(),
		}); err != nil {
			t.Fatal(err)
		}
		c.add(3 * time.Hour)
	}
	failed := func(version string) func() bool {
		return func() bool {
			rel, err := cl.Release(ctx, product, version)
			if err != nil {
				t.Fatal(err)
			}
			return len(rel.Artifacts) == 1 && rel.Artifacts[0].Status == "failed"
		}
	}
	const swept = "expired uploads failed"

	declareExpired("1.0.0")
	until(t, time.Now(), 5*time.Second, "the leader sweeps 1.0.0", failed("1.0.0"))
	// The sweep logs once it has also deleted the storage.
	until(t, time.Now(), 5*time.Second, "A logs its sweep", func() bool { return strings.Contains(a.logs.String(), swept) })
	if strings.Contains(b.logs.String(), swept) || strings.Contains(c3.logs.String(), swept) {
		t.Fatalf("the sweep ran on B %v, on C %v; want only on A, which leads",
			strings.Contains(b.logs.String(), swept), strings.Contains(c3.logs.String(), swept))
	}

	killed := time.Now()
	a.kill(t)
	var next, idle *replica
	took := until(t, killed, leaseTTL+5*time.Second, "B or C takes over", func() bool {
		switch {
		case b.app.Leader.Leading() && c3.app.Leader.Leading():
			t.Fatal("B and C both lead")
		case b.app.Leader.Leading():
			next, idle = b, c3
		case c3.app.Leader.Leading():
			next, idle = c3, b
		}
		return next != nil
	})
	t.Logf("%s leads %s after A died (lease TTL %s)", next.name, took.Round(time.Millisecond), leaseTTL)
	if took < leaseTTL/2 {
		t.Errorf("%s led %s after A died: before A's lease could expire", next.name, took)
	}
	declareExpired("1.0.1")
	until(t, time.Now(), 5*time.Second, next.name+" sweeps 1.0.1", failed("1.0.1"))
	until(t, time.Now(), 5*time.Second, next.name+" logs its sweep", func() bool { return strings.Contains(next.logs.String(), swept) })
	if idle.app.Leader.Leading() || strings.Contains(idle.logs.String(), swept) {
		t.Fatalf("%s, which does not lead, swept", idle.name)
	}
}

// TestCloseWithoutEtcd: a replica whose etcd cluster has lost its quorum
// still shuts down (the final writes are bounded by ShutdownTimeout, what
// they could not write is reported), instead of waiting for ever.
func TestCloseWithoutEtcd(t *testing.T) {
	e := newEnv(t)
	e.cluster = etcdtest.New(t, etcdtest.Options{Members: 1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	a, err := app.Open(context.Background(), e.config(t.TempDir(), url), app.Options{
		Logger: slog.New(slog.DiscardHandler), LeaseTTL: leaseTTL, ShutdownTimeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(context.Background(), ln) }()
	r := &replica{name: "A", app: a, url: url}
	// A token used, so the last-use flush has something to write.
	must(t, 200, "GET", url+"/v1/products", admin(t, r), nil, nil)
	until(t, time.Now(), 5*time.Second, "A leads", a.Leader.Leading)

	e.cluster.StopMember(0)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- a.Close(ctx) }()
	select {
	case err := <-closed:
		t.Logf("Close without etcd returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
		if err == nil {
			t.Error("Close reported no error, but the final writes cannot have reached the store")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for etcd after 30 s")
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

// TestZZPropagationSummary logs the propagation times the tests above
// measured (it runs last: tests run in source order).
func TestZZPropagationSummary(t *testing.T) { logMeasured(t) }

// logMeasured logs every propagation measured so far.
func logMeasured(t *testing.T) {
	measured.mu.Lock()
	defer measured.mu.Unlock()
	var names []string
	for k := range measured.seen {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		ds := measured.seen[k]
		var max time.Duration
		for _, d := range ds {
			max = maxDur(max, d)
		}
		t.Logf("propagation %-55s n=%d max=%s", k, len(ds), max.Round(100*time.Microsecond))
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}
