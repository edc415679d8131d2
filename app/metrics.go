package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// metricsListener is metrics.listen: a listener of its own serving only
// /metrics (server.Server.MetricsHandler). Open binds it, so a bad or busy
// address fails Open naming the key; Serve starts answering on it; Close
// (and the end of Serve) stops it and waits for its goroutine.
type metricsListener struct {
	ln  net.Listener
	srv *http.Server

	mu      sync.Mutex
	started bool
	stopped bool
	done    chan struct{} // closed when the serving goroutine returns
}

// listenMetrics binds metrics.listen, when set and not Offline.
func (a *App) listenMetrics() error {
	addr := a.Config.Metrics.Listen
	if addr == "" || a.opts.Offline {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics.listen: %w", err)
	}
	if a.Config.Metrics.Token == "" {
		if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
			a.Log.Warn("metrics.listen serves /metrics to anyone who reaches it: set metrics.token, or listen on loopback",
				"addr", ln.Addr().String(), "key", "metrics.token", "env", "PORTAL_METRICS_TOKEN")
		}
	}
	a.metrics = &metricsListener{
		ln: ln,
		srv: &http.Server{
			Handler:           a.Server.MetricsHandler(),
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	return nil
}

// MetricsAddr is the address of the metrics.listen listener, nil when
// /metrics is on the main listener (or the App is Offline).
func (a *App) MetricsAddr() net.Addr {
	if a.metrics == nil {
		return nil
	}
	return a.metrics.ln.Addr()
}

// serve starts answering, once; not after stop. Nil-safe.
func (m *metricsListener) serve(log *slog.Logger) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started || m.stopped {
		return
	}
	m.started = true
	log.Info("metrics listening", "addr", m.ln.Addr().String())
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(m.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
}

// stop closes the listener, lets scrapes under way finish until ctx ends
// (then cuts them), and waits for the serving goroutine. Calling it again
// is harmless. Nil-safe.
func (m *metricsListener) stop(ctx context.Context) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	m.stopped = true
	started := m.started
	m.mu.Unlock()
	if !started {
		m.ln.Close()
		return nil
	}
	err := m.srv.Shutdown(ctx)
	if err != nil {
		m.srv.Close()
		err = fmt.Errorf("app: metrics listener shutdown: %w", err)
	}
	<-m.done
	return err
}
