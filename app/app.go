// Package app is the portal's one wiring: from a configuration it opens the
// store and the object store, builds the domain services and the HTTP
// server, runs the background work, and takes it all down again in order.
// `portal serve`, `portal token create`, the tests and the benchmark seed
// all build their portal here, so there is no second copy of the wiring to
// drift.
//
// # Lifecycle
//
//	a, err := app.Open(ctx, cfg, app.Options{})
//	if err != nil { ... }           // nothing is left open
//	defer a.Close(shutdownCtx)      // every exit path
//	err = a.Serve(ctx, ln)          // until ctx ends, or Close
//
// Open opens, in this order: the bbolt store (DataPath("portal.db")), the
// signing-key sealer, the catalog, licenses and tokens, then, with a master
// key configured, seals every product key still in plaintext (a log line
// per product); then the object store
// (local disk or S3, or the one given in Options), publishing, the update
// index (loaded, then kept current by a watch), share links, the download
// ledger, the web pages (package web; their pre-session CSRF key derived
// from the shared link secret), the server, the admin socket (admin.socket, see
// internal/adminsock) and, with metrics.listen, the metrics listener
// (bound here, answering once Serve runs). It then starts the background
// work. Cluster-wide jobs run through a leader.Scheduler (App.Leader), only
// while this replica leads (on bbolt always; on etcd one replica at a time,
// through an election): the upload sweep, the retention purge of the
// ledger and the share links, the webhooks' dispatcher, sender and
// expiry check, and the purge of expired web sessions. Every replica runs its own: the index watch, the flush of
// the tokens' last-use times every tokens.UsageInterval, the ledger's
// flusher of its own queue, and, once, the check that a sample of the
// published artifacts' objects exist in its object store (App.ObjectsSample,
// see ObjectsSampleSize; logged and shown by /readyz). Background work acts
// as audit.KindSystem. When any
// step fails Open closes everything it had opened and returns the error;
// the caller has nothing to clean up.
//
// OpenStore opens only the store and the services on it (catalog, licenses,
// tokens, product keys): no object store, no server, no goroutine. It is for
// commands that write the store offline while no server runs.
//
// Close takes the App down in the reverse order, and waits at each step:
//
//  1. HTTP (the main listener and metrics.listen's) and the admin socket:
//     stop accepting connections and wait for in-flight requests (until
//     Close's ctx ends; then the remaining connections are cut), and remove
//     the socket file;
//  2. background work: cancel it, and wait for the upload sweep, the
//     retention purge, the token-usage flush and the webhooks' goroutines
//     (an attempt under way is cut and made again after the next Open) to
//     return, then resign the leadership (another replica takes over at
//     once) and write the tokens' last-use times once more;
//  3. the server's own work and the ledger: stop its flusher, and write
//     everything still queued in one last transaction;
//  4. the object store the App opened (not one given in Options);
//  5. the store.
//
// Steps 2 to 5 run whatever ctx says: abandoning them would lose recorded
// downloads or leave the bbolt file locked, and each is bounded on its own
// (the background work stops on cancellation; the flush is one
// transaction). The final writes of steps 2 and 3 together are bounded by
// Options.ShutdownTimeout (DefaultShutdownTimeout) all the same: on a
// shared store that does not answer (an etcd cluster without a quorum)
// they would otherwise hold the process up for ever; what they could not
// write is lost and Close returns the error. Close is idempotent and safe
// to call concurrently with Serve, which then returns nil; every call
// returns the first call's error.
//
// The update index's watch goroutine stops when the background work is
// cancelled, but updates.Index offers no way to wait for it: it may still be
// finishing a reload when Close returns (a reload that meets the closed
// store fails and is dropped).
package app

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/internal/accesslog"
	"github.com/portaldist/portal/internal/adminsock"
	"github.com/portaldist/portal/internal/netlimit"
	"github.com/portaldist/portal/leader"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/server"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
	"github.com/portaldist/portal/web"
	"github.com/portaldist/portal/webhooks"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultShutdownTimeout is how long Serve lets in-flight requests finish
