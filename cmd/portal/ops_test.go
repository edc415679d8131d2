package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/etcdtest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/backup"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/store/etcd"
	"github.com/portaldist/portal/tokens"
)

// call sends one request to url with bearer token tok and returns the
// status and body.
func call(t *testing.T, method, url, tok string, in any) (int, []byte) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, body)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// seedPortal gives a running portal a product with a published release of
// three uploaded files (through `portal publish`) and returns the admin
// token.
func seedPortal(t *testing.T, url string, a *app.App) string {
	t.Helper()
	_, admin, err := a.Tokens.Create(cliCtx, "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, b := call(t, "POST", url+"/v1/products", admin, map[string]any{"slug": "acme", "name": "Acme", "distribution": "licensed"}); st != 201 {
		t.Fatalf("create product: %d %s", st, b)
	}
	dir := t.TempDir()
	var paths []string
	for i, name := range []string{"acme_1.0.0_linux_amd64.tar.gz", "acme_1.0.0_darwin_arm64.zip", "acme_1.0.0_windows_amd64.exe"} {
		p, _ := writeFile(t, dir, name, 20_000+i*7919, uint64(i))
		paths = append(paths, p)
	}
	tc := newTestCLI(map[string]string{"PORTAL_URL": url, "PORTAL_TOKEN": admin})
	if err := tc.publish(context.Background(), append(paths, "--product", "acme", "--version", "1.0.0", "--publish")); err != nil {
		t.Fatalf("publish: %v\n%s", err, tc.output())
	}
	return admin
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	tc := newTestCLI(nil)
	err := tc.run(context.Background(), args)
	return tc.output(), err
}

func openDB(t *testing.T, dir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestBackupRestoreCLI: a backup taken while serve runs and writes go on
// (through the admin socket), restored into a fresh store; the admin
// route's backup; an offline backup compared key by key after restore;
// refusals of a damaged file and of a non-empty store.
func TestBackupRestoreCLI(t *testing.T) {
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	admin := seedPortal(t, url, a)

	// Writers create licenses while the backups are taken.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var created atomic.Int64
	for range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				st, b := call(t, "POST", url+"/v1/licenses", admin, map[string]any{"customer": fmt.Sprintf("c%d", i), "product": "acme", "on_expiry": "revoke"})
				if st != 201 {
					t.Errorf("create license: %d %s", st, b)
					return
				}
				created.Add(1)
			}
		})
	}
	for created.Load() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	online := filepath.Join(t.TempDir(), "online.backup")
	out, err := runCLI(t, "backup", "--data-dir", dir, online)
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}

	// The admin route streams the same format, to admins only.
	req, _ := http.NewRequest("GET", url+"/v1/admin/backup", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	routed, _ := io.ReadAll(res.Body)
	res.Body.Close()
	close(stop)
	wg.Wait()
	if res.StatusCode != 200 || res.Header.Get("Cache-Control") != "no-store" || !strings.Contains(res.Header.Get("Content-Disposition"), ".backup") {
		t.Fatalf("GET /v1/admin/backup: %d %v", res.StatusCode, res.Header)
	}
	rinfo, err := backup.Verify(bytes.NewReader(routed))
	if err != nil || rinfo.Driver != "bolt" || rinfo.Keys == 0 {
		t.Fatalf("the route's backup: %+v, %v", rinfo, err)
	}
	_, pub, _ := a.Tokens.Create(cliCtx, "ci", tokens.Publisher, []string{"acme"})
	for _, tok := range []string{"", pub} {
		if st, _ := call(t, "GET", url+"/v1/admin/backup", tok, nil); st != 401 && st != 403 {
			t.Fatalf("GET /v1/admin/backup with %q: %d", tok, st)
		}
	}
	st, b := call(t, "GET", url+"/v1/audit?action=store.backup", admin, nil)
	if st != 200 || strings.Count(string(b), `"store.backup"`) != 2 {
		t.Fatalf("audit of the backups: %d %s", st, b)
	}

	// The online backup restores into a fresh store, which then holds
	// the catalog, the admin token and the licenses it saw.
	fresh := t.TempDir()
	if out, err := runCLI(t, "restore", "--data-dir", fresh, online); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	url2, b2 := serveDir(t, fresh, nil)
	if st, body := call(t, "GET", url2+"/v1/products/acme/releases/1.0.0", admin, nil); st != 200 || strings.Count(string(body), `"uploaded"`) != 3 {
		t.Fatalf("restored release: %d %s", st, body)
	}
	if st, body := call(t, "GET", url2+"/v1/licenses?limit=500", admin, nil); st != 200 || strings.Count(string(body), `"customer"`) < 5 {
		t.Fatalf("restored licenses: %d %s", st, body)
	}
	b2.Close(context.Background())

	// Offline: the source, stopped, backed up, restored and compared key
	// by key.
	a.Close(context.Background())
	offline := filepath.Join(t.TempDir(), "offline.backup")
	if out, err := runCLI(t, "backup", "--data-dir", dir, offline); err != nil {
		t.Fatalf("offline backup: %v\n%s", err, out)
	}
	// The offline backup is audited too; the comparison starts after it.
	third := t.TempDir()
	if out, err := runCLI(t, "restore", "--data-dir", third, offline); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	compareDirs(t, dir, third)

	// Refusals: a damaged file, a non-empty store; --force wipes first.
	data, _ := os.ReadFile(offline)
	damaged := filepath.Join(t.TempDir(), "damaged.backup")
	os.WriteFile(damaged, data[:len(data)-10], 0o600)
	empty := t.TempDir()
	out, err = runCLI(t, "restore", "--data-dir", empty, damaged)
	wantErr(t, err, "truncated")
	if db := openDB(t, empty); mustCount(t, db) != 0 {
		t.Fatal("a refused restore wrote keys")
	}
	out, err = runCLI(t, "restore", "--data-dir", fresh, offline)
	wantErr(t, err, "not empty", "--force")
	if exitCode(err) != exitUsage {
		t.Fatalf("exit code %d for a non-empty store", exitCode(err))
	}
	if out, err := runCLI(t, "restore", "--data-dir", fresh, "--force", offline); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	compareDirs(t, dir, fresh)
}

