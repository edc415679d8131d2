package server

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	grants   productCounter
	refusals codeCounter
}

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
			Name: "portal_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"route"}),
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
	if s.Ledger != nil {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "portal_ledger_queued", Help: "Download grants waiting to be written to the store.",
		}, func() float64 { return float64(s.Ledger.Stats().Queued) }))
		m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "portal_ledger_dropped_total", Help: "Download grants dropped because the ledger queue stayed full.",
		}, func() float64 { return float64(s.Ledger.Stats().Dropped) }))
	}
	return m
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
	m.requests.WithLabelValues(route, methodLabel(c.Request.Method), strconv.Itoa(c.Writer.Status())).Inc()
	m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (m *metrics) handler() gin.HandlerFunc {
	return gin.WrapH(promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
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
