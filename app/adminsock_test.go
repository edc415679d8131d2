package app_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/internal/adminsock"
)

// unixClient sends HTTP requests over the unix socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
}

func requireAdminSocket(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the admin socket reads peer credentials on Linux only")
	}
}

// TestAdminSocketLifecycle: a serving App has its admin socket in the data
// directory with mode 0600, answering token creation and nothing else;
// Close removes it; a socket left by a killed server does not block the
// next start.
func TestAdminSocketLifecycle(t *testing.T) {
	requireAdminSocket(t)
	ctx := context.Background()
	dir := t.TempDir()
	sock := filepath.Join(dir, "portal.sock")

	// What a killed server leaves: a socket file nobody listens on.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != fs.ModeSocket {
		t.Fatalf("stale socket not in place: %v %v", fi, err)
	}

	ln, url := listen(t)
	a, err := app.Open(ctx, config(t, dir, url), app.Options{})
	if err != nil {
		t.Fatalf("Open over a stale socket: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	defer a.Close(ctx)

	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v, want a socket with 0600", fi.Mode())
	}

	// Everything but POST /v1/tokens is refused, and nothing is created.
	c := unixClient(sock)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/v1/tokens", http.StatusMethodNotAllowed},
		{"DELETE", "/v1/tokens", http.StatusMethodNotAllowed},
		{"GET", "/v1/products", http.StatusNotFound},
		{"POST", "/v1/products", http.StatusNotFound},
		{"POST", "/v1/licenses", http.StatusNotFound},
		{"GET", "/healthz", http.StatusNotFound},
		{"POST", "/v1/tokens/x", http.StatusNotFound},
		{"GET", "/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, "http://portal"+tc.path, strings.NewReader(`{"role":"admin"}`))
		res, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.status || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s %s: %d %s, want %d with an error body", tc.method, tc.path, res.StatusCode, body, tc.status)
		}
		if tc.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "POST" {
			t.Errorf("%s %s: Allow %q, want POST", tc.method, tc.path, res.Header.Get("Allow"))
		}
	}
	if any, err := a.Tokens.Any(ctx); err != nil || any {
		t.Fatalf("tokens after refused requests: %v %v, want none", any, err)
	}

	// The one thing it does: create a token that the HTTP API accepts.
	created, err := adminsock.CreateToken(ctx, sock, adminsock.TokenRequest{Name: "ops", Role: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", url+"/v1/products", strings.NewReader(`{"slug":"app","name":"App","distribution":"licensed"}`))
	req.Header.Set("Authorization", "Bearer "+created.Token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("POST /v1/products with the socket's token: %d, want 201", res.StatusCode)
	}

	// Audited as the local operator, with the peer as the client.
	recs, _, err := audit.New(a.DB).List(ctx, audit.Filter{Action: "token.create"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Actor.Kind != audit.KindCLI || !strings.HasPrefix(recs[0].Client, "unix uid=") ||
		recs[0].RequestID == "" || strings.Contains(string(recs[0].After), created.Token) {
		t.Fatalf("audit of the socket's token.create: %+v", recs)
	}

	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("admin socket after Close: %v, want it removed", err)
	}
	if _, err := adminsock.CreateToken(ctx, sock, adminsock.TokenRequest{Role: "admin"}); err == nil {
		t.Fatal("token created through the socket of a closed App")
	}
}

// TestAdminSocketConfig: admin.socket "" runs without a socket; a socket
// path another live server answers on, or one taken by another kind of
// file, fails Open and leaves the file alone; Offline opens none.
func TestAdminSocketConfig(t *testing.T) {
	requireAdminSocket(t)
	ctx := context.Background()

	dir := t.TempDir()
	cfg := config(t, dir, "http://127.0.0.1:1")
	cfg.Admin.Socket = ""
	a, err := app.Open(ctx, cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "portal.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("admin.socket \"\": %v, want no socket", err)
	}
	a.Close(ctx)

	dir = t.TempDir()
	a, err = app.Open(ctx, config(t, dir, "http://127.0.0.1:1"), app.Options{Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "portal.sock")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Offline: %v, want no socket", err)
	}
	a.Close(ctx)

	// Two data directories, one socket path: the second server must not
	// take the first one's socket.
	shared := filepath.Join(t.TempDir(), "run", "admin.sock")
	first := config(t, t.TempDir(), "http://127.0.0.1:1")
	first.Admin.Socket = shared
	a, err = app.Open(ctx, first, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	second := config(t, t.TempDir(), "http://127.0.0.1:1")
	second.Admin.Socket = shared
	if b, err := app.Open(ctx, second, app.Options{}); err == nil {
		b.Close(ctx)
		t.Fatal("a second App took a live admin socket")
	} else if !strings.Contains(err.Error(), "admin.socket") {
		t.Errorf("error %q does not name admin.socket", err)
	}
	if _, err := adminsock.CreateToken(ctx, shared, adminsock.TokenRequest{Role: "admin"}); err != nil {
		t.Fatalf("the first App's socket after the second Open failed: %v", err)
	}

	// A regular file where the socket goes is not deleted.
	dir = t.TempDir()
	notSock := filepath.Join(dir, "portal.sock")
	if err := os.WriteFile(notSock, []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := app.Open(ctx, config(t, dir, "http://127.0.0.1:1"), app.Options{}); err == nil {
		b.Close(ctx)
		t.Fatal("Open replaced a regular file with the admin socket")
	}
	if b, err := os.ReadFile(notSock); err != nil || string(b) != "keep" {
		t.Fatalf("the regular file: %q %v, want it untouched", b, err)
	}
}
