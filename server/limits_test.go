package server_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// series lists the portal's own series in a /metrics scrape, without their
// values.
func (e *env) series() []string {
	e.t.Helper()
	r := e.must(200, e.do("GET", "/metrics", bearer(e.admin), nil))
	var out []string
	for _, line := range strings.Split(string(r.body), "\n") {
		if strings.HasPrefix(line, "portal_") {
			out = append(out, line[:strings.LastIndexByte(line, ' ')])
		}
	}
	sort.Strings(out)
	return out
}

// Thousands of requests with invented methods, paths and products make no
// new series: every label comes from a closed set.
func TestMetricsLabelsAreClosed(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "open")
	client := &http.Client{}
	send := func(method, path, auth string) {
		req, err := http.NewRequest(method, e.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	hostile := func(i int) {
		send(fmt.Sprintf("INVENTED%d", i), "/healthz", "")
		send(fmt.Sprintf("X-%d", i), fmt.Sprintf("/v1/products/acme-%d", i), "")
		send("GET", fmt.Sprintf("/no/such/path/%d", i), "")
		send("GET", fmt.Sprintf("/v1/products/nope-%d/upgrade?platform=linux&arch=amd64&current=1.0.0", i), "")
		send("GET", fmt.Sprintf("/v1/products/nope-%d/releases/latest/download?platform=linux&arch=amd64", i), "")
		send("GET", fmt.Sprintf("/feeds/nope-%d/appcast.xml", i), "")
		send("GET", fmt.Sprintf("/d/invented-token-%d", i), "")
		send("GET", fmt.Sprintf("/v1/products/nope-%d", i), bearer(e.admin))
	}
	// One of each first, so the series for "other", "unmatched" and the
	// refusals exist; scrape twice so /metrics has its own series.
	hostile(0)
	e.series()
	before := e.series()
	for i := 1; i <= 1000; i++ {
		hostile(i)
	}
	after := e.series()
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("hostile requests made new series: %d before, %d after; first new ones: %v",
			len(before), len(after), newOnes(before, after, 5))
	}
	for _, want := range []string{
		`portal_http_requests_total{method="other",route="unmatched",status="405"}`,
		`portal_http_requests_total{method="GET",route="unmatched",status="404"}`,
		`portal_http_requests_total{method="GET",route="/v1/products/:product/upgrade",status="404"}`,
	} {
		if !contains(after, want) {
			t.Errorf("no series %s", want)
		}
	}
}

func newOnes(before, after []string, n int) []string {
	seen := map[string]bool{}
	for _, s := range before {
		seen[s] = true
	}
	var out []string
	for _, s := range after {
		if !seen[s] && len(out) < n {
			out = append(out, s)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// /metrics answers only to an admin token.
func TestMetricsAdminOnly(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	_, key := e.license(map[string]any{"customer": "c", "product": "acme"})
	for _, tt := range []struct {
		name, auth string
		status     int
		code       string
	}{
		{"anonymous", "", 401, "unauthorized"},
		{"bad token", "Bearer nope", 401, "unauthorized"},
		{"publisher", bearer(e.token("publisher", "acme")), 403, "forbidden"},
		{"license", "License " + key, 401, "unauthorized"},
	} {
		r := e.do("GET", "/metrics", tt.auth, nil)
		if r.status != tt.status || r.code() != tt.code {
			t.Errorf("%s: status %d code %q, want %d %q: %s", tt.name, r.status, r.code(), tt.status, tt.code, r.body)
		}
		if bytes.Contains(r.body, []byte("portal_")) {
			t.Errorf("%s: the refusal carries metrics", tt.name)
		}
	}
	r := e.must(200, e.do("GET", "/metrics", bearer(e.admin), nil))
	if !bytes.Contains(r.body, []byte("portal_http_requests_total")) {
		t.Fatalf("admin scrape: %s", r.body)
	}
}

// rawRequest opens a connection to the portal and writes head.
func (e *env) rawRequest(head string) (net.Conn, *bufio.Reader) {
	e.t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		e.t.Fatal(err)
	}
	return c, bufio.NewReader(c)
}

func checkTooLarge(t *testing.T, res *http.Response) {
	t.Helper()
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var m struct {
		Error struct {
			Code  string
			Limit int64
		}
	}
	json.Unmarshal(body, &m)
	if res.StatusCode != 413 || m.Error.Code != "too_large" || m.Error.Limit != 1<<20 {
		t.Fatalf("status %d, body %s; want 413 too_large with the limit", res.StatusCode, body)
	}
	if !res.Close {
		t.Fatal("the answer does not close the connection")
	}
}

// A body whose Content-Length is over the limit is refused with 413 before
// any of it is read: no 100 Continue, a clean answer a client still sending
// can read, and nothing stored.
func TestOversizeBodyRefusedBeforeReading(t *testing.T) {
	e := newEnv(t)
	before := e.dump()
	const size = 10 << 20
	head := fmt.Sprintf("POST /v1/products HTTP/1.1\r\nHost: portal\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n", e.admin, size)

	t.Run("expect 100-continue", func(t *testing.T) {
		c, br := e.rawRequest(head + "Expect: 100-continue\r\n\r\n")
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == 100 {
			t.Fatal("the server asked for the oversize body with 100 Continue")
		}
		checkTooLarge(t, res)
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("the connection stayed open")
		}
		c.Close()
	})

	t.Run("body sent at once", func(t *testing.T) {
		c, br := e.rawRequest(head + "\r\n")
		go func() {
			// A client that sends its whole body before reading the answer.
			chunk := append([]byte(`{"slug":"big","name":"`), bytes.Repeat([]byte("a"), 64<<10)...)
			for sent := 0; sent < size; sent += len(chunk) {
				if _, err := c.Write(chunk); err != nil {
					return
				}
				chunk = bytes.Repeat([]byte("a"), 64<<10)
			}
		}()
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		checkTooLarge(t, res)
	})

	t.Run("chunked", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader(`{"slug":"big","name":"`), bytes.NewReader(bytes.Repeat([]byte("a"), 2<<20)),
			strings.NewReader(`"}`))
		req, _ := http.NewRequest("POST", e.url+"/v1/products", struct{ io.Reader }{body})
		req.Header.Set("Authorization", bearer(e.admin))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if req.ContentLength != 0 || len(req.TransferEncoding) > 0 && req.TransferEncoding[0] != "chunked" {
			t.Fatalf("not sent chunked: %d %v", req.ContentLength, req.TransferEncoding)
		}
		checkTooLarge(t, res)
	})

	if after := e.dump(); after != before {
		t.Fatal("an oversize request changed the store")
	}
}
