// Command heapprof runs the portal server as `portal serve` does (the same
// configuration from the environment, app.Open, App.Serve, GOGC=400 unless
// GOGC is set) and, on a second loopback address, net/http/pprof, so that
// scripts/bench.sh can take a heap profile of the seeded catalog under
// load. `portal serve` itself has no profiling endpoint; this is the same
// server in a process that has one.
//
//	PORTAL_DATA_DIR=... PORTAL_LISTEN=127.0.0.1:8080 heapprof -pprof 127.0.0.1:6060 [-startprofile FILE]
//
// -startprofile writes a CPU profile of the start: from the process's
// start until app.Open returns.
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
	"runtime/pprof"
	"syscall"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
)

func main() {
	pprofAddr := flag.String("pprof", "127.0.0.1:6060", "address of net/http/pprof")
	startProfile := flag.String("startprofile", "", "write a CPU profile of the start (until the server is ready to serve) to this file")
	flag.Parse()
	var startFile *os.File
	if *startProfile != "" {
		f, err := os.Create(*startProfile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		startFile = f
	}
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
	if startFile != nil {
		pprof.StopCPUProfile()
		startFile.Close()
	}
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
