package publishing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store/bolt"
)

const (
	product = "app"
	version = "1.0.0"
)

// backends are the object stores every test runs against.
var backends = []struct {
	name string
	open func(t *testing.T) objects.ObjectStore
}{
	{"local", func(t *testing.T) objects.ObjectStore { st, _ := objectstest.LocalStore(t); return st }},
	{"s3", func(t *testing.T) objects.ObjectStore { return s3test.Store(t) }},
}

// forEachBackend runs fn as a subtest per backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, objs objects.ObjectStore)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { fn(t, b.open(t)) })
	}
}

type keyMap map[string]*signing.KeySet

func (m keyMap) SigningKeys(_ context.Context, p string) (*signing.KeySet, error) {
	if k, ok := m[p]; ok {
		return k, nil
	}
	return nil, portal.Errorf(portal.ENotFound, "no signing key for %s", p)
}

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type env struct {
	t       *testing.T
	ctx     context.Context
	svc     *Service
	cat     *releases.Service
	objects objects.ObjectStore
	key     *signing.KeySet
	clock   *clock
}

// newEnv opens a real bbolt catalog with product "app" and draft release
// 1.0.0, a real signing key, and a Service on objects. opts.Now is set to
// env.clock (the current time) unless given.
func newEnv(t *testing.T, objs objects.ObjectStore, opts Options) *env {
	t.Helper()
	// Every catalog change is audited: the tests act as a background job.
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindSystem})
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat := releases.New(db, nil)
	if _, err := cat.CreateProduct(ctx, releases.Product{Slug: product}); err != nil {
		t.Fatal(err)
	}
	if _, err := cat.CreateRelease(ctx, product, releases.NewRelease{Version: version}); err != nil {
		t.Fatal(err)
	}
	key, err := signing.GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	if opts.Now == nil {
		opts.Now = c.Now
	}
	return &env{t: t, ctx: ctx, svc: New(cat, objs, keyMap{product: key}, opts), cat: cat, objects: objs, key: key, clock: c}
}

func declaration(filename string, size int64, sum string) releases.NewArtifact {
	return releases.NewArtifact{Filename: filename, Platform: "linux", Arch: "amd64", Size: size, SHA256: sum}
}

// uploadPackage declares data as filename for arch, uploads it and
// completes it: it returns the declared artifact, and what Complete
// returned.
func (e *env) uploadPackage(filename, arch string, data []byte) (declared, completed releases.Artifact, err error) {
	e.t.Helper()
	d := declaration(filename, int64(len(data)), sha256Hex(data))
	d.Arch = arch
	declared, up, err := e.svc.AddArtifact(e.ctx, product, version, d, "")
	if err != nil {
		e.t.Fatal(err)
	}
	put(e.t, up, data, 0)
	completed, err = e.svc.Complete(e.ctx, product, version, filename)
	return declared, completed, err
}

// expectRefusedPackage checks that err, Complete's answer for the
// declared package, is a 422 whose details name detail, and that the
// artifact failed (with its reason, without package metadata) and its
// object is gone.
func (e *env) expectRefusedPackage(err error, declared releases.Artifact, detail string) {
	e.t.Helper()
	pe := portalError(e.t, err, portal.EUnprocessable)
	if _, ok := pe.Details[detail]; !ok {
		e.t.Fatalf("refusal details %v lack %q (%s)", pe.Details, detail, pe.Message)
	}
	if cur := e.artifact(declared.Filename); cur.Status != releases.Failed || cur.Package != nil || cur.Failure == "" {
		e.t.Fatalf("artifact after the refusal: %+v", cur)
	}
	e.expectGone(declared.ObjectKey)
}

// add declares data as filename and fails the test on error.
func (e *env) add(filename string, data []byte) (releases.Artifact, Upload) {
	e.t.Helper()
	a, up, err := e.svc.AddArtifact(e.ctx, product, version, declaration(filename, int64(len(data)), sha256Hex(data)), "")
	if err != nil {
		e.t.Fatalf("AddArtifact %s: %v", filename, err)
	}
	return a, up
}

// artifact reads an artifact back from the catalog.
func (e *env) artifact(filename string) releases.Artifact {
	e.t.Helper()
	r := e.release()
	a, ok := r.Artifact(filename)
	if !ok {
		e.t.Fatalf("no artifact %s in the catalog", filename)
	}
	return *a
}

func (e *env) release() releases.Release {
	e.t.Helper()
	r, err := e.cat.Release(e.ctx, product, version)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// expectGone fails unless the store has no object under key.
func (e *env) expectGone(key string) {
	e.t.Helper()
	if _, err := e.objects.Stat(e.ctx, key); !portal.IsCode(err, portal.ENotFound) {
		e.t.Fatalf("Stat %s after clean-up: err %v, want not found", key, err)
	}
}

// send does what a publisher's client does with a minted request: plain
// net/http, only the URL and headers (Content-Length sets the request's
// length). A body whose length differs from the minted Content-Length is
// sent with its own length, as a client sending the wrong file would.
// It returns the status and the start of the response body.
func send(sr objects.SignedRequest, body io.Reader, length int64) (int, string, error) {
	req, err := http.NewRequest(sr.Method, sr.URL, body)
	if err != nil {
		return 0, "", err
	}
	for k, v := range sr.Headers {
		if strings.EqualFold(k, "Content-Length") {
			if req.ContentLength, err = strconv.ParseInt(v, 10, 64); err != nil {
				return 0, "", err
			}
			continue
		}
		req.Header.Set(k, v)
	}
	if length >= 0 {
		req.ContentLength = length
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

// put sends a single-PUT upload and fails the test unless the store
// answers wantStatus (0: any 2xx; -1: any 4xx).
func put(t *testing.T, up Upload, body []byte, want int) {
	t.Helper()
	if up.Multipart {
		t.Fatalf("got a multipart upload, want a single PUT")
	}
	status, msg, err := send(objects.SignedRequest{Method: up.Method, URL: up.URL, Headers: up.Headers}, bytes.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("PUT: %v", err)
	}
	switch {
	case want == 0 && status/100 == 2, want == -1 && status/100 == 4, want == status:
	default:
		t.Fatalf("PUT: status %d, want %d: %s", status, want, msg)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// portalError returns err's *portal.Error and fails unless it has code.
func portalError(t *testing.T, err error, code string) *portal.Error {
	t.Helper()
	var pe *portal.Error
	if !errors.As(err, &pe) || pe.Code != code {
		t.Fatalf("err %v, want a *portal.Error with code %s", err, code)
	}
	return pe
}
