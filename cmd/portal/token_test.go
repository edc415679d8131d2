package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/adminsock"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// serveDir runs a real portal on data directory dir, with flags over the
// defaults, until the test ends; it returns the portal's URL and App.
func serveDir(t *testing.T, dir string, flags map[string]string) (string, *app.App) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	all := map[string]string{"data_dir": dir, "public_url": url, "log.access": "false"}
	for k, v := range flags {
		all[k] = v
	}
	cfg, err := configs.Load(configs.LoadOptions{Flags: all})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{})
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
	return url, a
}

// runTokenCreate runs `portal token create args...` and returns its stdout
// and stderr.
func runTokenCreate(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := tokenCreate(context.Background(), append([]string{"create"}, args...), &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestTokenCreateWhileServing: with a server holding the store, token
// create goes through the admin socket and prints, once and the same way
// as offline, a token the HTTP API accepts.
func TestTokenCreateWhileServing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the admin socket reads peer credentials on Linux only")
	}
	dir := t.TempDir()
	url, a := serveDir(t, dir, nil)

	stdout, stderr, err := runTokenCreate(t, "--role", "admin", "--name", "ops", "--data-dir", dir)
	if err != nil {
		t.Fatalf("token create while serving: %v (stderr %q)", err, stderr)
	}
	raw := strings.TrimSpace(stdout)
	if !strings.HasPrefix(raw, tokens.Prefix) || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("stdout %q, want the token alone on one line", stdout)
	}
	if !strings.HasPrefix(stderr, "created admin token ") || !strings.Contains(stderr, "(ops); it is shown this once:") {
		t.Errorf("stderr %q, want the offline command's line", stderr)
	}

	// The token works against the HTTP API as an admin.
	req, _ := http.NewRequest("POST", url+"/v1/tokens", strings.NewReader(`{"name":"ci","role":"publisher","products":["app"]}`))
	req.Header.Set("Authorization", "Bearer "+raw)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/tokens with the new admin token: %d, want 201", res.StatusCode)
	}
	tok, err := a.Tokens.Authenticate(context.Background(), raw)
	if err != nil || tok.Role != tokens.Admin || tok.Name != "ops" {
		t.Fatalf("the stored token: %+v %v, want admin ops", tok, err)
	}

	// Publisher tokens and their products go through the socket as well.
	stdout, _, err = runTokenCreate(t, "--role", "publisher", "--product", "app", "--product", "tool", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err = a.Tokens.Authenticate(context.Background(), strings.TrimSpace(stdout))
	if err != nil || tok.Role != tokens.Publisher || strings.Join(tok.Products, ",") != "app,tool" {
		t.Fatalf("publisher token: %+v %v", tok, err)
	}

	// A refusal is the service's, as offline: same code and message.
	stdout, _, err = runTokenCreate(t, "--role", "root", "--data-dir", dir)
	if !portal.IsCode(err, portal.EInvalid) || !strings.Contains(err.Error(), "role must be") || stdout != "" {
		t.Fatalf("bad role while serving: %v, stdout %q; want the invalid role refusal", err, stdout)
	}
	if errors.Is(err, store.ErrLocked) {
		t.Errorf("a refusal by the server mentions the lock: %v", err)
	}
}

// TestTokenCreateOfflineAndNeither: without a server token create opens the
// store itself; with a server that has no admin socket, or one the command
// cannot reach, the error names the lock and the socket.
func TestTokenCreateOfflineAndNeither(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, err := runTokenCreate(t, "--role", "admin", "--data-dir", dir)
	if err != nil || !strings.HasPrefix(stdout, tokens.Prefix) || !strings.HasPrefix(stderr, "created admin token ") {
		t.Fatalf("offline: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	_, a := serveDir(t, dir, map[string]string{"admin.socket": ""})
	if ok, err := a.Tokens.Authenticate(context.Background(), strings.TrimSpace(stdout)); err != nil || ok.Role != tokens.Admin {
		t.Fatalf("the offline token: %+v %v", ok, err)
	}

	// The server runs without a socket; the command looks for the default
	// one.
	stdout, _, err = runTokenCreate(t, "--role", "admin", "--data-dir", dir)
	if !errors.Is(err, store.ErrLocked) || stdout != "" {
		t.Fatalf("locked, no socket: %v, stdout %q; want store.ErrLocked", err, stdout)
	}
	sock := filepath.Join(dir, "portal.sock")
	for _, want := range []string{"held by another process", "could not be asked", sock, "no such file or directory", "admin.socket"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// The command's own admin.socket is off.
	t.Setenv("PORTAL_ADMIN_SOCKET", "off")
	_, _, err = runTokenCreate(t, "--role", "admin", "--data-dir", dir)
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), "admin.socket is disabled") {
		t.Fatalf("locked, socket disabled: %v", err)
	}
}

// TestTokenCreateServerStarting: a server that holds the store but does not
// listen on its socket yet (it is still opening) is waited for.
func TestTokenCreateServerStarting(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the admin socket reads peer credentials on Linux only")
	}
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ts := tokens.New(db, nil)
	listening := make(chan *adminsock.Server, 1)
	go func() {
		time.Sleep(1500 * time.Millisecond) // past the 1s lock wait of OpenStore
		s, err := adminsock.Listen(filepath.Join(dir, "portal.sock"), ts, nil)
		if err != nil {
			t.Error(err)
		}
		listening <- s
	}()
	stdout, _, err := runTokenCreate(t, "--role", "admin", "--data-dir", dir)
	if s := <-listening; s != nil {
		defer s.Close(context.Background())
	}
	if err != nil {
		t.Fatalf("token create while the server starts: %v", err)
	}
	if tok, err := ts.Authenticate(context.Background(), strings.TrimSpace(stdout)); err != nil || tok.Role != tokens.Admin {
		t.Fatalf("the token: %+v %v", tok, err)
	}
}
