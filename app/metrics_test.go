package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
)

func metricsConfig(t *testing.T, url, metricsListen string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": t.TempDir(), "public_url": url, "log.access": "false", "admin.socket": "",
		"metrics.listen": metricsListen,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// metrics.listen is bound by Open, answers once Serve runs, and is closed
// by Close, which waits for it.
func TestMetricsListenerLifecycle(t *testing.T) {
	ctx := context.Background()
	ln, url := listen(t)
	a, err := app.Open(ctx, metricsConfig(t, url, "127.0.0.1:0"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := a.MetricsAddr().String()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, ln) }()

	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), `portal_store_info{driver="bolt"} 1`) {
		t.Fatalf("scrape: %d %.300s", res.StatusCode, body)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the metrics listener still accepts connections after Close")
	}
}

// A metrics.listen address that cannot be bound fails Open, naming the
// key, and leaves nothing open; an App never served closes its listener.
func TestMetricsListenBusy(t *testing.T) {
	ctx := context.Background()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ln, url := listen(t)
	ln.Close() // never served
	if _, err := app.Open(ctx, metricsConfig(t, url, busy.Addr().String()), app.Options{}); err == nil || !strings.Contains(err.Error(), "metrics.listen") {
		t.Fatalf("Open on a busy metrics.listen: %v", err)
	}

	a, err := app.Open(ctx, metricsConfig(t, url, "127.0.0.1:0"), app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	addr := a.MetricsAddr().String()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatal("the metrics listener of an App never served is still open")
	}
}
