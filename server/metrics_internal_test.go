package server

import (
	"testing"

	"github.com/gin-gonic/gin"
)

// Observing a request's latency costs no allocation once its series
// exists: the hot path (upgrade checks, grants) pays only the histogram's
// own Observe.
func TestLatencyObserverAllocatesNothing(t *testing.T) {
	m := newMetrics(&Server{opts: Options{StoreDriver: "bolt"}})
	const route = "/v1/products/:product/upgrade"
	m.prepare(gin.RoutesInfo{{Method: "GET", Path: route}})
	for _, tt := range []struct {
		route, method string
		status        int
	}{
		{route, "GET", 200},
		{route, "GET", 204},
		{route, "BREW", 404},
		{labelUnmatched, "GET", 404},
	} {
		m.observer(tt.route, tt.method, tt.status).Observe(0.001)
		if n := testing.AllocsPerRun(100, func() {
			m.observer(tt.route, tt.method, tt.status).Observe(0.001)
		}); n != 0 {
			t.Errorf("%s %s %d: %v allocations per observation", tt.method, tt.route, tt.status, n)
		}
	}
	if o1, o2 := m.observer(route, "GET", 200), m.observer(route, "GET", 204); o1 != o2 {
		t.Error("200 and 204 are one status class but two series")
	}
}
