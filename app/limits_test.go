package app_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/tokens"
)

func TestCheckPublicURL(t *testing.T) {
	for _, tt := range []struct {
		listen, publicURL string
		refused, warned   bool
	}{
		{listen: "127.0.0.1:8080"},
		{listen: "[::1]:8080"},
		{listen: "localhost:8080"},
		{listen: "0.0.0.0:8080", refused: true},
		{listen: ":8080", refused: true},
		{listen: "[::]:8080", refused: true},
		{listen: "0.0.0.0:0", refused: true},
		{listen: "192.0.2.7:8080", refused: true},
		{listen: "[2001:db8::7]:8080", refused: true},
		{listen: "portal.example:8080", refused: true},
		{listen: "10.0.0.5:8080", refused: true},
		{listen: "0.0.0.0:8080", publicURL: "https://downloads.example"},
		{listen: "192.0.2.7:8080", publicURL: "https://downloads.example"},
	} {
		flags := map[string]string{"listen": tt.listen, "data_dir": t.TempDir()}
		if tt.publicURL != "" {
			flags["public_url"] = tt.publicURL
		}
		cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
		if err != nil {
			t.Fatal(err)
		}
		warning, err := app.CheckPublicURL(cfg, tt.listen)
		if (err != nil) != tt.refused || (warning != "") != tt.warned {
			t.Errorf("listen %s, public_url %q: warning %q, err %v", tt.listen, tt.publicURL, warning, err)
		}
		for _, msg := range []string{warning, fmt.Sprint(err)} {
			if (tt.refused || tt.warned) && msg != "<nil>" && msg != "" &&
				(!strings.Contains(msg, "public_url") || !strings.Contains(msg, "PORTAL_PUBLIC_URL")) {
				t.Errorf("listen %s: %q does not name the key", tt.listen, msg)
			}
		}
	}
}

// Serve refuses a listener on every interface when public_url is not set.
func TestServeRefusesUnspecifiedWithoutPublicURL(t *testing.T) {
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Skip("cannot listen on 0.0.0.0:", err)
	}
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "listen": ln.Addr().String(), "log.access": "false",
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()
	// Refused, Serve closes the listener without answering anything.
	port := ln.Addr().(*net.TCPAddr).Port
	if res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err == nil {
		res.Body.Close()
		t.Errorf("Serve on %s without public_url answered %d", ln.Addr(), res.StatusCode)
	}
	cancel()
	if err := <-served; err == nil || !strings.Contains(err.Error(), "public_url") {
		t.Fatalf("Serve on %s without public_url: %v", ln.Addr(), err)
	}
}

// Serve refuses an address that is not loopback without public_url,
// naming the key, and serves on it once public_url is set.
func TestServeRefusesNonLoopbackWithoutPublicURL(t *testing.T) {
	var addr string
	ifaces, _ := net.InterfaceAddrs()
	for _, a := range ifaces {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			addr = ipn.IP.String()
			break
		}
	}
	if addr == "" {
		// The rule itself is TestCheckPublicURL's, which needs no
		// interface; this one only adds Serve on a real one.
		t.Skip("no non-loopback IPv4 address on this machine")
	}
	for _, publicURL := range []string{"", "https://downloads.example"} {
		ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			t.Skip(err)
		}
		flags := map[string]string{"data_dir": t.TempDir(), "listen": ln.Addr().String(), "log.access": "false"}
		if publicURL != "" {
			flags["public_url"] = publicURL
		}
		cfg, err := configs.Load(configs.LoadOptions{Flags: flags})
		if err != nil {
			t.Fatal(err)
		}
		a, err := app.Open(context.Background(), cfg, app.Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- a.Serve(ctx, ln) }()
		res, getErr := http.Get("http://" + ln.Addr().String() + "/healthz")
		if getErr == nil {
			res.Body.Close()
		}
		cancel()
		err = <-served
		a.Close(context.Background())
		if publicURL == "" {
			if getErr == nil {
				t.Errorf("Serve on %s without public_url answered %d", ln.Addr(), res.StatusCode)
			}
			if err == nil || !strings.Contains(err.Error(), "public_url") || !strings.Contains(err.Error(), "PORTAL_PUBLIC_URL") {
				t.Errorf("Serve on %s without public_url: %v", ln.Addr(), err)
			}
			continue
		}
		if getErr != nil || res.StatusCode != 200 || err != nil {
			t.Errorf("Serve on %s with public_url: get %v, serve %v", ln.Addr(), getErr, err)
		}
	}
}

// limited serves a portal with short idle timeouts and a cap of two
// connections per address; it returns its address and an admin token.
func limited(t *testing.T) (*app.App, string, string) {
	t.Helper()
	ln, url := listen(t)
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "public_url": url, "log.access": "false",
		"limits.body_idle_timeout": idle.String(), "limits.write_idle_timeout": idle.String(),
		"limits.connections_per_address": "2",
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
	return a, strings.TrimPrefix(url, "http://"), admin
}

const idle = 300 * time.Millisecond

// A JSON body trickled slower than limits.body_idle_timeout is cut off
// with 408 at the first gap and stores nothing; one sent steadily for
// longer than the idle time is read whole.
func TestServeBodyIdleTimeout(t *testing.T) {
	a, addr, admin := limited(t)
	body := `{"slug":"acme","name":"Acme","distribution":"open"}`

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/products HTTP/1.1\r\nHost: portal\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", admin, len(body))
	var sent atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range len(body) {
			if _, err := c.Write([]byte{body[i]}); err != nil {
				return
			}
			sent.Add(1)
			time.Sleep(4 * idle)
		}
	}()
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	answer, _ := io.ReadAll(res.Body)
	if n := sent.Load(); int(n) >= len(body) {
		t.Fatal("the server waited for the whole trickled body")
	}
	if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(answer), `"request_timeout"`) || !res.Close {
		t.Fatalf("status %d close %v: %s", res.StatusCode, res.Close, answer)
	}
	c.Close()
	<-done
	if _, err := a.Catalog.Product(context.Background(), "acme"); err == nil {
		t.Fatal("the cut-off request stored a product")
	}

	// The same body, padded with whitespace and sent steadily over four
	// idle times.
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, body[:len(body)-1])
		for range 40 {
			if _, err := io.WriteString(pw, strings.Repeat(" ", 100)); err != nil {
				return
			}
			time.Sleep(idle / 10)
		}
		io.WriteString(pw, "}")
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/products", pr)
	req.Header.Set("Authorization", "Bearer "+admin)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("steady upload: status %d: %s", res.StatusCode, answer)
	}
}

// A third connection from one address, over limits.connections_per_address,
// is closed at accept while the first two are served.
func TestServeConnectionsPerAddress(t *testing.T) {
	_, addr, _ := limited(t)
	var conns []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// The listener accepts in the order the connections were made: the
	// third finds the first two open, and is closed unanswered.
	fmt.Fprint(conns[2], "GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n")
	if res, err := http.ReadResponse(bufio.NewReader(conns[2]), nil); err == nil {
		t.Fatalf("the connection over the cap was answered: %d", res.StatusCode)
	}
	for _, c := range conns[:2] {
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
}
