package configs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/web/brand"
)

// minMetricsToken is the shortest metrics.token accepted.
const minMetricsToken = 16

// maxPartSize is the largest multipart part S3 accepts.
const maxPartSize = 5 * GiB

// validate checks the merged configuration and returns every problem, each
// naming its key.
func (c *Config) validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("configs: %s: "+format, append([]any{key}, args...)...))
	}
	oneOf := func(key, val string, allowed ...string) {
		if !slices.Contains(allowed, val) {
			fail(key, "%q is not one of %s", val, strings.Join(allowed, ", "))
		}
	}
	positive := func(key string, d time.Duration) bool {
		if d <= 0 {
			fail(key, "%s is not positive", d)
			return false
		}
		return true
	}
	atMost := func(key string, d time.Duration, capKey string, limit time.Duration) {
		if d > limit {
			fail(key, "%s is above %s (%s)", d, capKey, limit)
		}
	}
	positiveInt := func(key string, n int64) {
		if n <= 0 {
			fail(key, "%d is not positive", n)
		}
	}
	// secretErr keeps a domain parser's message, not its error-code prefix;
	// these parsers never quote the secret.
	secretErr := func(key string, err error) {
		if pe, ok := errors.AsType[*portal.Error](err); ok {
			fail(key, "%s", pe.Message)
		} else {
			fail(key, "%v", err)
		}
	}

	if msg := checkListen(c.Listen); msg != "" {
		fail("listen", "%q %s", c.Listen, msg)
	}
	for _, p := range c.TrustedProxyList() {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			fail("trusted_proxies", "%q is not an IP address or CIDR range", p)
		}
	}
	if c.PublicURLSetting != "" {
		if msg := checkHTTPURL(c.PublicURLSetting); msg != "" {
			fail("public_url", "%q %s", redactURL(c.PublicURLSetting), msg)
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		fail("data_dir", "must not be empty")
	}

	oneOf("store.backend", c.Store.Backend, "bolt", "etcd")
	if e := &c.Store.Etcd; c.Store.Backend == "etcd" {
		if len(e.Endpoints) == 0 {
			fail("store.etcd.endpoints", "required when store.backend is etcd (PORTAL_STORE_ETCD_ENDPOINTS, comma-separated)")
		}
		for _, ep := range e.Endpoints {
			if msg := checkEtcdEndpoint(ep); msg != "" {
				fail("store.etcd.endpoints", "%q %s", redactURL(ep), msg)
			}
		}
		if e.Prefix == "" || !strings.HasSuffix(e.Prefix, "/") {
			fail("store.etcd.prefix", "%q must be non-empty and end with \"/\"", e.Prefix)
		}
		if (e.Username == "") != (e.Password == "") {
			fail("store.etcd.username", "store.etcd.username and store.etcd.password must be set together")
		}
		if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
			fail("store.etcd.tls.cert_file", "store.etcd.tls.cert_file and store.etcd.tls.key_file must be set together")
		}
		positive("store.etcd.dial_timeout", e.DialTimeout)
		if e.LeaseTTL < 2*time.Second || e.LeaseTTL > 5*time.Minute {
			fail("store.etcd.lease_ttl", "%s must be between 2s and 5m", e.LeaseTTL)
		}
	}

	o := &c.Objects
	oneOf("objects.backend", o.Backend, "local", "s3")
	maxTTLOK := positive("objects.max_ttl", o.MaxTTL)
	atMost("objects.max_ttl", o.MaxTTL, "the 168h ceiling", objects.MaxLinkTTL)
	if o.Local.Secret != "" {
		if _, err := local.ParseKeyring(o.Local.Secret); err != nil {
			secretErr("objects.local.secret", err)
		}
	}
	if o.Backend == "s3" {
		if o.S3.Bucket == "" {
			fail("objects.s3.bucket", "required when objects.backend is s3")
		}
		if o.S3.Region == "" {
			fail("objects.s3.region", "required when objects.backend is s3")
		}
	}
	if o.S3.Endpoint != "" {
		if msg := checkHTTPURL(o.S3.Endpoint); msg != "" {
			fail("objects.s3.endpoint", "%q %s", redactURL(o.S3.Endpoint), msg)
		}
	}
	if (o.S3.AccessKey == "") != (o.S3.SecretKey == "") {
		fail("objects.s3.access_key", "objects.s3.access_key and objects.s3.secret_key must be set together")
	}

	u := &c.Uploads
	if positive("uploads.url_ttl", u.URLTTL) && maxTTLOK {
		atMost("uploads.url_ttl", u.URLTTL, "objects.max_ttl", o.MaxTTL)
	}
	positiveInt("uploads.multipart_threshold", int64(u.MultipartThreshold))
	if u.MultipartThreshold > objects.MaxObjectSize {
		fail("uploads.multipart_threshold", "%s is above the largest object, %s", u.MultipartThreshold, Size(objects.MaxObjectSize))
	}
	if u.MultipartPartSize < objects.MinPartSize || u.MultipartPartSize > maxPartSize {
		fail("uploads.multipart_part_size", "%s is not between %s and %s", u.MultipartPartSize, Size(objects.MinPartSize), maxPartSize)
	}
	positive("uploads.sweep_interval", u.SweepInterval)
	positiveInt("uploads.max_concurrent_completes", int64(u.MaxConcurrentCompletes))

	d := &c.Downloads
	urlOK := positive("downloads.url_ttl", d.URLTTL)
	maxURLOK := positive("downloads.max_url_ttl", d.MaxURLTTL)
	if urlOK && maxURLOK {
		atMost("downloads.url_ttl", d.URLTTL, "downloads.max_url_ttl", d.MaxURLTTL)
	}
	if maxURLOK && maxTTLOK {
		atMost("downloads.max_url_ttl", d.MaxURLTTL, "objects.max_ttl", o.MaxTTL)
	}
	if positive("downloads.share_link_max_ttl", d.ShareLinkMaxTTL) {
		atMost("downloads.share_link_max_ttl", d.ShareLinkMaxTTL, "the 168h ceiling", objects.MaxLinkTTL)
	}
	if positive("downloads.share_redirect_ttl", d.ShareRedirectTTL) && maxURLOK {
		atMost("downloads.share_redirect_ttl", d.ShareRedirectTTL, "downloads.max_url_ttl", d.MaxURLTTL)
	}
	positive("downloads.ledger_flush_interval", d.LedgerFlushInterval)
	positiveInt("downloads.ledger_queue", int64(d.LedgerQueue))
	if d.LedgerRetention != 0 && d.LedgerRetention < 24*time.Hour {
		fail("downloads.ledger_retention", "%s is below 24h (0 keeps every grant)", d.LedgerRetention)
	}
	if d.LinkRetention < 0 {
		fail("downloads.link_retention", "%s is negative", d.LinkRetention)
	}
	positiveInt("downloads.links_per_license", int64(d.LinksPerLicense))
	if d.AnonymousGrantsPerMinute < 0 {
		fail("downloads.anonymous_grants_per_minute", "%d is negative (0 means no limit)", d.AnonymousGrantsPerMinute)
	}

	if _, err := signing.ParseMasterKey(c.Signing.MasterKey); err != nil {
		secretErr("signing.master_key", err)
	}
	positiveInt("signing.sparkle_max_size", int64(c.Signing.SparkleMaxSize))
	if _, err := signing.ParseOpenPGPAlgorithm(c.Repos.OpenPGPAlgorithm); err != nil {
		fail("repos.openpgp_algorithm", "%v", err)
	}

	positiveInt("limits.max_body", int64(c.Limits.MaxBody))
	positiveInt("limits.auth_failures_per_minute", int64(c.Limits.AuthFailuresPerMinute))
	positive("limits.body_idle_timeout", c.Limits.BodyIdleTimeout)
	positive("limits.write_idle_timeout", c.Limits.WriteIdleTimeout)
	if c.Limits.ConnectionsPerAddress < 0 {
		fail("limits.connections_per_address", "%d is negative (0 means no cap)", c.Limits.ConnectionsPerAddress)
	}

	w := c.Webhooks
	positive("webhooks.retry_base", w.RetryBase)
	if positive("webhooks.retry_max", w.RetryMax) {
		if w.RetryMax < w.RetryBase {
			fail("webhooks.retry_max", "%s is below webhooks.retry_base (%s)", w.RetryMax, w.RetryBase)
		}
	}
	positive("webhooks.retry_for", w.RetryFor)
	positive("webhooks.timeout", w.Timeout)
	positive("webhooks.expiry_interval", w.ExpiryInterval)
	positive("webhooks.retention", w.Retention)

	if c.Web.BrandName == "" || len(c.Web.BrandName) > 100 || strings.ContainsFunc(c.Web.BrandName, unicode.IsControl) {
		fail("web.brand_name", "must be 1 to 100 characters without control characters")
	}
	if err := brand.CheckAccentColor(c.Web.AccentColor); err != nil {
		fail("web.accent_color", "%v", err)
	}
	if err := brand.CheckLogoURL(c.Web.LogoURL); err != nil {
		fail("web.logo_url", "%v", err)
	}
	if n := c.Web.SessionsPerSubject; n < 1 || n > 50 {
		fail("web.sessions_per_subject", "%d is not from 1 to 50", n)
	}

	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")

	if t := c.Metrics.Token; t != "" && (len(t) < minMetricsToken || strings.ContainsFunc(t, unicode.IsSpace)) {
		fail("metrics.token", "must be at least %d characters without spaces (e.g. `openssl rand -hex 32`)", minMetricsToken)
	}
	if l := c.Metrics.Listen; l != "" {
		if msg := checkListen(l); msg != "" {
			fail("metrics.listen", "%q %s", l, msg)
		} else if l == c.Listen {
			fail("metrics.listen", "%q is the listen address: give the metrics listener an address of its own, or \"\" to serve /metrics on the main listener", l)
		}
	}

	t := &c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		fail("tls.cert_file", "tls.cert_file and tls.key_file (PORTAL_TLS_CERT_FILE, PORTAL_TLS_KEY_FILE) must be set together")
	}
	if len(t.ACME.Domains) > 0 {
		if t.CertFile != "" {
			fail("tls.acme.domains", "set either tls.acme.domains or tls.cert_file and tls.key_file, not both")
		}
		for _, d := range t.ACME.Domains {
			if msg := checkHostName(d); msg != "" {
				fail("tls.acme.domains", "%q %s", d, msg)
			}
		}
		if c.PublicURLSetting != "" {
			if u, err := url.Parse(c.PublicURLSetting); err == nil && u.Host != "" &&
				!slices.ContainsFunc(t.ACME.Domains, func(d string) bool { return strings.EqualFold(d, u.Hostname()) }) {
				fail("tls.acme.domains", "does not include %q, the host of public_url: clients would get no certificate for it", u.Hostname())
			}
		}
	} else if t.ACME.Email != "" || t.ACME.CacheDir != "" {
		fail("tls.acme.domains", "is empty while tls.acme.email or tls.acme.cache_dir is set: list the host names ACME obtains certificates for")
	}
	if t.ACME.Email != "" && !strings.Contains(t.ACME.Email, "@") {
		fail("tls.acme.email", "%q is not an email address", t.ACME.Email)
	}

	return errors.Join(errs...)
}

