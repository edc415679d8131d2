package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
)

// env is a portal (app.Open on a temporary data directory: a real bbolt
// file and an object store, the local store by default) behind a real
// listener, with a clock tests can move.
type env struct {
	t      *testing.T
	url    string
	app    *app.App
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
	s3    bool              // objects on the S3 test server instead of local disk
	flags map[string]string // more config keys, over the env's own
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, clock: time.Now().UTC()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	flags := map[string]string{
		"data_dir": t.TempDir(), "public_url": e.url,
		"limits.max_body": "1MiB", "limits.auth_failures_per_minute": "20",
		"downloads.url_ttl": "5m", "downloads.max_url_ttl": "1h",
		"downloads.ledger_flush_interval": "50ms", "log.access": "false",
	}
	maps.Copy(flags, o.flags)
	cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	opts := app.Options{Now: e.now}
	if o.s3 {
		opts.Objects = s3test.Store(t)
	}
	a, err := app.Open(context.Background(), cfg, opts)
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
	e.app, e.db, e.srv, e.index, e.ledger = a, a.DB, a.Server, a.Index, a.Ledger
	_, raw, err := a.Tokens.Create(cliCtx, "root", tokens.Admin, nil)
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

// expectRevalidated checks that GET url with auth answers 304 when asked
// again with If-None-Match: etag alone, and with If-Modified-Since:
// lastModified alone.
func expectRevalidated(t *testing.T, url, auth, etag, lastModified string) {
	t.Helper()
	for _, h := range []map[string]string{{"If-None-Match": etag}, {"If-Modified-Since": lastModified}} {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", auth)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotModified {
			t.Fatalf("conditional %v: %d", h, res.StatusCode)
		}
	}
}

func bearer(t string) string { return "Bearer " + t }

// dump returns every key and value in the store, to show a refused request
// changed nothing.
// dump returns every key and value in the store, after writing what the
// ledger has queued (it flushes in the background, so without this a grant
// made before a refused request could land between two dumps).
func (e *env) dump() string {
	if e.ledger != nil {
		e.ledger.Flush(context.Background())
	}
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
