// Package server is the portal's HTTP API: the Gin router, authentication
// and rate-limit middleware, handlers, and the one map from error codes to
// HTTP statuses. Handlers translate between HTTP and the domain services
// and hold no business rules of their own: who may do what is package
// access (the authentication middleware puts the caller in the request's
// context), which release and build a caller may have is
// updates.Resolver, and grants, quotas and share links are package
// downloads.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/downloads"
	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/downloads/links"
	"github.com/portaldist/portal/internal/accesslog"
	"github.com/portaldist/portal/internal/memo"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
	"github.com/portaldist/portal/updates"
	"github.com/portaldist/portal/webhooks"
)

// Options tune the server.
type Options struct {
	// MaxBody bounds JSON request bodies, in bytes.
	MaxBody int64
	// AuthFailuresPerMinute is how many failed authentication attempts a
	// client address or key hint may make in a minute before getting 429.
	AuthFailuresPerMinute int
	// AccessLog receives one line per request (route pattern, never the
	// path or query); nil logs none. The caller closes it.
	AccessLog *accesslog.Log
	Logger    *slog.Logger
	Now       func() time.Time

	// PublicURL is the base URL clients reach the portal at; share links
	// start with it.
	PublicURL string
	// URLTTL is the default life of a minted download URL, MaxURLTTL the
	// most a client may ask for with ?ttl=.
	URLTTL, MaxURLTTL time.Duration
	// ShareLinkMaxTTL caps share links; ShareRedirectTTL is the life of the
	// storage URL a share link redirects to.
	ShareLinkMaxTTL, ShareRedirectTTL time.Duration
	// TrustedProxies are the proxies (IPs or CIDRs) whose X-Forwarded-For
	// names the client; none by default.
	TrustedProxies []string
	// UpdatesPublic answers update checks of licensed products without a
	// license (downloads still need one).
	UpdatesPublic bool
	// MetricsToken, when set, is a bearer token that may read /metrics
	// besides an admin token. A secret: never logged.
	MetricsToken string
	// MetricsSeparate takes /metrics off this handler (it answers 404):
	// MetricsHandler serves it on a listener of its own.
	MetricsSeparate bool
	// StoreDriver names the metadata store's driver ("bolt") for /readyz
	// and portal_store_info.
	StoreDriver string
	// Leading reports whether this replica runs the cluster-wide background
	// work (package leader), for /readyz and the portal_leader gauge; nil
	// leaves both out.
	Leading func() bool
}

// Deps are the services the server exposes.
type Deps struct {
	Store    store.DB
	Catalog  *releases.Service
	Licenses *licenses.Service
	Tokens   *tokens.Service
	Objects  objects.ObjectStore
	// Blobs serves the local store's signed /blobs/ links; nil when objects
	// live in S3.
	Blobs http.Handler
	// Keys makes and opens product signing keys.
	Keys ProductKeys
	// Publishing is the publisher side: artifacts, uploads, verification.
	Publishing *publishing.Service
	// Index answers update checks and resolves "latest".
	Index *updates.Index
	// Ledger records download grants and counts daily quotas.
	Ledger *ledger.Ledger
	// Links are the revocable share links.
	Links *links.Service
	// Resolver decides which release and build a caller may have; nil
	// builds one over Index and Catalog.
	Resolver *updates.Resolver
	// Downloads mints grants and share links; nil builds one over Objects,
	// Ledger, Links and Licenses.
	Downloads *downloads.Service
	// Webhooks keeps webhooks and their deliveries; nil serves no
	// /v1/webhooks routes.
	Webhooks *webhooks.Service
	// ObjectsSample is the start-up check that published artifacts'
	// objects exist in Objects; /readyz shows its result (nil: nothing).
	ObjectsSample *inventory.Sampler
	// Pages, when not nil, are the web pages served beside the API
	// (package web).
	Pages Pages
}

// Pages are routes served beside the API by the same router, behind the
// same middleware (panic recovery, request id and audit context, metrics,
// body limit, access log). New calls Register once, after the API's routes
// are in place; Register must not add routes under the API's paths (/v1,
// /feeds, /d, /blobs, /healthz, /readyz, /metrics). s is the server being
// built: its Resolver and Downloads are the API's own, and its
// CheckLicenseKey and CheckToken check credentials with the API's
// failed-authentication limiter.
type Pages interface {
	Register(e *gin.Engine, s *Server)
}

// PagesNotFound is implemented by Pages that answer unknown paths of their
// own areas themselves (an HTML page rather than the API's JSON 404 or
// 405, such as a GET of a path that only takes a form's POST): NotFound
// reports whether it answered c.
type PagesNotFound interface {
	NotFound(c *gin.Context) bool
}

