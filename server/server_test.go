package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/updates"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// env is a portal on a real bbolt file and an object store (the local
// store by default), behind a real listener, with a clock tests can move.
type env struct {
	t      *testing.T
	url    string
	db     store.DB
	srv    *server.Server
	admin  string
	index  *updates.Index
	ledger *ledger.Ledger

	mu    sync.Mutex
	clock time.Time
}

func (e *env) now() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clock
}

// advance moves the clock forward.
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.clock = e.clock.Add(d)
	e.mu.Unlock()
}

type envOptions struct {
	s3 bool // objects on the S3 test server instead of local disk
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &env{t: t, db: db, clock: time.Now().UTC()}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	var objs objects.ObjectStore
	var blobs http.Handler
	if o.s3 {
		objs = s3test.Store(t)
	} else {
		blobKeys, err := local.LoadOrCreateKeyring(filepath.Join(dir, "secrets", "blob-keys"), "")
		if err != nil {
			t.Fatal(err)
		}
		ls, err := local.Open(local.Options{Root: filepath.Join(dir, "objects"), BaseURL: base, Keys: blobKeys})
		if err != nil {
			t.Fatal(err)
		}
		objs, blobs = ls, ls.Handler()
	}
	catalog := releases.New(db, e.now)
	toks := tokens.New(db, nil)
	keys := server.ProductKeys{Catalog: catalog}
	e.index = updates.NewIndex(catalog)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.index.Watch(ctx)
	e.ledger = ledger.New(db, ledger.Options{FlushInterval: 50 * time.Millisecond})
	linkKey := make([]byte, 32)
	rand.Read(linkKey)
	shareLinks, err := links.New(db, linkKey, e.now)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = server.New(server.Deps{
		Store: db, Catalog: catalog, Licenses: licenses.New(db, catalog, e.now), Tokens: toks,
		Objects: objs, Blobs: blobs, Keys: keys,
		Publishing: publishing.New(catalog, objs, keys, publishing.Options{}),
		Index:      e.index, Ledger: e.ledger, Links: shareLinks,
	}, server.Options{MaxBody: 1 << 20, AuthFailuresPerMinute: 20, Now: e.now, PublicURL: base,
		URLTTL: 5 * time.Minute, MaxURLTTL: time.Hour})
	hs.Config.Handler = e.srv
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		e.srv.Close(context.Background())
	})
	e.url = base
	_, raw, err := toks.Create(context.Background(), "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = raw
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not JSON: %q", r.body)
	}
	return m
}

func (r resp) code() string {
	var m struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.body, &m)
	return m.Error.Code
}

// do sends a request; body may be nil, a string (sent as is) or a value
// (sent as JSON). auth is the whole Authorization header value.
func (e *env) do(method, path, auth string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func (e *env) must(want int, r resp) resp {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	return r
}

func bearer(t string) string { return "Bearer " + t }

// dump returns every key and value in the store, to show a refused request
// changed nothing.
func (e *env) dump() string {
	var b strings.Builder
	e.db.View(context.Background(), func(tx store.Tx) error {
		return tx.Scan(nil, store.ScanOptions{}, func(k, v []byte) (bool, error) {
			fmt.Fprintf(&b, "%q=%q\n", k, v)
			return true, nil
		})
	})
	return b.String()
}

func (e *env) product(slug, dist string) {
	e.t.Helper()
	e.must(201, e.do("POST", "/v1/products", bearer(e.admin), map[string]any{"slug": slug, "name": slug, "distribution": dist}))
}

func (e *env) token(role string, products ...string) string {
	e.t.Helper()
	r := e.must(201, e.do("POST", "/v1/tokens", bearer(e.admin), map[string]any{"name": "t", "role": role, "products": products}))
	return r.json(e.t)["token"].(string)
}

func (e *env) license(body map[string]any) (id, key string) {
	e.t.Helper()
	r := e.must(201, e.do("POST", "/v1/licenses", bearer(e.admin), body))
	m := r.json(e.t)
	return m["license"].(map[string]any)["id"].(string), m["key"].(string)
}
