package adminsock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

func requireLinux(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are read on Linux only")
	}
}

// open serves a socket in a fresh directory over a real bbolt store.
func open(t *testing.T) (*Server, *tokens.Service) {
	t.Helper()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "portal.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ts := tokens.New(db, nil)
	s, err := Listen(filepath.Join(dir, "portal.sock"), ts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s, ts
}

func post(t *testing.T, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	defer c.CloseIdleConnections()
	res, err := c.Post("http://portal"+TokensPath, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		peer, self uint32
		want       bool
	}{
		{1000, 1000, true}, {0, 1000, true}, {0, 0, true},
		{1001, 1000, false}, {1000, 0, false}, {65534, 1000, false},
	} {
		if got := allowed(tc.peer, tc.self); got != tc.want {
			t.Errorf("allowed(peer %d, server %d) = %v, want %v", tc.peer, tc.self, got, tc.want)
		}
	}
}

// TestRequests: bodies that are not one token request of known fields are
// refused with the API's envelope and create nothing; refusals of the
// tokens service reach CreateToken as *portal.Error.
func TestRequests(t *testing.T) {
	requireLinux(t)
	s, ts := open(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"unknown field", `{"role":"admin","admin":true}`, 400, portal.EInvalid},
		{"two values", `{"role":"admin"}{"role":"admin"}`, 400, portal.EInvalid},
		{"not json", `role=admin`, 400, portal.EInvalid},
		{"wrong type", `{"role":["admin"]}`, 400, portal.EInvalid},
		{"too large", `{"role":"admin","name":"` + strings.Repeat("x", maxBody) + `"}`, 413, portal.ETooLarge},
		{"bad role", `{"role":"root"}`, 400, portal.EInvalid},
		{"admin with products", `{"role":"admin","products":["app"]}`, 400, portal.EInvalid},
		{"expired", `{"role":"admin","expires_at":"2001-01-01T00:00:00Z"}`, 400, portal.EInvalid},
	} {
		status, body := post(t, s.Path(), tc.body)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, body, tc.status, tc.code)
		}
	}
	if any, err := ts.Any(ctx); err != nil || any {
		t.Fatalf("tokens after refusals: %v %v", any, err)
	}

	_, err := CreateToken(ctx, s.Path(), TokenRequest{Role: "publisher"})
	if pe, ok := errors.AsType[*portal.Error](err); !ok || pe.Code != portal.EInvalid || !strings.Contains(pe.Message, "product") {
		t.Fatalf("publisher without products: %v, want the service's invalid refusal", err)
	}

	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Second)
	got, err := CreateToken(ctx, s.Path(), TokenRequest{Name: "ci", Role: "publisher", Products: []string{"app"}, Expires: &exp})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Authenticate(ctx, got.Token)
	if err != nil || tok.ID != got.ID || tok.Name != "ci" || tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(exp) {
		t.Fatalf("stored token %+v %v, want %+v", tok, err, got)
	}
}

// TestListen: paths too long, live sockets and other files are refused;
// Close removes its own socket only.
func TestListen(t *testing.T) {
	requireLinux(t)
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("d", MaxPath)+".sock")
	if _, err := Listen(long, nil, nil); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("path of %d bytes: %v, want refused", len(long), err)
	}

	s, _ := open(t)
	if _, err := Listen(s.Path(), nil, nil); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("Listen on a live socket: %v", err)
	}
	if fi, err := os.Lstat(s.Path()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the live socket after the refused Listen: %v %v", fi, err)
	}

	// A file that took the socket's place is not Close's to remove.
	if err := os.Remove(s.Path()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.Path(), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path()); err != nil {
		t.Fatalf("Close removed a file that was not its socket: %v", err)
	}
	if _, err := Listen(s.Path(), nil, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
}

// TestPeerOfAnotherUser: a peer whose uid is neither the server's nor root
// is refused with 403 before its request is read, even when it can open
// the socket. As root the peer is a child process run as nobody; otherwise
// the server pretends to run as another user.
func TestPeerOfAnotherUser(t *testing.T) {
	requireLinux(t)
	s, ts := open(t)
	if os.Getuid() != 0 {
		s.uid = uint32(os.Getuid()) + 1
		status, body := post(t, s.Path(), `{"role":"admin"}`)
		if status != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) {
			t.Fatalf("peer of another user: %d %s, want 403", status, body)
		}
	} else {
		// Let nobody reach the socket, so only the uid check stands.
		for _, p := range []string{filepath.Dir(s.Path()), filepath.Dir(filepath.Dir(s.Path()))} {
			if err := os.Chmod(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(s.Path(), 0o666); err != nil {
			t.Fatal(err)
		}
		// The test binary sits in a directory only root may enter.
		bin := filepath.Join(filepath.Dir(s.Path()), "helper.test")
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^TestHelperPost$")
		cmd.Env = append(os.Environ(), "ADMINSOCK_HELPER_PATH="+s.Path())
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as nobody: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "status 403") || !strings.Contains(string(out), "uid 65534") {
			t.Fatalf("peer nobody: %s, want 403 naming uid 65534", out)
		}
	}
	if any, err := ts.Any(context.Background()); err != nil || any {
		t.Fatalf("tokens after a refused peer: %v %v", any, err)
	}
}

// TestHelperPost is TestPeerOfAnotherUser's child process.
func TestHelperPost(t *testing.T) {
	path := os.Getenv("ADMINSOCK_HELPER_PATH")
	if path == "" {
		t.Skip("run by TestPeerOfAnotherUser")
	}
	status, body := post(t, path, `{"role":"admin"}`)
	fmt.Printf("status %d %s\n", status, body)
}