// once its ctx ends, when Options.ShutdownTimeout is not set.
const DefaultShutdownTimeout = 15 * time.Second

// Options are what the configuration does not say: mostly what tests and
// tools inject. The zero value is what `portal serve` runs with.
type Options struct {
	// Now is the clock of every service and of the server (default
	// time.Now). Tests pass a clock they can move.
	Now func() time.Time
	// Logger receives the services' and the server's logs (default: text
	// on stderr at cfg.Log.Level).
	Logger *slog.Logger
	// AccessLog receives the access log's lines when cfg.Log.Access is on
	// and the level logs info: by default stderr, written at most a second
	// late (internal/accesslog), or none when Logger is set.
	AccessLog io.Writer
	// Objects, when not nil, is used instead of the object store cfg
	// describes. The App does not close it. Blobs is its handler of signed
	// /blobs/ links, nil when clients reach the objects elsewhere (S3).
	Objects objects.ObjectStore
	Blobs   http.Handler
	// NoSync opens bbolt without fsync on commit: a crash may lose or
	// corrupt recent writes. Only for benchmarks and seeding.
	NoSync bool
	// Offline starts no background work besides the ledger's flusher: no
	// upload sweep, no index watch and no admin socket, so the index (and
	// the server's update answers) stay as Open loaded them. For tools that write
	// through the services while no server runs (the benchmark seed), where
	// index reloads would compete with the writes.
	Offline bool
	// LeaseTTL is the lease of this replica's candidacy in the election of
	// the replica that runs the cluster-wide jobs, on a store shared by
	// replicas, when not store.etcd.lease_ttl (tests use etcd's shortest):
	// how long the others wait before taking over from a replica that
	// stopped without resigning.
	LeaseTTL time.Duration
	// ShutdownTimeout bounds how long Serve waits for in-flight requests
	// once its ctx ends, and how long Close's final writes may take
	// (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
}

// App is an opened portal. The exported fields are set by Open (OpenStore
// sets only Config, Log, DB, Sealer, Keys, Catalog, Licenses and Tokens) and
// must not be replaced; they are for the caller's use until Close.
type App struct {
	Config *configs.Config
	Log    *slog.Logger

	DB       store.DB
	Sealer   *signing.Sealer
	Keys     server.ProductKeys
	Catalog  *releases.Service
	Licenses *licenses.Service
	Tokens   *tokens.Service

	// Objects is the object store; Blobs serves its signed /blobs/ links
	// (nil on S3).
	Objects    objects.ObjectStore
	Blobs      http.Handler
	Publishing *publishing.Service
	Index      *updates.Index
	Links      *links.Service
	Ledger     *ledger.Ledger
	// Downloads mints grants and share links and runs their retention.
	Downloads *downloads.Service
	// Webhooks keeps the webhooks; its dispatcher, sender and expiry
	// check run as background work.
	Webhooks *webhooks.Service
	// Leader runs the cluster-wide background work while this replica
	// leads (always, on bbolt); nil in Offline mode.
	Leader *leader.Scheduler
	// Server is the HTTP API, an http.Handler. Serve runs it; tests may
	// also call it directly.
	Server *server.Server
	// ObjectsSample is the start-up check that published artifacts'
	// objects exist (see checkObjects); /readyz shows it.
	ObjectsSample *inventory.Sampler
	// Web is the web pages (customer pages and admin console), served by
	// Server beside the API; its expired sessions are purged as
	// background work.
	Web *web.Handler

	opts         Options
	closeObjects func() error   // the object store's Close when the App opened it
	accessLog    *accesslog.Log // nil when off
	adminSock    *adminsock.Server
	certs        *certPair // tls.cert_file's pair, reloaded by ReloadTLS; nil without
	http         *http.Server
	metrics      *metricsListener   // metrics.listen's; nil without
	cancel       context.CancelFunc // ends the background work
	wg           sync.WaitGroup     // the background goroutines the App started

	closeOnce sync.Once
	closeErr  error
}