// checkListen returns why addr is not a host:port to listen on, or "".
// checkEtcdEndpoint returns why ep is not an etcd client URL
// (http(s)://host:port), or "".
func checkEtcdEndpoint(ep string) string {
	u, err := url.Parse(ep)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "must start with http:// or https://"
	case u.User != nil:
		return "must not hold user info (use store.etcd.username and store.etcd.password)"
	case u.Host == "" || u.Port() == "":
		return "must name a host and port (https://etcd1:2379)"
	case u.Path != "" && u.Path != "/":
		return "must not have a path"
	}
	return ""
}

func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "has no port number (0-65535)"
	}
	return ""
}

// checkHostName returns why s is not a DNS name a certificate can be
// obtained for, or "".
func checkHostName(s string) string {
	if net.ParseIP(s) != nil {
		return "is an IP address; ACME needs a DNS name"
	}
	if len(s) > 253 || !strings.Contains(s, ".") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		return "is not a fully qualified host name"
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return "is not a fully qualified host name"
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return "is not a fully qualified host name"
			}
		}
	}
	return ""
}

// checkHTTPURL returns why s is not an absolute http(s) base URL, or "".
// Queries, fragments and user info are refused: the portal appends paths to
// the URL and shows it to clients.
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		return "is not an absolute http(s) URL"
	case u.RawQuery != "" || u.ForceQuery:
		return "must not have a query"
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "must not have a fragment"
	case u.User != nil:
		return "must not hold user info"
	}
	return ""
}

// redactURL hides a password in s so an error can quote it.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}
