// Command heapprof runs the portal server as `portal serve` does (the same
// configuration from the environment, app.Open, App.Serve, GOGC=400 unless
// GOGC is set) and, on a second loopback address, net/http/pprof, so that
// scripts/bench.sh can take a heap profile of the seeded catalog under
// load. `portal serve` itself has no profiling endpoint; this is the same
// server in a process that has one.
//
//	PORTAL_DATA_DIR=... PORTAL_LISTEN=127.0.0.1:8080 heapprof -pprof 127.0.0.1:6060
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
)

func main() {
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "address of net/http/pprof")
	flag.Parse()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400) // as portal serve
	}
	cfg, err := configs.Load(configs.LoadOptions{Env: os.Environ()})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := app.Open(ctx, cfg, app.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close(context.Background())
	pln, err := net.Listen("tcp", *pprofAddr)
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(pln, http.DefaultServeMux)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		log.Fatal(err)
	}
	if err := a.Serve(ctx, ln); err != nil {
		log.Print(err)
	}
}