// OpenStore opens cfg's store and the services on it. See the package
// documentation; Close closes the store.
func OpenStore(ctx context.Context, cfg *configs.Config, opts Options) (*App, error) {
	a := &App{Config: cfg, opts: opts, Log: opts.Logger}
	if a.Log == nil {
		a.Log = newLogger(cfg.Log.Level)
	}
	if err := a.openStore(); err != nil {
		a.Close(ctx)
		return nil, err
	}
	return a, nil
}

// Open opens everything cfg describes and starts the background work. See
// the package documentation for the order; on error nothing is left open.
func Open(ctx context.Context, cfg *configs.Config, opts Options) (*App, error) {
	a, err := OpenStore(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if err := a.sealKeys(ctx); err != nil {
		a.Close(ctx)
		return nil, err
	}
	if err := a.openRest(ctx); err != nil {
		a.Close(ctx)
		return nil, err
	}
	a.releaseStartupPages()
	return a, nil
}

// releaseStartupPages gives back the bbolt map's pages that the start-up
// loads read (the key sets scan every license and token key, the update
// index every release): on a catalog of a million licenses some 600 MB
// that would stay in the process's resident set until the kernel needs
// them. They stay in the page cache; see bolt.DB.ReleaseMemory.
func (a *App) releaseStartupPages() {
	r, ok := a.DB.(interface{ ReleaseMemory() error })
	if !ok {
		return
	}
	if err := r.ReleaseMemory(); err != nil {
		a.Log.Warn("start-up: could not release the store's mapped pages", "err", err)
	}
}

func (a *App) openStore() error {
	cfg, now := a.Config, a.opts.Now
	db, err := OpenDB(context.Background(), cfg, a.opts.NoSync)
	if err != nil {
		return err
	}
	a.DB = db
	mk, err := signing.ParseMasterKey(cfg.Signing.MasterKey)
	if err != nil {
		return fmt.Errorf("signing.master_key: %w", err)
	}
	if a.Sealer, err = signing.NewSealer(mk); err != nil {
		return fmt.Errorf("signing.master_key: %w", err)
	}
	a.Catalog = releases.New(db, now)
	a.Licenses = licenses.New(db, a.Catalog, now)
	a.Tokens = tokens.New(db, now)
	a.Keys = server.ProductKeys{Catalog: a.Catalog, Sealer: a.Sealer, Now: now, OpenPGPAlgorithm: cfg.Repos.OpenPGPAlgorithm}
	return nil
}

// sealKeys seals, when a master key is configured, every product key still
// stored in plaintext (logging a line per product), so that none is left:
// the keys refuse to open in plaintext under a master key.
func (a *App) sealKeys(ctx context.Context) error {
	// Sealing at start is the portal's own doing, audited as the system's
	// unless the caller (`portal keys seal`) says who acts.
	if _, ok := audit.ActorFrom(ctx); !ok {
		ctx = audit.WithActor(ctx, audit.Actor{Kind: audit.KindSystem})
	}
	if _, err := a.Keys.SealAll(ctx, a.Log); err != nil {
		return fmt.Errorf("signing.master_key: %w", err)
	}
	return nil
}

func (a *App) openRest(ctx context.Context) error {
	cfg, now := a.Config, a.opts.Now
	if a.opts.Objects != nil {
		a.Objects, a.Blobs = a.opts.Objects, a.opts.Blobs
	} else if err := checkSharedObjects(cfg); err != nil {
		return err
	} else if err := a.openObjects(ctx); err != nil {
		return err
	}
	a.Publishing = publishing.New(a.Catalog, a.Objects, a.Keys, publishing.Options{
		UploadTTL: cfg.Uploads.URLTTL, MultipartThreshold: int64(cfg.Uploads.MultipartThreshold),
		PartSize: int64(cfg.Uploads.MultipartPartSize), SparkleMaxSize: int64(cfg.Signing.SparkleMaxSize),
		MaxConcurrentCompletes: cfg.Uploads.MaxConcurrentCompletes, Now: now, Log: a.Log,
	})
	// Background work lives until Close, not until Open's ctx ends; what it
	// changes is audited as the system's.
	bg, cancel := context.WithCancel(audit.WithActor(context.WithoutCancel(ctx), audit.Actor{Kind: audit.KindSystem}))
	a.cancel = cancel
	a.Index = updates.NewIndex(a.Catalog)
	if !a.opts.Offline {
		// Watch before Load, so no change falls between them.
		if err := a.Index.Watch(bg); err != nil {
			return err
		}
	}
	if err := a.Index.Load(ctx); err != nil {
		return err
	}
	// Share links are signed with a secret kept in the store, so every
	// replica verifies every other's links; links signed with the file the
	// secret lived in before keep working until they expire.
	linkKey, err := links.SharedSecret(audit.WithActor(ctx, audit.Actor{Kind: audit.KindSystem}), a.DB, a.Sealer)
	if err != nil {
		return err
	}
	if a.Links, err = links.New(a.DB, linkKey, now); err != nil {
		return err
	}
	if old, err := links.ReadSecretFile(cfg.DataPath("secrets", "link-key")); err == nil {
		a.Links.AcceptAlso(old)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	a.Links.SetPerLicense(cfg.Downloads.LinksPerLicense)
	a.Ledger = ledger.New(a.DB, ledger.Options{
		Queue: cfg.Downloads.LedgerQueue, FlushInterval: cfg.Downloads.LedgerFlushInterval, Now: now, Logger: a.Log,
	})
	a.Downloads = downloads.New(a.Objects, a.Ledger, a.Links, a.Licenses, downloads.Options{
		LinkMaxTTL: cfg.Downloads.ShareLinkMaxTTL, AnonymousGrantsPerMinute: cfg.Downloads.AnonymousGrantsPerMinute,
		LedgerRetention: cfg.Downloads.LedgerRetention, LinkRetention: cfg.Downloads.LinkRetention,
		Now: now, Logger: a.Log,
	})
	w := cfg.Webhooks
	a.Webhooks = webhooks.New(a.DB, webhooks.Options{
		Sealer: a.Sealer, AllowPrivate: w.AllowPrivateTargets, RetryBase: w.RetryBase, RetryMax: w.RetryMax,
		RetryFor: w.RetryFor, Timeout: w.Timeout, ExpiryInterval: w.ExpiryInterval, Retention: w.Retention,
		Licenses: a.Licenses, Log: a.Log,
	})
	// The sign-in forms' pre-session CSRF key must be the same on every
	// replica (a form served by one may post to another): it is derived
	// from the shared link secret, under a label of its own.
	mac := hmac.New(sha256.New, linkKey)
	mac.Write([]byte("portal web pre-session csrf key v1"))
	webKey := mac.Sum(nil)
	wc := cfg.Web
	a.Web, err = web.New(web.Deps{
		Store: a.DB, Catalog: a.Catalog, Licenses: a.Licenses, Tokens: a.Tokens, Keys: a.Keys,
		Publishing: a.Publishing, Index: a.Index, Downloads: a.Downloads, Webhooks: a.Webhooks,
	}, web.Options{
		BrandName: wc.BrandName, LogoURL: wc.LogoURL, LogoFile: wc.LogoFile, AccentColor: wc.AccentColor,
		SessionsPerSubject: wc.SessionsPerSubject, Secret: webKey,
		SecureCookies: strings.HasPrefix(cfg.PublicURL(), "https://"), Now: now, Logger: a.Log,
	})
	if err != nil {
		return err
	}
	a.ObjectsSample = &inventory.Sampler{}
	// Whether this replica runs the cluster-wide jobs, for /readyz and
	// /metrics (a.Leader is set below, before anything is served).
	var leading func() bool
	if !a.opts.Offline {
		leading = func() bool { return a.Leader.Leading() }
	}
	a.Server = server.New(server.Deps{
		Store: a.DB, Catalog: a.Catalog, Licenses: a.Licenses, Tokens: a.Tokens,
		Objects: a.Objects, Blobs: a.Blobs, Keys: a.Keys, Publishing: a.Publishing,
		Index: a.Index, Ledger: a.Ledger, Links: a.Links, Downloads: a.Downloads, Webhooks: a.Webhooks,
		ObjectsSample: a.ObjectsSample,
		Pages:         a.Web,
	}, server.Options{
		MaxBody: int64(cfg.Limits.MaxBody), AuthFailuresPerMinute: cfg.Limits.AuthFailuresPerMinute,
		AccessLog: a.openAccessLog(), Logger: a.Log, Now: now, PublicURL: cfg.PublicURL(),
		URLTTL: cfg.Downloads.URLTTL, MaxURLTTL: cfg.Downloads.MaxURLTTL,
		ShareLinkMaxTTL: cfg.Downloads.ShareLinkMaxTTL, ShareRedirectTTL: cfg.Downloads.ShareRedirectTTL,
		UpdatesPublic: cfg.Updates.Public, TrustedProxies: cfg.TrustedProxyList(),
		MetricsToken: cfg.Metrics.Token, MetricsSeparate: cfg.Metrics.Listen != "", StoreDriver: cfg.Store.Backend, Leading: leading,
	})
	// Every request, API or /blobs/, has progress deadlines on its body
	// and its answer; Serve caps the connections per address. On TLS
	// every answer carries HSTS.
	tlsConfig, err := a.openTLS(cfg)
	if err != nil {
		return err
	}
	handler := netlimit.IdleDeadlines(a.Server, cfg.Limits.BodyIdleTimeout, cfg.Limits.WriteIdleTimeout)
	if tlsConfig != nil {
		handler = hsts(handler)
	}
	a.http = &http.Server{
		Handler:           handler,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn),
	}

	if err := a.listenAdmin(); err != nil {
		return err
	}
	if err := a.listenMetrics(); err != nil {
		return err
	}
	if !a.opts.Offline {
		el, err := a.elector()
		if err != nil {
			return err
		}
		// Cluster-wide work runs on the one replica that leads; each step is
		// a store transaction, so a brief overlap at a change of leader
		// commits it once (see package leader).
		a.Leader = leader.NewScheduler(el, a.Log)
		a.Leader.Loop("upload sweep", func(ctx context.Context) { a.Publishing.Run(ctx, cfg.Uploads.SweepInterval) })
		a.Leader.Loop("retention", func(ctx context.Context) { a.Downloads.RunRetention(ctx, downloads.RetentionInterval) })
		a.Leader.Loop("webhook dispatcher", a.Webhooks.RunDispatcher)
		a.Leader.Loop("webhook sender", a.Webhooks.RunSender)
		a.Leader.Loop("webhook expiry", a.Webhooks.RunExpiry)
		a.Leader.Loop("web session purge", func(ctx context.Context) { a.Web.RunPurge(ctx, web.PurgeInterval) })
		a.wg.Go(func() { a.Leader.Run(bg) })
		// This replica's own state: the last-use times of the tokens it
		// authenticated (the ledger's flusher of its own queue runs inside
		// the ledger; the index and the caches follow the store's watch).
		a.wg.Go(func() { a.runTokenUsage(bg) })
		// Every replica checks its own object store: a sample of the
		// published objects, in the background (bounded by
		// ObjectsSampleTimeout), so a store that lost them is said loudly.
		a.wg.Go(func() { a.checkObjects(bg) })
	}
	return nil
}

// electionStore is a store shared by replicas that can hold their
// election (store/etcd): its client, and a key prefix the store itself never
// reads, writes or watches.
type electionStore interface {
	Client() *clientv3.Client
	ReservedPrefix(name string) string
}

// elector returns who decides whether this replica leads: on a store shared
// by replicas (etcd), an election on it, with the lease TTL of
// Options.LeaseTTL or else store.etcd.lease_ttl; on bbolt the process is
// alone (the file admits one), so it always leads.
func (a *App) elector() (leader.Elector, error) {
	es, ok := a.DB.(electionStore)
	if !ok {
		return leader.Single{}, nil
	}
	host, _ := os.Hostname()
	ttl := a.opts.LeaseTTL
	if ttl <= 0 {
		ttl = a.Config.Store.Etcd.LeaseTTL
	}
	return leader.NewEtcd(es.Client(), es.ReservedPrefix("leader"), leader.EtcdOptions{
		TTL: ttl, Value: fmt.Sprintf("%s pid %d", host, os.Getpid()),
	}), nil
}

// listenAdmin opens the admin socket (admin.socket), on which `portal token
// create` on this machine creates tokens while the App holds the store. Not
// in Offline mode, nor when admin.socket is "". Where the system offers no
// peer credentials the App runs without it, saying so in the log.
func (a *App) listenAdmin() error {
	path := a.Config.AdminSocketPath()
	if path == "" || a.opts.Offline {
		return nil
	}
	s, err := adminsock.Listen(path, a.Tokens, a.Log, adminsock.WithBackup(a.backupTo))
	if errors.Is(err, errors.ErrUnsupported) {
		a.Log.Warn("no admin socket: `portal token create` needs the server stopped", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin.socket: %w (set admin.socket to \"\" to run without it)", err)
	}
	a.adminSock = s
	return nil
}

// runTokenUsage writes the tokens' last-use times (tokens.FlushUsage) every
// tokens.UsageInterval until ctx ends; Close flushes once more after it
// returns.
func (a *App) runTokenUsage(ctx context.Context) {
	t := time.NewTicker(tokens.UsageInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := a.Tokens.FlushUsage(ctx); err != nil && ctx.Err() == nil {
			a.Log.Warn("tokens: flush last use", "err", err)
		}
	}
}

// s3ProbeTimeout bounds the start-up check of an S3 store: an endpoint
// that does not answer fails Open instead of hanging it.
const s3ProbeTimeout = 30 * time.Second

// openObjects opens the object store cfg describes: S3, or the local store
// under DataPath("objects") with its keyring in DataPath("secrets"). An S3
// store must pass s3store.Probe (the bucket exists, the credentials work,
// a presigned PUT and GET of a probe object round-trip) or Open fails with
// the cause.
func (a *App) openObjects(ctx context.Context) error {
	cfg := a.Config
	switch cfg.Objects.Backend {
	case "s3":
		s, err := s3store.New(ctx, s3store.Config{
			Bucket: cfg.Objects.S3.Bucket, Region: cfg.Objects.S3.Region, Endpoint: cfg.Objects.S3.Endpoint,
			PathStyle: cfg.Objects.S3.PathStyle, AccessKey: cfg.Objects.S3.AccessKey, SecretKey: cfg.Objects.S3.SecretKey,
			MaxTTL: cfg.Objects.MaxTTL,
		})
		if err != nil {
			return err
		}
		// A wrong secret or a missing bucket is refused here, with its
		// cause, rather than found later by /readyz or a publisher.
		pctx, cancel := context.WithTimeout(ctx, s3ProbeTimeout)
		err = s.Probe(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("app: objects.backend s3: %w", err)
		}
		a.Objects = s
	default:
		keys, err := local.LoadOrCreateKeyring(cfg.DataPath("secrets", "blob-keys"), cfg.Objects.Local.Secret)
		if err != nil {
			return err
		}
		s, err := local.Open(local.Options{
			Root: cfg.DataPath("objects"), BaseURL: cfg.PublicURL(), Keys: keys, MaxTTL: cfg.Objects.MaxTTL,
		})
		if err != nil {
			return err
		}
		a.Objects, a.Blobs, a.closeObjects = s, s.Handler(), s.Close
	}
	return nil
}

// Serve answers HTTP requests on ln until ctx ends, then stops accepting
// connections and waits up to Options.ShutdownTimeout for in-flight
// requests. It returns nil after such a shutdown or after Close, and the
// listener's error otherwise. It closes ln; it does not close the App.
//
// Serve refuses (with CheckPublicURL's error) a listener on any address
// that is not loopback when public_url is not set. Connections over
// limits.connections_per_address from one client address are closed as
// soon as they are accepted. With tls.cert_file or tls.acme.domains it
// serves HTTPS (HTTP/2 and HTTP/1.1) only; see ReloadTLS.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	if a.http == nil {
		ln.Close()
		return errors.New("app: Serve on an App opened with OpenStore")
	}
	warning, err := CheckPublicURL(a.Config, ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	if warning != "" {
		a.Log.Warn(warning, "key", "public_url", "env", "PORTAL_PUBLIC_URL")
	}
	ln = netlimit.Listen(ln, a.Config.Limits.ConnectionsPerAddress, trustedAddrs(a.Config))
	errc := make(chan error, 1)
	go func() {
		if a.http.TLSConfig != nil {
			// The certificate comes from TLSConfig (GetCertificate).
			errc <- a.http.ServeTLS(ln, "", "")
			return
		}
		errc <- a.http.Serve(ln)
	}()
	a.metrics.serve(a.Log)
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("app: serve: %w", err)
	case <-ctx.Done():
	}
	a.Log.Info("shutting down")
	timeout := a.opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err = a.shutdownHTTP(sctx)
	<-errc
	return err
}

