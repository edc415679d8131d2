package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/server"
)

// scrape reads /metrics with auth and returns the lines of the portal's
// own series, name and labels then value.
func (e *env) scrape(auth string) string {
	e.t.Helper()
	return string(e.must(200, e.do("GET", "/metrics", auth, nil)).body)
}

// value returns the value of the series line (name and labels as
// exposed), failing when it is absent.
func value(t *testing.T, body, series string) string {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			return rest
		}
	}
	t.Fatalf("no series %s in the scrape", series)
	return ""
}

var durationCount = regexp.MustCompile(`^portal_http_request_duration_seconds_count\{code="([^"]*)",method="([^"]*)",route="([^"]*)"\} (\d+)$`)

// A request to every route is counted in the latency histogram under the
// route's pattern, its method and the status class, all from closed sets.
func TestMetricsLatencyByRoute(t *testing.T) {
	e := newEnv(t)
	routes := server.RoutesOf(e.srv)
	if len(routes) < 30 {
		t.Fatalf("only %d routes", len(routes))
	}
	param := regexp.MustCompile(`[:*][a-z_]+`)
	for _, r := range routes {
		e.do(r.Method, param.ReplaceAllString(r.Path, "x"), "", nil)
	}
	e.do("GET", "/no/such/path", "", nil)
	e.do("BREW", "/healthz", "", nil)

	type key struct{ route, method string }
	seen := map[key]bool{}
	classes := map[string]bool{"1xx": true, "2xx": true, "3xx": true, "4xx": true, "5xx": true}
	for _, line := range strings.Split(e.scrape(bearer(e.admin)), "\n") {
		m := durationCount.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !classes[m[1]] {
			t.Errorf("code label %q is not a status class: %s", m[1], line)
		}
		seen[key{m[3], m[2]}] = true
	}
	for _, r := range routes {
		if !seen[key{r.Path, r.Method}] {
			t.Errorf("no latency series for %s %s", r.Method, r.Path)
		}
	}
	for _, k := range []key{{"unmatched", "GET"}, {"unmatched", "other"}} {
		if !seen[k] {
			t.Errorf("no latency series for %v", k)
		}
	}
	body := e.scrape(bearer(e.admin))
	if n := value(t, body, `portal_http_request_duration_seconds_count{code="2xx",method="GET",route="/healthz"}`); n != "1" {
		t.Errorf("/healthz counted %s times, want 1", n)
	}
	value(t, body, `portal_http_request_duration_seconds_bucket{code="2xx",method="GET",route="/healthz",le="0.0005"}`)
	value(t, body, `portal_http_request_duration_seconds_bucket{code="2xx",method="GET",route="/healthz",le="10"}`)
}

const metricsToken = "mt-0123456789abcdef0123"

// /metrics on the main listener answers to an admin token or to
// metrics.token; a wrong token is refused like any bad token.
func TestMetricsToken(t *testing.T) {
	e := newEnvWith(t, envOptions{flags: map[string]string{"metrics.token": metricsToken}})
	e.product("acme", "licensed")
	for _, tt := range []struct {
		name, auth string
		status     int
	}{
		{"metrics token", bearer(metricsToken), 200},
		{"metrics token, lower-case scheme", "bearer " + metricsToken, 200},
		{"admin", bearer(e.admin), 200},
		{"wrong token of the same length", bearer(metricsToken[:len(metricsToken)-1] + "X"), 401},
		{"a prefix of the token", bearer(metricsToken[:8]), 401},
		{"the token and more", bearer(metricsToken + "0"), 401},
		{"as a license key", "License " + metricsToken, 401},
		{"anonymous", "", 401},
		{"publisher", bearer(e.token("publisher", "acme")), 403},
	} {
		r := e.do("GET", "/metrics", tt.auth, nil)
		if r.status != tt.status {
			t.Errorf("%s: status %d, want %d: %.200s", tt.name, r.status, tt.status, r.body)
			continue
		}
		if got := strings.Contains(string(r.body), "portal_http_requests_total"); got != (tt.status == 200) {
			t.Errorf("%s: scrape in the body: %v", tt.name, got)
		}
	}
}