// compareDirs compares the stores of two data directories key by key.
func compareDirs(t *testing.T, src, dst string) {
	t.Helper()
	a, b := openDB(t, src), openDB(t, dst)
	defer a.Close()
	defer b.Close()
	d, err := backup.Compare(context.Background(), a, b)
	if err != nil || !d.Equal() {
		t.Fatalf("%s and %s differ: %s, %v", src, dst, d, err)
	}
}

func mustCount(t *testing.T, db store.DB) uint64 {
	t.Helper()
	n, err := backup.Count(context.Background(), db, 0)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return n
}

func TestStoreCopyCLI(t *testing.T) {
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	seedPortal(t, url, a)
	a.Close(context.Background())

	target := t.TempDir()
	conf := filepath.Join(t.TempDir(), "target.yaml")
	os.WriteFile(conf, []byte("data_dir: "+target+"\n"), 0o600)
	out, err := runCLI(t, "store", "copy", "--data-dir", dir, "--to", conf)
	if err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}
	// A rerun writes nothing.
	out, err = runCLI(t, "store", "copy", "--data-dir", dir, "--to", conf)
	if err != nil || !strings.Contains(out, " 0 written") {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	// A key only the target holds fails the check until --prune.
	db := openDB(t, target)
	db.Update(context.Background(), func(tx store.Tx) error { return tx.Put([]byte("zz/stray"), []byte("x")) })
	db.Close()
	out, err = runCLI(t, "store", "copy", "--data-dir", dir, "--to", conf)
	wantErr(t, err, "1 only in the target", "--prune")
	if out, err = runCLI(t, "store", "copy", "--data-dir", dir, "--to", conf, "--prune"); err != nil {
		t.Fatalf("copy --prune: %v\n%s", err, out)
	}
	compareDirs(t, dir, target)
	// The same store as source and target is a usage error.
	same := filepath.Join(t.TempDir(), "same.yaml")
	os.WriteFile(same, []byte("data_dir: "+dir+"\n"), 0o600)
	_, err = runCLI(t, "store", "copy", "--data-dir", dir, "--to", same)
	wantErr(t, err, "same store")
}

