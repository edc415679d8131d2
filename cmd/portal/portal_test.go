package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/tokens"
)

// cliCtx is the context of what tests do straight on the services: the
// audit log records it as the offline operator's.
var cliCtx = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

// testPortal is a real portal (app.Open on a temporary data directory)
// behind a real listener.
type testPortal struct {
	t        *testing.T
	url      string
	catalog  *releases.Service
	licenses *licenses.Service
	tokens   *tokens.Service
	objects  objects.ObjectStore
	admin    string
}

// newTestPortal starts a portal on the local object store, or on objs when
// objs is not nil. The non-zero fields of pub set the matching uploads and
// signing settings.
func newTestPortal(t *testing.T, objs objects.ObjectStore, pub publishing.Options) *testPortal {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	flags := map[string]string{
		"data_dir": t.TempDir(), "public_url": base,
		"limits.auth_failures_per_minute": "1000", "downloads.ledger_flush_interval": "50ms",
		"log.access": "false",
	}
	for key, v := range map[string]int64{
		"uploads.multipart_threshold": pub.MultipartThreshold, "uploads.multipart_part_size": pub.PartSize,
		"signing.sparkle_max_size": pub.SparkleMaxSize,
	} {
		if v != 0 {
			flags[key] = strconv.FormatInt(v, 10)
		}
	}
	if pub.UploadTTL != 0 {
		flags["uploads.url_ttl"] = pub.UploadTTL.String()
	}
	cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{Objects: objs})
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(context.Background(), ln) }()
	t.Cleanup(func() {
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	})
	_, admin, err := a.Tokens.Create(cliCtx, "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testPortal{t: t, url: base, catalog: a.Catalog, licenses: a.Licenses, tokens: a.Tokens, objects: a.Objects, admin: admin}
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
	_, raw, err := p.tokens.Create(cliCtx, "ci", tokens.Publisher, products)
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
