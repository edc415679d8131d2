package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/secret"
)

// metrics are the server's Prometheus series. Each Server has its own
// registry, so tests can build many servers in one process.
//
// Every label value comes from a closed set, never from the client as sent:
// methods outside the standard ones count as "other", requests that match no
// route as "unmatched", products that do not exist as "unknown" and error
// codes the server does not map as "other". A client can thus make no new
// series, whatever it sends; the number of series is bounded by the routes,
// the statuses, the error codes and the products an admin created.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// routes holds the latency observers of every route pattern, built
	// once the routes are registered (prepare) and only read after: a
	// request finds its observer without building a label slice.
	routes   map[string]*routeObservers
	grants   productCounter
	refusals codeCounter
	// scrape is the Prometheus handler of registry.
	scrape http.Handler
}

// routeObservers are one route's latency histograms by method and status
// class, each made on its first use (so only the combinations seen are
// exported).
type routeObservers struct {
	route string
	obs   [len(methodLabels)][len(classLabels)]atomic.Pointer[observer]
}

type observer struct{ prometheus.Observer }

// Closed label sets of the latency histogram.
var (
	methodLabels = [...]string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, labelOther}
	classLabels = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", labelOther}
)

// methodIndex is m's position in methodLabels ("other" for any method
// outside the standard set).
func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodPatch:
		return 4
	case http.MethodDelete:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodConnect:
		return 7
	case http.MethodTrace:
		return 8
	}
	return len(methodLabels) - 1
}

// classIndex is the position of status's class in classLabels.
func classIndex(status int) int {
	if status >= 100 && status < 600 {
		return status/100 - 1
	}
	return len(classLabels) - 1
}

// latencyBuckets suit an API: from half a millisecond (an upgrade check
// answered from memory) to 10 s (a complete that reads an upload back).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Label values for what is outside the closed sets.
const (
	labelOther     = "other"
	labelUnmatched = "unmatched"
	labelUnknown   = "unknown"
)

// methods are the request methods counted under their own name.
var methods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

func methodLabel(m string) string {
	if methods[m] {
		return m
	}
	return labelOther
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_http_requests_total", Help: "HTTP requests by route pattern, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "portal_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern (\"unmatched\" for none), method (\"other\" outside the standard ones) and status class.",
			Buckets: latencyBuckets,
		}, []string{"route", "method", "code"}),
		grants: productCounter{
			vec: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "portal_download_grants_total", Help: "Download URLs minted, by product and whether through a share link.",
			}, []string{"product", "share_link"}),
			exists: func(slug string) bool {
				if s.Catalog == nil {
					return false
				}
				_, err := s.Catalog.Product(context.Background(), slug)
				return err == nil
			},
			known: new(sync.Map),
		},
		refusals: codeCounter{prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portal_refusals_total", Help: "Requests refused, by error code.",
		}, []string{"code"})},
	}
	m.registry.MustRegister(m.requests, m.latency, m.grants.vec, m.refusals.vec,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "portal_store_info", Help: "Always 1; the driver label names the metadata store's driver.",
		ConstLabels: prometheus.Labels{"driver": s.opts.StoreDriver},
	}, func() float64 { return 1 }))
	if s.opts.Leading != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_leader", Help: "1 while this replica runs the cluster-wide background work (sweeps, purges, webhook deliveries), 0 otherwise.",
		}, func() float64 {
			if s.opts.Leading() {
				return 1
			}
			return 0
		}))
	}
	if s.Ledger != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_ledger_queued", Help: "Download grants waiting to be written to the store.",
		}, func() float64 { return float64(s.Ledger.Stats().Queued) }))
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_ledger_queue_capacity", Help: "The most download grants the ledger queue holds before new ones wait, then are dropped.",
		}, func() float64 { return float64(s.Ledger.Stats().Capacity) }))
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portal_ledger_dropped_total", Help: "Download grants dropped because the ledger queue stayed full.",
		}, func() float64 { return float64(s.Ledger.Stats().Dropped) }))
	}
	if s.Index != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_index_watch_pending", Help: "Products whose catalog changes the update index has seen but not applied yet.",
		}, func() float64 { return float64(s.Index.WatchStats().Pending) }))
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_index_watch_lag_seconds", Help: "Age of the oldest catalog change the update index has seen but not applied yet; 0 when current.",
		}, func() float64 { return s.Index.WatchStats().Lag.Seconds() }))
	}
	if s.Publishing != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_uploads_open", Help: "Artifacts declared and waiting for their upload (recounted from the store every uploads.sweep_interval).",
		}, func() float64 { return float64(s.Publishing.OpenUploads()) }))
	}
	m.scrape = promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	return m
}