// Server is the HTTP API. Build it with New; it is an http.Handler.
type Server struct {
	Deps
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	limiter *failureLimiter
	engine  *gin.Engine
	metrics *metrics
	// upgrades holds rendered upgrade answers by index snapshot, release
	// and artifact.
	upgrades *memo.Cache[string, rendered]
	// apt holds the APT repositories' rendered suites (apt.go).
	apt *aptState
}

func init() { gin.SetMode(gin.ReleaseMode) }

// New builds the router.
func New(d Deps, opts Options) *Server {
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = 5 * time.Minute
	}
	if opts.MaxURLTTL < opts.URLTTL {
		opts.MaxURLTTL = opts.URLTTL
	}
	if opts.ShareLinkMaxTTL <= 0 || opts.ShareLinkMaxTTL > 7*24*time.Hour {
		opts.ShareLinkMaxTTL = 7 * 24 * time.Hour
	}
	if opts.ShareRedirectTTL <= 0 {
		opts.ShareRedirectTTL = time.Minute
	}
	if opts.StoreDriver == "" {
		opts.StoreDriver = "unknown"
	}
	if d.Resolver == nil {
		d.Resolver = updates.NewResolver(d.Index, d.Catalog, opts.UpdatesPublic, opts.Now)
	}
	if d.Downloads == nil {
		d.Downloads = downloads.New(d.Objects, d.Ledger, d.Links, d.Licenses, downloads.Options{
			LinkMaxTTL: opts.ShareLinkMaxTTL, Now: opts.Now,
		})
	}
	s := &Server{
		Deps: d, opts: opts, log: opts.Logger, now: opts.Now,
		limiter:  newFailureLimiter(opts.AuthFailuresPerMinute, opts.Now),
		upgrades: memo.New[string, rendered](10*time.Minute, 10_000),
	}
	e := gin.New()
	if err := e.SetTrustedProxies(opts.TrustedProxies); err != nil {
		s.log.Error("trusted proxies ignored", "err", err)
		e.SetTrustedProxies(nil)
	}
	// No trailing-slash redirects: Gin builds their Location from the
	// client's X-Forwarded-Prefix, and the portal redirects only to URLs it
	// mints (a 301 is also cached by browsers and proxies).
	e.RedirectTrailingSlash = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	s.metrics = newMetrics(s)
	e.Use(s.recover, s.requestContext, s.metrics.observe, s.limitBody)
	if opts.AccessLog != nil {
		e.Use(s.accessLog)
	}
	e.NoRoute(func(c *gin.Context) {
		if nf, ok := d.Pages.(PagesNotFound); ok && nf.NotFound(c) {
			return
		}
		s.fail(c, portal.Errorf(portal.ENotFound, "no such endpoint"))
	})
	e.NoMethod(func(c *gin.Context) {
		if nf, ok := d.Pages.(PagesNotFound); ok && nf.NotFound(c) {
			return
		}
		c.Abort()
		c.PureJSON(http.StatusMethodNotAllowed, gin.H{"error": gin.H{"code": "method_not_allowed", "message": "method not allowed on this endpoint"}})
	})
	s.engine = e
	s.routes()
	if d.Pages != nil {
		d.Pages.Register(e, s)
	}
	s.metrics.prepare(e.Routes())
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.engine.ServeHTTP(w, r) }

