package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
)

// testPortal is a real portal (bbolt file, object store, Gin server) behind
// a real listener, as server/server_test.go builds it.
type testPortal struct {
	t        *testing.T
	url      string
	catalog  *releases.Service
	licenses *licenses.Service
	tokens   *tokens.Service
	objects  objects.ObjectStore
	admin    string
}

// newTestPortal starts a portal on the local object store, or on objs
// (with publishing options pub) when objs is not nil.
func newTestPortal(t *testing.T, objs objects.ObjectStore, pub publishing.Options) *testPortal {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	var blobs http.Handler
	if objs == nil {
		keys, err := local.LoadOrCreateKeyring(filepath.Join(dir, "secrets", "blob-keys"), "")
		if err != nil {
			t.Fatal(err)
		}
		ls, err := local.Open(local.Options{Root: filepath.Join(dir, "objects"), BaseURL: base, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		objs, blobs = ls, ls.Handler()
	}
	catalog := releases.New(db, nil)
	toks := tokens.New(db, nil)
	lics := licenses.New(db, catalog, nil)
	keys := server.ProductKeys{Catalog: catalog}
	index := updates.NewIndex(catalog)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	index.Watch(ctx)
	ldg := ledger.New(db, ledger.Options{FlushInterval: 50 * time.Millisecond})
	shareLinks, err := links.New(db, bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Deps{
		Store: db, Catalog: catalog, Licenses: lics, Tokens: toks,
		Objects: objs, Blobs: blobs, Keys: keys,
		Publishing: publishing.New(catalog, objs, keys, pub),
		Index:      index, Ledger: ldg, Links: shareLinks,
	}, server.Options{AuthFailuresPerMinute: 1000, PublicURL: base})
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		srv.Close(context.Background())
	})
	_, admin, err := toks.Create(context.Background(), "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testPortal{t: t, url: base, catalog: catalog, licenses: lics, tokens: toks, objects: objs, admin: admin}
}

// api sends a JSON request as the admin and decodes the answer into out.
func (p *testPortal) api(method, path string, in, out any) {
	p.t.Helper()
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, p.url+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+p.admin)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		p.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *testPortal) product(slug, distribution string) {
	p.t.Helper()
	p.api("POST", "/v1/products", map[string]any{"slug": slug, "name": slug, "distribution": distribution}, nil)
}

func (p *testPortal) publisher(products ...string) string {
	p.t.Helper()
	_, raw, err := p.tokens.Create(context.Background(), "ci", tokens.Publisher, products)
	if err != nil {
		p.t.Fatal(err)
	}
	return raw
}

func (p *testPortal) release(product, version string) releases.Release {
	p.t.Helper()
	r, err := p.catalog.Release(context.Background(), product, version)
	if err != nil {
		p.t.Fatal(err)
	}
	return r
}

// stored returns the bytes the object store holds for an artifact.
func (p *testPortal) stored(a releases.Artifact) []byte {
	p.t.Helper()
	rc, err := p.objects.Open(context.Background(), a.ObjectKey)
	if err != nil {
		p.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		p.t.Fatal(err)
	}
	return b
}

// testCLI is a client command environment with captured output.
type testCLI struct {
	cli
	out, errOut *bytes.Buffer
	env         map[string]string
}

func newTestCLI(env map[string]string) *testCLI {
	tc := &testCLI{out: &bytes.Buffer{}, errOut: &bytes.Buffer{}, env: env}
	tc.cli = cli{
		stdout: tc.out, stderr: tc.errOut, getenv: func(k string) string { return tc.env[k] },
		http: &http.Client{Timeout: time.Minute}, retryDelay: 10 * time.Millisecond,
	}
	return tc
}

func (tc *testCLI) output() string { return tc.out.String() + tc.errOut.String() }

// writeFile writes n pseudo-random bytes (seeded) to dir/name.
func writeFile(t *testing.T, dir, name string, n int, seed uint64) (string, []byte) {
	t.Helper()
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, b
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}