// TestObjectsCopyVerifyAndServeCheck: objects copied from the local store
// to S3 and verified there; an object the source lacks is reported (and
// verify fails); serve then warns of it at start and /readyz shows it.
func TestObjectsCopyVerifyAndServeCheck(t *testing.T) {
	s3cfg := s3test.Config(t)
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	seedPortal(t, url, a)
	objs, err := inventory.Catalog(context.Background(), a.Catalog, false)
	if err != nil || len(objs) != 3 {
		t.Fatalf("catalog: %d objects, %v", len(objs), err)
	}
	a.Close(context.Background())

	conf := filepath.Join(t.TempDir(), "s3.yaml")
	os.WriteFile(conf, fmt.Appendf(nil, "objects:\n  backend: s3\n  s3:\n    endpoint: %s\n    bucket: %s\n    region: %s\n    path_style: true\n    access_key: %s\n    secret_key: %s\n",
		s3cfg.Endpoint, s3cfg.Bucket, s3cfg.Region, s3cfg.AccessKey, s3cfg.SecretKey), 0o600)

	if out, err := runCLI(t, "objects", "verify", "--data-dir", dir, "--read"); err != nil || !strings.Contains(out, "all 3 objects") {
		t.Fatalf("verify of the local store: %v\n%s", err, out)
	}
	// Verify of S3 (the catalog of dir, the objects of s3.yaml) before
	// the copy: every object missing.
	out, err := runCLI(t, "objects", "verify", "--config", conf, "--data-dir", dir)
	wantErr(t, err, "3 of 3 objects are missing")
	if exitCode(err) != exitFailure || strings.Count(out, "missing: acme 1.0.0") != 3 {
		t.Fatalf("verify of an empty S3: exit %d\n%s", exitCode(err), out)
	}

	// One object lost from the local store: the copy reports it.
	lost := objs[1]
	if err := os.Remove(filepath.Join(dir, "objects", filepath.FromSlash(lost.Key))); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, "objects", "copy", "--data-dir", dir, "--to", conf)
	wantErr(t, err, "not in the target")
	if !strings.Contains(out, "MISSING in the source: acme 1.0.0 "+lost.Filename) || !strings.Contains(out, "2 copied") {
		t.Fatalf("copy output:\n%s", out)
	}
	// The S3 store now holds the other two, verified by reading them back.
	out, err = runCLI(t, "objects", "verify", "--config", conf, "--data-dir", dir, "--read")
	wantErr(t, err, "1 of 3 objects are missing")
	if !strings.Contains(out, "missing: acme 1.0.0 "+lost.Filename) {
		t.Fatalf("verify after the copy:\n%s", out)
	}
	// A rerun skips what is there.
	out, _ = runCLI(t, "objects", "copy", "--data-dir", dir, "--to", conf)
	if !strings.Contains(out, "0 copied (0 bytes), 2 already there, 1 missing") {
		t.Fatalf("rerun output:\n%s", out)
	}

	// serve warns at start, in its log and in /readyz.
	var logs syncBuffer
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{"data_dir": dir, "log.access": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := app.Open(context.Background(), cfg, app.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for !b.ObjectsSample.Result().Done && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	res := b.ObjectsSample.Result()
	if !res.Done || res.Missing != 1 || res.Checked != 3 || res.Problems[0].Object.Key != lost.Key {
		t.Fatalf("start-up sample: %+v", res)
	}
	for !strings.Contains(logs.String(), "MISSING") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, lost.Filename) || !strings.Contains(l, "missing=1") {
		t.Fatalf("serve's log does not say loudly what is missing:\n%s", l)
	}
	rec := httptest.NewRecorder()
	b.Server.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	var ready struct {
		Sample inventory.SampleResult `json:"objects_sample"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &ready); err != nil || ready.Sample.Missing != 1 || !ready.Sample.Done {
		t.Fatalf("/readyz: %s", rec.Body)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
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

// TestStoreCopyAndBackupEtcdCLI: bolt -> etcd with store copy (rerun
// writes nothing), a backup of the etcd store restored into bolt, and etcd
// -> bolt back, each compared key by key, on a real 3-member cluster.
func TestStoreCopyAndBackupEtcdCLI(t *testing.T) {
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	seedPortal(t, url, a)
	a.Close(context.Background())

	c := etcdtest.New(t, etcdtest.Options{})
	prefix := etcdtest.Prefix(t)
	etcdConf := filepath.Join(t.TempDir(), "etcd.yaml")
	os.WriteFile(etcdConf, fmt.Appendf(nil, "data_dir: %s\nstore:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: %s\nobjects:\n  local:\n    shared: true\n",
		t.TempDir(), strings.Join(c.Endpoints(), ", "), prefix), 0o600)
	out, err := runCLI(t, "store", "copy", "--data-dir", dir, "--to", etcdConf)
	if err != nil || !strings.Contains(out, "to the etcd target") || !strings.Contains(out, "verified") {
		t.Fatalf("bolt -> etcd: %v\n%s", err, out)
	}
	if out, err = runCLI(t, "store", "copy", "--data-dir", dir, "--to", etcdConf); err != nil || !strings.Contains(out, " 0 written") {
		t.Fatalf("rerun: %v\n%s", err, out)
	}
	// The keys are in the cluster, under the prefix.
	edb, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	src := openDB(t, dir)
	if d, err := backup.Compare(context.Background(), src, edb); err != nil || !d.Equal() {
		t.Fatalf("the cluster after the copy: %s, %v", d, err)
	}
	src.Close()
	edb.Close()

	// A backup of the etcd store (read straight from the cluster) into a
	// fresh bolt store.
	file := filepath.Join(t.TempDir(), "etcd.backup")
	if out, err = runCLI(t, "backup", "--config", etcdConf, file); err != nil || !strings.Contains(out, "of the etcd store") {
		t.Fatalf("backup of etcd: %v\n%s", err, out)
	}
	fresh := t.TempDir()
	if out, err = runCLI(t, "restore", "--data-dir", fresh, file); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	// etcd -> bolt with store copy, and the two bolt stores agree (the
	// etcd store holds the backup's audit record, which both carry).
	back := t.TempDir()
	backConf := filepath.Join(t.TempDir(), "bolt.yaml")
	os.WriteFile(backConf, []byte("data_dir: "+back+"\n"), 0o600)
	if out, err = runCLI(t, "store", "copy", "--config", etcdConf, "--to", backConf); err != nil || !strings.Contains(out, "verified") {
		t.Fatalf("etcd -> bolt: %v\n%s", err, out)
	}
	compareDirs(t, fresh, back)

	// The backup restored into the cluster, under another prefix: the
	// same keys as the bolt store restored from it.
	prefix2 := strings.TrimSuffix(prefix, "/") + "-restored/"
	conf2 := filepath.Join(t.TempDir(), "etcd2.yaml")
	os.WriteFile(conf2, fmt.Appendf(nil, "data_dir: %s\nstore:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: %s\nobjects:\n  local:\n    shared: true\n",
		t.TempDir(), strings.Join(c.Endpoints(), ", "), prefix2), 0o600)
	if out, err = runCLI(t, "restore", "--config", conf2, file); err != nil || !strings.Contains(out, "into the etcd store") {
		t.Fatalf("restore into etcd: %v\n%s", err, out)
	}
	edb2, err := etcd.Open(context.Background(), etcd.Options{Endpoints: c.Endpoints(), Prefix: prefix2})
	if err != nil {
		t.Fatal(err)
	}
	defer edb2.Close()
	restored := openDB(t, fresh)
	defer restored.Close()
	if d, err := backup.Compare(context.Background(), restored, edb2); err != nil || !d.Equal() {
		t.Fatalf("the backup restored into etcd: %s, %v", d, err)
	}
}

// TestMoveToClusterCLI runs the README's move from one machine to a
// cluster: one config file with an etcd store and an S3 bucket, objects
// copy, store copy, objects verify --read against it; a portal opened on it
// then finds every published object and grants a download.
func TestMoveToClusterCLI(t *testing.T) {
	s3cfg := s3test.Config(t)
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	admin := seedPortal(t, url, a)
	a.Close(context.Background())

	c := etcdtest.New(t, etcdtest.Options{})
	conf := filepath.Join(t.TempDir(), "cluster.yaml")
	os.WriteFile(conf, fmt.Appendf(nil, `data_dir: %s
store:
  backend: etcd
  etcd:
    endpoints: [%s]
    prefix: %s
objects:
  backend: s3
  s3:
    bucket: %s
    region: %s
    endpoint: %s
    path_style: true
    access_key: %s
    secret_key: %s
`, t.TempDir(), strings.Join(c.Endpoints(), ", "), etcdtest.Prefix(t), s3cfg.Bucket, s3cfg.Region, s3cfg.Endpoint, s3cfg.AccessKey, s3cfg.SecretKey), 0o600)
	for _, args := range [][]string{
		{"objects", "copy", "--data-dir", dir, "--to", conf},
		{"store", "copy", "--data-dir", dir, "--to", conf},
		{"objects", "verify", "--config", conf, "--read"},
	} {
		if out, err := runCLI(t, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	cfg, err := configs.Load(configs.LoadOptions{File: conf, Flags: map[string]string{"log.access": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := app.Open(context.Background(), cfg, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); !b.ObjectsSample.Result().Done && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if res := b.ObjectsSample.Result(); res.Checked != 3 || res.Missing != 0 {
		t.Fatalf("start-up sample on the cluster: %+v", res)
	}
	srv := httptest.NewServer(b.Server)
	defer srv.Close()
	st, body := call(t, "GET", srv.URL+"/v1/products/acme/releases/1.0.0/download?platform=linux&arch=amd64", admin, nil)
	// The client follows the redirect to the bucket: the file's bytes.
	if st != http.StatusOK || len(body) != 20_000 {
		t.Fatalf("download on the cluster: %d, %d bytes", st, len(body))
	}
}

// TestBackupRouteBounded: two backups a client does not read hold their
// slots, but no store transaction; a third is 429 with Retry-After until
// one ends.
func TestBackupRouteBounded(t *testing.T) {
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)
	_, admin, err := a.Tokens.Create(cliCtx, "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 32 MiB of values: more than the connections' buffers hold.
	big := bytes.Repeat([]byte("x"), store.MaxValueSize)
	err = a.DB.Update(context.Background(), func(tx store.Tx) error {
		for i := range 32 {
			if err := tx.Put(fmt.Appendf(nil, "zz/big/%02d", i), big); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	get := func() *http.Response {
		req, _ := http.NewRequest("GET", url+"/v1/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	held := []*http.Response{get(), get()}
	for _, r := range held {
		if r.StatusCode != 200 {
			t.Fatalf("backup: %d", r.StatusCode)
		}
	}
	third := get()
	third.Body.Close()
	if third.StatusCode != http.StatusTooManyRequests || third.Header.Get("Retry-After") == "" {
		t.Fatalf("a third backup at once: %d %v", third.StatusCode, third.Header)
	}
	// The held backups hold no store transaction (they are sent from a
	// spooled file): a write that must grow the bbolt file commits while
	// their clients read nothing. Were a snapshot still open, this Update
	// would wait until the test's own deadline.
	grown := make(chan error, 1)
	go func() {
		grown <- a.DB.Update(context.Background(), func(tx store.Tx) error {
			for i := range 64 {
				if err := tx.Put(fmt.Appendf(nil, "zz/grow/%02d", i), big); err != nil {
					return err
				}
			}
			return nil
		})
	}()
	select {
	case err := <-grown:
		if err != nil {
			t.Fatalf("a write while backups are held: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a write that grows the store waited for the held backups")
	}
	// Read one to its end: it checks out, and its slot is free again.
	b, err := io.ReadAll(held[0].Body)
	held[0].Body.Close()
	if _, verr := backup.Verify(bytes.NewReader(b)); err != nil || verr != nil {
		t.Fatalf("the first backup: %v, %v", err, verr)
	}
	held[1].Body.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := get()
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot freed: %d", r.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
