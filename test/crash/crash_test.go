// Package crash holds the crash-safety test: `portal serve`, the real
// binary, killed with SIGKILL under concurrent writes and restarted on the
// same data directory.
package crash

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// flushInterval is downloads.ledger_flush_interval for the run. README
// ("Every grant goes to the download ledger") documents what a crash may
// lose: the grants of the last flush interval. A grant is lost only if it
// was queued after the last flush that committed began, so the window a
// lost grant may come from is one interval plus the time that flush took
// to commit; lostWindow allows one more interval and a second for fsync on
// a loaded machine.
const (
	flushInterval = 200 * time.Millisecond
	lostWindow    = 2*flushInterval + time.Second
)

// The kill comes once this much was acknowledged and the load has run for
// several flush intervals (so that some grants were flushed and must
// survive, and some were not), or after maxLoad, whichever is first; every
// worker loop is bounded by count too.
const (
	killAfterGrants    = 1000
	killAfterPublishes = 4
	minLoad            = 5 * flushInterval
	maxLoad            = 5 * time.Second
	maxIterations      = 100000
)

func TestKillDuringWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the portal binary")
	}
	bin := buildPortal(t)
	dir := t.TempDir()
	p := &portal{t: t, bin: bin, dataDir: dir}
	p.admin = strings.TrimSpace(p.run("token", "create", "--role", "admin", "--name", "crash"))
	p.start()
	defer p.stop()

	// The catalog the grants download from.
	p.must(201, "POST", "/v1/products", "", map[string]any{"slug": "acme", "name": "Acme", "distribution": "licensed"}, nil)
	file := p.publishRelease("1.0.0")
	var grantKeys []string
	var grantIDs []string
	for i := range 4 {
		id, key := p.createLicense(fmt.Sprintf("grantee %d", i))
		grantIDs, grantKeys = append(grantIDs, id), append(grantKeys, key)
	}

	rec := &record{releases: map[string]*releaseAck{}, licenses: map[string]*licenseAck{}, progress: make(chan struct{}, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), maxLoad)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() { p.publisher(ctx, w, rec) })
	}
	for w := range 2 {
		wg.Go(func() { p.licenseEditor(ctx, w, rec) })
	}
	for w := range 4 {
		key, id := grantKeys[w%len(grantKeys)], grantIDs[w%len(grantIDs)]
		wg.Go(func() { p.granter(ctx, w, id, key, file, rec) })
	}
	// Kill mid-stream: while every worker still has requests in flight.
	loadStart := time.Now()
	for ctx.Err() == nil {
		if rec.grantCount() >= killAfterGrants && rec.publishCount() >= killAfterPublishes && time.Since(loadStart) >= minLoad {
			break
		}
		select {
		case <-ctx.Done():
		case <-rec.progress:
		}
	}
	killedAt := time.Now()
	p.kill()
	cancel()
	wg.Wait()
	t.Logf("killed after %v of load: %d acknowledged grants, %d publishes, %d license changes",
		killedAt.Sub(loadStart).Round(time.Millisecond), rec.grantCount(), rec.publishCount(), rec.licenseChanges.Load())
	if rec.grantCount() == 0 || rec.publishCount() == 0 || rec.licenseChanges.Load() == 0 {
		t.Fatalf("the load acknowledged too little to test anything")
	}

	checkBolt(t, filepath.Join(dir, "portal.db"))

	p.start()
	p.checkReleases(rec)
	p.checkLicenses(rec)
	p.checkLedger(rec, grantIDs, killedAt)
}

// buildPortal compiles cmd/portal into a temporary directory.
func buildPortal(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "portal")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command(goBin, append(args, "github.com/portaldist/portal/cmd/portal")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// checkBolt opens the database the killed process left, read-only, and
// runs bbolt's consistency check (what `bbolt check` runs).
func checkBolt(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("open %s after the kill: %v", path, err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			n++
			t.Errorf("bbolt check: %v", err)
		}
		return nil
	})
	if err != nil || n > 0 {
		t.Fatalf("bbolt check after the kill: %d problems, %v", n, err)
	}
}

// portal runs the binary on one data directory.
type portal struct {
	t       *testing.T
	bin     string
	dataDir string
	admin   string
	base    string
	cmd     *exec.Cmd
	exited  chan struct{}
	stderr  *bytes.Buffer
	client  *http.Client
}