// get sends a GET to a full URL.
func get(t *testing.T, url, auth string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// metrics.listen moves /metrics to a listener of its own: the main one
// answers 404, the new one serves it, with metrics.token when set.
func TestMetricsListen(t *testing.T) {
	for _, token := range []string{"", metricsToken} {
		t.Run(fmt.Sprintf("token=%v", token != ""), func(t *testing.T) {
			e := newEnvWith(t, envOptions{flags: map[string]string{"metrics.listen": "127.0.0.1:0", "metrics.token": token}})
			for _, auth := range []string{"", bearer(e.admin), bearer(metricsToken)} {
				if r := e.do("GET", "/metrics", auth, nil); r.status != 404 || strings.Contains(string(r.body), "portal_") {
					t.Errorf("main listener, auth %q: %d %.200s", auth, r.status, r.body)
				}
			}
			addr := e.app.MetricsAddr()
			if addr == nil {
				t.Fatal("no metrics listener")
			}
			base := "http://" + addr.String()
			if token == "" {
				if st, body := get(t, base+"/metrics", ""); st != 200 || !strings.Contains(body, "portal_store_info") {
					t.Fatalf("metrics listener: %d %.200s", st, body)
				}
			} else {
				for _, auth := range []string{"", bearer(e.admin), bearer(metricsToken + "x")} {
					if st, body := get(t, base+"/metrics", auth); st != 401 || strings.Contains(body, "portal_") {
						t.Errorf("metrics listener, auth %q: %d %.200s", auth, st, body)
					}
				}
				if st, body := get(t, base+"/metrics", bearer(metricsToken)); st != 200 || !strings.Contains(body, "portal_store_info") {
					t.Fatalf("metrics listener with the token: %d %.200s", st, body)
				}
			}
			if st, _ := get(t, base+"/v1/products", bearer(e.admin)); st != 404 {
				t.Errorf("the metrics listener serves the API: %d", st)
			}
		})
	}
}

// Without metrics.listen the App has no metrics listener.
func TestMetricsListenOff(t *testing.T) {
	e := newEnv(t)
	if addr := e.app.MetricsAddr(); addr != nil {
		t.Fatalf("metrics listener at %v", addr)
	}
}

// The operational gauges follow the ledger queue and the open uploads;
// /readyz and the info gauge name the store driver.
func TestMetricsGauges(t *testing.T) {
	e := newEnvWith(t, envOptions{flags: map[string]string{
		// Nothing is written until the test flushes.
		"downloads.ledger_flush_interval": "1h", "downloads.ledger_queue": "100",
	}})
	admin := bearer(e.admin)
	body := e.scrape(admin)
	value(t, body, `portal_store_info{driver="bolt"}`)
	for series, want := range map[string]string{
		"portal_ledger_queued": "0", "portal_ledger_queue_capacity": "100", "portal_uploads_open": "0",
		"portal_index_watch_pending": "", "portal_index_watch_lag_seconds": "",
	} {
		if got := value(t, body, series); want != "" && got != want {
			t.Errorf("%s = %s, want %s", series, got, want)
		}
	}

	// Below half the queue: nothing triggers a flush.
	for i := range 10 {
		e.ledger.Record(ledger.Grant{Product: "acme", Version: "1.0.0", Filename: fmt.Sprintf("f%d", i)})
	}
	if got := value(t, e.scrape(admin), "portal_ledger_queued"); got != "10" {
		t.Errorf("10 grants queued: portal_ledger_queued %s", got)
	}
	if err := e.ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := value(t, e.scrape(admin), "portal_ledger_queued"); got != "0" {
		t.Errorf("after a flush: portal_ledger_queued %s", got)
	}

	e.product("acme", "open")
	pub := bearer(e.token("publisher", "acme"))
	e.must(201, e.do("POST", "/v1/products/acme/releases", pub, map[string]any{"version": "1.0.0"}))
	a, b := []byte("build a"), []byte("build b")
	upA := e.declare(pub, "acme", "1.0.0", "a.tar.gz", "linux", "amd64", a)
	e.declare(pub, "acme", "1.0.0", "b.tar.gz", "linux", "arm64", b)
	if got := value(t, e.scrape(admin), "portal_uploads_open"); got != "2" {
		t.Errorf("two declared: portal_uploads_open %s", got)
	}
	if st := put(t, upA, a); st/100 != 2 {
		t.Fatalf("PUT: %d", st)
	}
	e.must(200, e.do("POST", "/v1/products/acme/releases/1.0.0/artifacts/a.tar.gz/complete", pub, nil))
	if got := value(t, e.scrape(admin), "portal_uploads_open"); got != "1" {
		t.Errorf("one completed: portal_uploads_open %s", got)
	}
	e.upload(pub, "acme", "1.0.0", "b.tar.gz", "linux", "arm64", b)
	if got := value(t, e.scrape(admin), "portal_uploads_open"); got != "0" {
		t.Errorf("both completed: portal_uploads_open %s", got)
	}

	r := e.must(200, e.do("GET", "/readyz", "", nil)).json(t)
	if r["store"].(map[string]any)["driver"] != "bolt" {
		t.Errorf("readyz store: %v", r)
	}
	w, ok := r["index_watch"].(map[string]any)
	if !ok || w["pending"] == nil || w["lag_seconds"] == nil {
		t.Errorf("readyz index_watch: %v", r)
	}
	// Alone on its bbolt file, the portal runs the cluster-wide jobs.
	if j, ok := r["jobs"].(map[string]any); !ok || j["leader"] != true {
		t.Errorf("readyz jobs: %v", r["jobs"])
	}
	if got := value(t, e.scrape(admin), "portal_leader"); got != "1" {
		t.Errorf("portal_leader = %s, want 1", got)
	}
}