// prepare makes the observer table of every registered route. Call it
// once, after the last route is registered and before serving.
func (m *metrics) prepare(routes gin.RoutesInfo) {
	m.routes = map[string]*routeObservers{labelUnmatched: {route: labelUnmatched}}
	for _, r := range routes {
		if m.routes[r.Path] == nil {
			m.routes[r.Path] = &routeObservers{route: r.Path}
		}
	}
}

// observer returns the histogram of route, method and status.
func (m *metrics) observer(route, method string, status int) prometheus.Observer {
	ro := m.routes[route]
	if ro == nil {
		// A route registered after prepare: correct, only slower.
		return m.latency.WithLabelValues(route, methodLabels[methodIndex(method)], classLabels[classIndex(status)])
	}
	mi, ci := methodIndex(method), classIndex(status)
	if o := ro.obs[mi][ci].Load(); o != nil {
		return o.Observer
	}
	o := &observer{m.latency.WithLabelValues(ro.route, methodLabels[mi], classLabels[ci])}
	ro.obs[mi][ci].CompareAndSwap(nil, o)
	return o.Observer
}

// observe records every request by route pattern (never the raw path,
// which may hold a share-link token) and by method.
func (m *metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = labelUnmatched
	}
	status := c.Writer.Status()
	m.requests.WithLabelValues(route, methodLabel(c.Request.Method), strconv.Itoa(status)).Inc()
	m.observer(route, c.Request.Method, status).Observe(time.Since(start).Seconds())
}

func (m *metrics) handler() gin.HandlerFunc { return gin.WrapH(m.scrape) }

// metricsRoute registers /metrics on the main router, unless
// Options.MetricsSeparate moved it to MetricsHandler (then the main router
// answers 404 for it, like for any path it does not serve). The metrics
// name licensed products and their download counts: they answer to an
// admin token, or to Options.MetricsToken.
func (s *Server) metricsRoute(e *gin.Engine) {
	if s.opts.MetricsSeparate {
		return
	}
	e.GET("/metrics", s.metricsToken, s.authenticate, s.requireAdmin, s.metrics.handler())
}

// metricsToken serves the scrape to a request bearing the metrics token,
// and hands any other to the next handlers (the admin check): a wrong
// metrics token is then a wrong token like any other, refused and counted
// by the authentication rate limit, while the right one is never refused
// by it.
func (s *Server) metricsToken(c *gin.Context) {
	if s.metricsTokenOK(c.Request) {
		c.Abort()
		s.metrics.scrape.ServeHTTP(c.Writer, c.Request)
		return
	}
	c.Next()
}

// metricsTokenOK reports whether r bears Options.MetricsToken, compared in
// constant time after a length check; false when no metrics token is set.
func (s *Server) metricsTokenOK(r *http.Request) bool {
	if s.opts.MetricsToken == "" {
		return false
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "bearer") && secret.Equal(strings.TrimSpace(cred), s.opts.MetricsToken)
}

// MetricsHandler serves GET /metrics for a listener of its own
// (metrics.listen), and 404 for any other path. Without
// Options.MetricsToken it serves anyone who reaches the listener (bind it
// to an address only the monitoring can reach); with it, only requests
// bearing that token ("Authorization: Bearer <token>"; 401 otherwise).
// Admin tokens are not accepted there: the listener has no access to the
// token store's rate limit.
func (s *Server) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeErr := func(status int, code, msg string) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
		}
		switch {
		case r.URL.Path != "/metrics":
			writeErr(http.StatusNotFound, portal.ENotFound, "no such endpoint: this listener serves /metrics only")
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			writeErr(http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
		case s.opts.MetricsToken != "" && !s.metricsTokenOK(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="portal-metrics"`)
			writeErr(http.StatusUnauthorized, portal.EUnauthorized, `use "Authorization: Bearer <metrics token>"`)
		default:
			s.metrics.scrape.ServeHTTP(w, r)
		}
	})
}

// codeCounter counts by error code; codes the server does not map to a
// status (statusOf) count as "other".
type codeCounter struct{ vec *prometheus.CounterVec }

func (c codeCounter) WithLabelValues(code string) prometheus.Counter {
	if _, ok := statusOf[code]; !ok {
		code = labelOther
	}
	return c.vec.WithLabelValues(code)
}

// productCounter counts by product slug and a second label; a slug names a
// product only once the catalog knows it (looked up once, then remembered:
// a deleted product keeps its series until the process restarts), and
// counts as "unknown" otherwise. The second label must come from a closed
// set chosen by the caller.
type productCounter struct {
	vec    *prometheus.CounterVec
	exists func(slug string) bool
	known  *sync.Map // slug -> struct{}
}

func (c productCounter) WithLabelValues(product, second string) prometheus.Counter {
	if _, ok := c.known.Load(product); !ok {
		if c.exists(product) {
			c.known.Store(product, struct{}{})
		} else {
			product = labelUnknown
		}
	}
	return c.vec.WithLabelValues(product, second)
}
