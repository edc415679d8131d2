// Package configs holds the portal's documented default configuration and
// loads the effective one from its sources.
//
// The defaults live in default.yaml, embedded in the binary, which documents
// every key; Config mirrors it field for field (a test keeps the two in
// step). Load layers, later sources winning:
//
//	embedded defaults < config file < PORTAL_* environment < command-line flags
//
// and then checks every value, so a bad value is reported once, whatever
// source it came from, naming the key. Errors never quote secret values.
package configs

import (
	_ "embed"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultYAML is the documented default configuration, the text `portal
// config` prints. Callers must not modify it.
//
//go:embed default.yaml
var DefaultYAML []byte

// Config is the effective configuration. Field tags are the key paths of
// default.yaml; a Config from Load has passed every check described there.
// Fields tagged secret:"true" hold credentials: never log them.
type Config struct {
	// Listen is the host:port the HTTP server listens on.
	Listen string `mapstructure:"listen"`
	// PublicURLSetting is public_url as configured, possibly "". Use
	// PublicURL for the URL clients reach the portal at.
	PublicURLSetting string `mapstructure:"public_url"`
	// TrustedProxies is a comma-separated list of IPs or CIDRs whose
	// X-Forwarded-For is believed; see TrustedProxyList.
	TrustedProxies string `mapstructure:"trusted_proxies"`
	// DataDir holds the bbolt file, local objects and generated secrets.
	// Use DataPath to build paths inside it.
	DataDir string `mapstructure:"data_dir"`

	Store     StoreConfig     `mapstructure:"store"`
	Objects   ObjectsConfig   `mapstructure:"objects"`
	Uploads   UploadsConfig   `mapstructure:"uploads"`
	Downloads DownloadsConfig `mapstructure:"downloads"`
	Signing   SigningConfig   `mapstructure:"signing"`
	Updates   UpdatesConfig   `mapstructure:"updates"`
	Limits    LimitsConfig    `mapstructure:"limits"`
	Log       LogConfig       `mapstructure:"log"`
	Admin     AdminConfig     `mapstructure:"admin"`
	Metrics   MetricsConfig   `mapstructure:"metrics"`
	TLS       TLSConfig       `mapstructure:"tls"`
	Webhooks  WebhooksConfig  `mapstructure:"webhooks"`
	Web       WebConfig       `mapstructure:"web"`
	Repos     ReposConfig     `mapstructure:"repos"`
}

// ReposConfig configures the APT and YUM package repositories.
type ReposConfig struct {
	// OpenPGPAlgorithm is the algorithm of the OpenPGP keys made for
	// products from now on ("ed25519", "rsa3072" or "rsa4096"; checked by
	// signing.ParseOpenPGPAlgorithm). Existing keys keep theirs.
	OpenPGPAlgorithm string `mapstructure:"openpgp_algorithm"`
}

// StoreConfig selects the metadata store.
type StoreConfig struct {
	// Backend is "bolt" or "etcd".
	Backend string     `mapstructure:"backend"`
	Etcd    EtcdConfig `mapstructure:"etcd"`
}

// EtcdConfig reaches the etcd cluster of store.backend "etcd". Load
// guarantees that Endpoints is non-empty when the backend is etcd, that
// Prefix ends with "/", that Username and Password are set together and
// so are TLS.CertFile and TLS.KeyFile.
type EtcdConfig struct {
	Endpoints   []string      `mapstructure:"endpoints"`
	Prefix      string        `mapstructure:"prefix"`
	Username    string        `mapstructure:"username"`
	Password    string        `mapstructure:"password" secret:"true"`
	DialTimeout time.Duration `mapstructure:"dial_timeout"`
	TLS         EtcdTLSConfig `mapstructure:"tls"`
	// LeaseTTL is the lease of each replica's candidacy in the election of
	// the replica that runs the cluster-wide jobs (package leader): how
	// long the others wait before taking over from one that died. Load
	// keeps it between 2 s and 5 minutes.
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
}

// EtcdTLSConfig names the files securing the etcd connections; any of them
// set turns TLS on.
type EtcdTLSConfig struct {
	CAFile   string `mapstructure:"ca_file"`
	CertFile string `mapstructure:"cert_file"`
	KeyFile  string `mapstructure:"key_file"`
}

// Enabled reports whether any TLS setting is made.
func (t EtcdTLSConfig) Enabled() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// ObjectsConfig selects where artifacts live and caps signed URL lifetimes.
type ObjectsConfig struct {
	// Backend is "local" or "s3".
	Backend string `mapstructure:"backend"`
	// MaxTTL caps every signed URL; 0 < MaxTTL <= 168h.
	MaxTTL time.Duration     `mapstructure:"max_ttl"`
	Local  LocalObjectConfig `mapstructure:"local"`
	S3     S3Config          `mapstructure:"s3"`
}

// LocalObjectConfig configures the local-disk object store.
type LocalObjectConfig struct {
	// Secret is the /blobs/ link-signing secret or keyring text; "" means
	// the portal generates one in DataDir on first start. Load checks it
	// with local.ParseKeyring, which callers use to read it.
	Secret string `mapstructure:"secret" secret:"true"`
	// Shared declares the objects directory a filesystem every replica
	// mounts, which store.backend "etcd" requires of local objects.
	Shared bool `mapstructure:"shared"`
}

// S3Config reaches an S3-compatible bucket. Bucket is non-empty whenever
// Objects.Backend is "s3"; AccessKey and SecretKey are both set or both "".
type S3Config struct {
	Bucket    string `mapstructure:"bucket"`
	Region    string `mapstructure:"region"`
	Endpoint  string `mapstructure:"endpoint"`
	PathStyle bool   `mapstructure:"path_style"`
	AccessKey string `mapstructure:"access_key"`
	SecretKey string `mapstructure:"secret_key" secret:"true"`
}

// UploadsConfig governs publisher uploads.
type UploadsConfig struct {
	// URLTTL is the life of presigned PUT URLs; at most Objects.MaxTTL.
	URLTTL time.Duration `mapstructure:"url_ttl"`
	// MultipartThreshold is the size from which uploads go up in parts.
	MultipartThreshold Size `mapstructure:"multipart_threshold"`
	// MultipartPartSize is the size of every part but the last, 5MiB-5GiB.
	MultipartPartSize Size `mapstructure:"multipart_part_size"`
	// SweepInterval is how often expired waiting uploads are failed.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
	// MaxConcurrentCompletes bounds the completes verifying at once.
	MaxConcurrentCompletes int `mapstructure:"max_concurrent_completes"`
}

// DownloadsConfig governs download URLs, share links and the ledger.
// Load guarantees URLTTL <= MaxURLTTL <= Objects.MaxTTL and
// ShareRedirectTTL <= MaxURLTTL.
type DownloadsConfig struct {
	URLTTL              time.Duration `mapstructure:"url_ttl"`
	MaxURLTTL           time.Duration `mapstructure:"max_url_ttl"`
	ShareLinkMaxTTL     time.Duration `mapstructure:"share_link_max_ttl"`
	ShareRedirectTTL    time.Duration `mapstructure:"share_redirect_ttl"`
	LedgerFlushInterval time.Duration `mapstructure:"ledger_flush_interval"`
	LedgerQueue         int           `mapstructure:"ledger_queue"`
	// LedgerRetention: how long grants are kept (0: for ever; else >= 24h).
	LedgerRetention time.Duration `mapstructure:"ledger_retention"`
	// LinkRetention: how long expired share links stay listed (>= 0).
	LinkRetention time.Duration `mapstructure:"link_retention"`
	// LinksPerLicense: share links one license may hold (>= 1).
	LinksPerLicense int `mapstructure:"links_per_license"`
	// AnonymousGrantsPerMinute: anonymous grants of open products per
	// client address and minute (0: no limit).
	AnonymousGrantsPerMinute int `mapstructure:"anonymous_grants_per_minute"`
}

// SigningConfig configures product signing keys.
type SigningConfig struct {
	// MasterKey is "" or base64 of 32 bytes (checked by
	// signing.ParseMasterKey, which callers use to decode it).
	MasterKey string `mapstructure:"master_key" secret:"true"`
	// SparkleMaxSize is the largest artifact the portal signs for Sparkle.
	SparkleMaxSize Size `mapstructure:"sparkle_max_size"`
}

// UpdatesConfig governs update checks.
type UpdatesConfig struct {
	// Public answers update checks of licensed products without a license.
	Public bool `mapstructure:"public"`
}

// LimitsConfig bounds what clients may send.
type LimitsConfig struct {
	MaxBody               Size `mapstructure:"max_body"`
	AuthFailuresPerMinute int  `mapstructure:"auth_failures_per_minute"`
	// BodyIdleTimeout and WriteIdleTimeout are positive: the longest one
	// read of a request body, or one write of a response, may wait.
	BodyIdleTimeout  time.Duration `mapstructure:"body_idle_timeout"`
	WriteIdleTimeout time.Duration `mapstructure:"write_idle_timeout"`
	// ConnectionsPerAddress caps the connections open at once from one
	// client address; 0 means no cap, never negative.
	ConnectionsPerAddress int `mapstructure:"connections_per_address"`
}

// AdminConfig configures the local administration socket.
type AdminConfig struct {
	// Socket is the unix socket path as configured: relative to DataDir
	// unless absolute; "" or "off" disables it. Use AdminSocketPath.
	Socket string `mapstructure:"socket"`
}

// AdminSocketPath is the path of the unix socket on which a running server
// accepts `portal token create` from this machine, "" when disabled.
func (c *Config) AdminSocketPath() string {
	switch s := c.Admin.Socket; {
	case s == "" || s == "off":
		return ""
	case filepath.IsAbs(s):
		return filepath.Clean(s)
	default:
		return c.DataPath(s)
	}
}

// TLSConfig makes the main listener serve HTTPS (HTTP/2 and HTTP/1.1),
// from a certificate file pair or from ACME; Load refuses both at once.
type TLSConfig struct {
	// CertFile and KeyFile are PEM files, both set or both ""; they are
	// read again on SIGHUP.
	CertFile string     `mapstructure:"cert_file"`
	KeyFile  string     `mapstructure:"key_file"`
	ACME     ACMEConfig `mapstructure:"acme"`
}

// ACMEConfig obtains certificates from an ACME CA (Let's Encrypt) for
// Domains; empty Domains turns ACME off.
type ACMEConfig struct {
	Domains []string `mapstructure:"domains"`
	// CacheDir as configured; use ACMECacheDir.
	CacheDir string `mapstructure:"cache_dir"`
	Email    string `mapstructure:"email"`
}

// TLSEnabled reports whether the main listener serves HTTPS.
func (c *Config) TLSEnabled() bool {
	return c.TLS.CertFile != "" || len(c.TLS.ACME.Domains) > 0
}

// ACMECacheDir is where ACME accounts and certificates are kept:
// tls.acme.cache_dir, or DataPath("acme") when that is "".
func (c *Config) ACMECacheDir() string {
	if c.TLS.ACME.CacheDir != "" {
		return c.TLS.ACME.CacheDir
	}
	return c.DataPath("acme")
}

// MetricsConfig says who may read /metrics and where.
type MetricsConfig struct {
	// Token is "" or a bearer token (at least 16 characters, no spaces)
	// that may read /metrics besides an admin token.
	Token string `mapstructure:"token" secret:"true"`
	// Listen is "" (serve /metrics on the main listener) or the host:port
	// of a listener serving only /metrics, which the main listener then
	// does not serve.
	Listen string `mapstructure:"listen"`
}

// WebhooksConfig configures webhook deliveries (package webhooks).
type WebhooksConfig struct {
	// AllowPrivateTargets lets webhooks reach loopback, private, link-local
	// and other non-public addresses.
	AllowPrivateTargets bool `mapstructure:"allow_private_targets"`
	// RetryBase is the delay before the first retry, doubled after each
	// failure up to RetryMax; RetryFor is how long after its event a
	// delivery is retried before it fails. All positive.
	RetryBase time.Duration `mapstructure:"retry_base"`
	RetryMax  time.Duration `mapstructure:"retry_max"`
	RetryFor  time.Duration `mapstructure:"retry_for"`
	// Timeout bounds one delivery attempt. Positive.
	Timeout time.Duration `mapstructure:"timeout"`
	// ExpiryInterval is how often licenses are checked for expiry (the
	// license.expired event). Positive.
	ExpiryInterval time.Duration `mapstructure:"expiry_interval"`
	// Retention is how long finished deliveries are kept. Positive.
	Retention time.Duration `mapstructure:"retention"`
}

// WebConfig brands the web pages (package web) and bounds their sessions.
type WebConfig struct {
	// BrandName is the vendor's product name in every page's header.
	BrandName string `mapstructure:"brand_name"`
	// LogoURL is "" or an absolute http(s) URL of a logo image.
	LogoURL string `mapstructure:"logo_url"`
	// LogoFile is "" or an image file (PNG, JPEG, GIF, WebP, SVG; at most
	// 1 MiB) served by the portal; it wins over LogoURL.
	LogoFile string `mapstructure:"logo_file"`
	// AccentColor is "#rgb" or "#rrggbb".
	AccentColor string `mapstructure:"accent_color"`
	// SessionsPerSubject caps the live sessions of one license or token
	// (1 to 50); signing in beyond it ends the oldest.
	SessionsPerSubject int `mapstructure:"sessions_per_subject"`
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is "debug", "info", "warn" or "error".
	Level string `mapstructure:"level"`
	// Access enables one log line per HTTP request.
	Access bool `mapstructure:"access"`
}

// TrustedProxyList returns TrustedProxies split into entries.
func (c *Config) TrustedProxyList() []string {
	var out []string
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// PublicURL is the base URL clients reach the portal at, without a trailing
// slash: public_url when set, else http:// (https:// when TLSEnabled) and
// the listen address. A listen
// address without a host or with an unspecified one (0.0.0.0, ::) becomes
// localhost, the one name that works for such an address from this machine;
// deployments reached from elsewhere must set public_url.
func (c *Config) PublicURL() string {
	if c.PublicURLSetting != "" {
		return strings.TrimRight(c.PublicURLSetting, "/")
	}
	scheme := "http://"
	if c.TLSEnabled() {
		scheme = "https://"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return scheme + strings.TrimRight(c.Listen, "/")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return scheme + net.JoinHostPort(host, port)
}

// DataPath joins elem onto DataDir. The elements are names the portal
// chooses (e.g. "portal.db"), never client input: nothing here keeps the
// result inside DataDir.
func (c *Config) DataPath(elem ...string) string {
	return filepath.Join(append([]string{c.DataDir}, elem...)...)
}

// Size is a number of bytes. In the configuration it is written as an integer
// or as a string with a unit (ParseSize).
type Size int64

// Size units: decimal ones as storage vendors use, binary ones as memory does.
const (
	KB  Size = 1000
	MB  Size = 1000 * KB
	GB  Size = 1000 * MB
	TB  Size = 1000 * GB
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = map[string]Size{
	"": 1, "b": 1,
	"kb": KB, "mb": MB, "gb": GB, "tb": TB,
	"kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}

// ParseSize reads a non-negative whole number of bytes with an optional unit:
// "1048576", "512KiB", "64MiB", "1GiB", "10MB", "100B". Units are B,
// KB/MB/GB/TB (powers of 1000) and KiB/MiB/GiB/TiB (powers of 1024), case
// insensitive; a space may separate number and unit. Fractions, signs and
// values above the int64 range are errors.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, &sizeError{s}
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, &sizeError{s}
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n > int64(maxSize/unit) {
		return 0, &sizeError{s}
	}
	return Size(n) * unit, nil
}

const maxSize = Size(1<<63 - 1)

type sizeError struct{ s string }

func (e *sizeError) Error() string { return strconv.Quote(e.s) + " is not a size" }

// String writes s in the largest binary unit that divides it exactly, then
// the largest decimal one, else as plain bytes: 64MiB, 10MB, 1000001. The
// result reads back with ParseSize.
func (s Size) String() string {
	for _, u := range []struct {
		name string
		n    Size
	}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}, {"TB", TB}, {"GB", GB}, {"MB", MB}, {"KB", KB}} {
		if s != 0 && s%u.n == 0 {
			return strconv.FormatInt(int64(s/u.n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10)
}
