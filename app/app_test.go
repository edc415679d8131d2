package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// config is the default configuration on dir, reached at url. The ledger
// flushes only on Close or when half its queue is full, so whatever a test
// finds stored after Close was written by Close.
// cliCtx is the context of the tests' direct calls to the services, which
// audit every change: they act as an offline command would.
var cliCtx = audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})

func config(t *testing.T, dir, url string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": dir, "public_url": url, "log.access": "false",
		"downloads.ledger_flush_interval": "1h",
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// loadFlags loads the config that flags set, with more's keys added over
// them (flags is changed).
func loadFlags(t *testing.T, flags, more map[string]string) *configs.Config {
	t.Helper()
	maps.Copy(flags, more)
	cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func listen(t *testing.T) (net.Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

// background lists the goroutines of the App's background work still
// running: the upload sweep, the ledger's flusher, the HTTP server.
func background() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		// Only the goroutine's own frames, not who created it.
		if i := strings.Index(g, "\ncreated by "); i >= 0 {
			g = g[:i]
		}
		for _, fn := range []string{"publishing.(*Service).Run", "ledger.(*Ledger).run", "net/http.(*Server).Serve", "app.(*App).Serve"} {
			if strings.Contains(g, fn) {
				found = append(found, fn)
			}
		}
	}
	return found
}

// settle waits up to a few seconds for the goroutine count to fall to n,
// and reports the count it saw last.
func settle(n int) int {
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeAndClose runs a portal on a real listener, downloads through it,
// and checks that Close waited for the background work, wrote the queued
// ledger grants and released the store.
func TestServeAndClose(t *testing.T) {
	ctx := cliCtx
	dir := t.TempDir()
	client := &http.Client{
		Transport:     &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	before := runtime.NumGoroutine()

	ln, url := listen(t)
	a, err := app.Open(ctx, config(t, dir, url), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	// An open product with one release, uploaded over HTTP to the local
	// store's /blobs/ links the App serves.
	sealed, err := a.Keys.New("app")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Catalog.CreateProduct(ctx, releases.Product{Slug: "app", Distribution: releases.Open, SigningKey: sealed}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Catalog.CreateRelease(ctx, "app", releases.NewRelease{Version: "1.0.0"}); err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("portal "), 1000)
	sum := sha256.Sum256(data)
	art, up, err := a.Publishing.AddArtifact(ctx, "app", "1.0.0", releases.NewArtifact{
		Filename: "app-1.0.0-linux-amd64.tar.gz", Platform: "linux", Arch: "amd64",
		Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(up.URL, url+"/blobs/") {
		t.Fatalf("upload URL %s is not on the App's listener %s", up.URL, url)
	}
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(data))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("upload: %s", res.Status)
	}
	if _, err := a.Publishing.Complete(ctx, "app", "1.0.0", art.Filename); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Catalog.Publish(ctx, "app", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := a.Index.Refresh(ctx, "app"); err != nil {
		t.Fatal(err)
	}

	const downloads = 3
	for range downloads {
		res, err := client.Get(url + "/v1/products/app/releases/1.0.0/download?platform=linux&arch=amd64")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("download: %s %s", res.Status, body)
		}
	}
	if st := a.Ledger.Stats(); st.Queued != downloads || st.Recorded != 0 {
		t.Fatalf("ledger before Close: %+v; want %d grants queued, none written", st, downloads)
	}
	if got := background(); len(got) < 4 {
		t.Fatalf("background work while serving: %v; want the sweep, the flusher and the server", got)
	}

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := background(); len(got) != 0 {
		t.Fatalf("Close returned with %v still running", got)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	client.CloseIdleConnections()
	if n := settle(before); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}

	// The store is released and holds the grants queued at Close.
	b, err := app.Open(ctx, config(t, dir, url), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if n, err := b.Ledger.Count(ctx, "app", "1.0.0"); err != nil || n != downloads {
		t.Fatalf("downloads stored after Close: %d, %v; want %d", n, err, downloads)
	}
	gs, _, err := b.Ledger.ByLicense(ctx, "", "", 10)
	if err != nil || len(gs) != downloads {
		t.Fatalf("grants stored after Close: %d, %v; want %d", len(gs), err, downloads)
	}
}

// TestServeStopsWithContext: Serve shuts the HTTP server down when its
// context ends, and Close then takes the rest down.
func TestServeStopsWithContext(t *testing.T) {
	ln, url := listen(t)
	a, err := app.Open(context.Background(), config(t, t.TempDir(), url), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	res, err := http.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz: %s", res.Status)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return when its context ended")
	}
	if _, err := http.Get(url + "/healthz"); err == nil {
		t.Fatal("the listener still answers after Serve returned")
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestOpenFailsCleanly: when Open fails partway it returns the error and
// leaves nothing open: the bbolt file can be opened at once, no goroutine
// stays behind, and an object store it was given is not closed.
func TestOpenFailsCleanly(t *testing.T) {
	ctx := cliCtx
	cases := []struct {
		name  string
		setup func(t *testing.T, cfg *configs.Config, opts *app.Options)
		want  string
	}{
		{"invalid S3 endpoint", func(t *testing.T, cfg *configs.Config, opts *app.Options) {
			cfg.Objects.Backend = "s3"
			cfg.Objects.S3.Bucket = "artifacts"
			cfg.Objects.S3.Endpoint = "ftp://s3.invalid"
		}, "endpoint"},
		{"bad master key", func(t *testing.T, cfg *configs.Config, opts *app.Options) {
			cfg.Signing.MasterKey = "not base64 of 32 bytes"
		}, "signing.master_key"},
		{"link key unreadable, after the objects and the index", func(t *testing.T, cfg *configs.Config, opts *app.Options) {
			// A given object store, so that the secrets directory (now a
			// file) is first needed for the share-link key.
			ring, err := local.ParseKeyring(strings.Repeat("k", 32))
			if err != nil {
				t.Fatal(err)
			}
			ls, err := local.Open(local.Options{Root: t.TempDir(), BaseURL: "http://127.0.0.1:1", Keys: ring})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ls.Close() })
			opts.Objects, opts.Blobs = ls, ls.Handler()
			if err := os.WriteFile(cfg.DataPath("secrets"), []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "link"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config(t, dir, "http://127.0.0.1:1")
			var opts app.Options
			c.setup(t, cfg, &opts)
			before := runtime.NumGoroutine()
			a, err := app.Open(ctx, cfg, opts)
			if err == nil {
				a.Close(ctx)
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			db, err := bolt.Open(cfg.DataPath("portal.db"), bolt.Options{LockTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("the store is still held after a failed Open: %v", err)
			}
			db.Close()
			if got := background(); len(got) != 0 {
				t.Fatalf("a failed Open left %v running", got)
			}
			if n := settle(before); n > before {
				t.Fatalf("%d goroutines after a failed Open, %d before", n, before)
			}
			if opts.Objects != nil {
				if err := opts.Objects.Ping(ctx); err != nil {
					t.Fatalf("the given object store was closed: %v", err)
				}
			}
		})
	}
}

// TestOpenStoreLocked: a store held by another process (here another
// handle) fails Open and OpenStore with store.ErrLocked, at once.
func TestOpenStoreLocked(t *testing.T) {
	ctx := cliCtx
	cfg := config(t, t.TempDir(), "http://127.0.0.1:1")
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		t.Fatal(err)
	}
	held, err := bolt.Open(cfg.DataPath("portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	for name, open := range map[string]func(context.Context, *configs.Config, app.Options) (*app.App, error){
		"Open": app.Open, "OpenStore": app.OpenStore,
	} {
		start := time.Now()
		a, err := open(ctx, cfg, app.Options{})
		if err == nil {
			a.Close(ctx)
			t.Fatalf("%s on a held store succeeded", name)
		}
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("%s: %v, want store.ErrLocked", name, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("%s took %v to fail", name, d)
		}
	}
}

// TestOpenStore opens the store and its services only: a token written
// through it is there for the next Open, and Serve refuses to run.
func TestOpenStore(t *testing.T) {
	ctx := cliCtx
	dir := t.TempDir()
	cfg := config(t, dir, "http://127.0.0.1:1")
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Server != nil || a.Objects != nil || a.Ledger != nil {
		t.Fatal("OpenStore built more than the store's services")
	}
	if _, _, err := a.Tokens.Create(ctx, "root", tokens.Admin, nil); err != nil {
		t.Fatal(err)
	}
	ln, _ := listen(t)
	if err := a.Serve(ctx, ln); err == nil {
		t.Fatal("Serve on an App from OpenStore succeeded")
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	if any, err := b.Tokens.Any(ctx); err != nil || !any {
		t.Fatalf("token after reopening: %v, %v", any, err)
	}
}
