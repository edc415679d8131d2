package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/testcert"
)

// `portal serve`, the real binary, on tls.cert_file and tls.key_file:
// HTTPS over HTTP/2 with HSTS, and on SIGHUP the replaced files reach new
// connections while a request in flight on an old one finishes.
func TestServeTLSReloadOnSIGHUP(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGHUP on windows")
	}
	if testing.Short() {
		t.Skip("builds and runs the portal binary")
	}
	bin := filepath.Join(t.TempDir(), "portal")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca := testcert.New(t)
	tlsDir, data := t.TempDir(), t.TempDir()
	certFile, keyFile := filepath.Join(tlsDir, "cert.pem"), filepath.Join(tlsDir, "key.pem")
	ca.Issue(t, certFile, keyFile, 11)
	env := []string{
		"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "PORTAL_DATA_DIR=" + data, "PORTAL_LISTEN=127.0.0.1:0",
		"PORTAL_TLS_CERT_FILE=" + certFile, "PORTAL_TLS_KEY_FILE=" + keyFile, "PORTAL_LOG_ACCESS=false",
	}
	tokenCmd := exec.Command(bin, "token", "create", "--role", "admin", "--name", "tls")
	tokenCmd.Env = env
	out, err := tokenCmd.Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	admin := strings.TrimSpace(string(out))

	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := false
	defer func() {
		if !exited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// waitLog returns the first log line containing s; the bound only
	// keeps a broken binary from hanging the suite.
	waitLog := func(s string) string {
		t.Helper()
		bound := time.After(2 * time.Minute)
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatalf("portal serve exited before logging %q", s)
				}
				if strings.Contains(line, s) {
					return line
				}
			case <-bound:
				t.Fatalf("portal serve did not log %q", s)
			}
		}
	}
	m := regexp.MustCompile(`listen=(\S+)`).FindStringSubmatch(waitLog("portal serving"))
	if m == nil {
		t.Fatal("no listen address in the log")
	}
	url := "https://" + m[1]

	old := ca.Client(t)
	res, err := old.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.ProtoMajor != 2 || testcert.Serial(res) != 11 || res.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Fatalf("first answer: %s serial %d HSTS %q", res.Proto, testcert.Serial(res), res.Header.Get("Strict-Transport-Security"))
	}

	// In flight on the old connection: half the body sent.
	body := `{"slug":"acme","name":"Acme","distribution":"open"}`
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url+"/v1/products", pr)
	req.Header.Set("Authorization", "Bearer "+admin)
	answered := make(chan *http.Response, 1)
	failed := make(chan error, 1)
	go func() {
		res, err := old.Do(req)
		if err != nil {
			failed <- err
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		answered <- res
	}()
	if _, err := io.WriteString(pw, body[:10]); err != nil {
		t.Fatal(err)
	}

	ca.Issue(t, certFile, keyFile, 22)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line := waitLog("tls: "); !strings.Contains(line, "certificate reloaded") || !strings.Contains(line, "serial=22") {
		t.Fatalf("after SIGHUP: %s", line)
	}
	res, err = ca.Client(t).Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if testcert.Serial(res) != 22 {
		t.Fatalf("a new connection after SIGHUP got serial %d, want 22", testcert.Serial(res))
	}

	io.WriteString(pw, body[10:])
	pw.Close()
	select {
	case err := <-failed:
		t.Fatalf("in-flight request: %v", err)
	case res := <-answered:
		if res.StatusCode != http.StatusCreated || testcert.Serial(res) != 11 {
			t.Fatalf("in-flight request: %d serial %d", res.StatusCode, testcert.Serial(res))
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	err = cmd.Wait()
	exited = true
	if err != nil {
		t.Fatalf("portal serve after SIGTERM: %v", err)
	}
}