func (p *portal) env(port string) []string {
	env := []string{
		"PORTAL_DATA_DIR=" + p.dataDir,
		"PORTAL_LISTEN=127.0.0.1:" + port,
		"PORTAL_PUBLIC_URL=http://127.0.0.1:" + port,
		"PORTAL_DOWNLOADS_LEDGER_FLUSH_INTERVAL=" + flushInterval.String(),
		"PORTAL_LOG_ACCESS=false",
		"PORTAL_LIMITS_AUTH_FAILURES_PER_MINUTE=1000",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORTAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// run runs a one-shot subcommand and returns its standard output.
func (p *portal) run(args ...string) string {
	p.t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = p.env("0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		p.t.Fatalf("portal %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// start runs `portal serve` on a free loopback port and waits until it
// answers /healthz.
func (p *portal) start() {
	p.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		p.t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p.base = "http://127.0.0.1:" + port
	p.stderr = &bytes.Buffer{}
	p.cmd = exec.Command(p.bin, "serve")
	p.cmd.Env = p.env(port)
	p.cmd.Stderr = &syncWriter{w: p.stderr}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	p.client = &http.Client{
		Timeout:       20 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 32},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i := 0; ; i++ {
		res, err := p.client.Get(p.base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		select {
		case <-p.exited:
			p.t.Fatalf("portal serve exited while starting:\n%s", p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
		if i == 600 {
			p.t.Fatalf("portal serve did not answer /healthz:\n%s", p.stderr)
		}
	}
}

func (p *portal) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatal(err)
	}
	<-p.exited
	p.client.CloseIdleConnections()
}

// stop ends the restarted server cleanly and fails the test if it does not
// exit by itself.
func (p *portal) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
		p.t.Errorf("portal serve did not exit on SIGTERM")
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// do sends a request; auth "" means the admin token. It returns the status
// (0 when the request got no answer) and the body.
func (p *portal) do(ctx context.Context, method, path, auth string, body any, hdr map[string]string) (int, []byte) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	url := path
	if strings.HasPrefix(path, "/") {
		url = p.base + path
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil
	}
	if auth == "" {
		auth = "Bearer " + p.admin
	}
	req.Header.Set("Authorization", auth)
	if body != nil {
		if _, raw := body.([]byte); !raw {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b, ok := body.([]byte); ok {
		req.ContentLength = int64(len(b))
	}
	res, err := p.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil // the answer was cut: not acknowledged
	}
	return res.StatusCode, b
}

// must sends a request outside the load and fails the test on another
// status.
func (p *portal) must(status int, method, path, auth string, body, out any) {
	p.t.Helper()
	got, b := p.do(context.Background(), method, path, auth, body, nil)
	if got != status {
		p.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

type upload struct {
	Artifact struct{ Filename, Status string }
	Upload   struct {
		Method, URL string
		Headers     map[string]string
	}
}

func artifactFor(version string) (name string, data []byte, sum string) {
	data = []byte("acme " + version + " build\n" + strings.Repeat("x", 512))
	s := sha256.Sum256(data)
	return "acme-" + version + "-linux-amd64.tar.gz", data, hex.EncodeToString(s[:])
}

// publishRelease publishes version with one artifact, outside the load.
func (p *portal) publishRelease(version string) string {
	p.t.Helper()
	name, data, sum := artifactFor(version)
	rel := "/v1/products/acme/releases/"
	p.must(201, "POST", rel[:len(rel)-1], "", map[string]any{"version": version}, nil)
	var up upload
	p.must(201, "POST", rel+version+"/artifacts", "",
		map[string]any{"filename": name, "platform": "linux", "arch": "amd64", "size": len(data), "sha256": sum}, &up)
	if st, b := p.do(context.Background(), up.Upload.Method, up.Upload.URL, "none", data, up.Upload.Headers); st != 200 {
		p.t.Fatalf("upload: %d %s", st, b)
	}
	p.must(200, "POST", rel+version+"/artifacts/"+name+"/complete", "", nil, nil)
	p.must(200, "POST", rel+version+"/publish", "", nil, nil)
	return name
}

func (p *portal) createLicense(customer string) (id, key string) {
	p.t.Helper()
	var out struct {
		License struct{ ID string }
		Key     string
	}
	p.must(201, "POST", "/v1/licenses", "", map[string]any{"customer": customer, "product": "acme"}, &out)
	return out.License.ID, out.Key
}

// What the server acknowledged (answered 2xx to) before the kill.

type releaseAck struct {
	stage   int // 1 release created, 2 artifact added, 3 uploaded and completed, 4 published
	pending int // the stage of a request sent and not answered, 0 when none
}

type licenseAck struct {
	status  string // last acknowledged: active or suspended
	pending string // the status of a request sent and not answered, "" when none
}

type grantAck struct {
	license, agent string
	at             time.Time
}

type record struct {
	mu             sync.Mutex
	releases       map[string]*releaseAck
	licenses       map[string]*licenseAck
	grants         []grantAck
	published      int
	licenseChanges atomic.Int64
	progress       chan struct{} // a non-blocking signal of each acknowledgement
}

func (r *record) notify() {
	select {
	case r.progress <- struct{}{}:
	default:
	}
}

func (r *record) grantCount() int   { r.mu.Lock(); defer r.mu.Unlock(); return len(r.grants) }
func (r *record) publishCount() int { r.mu.Lock(); defer r.mu.Unlock(); return r.published }

// publisher creates, uploads, completes and publishes releases 2.<w>.<i>.
func (p *portal) publisher(ctx context.Context, w int, rec *record) {
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		version := fmt.Sprintf("2.%d.%d", w, i)
		name, data, sum := artifactFor(version)
		rel := "/v1/products/acme/releases/" + version
		ack := &releaseAck{}
		rec.mu.Lock()
		rec.releases[version] = ack
		rec.mu.Unlock()
		step := func(stage, want int, method, url, auth string, body any, hdr map[string]string, out any) bool {
			rec.mu.Lock()
			ack.pending = stage
			rec.mu.Unlock()
			st, b := p.do(ctx, method, url, auth, body, hdr)
			if st != want {
				if st != 0 && ctx.Err() == nil {
					p.t.Errorf("%s %s: %d %s", method, url, st, b)
				}
				return false
			}
			if out != nil && json.Unmarshal(b, out) != nil {
				p.t.Errorf("%s %s: body %s", method, url, b)
				return false
			}
			rec.mu.Lock()
			if stage > 0 {
				ack.stage, ack.pending = stage, 0
			}
			if stage == 4 {
				rec.published++
			}
			rec.mu.Unlock()
			rec.notify()
			return true
		}
		var up upload
		if !step(1, 201, "POST", "/v1/products/acme/releases", "", map[string]any{"version": version}, nil, nil) ||
			!step(2, 201, "POST", rel+"/artifacts", "", map[string]any{"filename": name, "platform": "linux", "arch": "amd64", "size": len(data), "sha256": sum}, nil, &up) ||
			!step(0, 200, up.Upload.Method, up.Upload.URL, "none", data, up.Upload.Headers, nil) ||
			!step(3, 200, "POST", rel+"/artifacts/"+name+"/complete", "", nil, nil, nil) ||
			!step(4, 200, "POST", rel+"/publish", "", nil, nil, nil) {
			return
		}
	}
}

// licenseEditor creates licenses and suspends and reinstates them.
func (p *portal) licenseEditor(ctx context.Context, w int, rec *record) {
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		pending := &licenseAck{pending: "active"}
		st, b := p.do(ctx, "POST", "/v1/licenses", "", map[string]any{"customer": fmt.Sprintf("editor %d/%d", w, i), "product": "acme"}, nil)
		if st != 201 {
			if st != 0 && ctx.Err() == nil {
				p.t.Errorf("create license: %d %s", st, b)
			}
			return // a create that got no answer is not acknowledged: nothing to check
		}
		var out struct{ License struct{ ID string } }
		if json.Unmarshal(b, &out) != nil || out.License.ID == "" {
			p.t.Errorf("create license: %s", b)
			return
		}
		id := out.License.ID
		rec.mu.Lock()
		pending.status, pending.pending = "active", ""
		rec.licenses[id] = pending
		rec.mu.Unlock()
		rec.licenseChanges.Add(1)
		for _, to := range []struct{ verb, status string }{{"suspend", "suspended"}, {"reinstate", "active"}, {"suspend", "suspended"}} {
			rec.mu.Lock()
			pending.pending = to.status
			rec.mu.Unlock()
			st, b := p.do(ctx, "POST", "/v1/licenses/"+id+"/"+to.verb, "", nil, nil)
			if st != 200 {
				if st != 0 && ctx.Err() == nil {
					p.t.Errorf("%s license: %d %s", to.verb, st, b)
				}
				return
			}
			rec.mu.Lock()
			pending.status, pending.pending = to.status, ""
			rec.mu.Unlock()
			rec.licenseChanges.Add(1)
		}
	}
}

// granter downloads the published artifact as one license, each grant
// with its own User-Agent so the ledger rows can be matched to the answers.
func (p *portal) granter(ctx context.Context, w int, id, key, file string, rec *record) {
	path := "/v1/products/acme/releases/1.0.0/artifacts/" + file + "/download"
	for i := 0; i < maxIterations && ctx.Err() == nil; i++ {
		agent := fmt.Sprintf("crash-test/%d/%d", w, i)
		st, b := p.do(ctx, "GET", path, "License "+key, nil, map[string]string{"Accept": "application/json", "User-Agent": agent})
		if st != 200 {
			if st != 0 && ctx.Err() == nil {
				p.t.Errorf("grant: %d %s", st, b)
			}
			return
		}
		rec.mu.Lock()
		rec.grants = append(rec.grants, grantAck{license: id, agent: agent, at: time.Now()})
		rec.mu.Unlock()
		rec.notify()
	}
}

// checkReleases: every acknowledged release, artifact, upload and publish
// survived (an unanswered request may have gone either way).
func (p *portal) checkReleases(rec *record) {
	p.t.Helper()
	for version, ack := range rec.releases {
		if ack.stage == 0 {
			continue
		}
		st, b := p.do(context.Background(), "GET", "/v1/products/acme/releases/"+version, "", nil, nil)
		if st != 200 {
			p.t.Errorf("release %s was acknowledged (stage %d) but is gone: %d %s", version, ack.stage, st, b)
			continue
		}
		var r struct {
			Status    string
			Artifacts []struct{ Filename, Status string }
		}
		if err := json.Unmarshal(b, &r); err != nil {
			p.t.Fatal(err)
		}
		stage := 1
		if len(r.Artifacts) == 1 {
			stage = 2
			if r.Artifacts[0].Status == "uploaded" {
				stage = 3
			}
		}
		if r.Status == "published" {
			stage = 4
		}
		if stage < ack.stage || (stage > ack.stage && stage > ack.pending) {
			p.t.Errorf("release %s: stage %d after restart (status %s, artifacts %+v); acknowledged %d, in flight %d",
				version, stage, r.Status, r.Artifacts, ack.stage, ack.pending)
		}
	}
}

// checkLicenses: every acknowledged license exists with its last
// acknowledged status, or the status of the change in flight at the kill.
func (p *portal) checkLicenses(rec *record) {
	p.t.Helper()
	for id, ack := range rec.licenses {
		var l struct{ Status string }
		p.must(200, "GET", "/v1/licenses/"+id, "", nil, &l)
		if l.Status != ack.status && l.Status != ack.pending {
			p.t.Errorf("license %s is %s after restart; acknowledged %s, in flight %q", id, l.Status, ack.status, ack.pending)
		}
	}
}

// checkLedger: every acknowledged grant has its ledger row, but those of
// the documented window before the kill.
func (p *portal) checkLedger(rec *record, licenses []string, killedAt time.Time) {
	p.t.Helper()
	rows := map[string]bool{}
	for _, id := range licenses {
		cursor := ""
		for range 100 {
			var page struct {
				Downloads []struct {
					UserAgent string `json:"user_agent"`
				}
				NextCursor string `json:"next_cursor"`
			}
			q := "/v1/licenses/" + id + "/downloads?limit=1000"
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			p.must(200, "GET", q, "", nil, &page)
			for _, d := range page.Downloads {
				rows[d.UserAgent] = true
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
	}
	var lost []grantAck
	for _, g := range rec.grants {
		if !rows[g.agent] {
			lost = append(lost, g)
		}
	}
	var oldest time.Duration
	for _, g := range lost {
		oldest = max(oldest, killedAt.Sub(g.at))
	}
	p.t.Logf("ledger: %d grants acknowledged, %d rows after restart, %d acknowledged grants lost, the oldest acknowledged %v before the kill (window %v)",
		len(rec.grants), len(rows), len(lost), oldest.Round(time.Millisecond), lostWindow)
	for _, g := range lost {
		if age := killedAt.Sub(g.at); age > lostWindow {
			p.t.Errorf("grant %s was acknowledged %v before the kill and is not in the ledger (window %v)", g.agent, age, lostWindow)
		}
	}
	if n := len(lost); n > 10000 {
		p.t.Errorf("%d grants lost, more than downloads.ledger_queue", n)
	}
}