// shutdownHTTP stops the HTTP server gracefully until ctx ends, then cuts
// the connections still open. Calling it again is harmless.
func (a *App) shutdownHTTP(ctx context.Context) error {
	err := a.http.Shutdown(ctx)
	if err != nil {
		a.http.Close()
		err = fmt.Errorf("app: http shutdown: %w", err)
	}
	return errors.Join(err, a.metrics.stop(ctx))
}

// Close shuts the App down in order (see the package documentation) and
// returns every error met on the way. It is idempotent.
func (a *App) Close(ctx context.Context) error {
	a.closeOnce.Do(func() { a.closeErr = a.close(ctx) })
	return a.closeErr
}

func (a *App) close(ctx context.Context) error {
	var errs []error
	if a.http != nil {
		errs = append(errs, a.shutdownHTTP(ctx))
	}
	if a.adminSock != nil {
		errs = append(errs, a.adminSock.Close(ctx))
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	if a.Index != nil {
		a.Index.Wait()
	}
	// The final flush must run even when ctx is over: the store refuses a
	// transaction under a done context, and the queued grants would be lost.
	// It is bounded all the same, for a store that does not answer.
	timeout := a.opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	after, cancelAfter := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancelAfter()
	if a.Server != nil {
		// The last uses noted since the last periodic flush.
		if _, err := a.Tokens.FlushUsage(after); err != nil {
			errs = append(errs, err)
		}
	}
	if a.Server != nil {
		errs = append(errs, a.Server.Close(after))
	}
	// The server closes the ledger too; closing it again is a no-op after
	// a success and retries the final flush after a failure.
	if a.Ledger != nil {
		errs = append(errs, a.Ledger.Close(after))
	}
	if a.closeObjects != nil {
		if err := a.closeObjects(); err != nil {
			errs = append(errs, fmt.Errorf("app: close objects: %w", err))
		}
	}
	if a.DB != nil {
		if err := a.DB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("app: close store: %w", err))
		}
	}
	if a.accessLog != nil {
		if err := a.accessLog.Close(); err != nil {
			errs = append(errs, fmt.Errorf("app: access log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// openAccessLog returns the access log the configuration and Options ask
// for, nil for none; Close closes it.
func (a *App) openAccessLog() *accesslog.Log {
	if !a.Config.Log.Access || !a.Log.Enabled(context.Background(), slog.LevelInfo) {
		return nil
	}
	switch {
	case a.opts.AccessLog != nil:
		a.accessLog = accesslog.New(a.opts.AccessLog, 0)
	case a.opts.Logger == nil:
		a.accessLog = accesslog.New(os.Stderr, time.Second)
	}
	return a.accessLog
}

// newLogger logs text to stderr from level ("debug", "info", "warn",
// "error"; configs.Load checks it).
func newLogger(level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}
