package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/updates"
)

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	load := configFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level)
	// The live heap is small (catalog index, caches) while every request
	// allocates a few KB, so Go's default GOGC=100 collects many times a
	// second under load, and each cycle shows up in tail latency. Collect
	// four times less often unless the operator set GOGC.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := openStore(cfg)
	if err != nil {
		return err
	}
	defer a.db.Close()
	objs, blobs, err := openObjects(ctx, cfg)
	if err != nil {
		return err
	}
	keys := server.ProductKeys{Catalog: a.catalog, Sealer: a.sealer}
	pub := publishing.New(a.catalog, objs, keys, publishing.Options{
		UploadTTL: cfg.Uploads.URLTTL, MultipartThreshold: int64(cfg.Uploads.MultipartThreshold),
		PartSize: int64(cfg.Uploads.MultipartPartSize), SparkleMaxSize: int64(cfg.Signing.SparkleMaxSize), Log: log,
	})
	go pub.Run(ctx, cfg.Uploads.SweepInterval)
	index := updates.NewIndex(a.catalog)
	if err := index.Load(ctx); err != nil {
		return err
	}
	index.Watch(ctx)
	linkKey, err := links.LoadOrCreateSecret(cfg.DataPath("secrets", "link-key"))
	if err != nil {
		return err
	}
	shareLinks, err := links.New(a.db, linkKey, nil)
	if err != nil {
		return err
	}
	led := ledger.New(a.db, ledger.Options{Queue: cfg.Downloads.LedgerQueue, FlushInterval: cfg.Downloads.LedgerFlushInterval, Logger: log})
	srv := server.New(server.Deps{
		Store: a.db, Catalog: a.catalog, Licenses: a.licenses, Tokens: a.tokens,
		Objects: objs, Blobs: blobs, Keys: keys, Publishing: pub,
		Index: index, Ledger: led, Links: shareLinks,
	}, server.Options{
		MaxBody: int64(cfg.Limits.MaxBody), AuthFailuresPerMinute: cfg.Limits.AuthFailuresPerMinute,
		AccessLog: cfg.Log.Access, Logger: log, PublicURL: cfg.PublicURL(),
		URLTTL: cfg.Downloads.URLTTL, MaxURLTTL: cfg.Downloads.MaxURLTTL,
		ShareLinkMaxTTL: cfg.Downloads.ShareLinkMaxTTL, ShareRedirectTTL: cfg.Downloads.ShareRedirectTTL,
		UpdatesPublic: cfg.Updates.Public, TrustedProxies: cfg.TrustedProxyList(),
	})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (set --listen or PORTAL_LISTEN)", cfg.Listen, err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("portal serving", "listen", ln.Addr().String(), "public_url", cfg.PublicURL(), "data_dir", cfg.DataDir,
		"objects", cfg.Objects.Backend)
	if any, err := a.tokens.Any(ctx); err == nil && !any {
		fmt.Fprintf(os.Stderr, "\nNo API tokens yet. Create the first admin token while the server is stopped:\n"+
			"    portal token create --role admin --data-dir %s\n"+
			"or, from a checkout: go run ./cmd/portal token create --role admin --data-dir %s\n\n", cfg.DataDir, cfg.DataDir)
	}

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return srv.Close(sctx)
}
