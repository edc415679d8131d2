package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/portaldist/portal/app"
)

// closeTimeout bounds how long serve waits for in-flight requests when it
// closes the App after an error (a signal goes through Serve's own
// graceful shutdown first).
const closeTimeout = 15 * time.Second

func serve(args []string) (err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	// Refuse a listen address beyond loopback without public_url before
	// opening anything; Serve checks the bound address again.
	if _, err := app.CheckPublicURL(cfg, cfg.Listen); err != nil {
		return err
	}
	// The live heap is small (catalog index, caches) while every request
	// allocates a few KB, so Go's default GOGC=100 collects many times a
	// second under load, and each cycle shows up in tail latency. Collect
	// four times less often unless the operator set GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP (systemctl reload) reads tls.cert_file and tls.key_file
	// again; caught from here on, so one that comes during the start is
	// not fatal but handled once the App is open.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a, err := app.Open(ctx, cfg, app.Options{})
	if err != nil {
		return err
	}
	// Every return from here on flushes the download ledger and closes the
	// store.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		err = errors.Join(err, a.Close(cctx))
	}()

	stopHUP := make(chan struct{})
	defer close(stopHUP)
	go func() {
		for {
			select {
			case <-hup:
				// ReloadTLS logs the outcome; on failure the old pair
				// stays in use.
				a.ReloadTLS()
			case <-stopHUP:
				return
			}
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --listen or PORTAL_LISTEN)", cfg.Listen, err)
	}
	a.Log.Info("portal serving", "listen", ln.Addr().String(), "public_url", cfg.PublicURL(), "data_dir", cfg.DataDir,
		"objects", cfg.Objects.Backend)
	if any, err := a.Tokens.Any(ctx); err == nil && !any {
		when := "while the server is stopped (admin.socket is off)"
		if sock := cfg.AdminSocketPath(); sock != "" {
			when = "on this machine, as this server's user or root (it goes through " + sock + " while the server runs)"
		}
		fmt.Fprintf(os.Stderr, "\nNo API tokens yet. Create the first admin token %s:\n"+
			"    portal token create --role admin --data-dir %s\n"+
			"or, from a checkout: go run ./cmd/portal token create --role admin --data-dir %s\n\n", when, cfg.DataDir, cfg.DataDir)
	}
	return a.Serve(ctx, ln)
}