func (s *Server) routes() {
	e := s.engine
	e.GET("/healthz", func(c *gin.Context) { c.PureJSON(http.StatusOK, gin.H{"status": "ok"}) })
	e.GET("/readyz", s.ready)
	s.metricsRoute(e)
	if s.Blobs != nil {
		h := gin.WrapH(s.Blobs)
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPut} {
			e.Handle(m, "/blobs/*key", h)
		}
	}

	v1 := e.Group("/v1", s.authenticate)
	v1.POST("/products", s.requireAdmin, s.createProduct)
	v1.GET("/products", s.listProducts)
	v1.GET("/products/:product", s.getProduct)
	v1.POST("/products/:product/releases", s.createRelease)
	v1.GET("/products/:product/releases", s.listReleases)
	v1.GET("/products/:product/releases/:version", s.getRelease)
	v1.POST("/products/:product/releases/:version/publish", s.publish)
	v1.POST("/products/:product/releases/:version/yank", s.yank)
	v1.POST("/products/:product/releases/:version/artifacts", s.addArtifact)
	v1.POST("/products/:product/releases/:version/artifacts/:filename/complete", s.completeArtifact)
	v1.DELETE("/products/:product/releases/:version/artifacts/:filename", s.deleteArtifact)

	v1.GET("/products/:product/releases/:version/download", s.downloadRelease)
	v1.GET("/products/:product/releases/:version/artifacts/:filename/download", s.downloadArtifact)
	v1.GET("/products/:product/releases/:version/files/:filename", s.downloadFile)
	v1.GET("/products/:product/downloads", s.downloadCounts)
	v1.GET("/me", s.me)
	v1.GET("/products/:product/upgrade", s.upgrade)
	v1.GET("/products/:product/keys", s.keys)
	v1.GET("/products/:product/releases/:version/artifacts/:filename", s.artifactInfo)
	v1.POST("/links", s.createLink)
	v1.DELETE("/links/:id", s.deleteLink)
	v1.GET("/licenses/:id/downloads", s.requireAdmin, s.licenseDownloads)
	e.GET("/d/:token", s.shareLink)

	s.aptRoutes(e)
	s.rpmRoutes(e)

	f := e.Group("/feeds/:product", s.authenticate)
	f.GET("/appcast.xml", s.appcast)
	f.GET("/electron/:file", s.electron)
	f.GET("/tauri/:target/:arch/:current", s.tauri)
	f.GET("/squirrel/:platform/:version", s.squirrel)

	s.tokenRoutes(v1)
	s.catalogAdminRoutes(v1)
	s.auditRoutes(v1)
	s.backupRoutes(v1)
	s.webhookRoutes(v1)
	s.licenseRoutes(v1)
	v1.POST("/licenses", s.requireAdmin, s.createLicense)
	v1.GET("/licenses", s.requireAdmin, s.listLicenses)
	v1.GET("/licenses/:id", s.requireAdmin, s.getLicense)
	v1.POST("/licenses/:id/suspend", s.requireAdmin, s.licenseStatus((*licenses.Service).Suspend))
	v1.POST("/licenses/:id/reinstate", s.requireAdmin, s.licenseStatus((*licenses.Service).Reinstate))
	v1.POST("/licenses/:id/revoke", s.requireAdmin, s.licenseStatus((*licenses.Service).Revoke))
}

func (s *Server) ready(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c, 3*time.Second)
	defer cancel()
	checks := gin.H{}
	ok := true
	if err := s.Store.Ping(ctx); err != nil {
		s.log.Warn("readyz: store", "err", err)
		checks["store"], ok = "unavailable", false
	} else {
		checks["store"] = "ok"
	}
	if s.Objects != nil {
		if err := s.Objects.Ping(ctx); err != nil {
			s.log.Warn("readyz: objects", "err", err)
			checks["objects"], ok = "unavailable", false
		} else {
			checks["objects"] = "ok"
		}
	}
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	storeInfo := gin.H{"driver": s.opts.StoreDriver}
	if sr, isReporter := s.Store.(store.StatusReporter); isReporter {
		// Reported, not judged (Ping judged reachability): the cluster's
		// members and how far this replica's watches are behind.
		st := sr.Status(ctx)
		storeInfo["reachable"] = st.Reachable
		storeInfo["members"] = st.Members
		storeInfo["members_reachable"] = st.MembersReachable
		storeInfo["revision"] = st.Revision
		storeInfo["watch"] = gin.H{"watches": st.Watches, "revision": st.WatchRevision,
			"lag_revisions": st.WatchLag, "quiet_seconds": st.WatchQuiet.Seconds()}
	}
	body := gin.H{"ready": ok, "checks": checks, "store": storeInfo}
	if s.Index != nil {
		// Reported, not judged: a lagging index still answers (see
		// updates.Index.WatchStats).
		w := s.Index.WatchStats()
		body["index_watch"] = gin.H{"pending": w.Pending, "lag_seconds": w.Lag.Seconds()}
	}
	if s.opts.Leading != nil {
		// Reported, not judged: exactly one replica leads.
		body["jobs"] = gin.H{"leader": s.opts.Leading()}
	}
	if s.ObjectsSample != nil {
		// Reported, not judged: every replica would fail readiness
		// together over the same missing objects, and the rest of the
		// catalog still downloads.
		body["objects_sample"] = s.ObjectsSample.Result()
	}
	c.PureJSON(status, body)
}

// recover turns a panic into a 500 with the error envelope; the cause is
// logged, never sent.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "path", c.FullPath(), "panic", r)
			s.fail(c, portal.Errorf(portal.EInternal, "internal error"))
		}
	}()
	c.Next()
}

// accessLog logs method, route pattern, status, duration and the request
// id (the one the request's audit records carry). It logs the path
// without its query, which may hold a signature, and never a header.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "(no route)"
	}
	end := time.Now()
	s.opts.AccessLog.Record(accesslog.Entry{Time: end, Method: c.Request.Method, Route: route, Status: c.Writer.Status(),
		Bytes: max(c.Writer.Size(), 0), Duration: end.Sub(start), Client: c.ClientIP(), RequestID: requestID(c)})
}

// Close stops background work and flushes what is queued. Call it after
// the HTTP server has shut down.
func (s *Server) Close(ctx context.Context) error {
	if s.Ledger != nil {
		return s.Ledger.Close(ctx)
	}
	return nil
}
