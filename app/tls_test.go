package app_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/testcert"
	"github.com/portaldist/portal/tokens"
)

// A portal on tls.cert_file and tls.key_file answers HTTPS over HTTP/2
// with HSTS; after the files are replaced, ReloadTLS (what SIGHUP calls)
// gives new connections the new certificate while a request in flight on
// an old connection finishes on it. A pair that does not load leaves the
// current one in place.
func TestServeTLSReload(t *testing.T) {
	ca := testcert.New(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.Issue(t, certFile, keyFile, 1001)

	ln, plain := listen(t)
	url := strings.Replace(plain, "http://", "https://", 1)
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "public_url": url, "log.access": "false",
		"tls.cert_file": certFile, "tls.key_file": keyFile,
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(context.Background(), ln) }()
	defer func() {
		if err := a.Close(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	_, admin, err := a.Tokens.Create(cliCtx, "root", tokens.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}

	get := func(c *http.Client, path string) *http.Response {
		t.Helper()
		res, err := c.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	old := ca.Client(t)
	for _, path := range []string{"/healthz", "/v1/nothing-here"} {
		res := get(old, path)
		if res.ProtoMajor != 2 {
			t.Errorf("%s: %s, want HTTP/2", path, res.Proto)
		}
		if got := res.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s (%d): Strict-Transport-Security %q", path, res.StatusCode, got)
		}
		if s := testcert.Serial(res); s != 1001 {
			t.Fatalf("%s: serial %d", path, s)
		}
	}
	// Plain HTTP is not served on the TLS listener.
	if res, err := http.Get(plain + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}

	// A request in flight on the old connection: its body is half sent
	// (the pipe's write returns once the transport took the bytes).
	body := `{"slug":"acme","name":"Acme","distribution":"open"}`
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", url+"/v1/products", pr)
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	type answer struct {
		res  *http.Response
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		res, err := old.Do(req)
		if err != nil {
			answered <- answer{err: err}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		answered <- answer{res: res, body: string(b)}
	}()
	if _, err := io.WriteString(pw, body[:10]); err != nil {
		t.Fatal(err)
	}

	ca.Issue(t, certFile, keyFile, 2002)
	if err := a.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if s := testcert.Serial(get(ca.Client(t), "/healthz")); s != 2002 {
		t.Fatalf("after reload a new connection got serial %d, want 2002", s)
	}

	// A key that does not match is refused; the last good pair stays.
	other := t.TempDir()
	ca.Issue(t, filepath.Join(other, "cert.pem"), filepath.Join(other, "key.pem"), 3003)
	ca.Issue(t, certFile, filepath.Join(other, "unused.pem"), 3004)
	if err := a.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("reload of a mismatched pair: %v", err)
	}
	if s := testcert.Serial(get(ca.Client(t), "/healthz")); s != 2002 {
		t.Fatalf("after a failed reload a new connection got serial %d, want 2002", s)
	}

	if _, err := io.WriteString(pw, body[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	ans := <-answered
	if ans.err != nil {
		t.Fatal(ans.err)
	}
	if ans.res.StatusCode != http.StatusCreated || testcert.Serial(ans.res) != 1001 || ans.res.ProtoMajor != 2 {
		t.Fatalf("in-flight request: %d serial %d %s: %s", ans.res.StatusCode, testcert.Serial(ans.res), ans.res.Proto, ans.body)
	}
}

// Open refuses certificate files that do not load, naming the key.
func TestOpenTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "log.access": "false",
		"tls.cert_file": filepath.Join(dir, "missing.pem"), "tls.key_file": filepath.Join(dir, "key.pem"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{})
	if err == nil {
		a.Close(context.Background())
		t.Fatal("Open succeeded without the certificate file")
	}
	if !strings.Contains(err.Error(), "tls.cert_file") {
		t.Fatalf("error %v does not name tls.cert_file", err)
	}
}
