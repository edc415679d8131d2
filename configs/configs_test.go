package configs

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
)

// wantDefaults is the Config default.yaml describes, written out by hand so a
// changed default is a deliberate change to this test too.
func wantDefaults() Config {
	return Config{
		Listen:           "127.0.0.1:8080",
		PublicURLSetting: "",
		DataDir:          "./data",
		Store:            StoreConfig{Backend: "bolt", Etcd: EtcdConfig{Prefix: "portal/", DialTimeout: 5 * time.Second, LeaseTTL: 10 * time.Second}},
		Objects: ObjectsConfig{
			Backend: "local",
			MaxTTL:  168 * time.Hour,
			S3:      S3Config{Region: "us-east-1"},
		},
		Uploads: UploadsConfig{
			URLTTL:             time.Hour,
			MultipartThreshold: 64 * MiB,
			MultipartPartSize:  64 * MiB,
			SweepInterval:      time.Minute,

			MaxConcurrentCompletes: 2,
		},
		Downloads: DownloadsConfig{
			URLTTL:              5 * time.Minute,
			MaxURLTTL:           time.Hour,
			ShareLinkMaxTTL:     168 * time.Hour,
			ShareRedirectTTL:    time.Minute,
			LedgerFlushInterval: time.Second,
			LedgerQueue:         10000,
			LedgerRetention:     90 * 24 * time.Hour,
			LinkRetention:       7 * 24 * time.Hour,
			LinksPerLicense:     100,

			AnonymousGrantsPerMinute: 60,
		},
		Signing: SigningConfig{SparkleMaxSize: 5 * TiB},
		Limits: LimitsConfig{MaxBody: MiB, AuthFailuresPerMinute: 10,
			BodyIdleTimeout: 30 * time.Second, WriteIdleTimeout: 30 * time.Second, ConnectionsPerAddress: 256},
		Log:   LogConfig{Level: "info", Access: true},
		Admin: AdminConfig{Socket: "portal.sock"},
		Webhooks: WebhooksConfig{RetryBase: time.Second, RetryMax: time.Hour, RetryFor: 24 * time.Hour,
			Timeout: 10 * time.Second, ExpiryInterval: time.Minute, Retention: 7 * 24 * time.Hour},
		Web:   WebConfig{BrandName: "portal", AccentColor: "#2f5fd0", SessionsPerSubject: 20},
		Repos: ReposConfig{OpenPGPAlgorithm: "ed25519"},
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// A valid master key: base64 of 32 bytes.
const masterKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestLoadDefaults(t *testing.T) {
	for _, env := range [][]string{nil, {}} {
		cfg, err := Load(LoadOptions{Env: env})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if want := wantDefaults(); !reflect.DeepEqual(*cfg, want) {
			t.Errorf("defaults:\n got %+v\nwant %+v", *cfg, want)
		}
		if got, want := cfg.PublicURL(), "http://127.0.0.1:8080"; got != want {
			t.Errorf("PublicURL() = %q, want %q", got, want)
		}
		if got, want := cfg.DataPath("portal.db"), filepath.Join("data", "portal.db"); got != want {
			t.Errorf("DataPath = %q, want %q", got, want)
		}
	}
}

// TestAdminSocketPath: relative to data_dir, absolute as given, and ""
// (from a file or a flag) or "off" (from anywhere, the environment too)
// disables the socket.
func TestAdminSocketPath(t *testing.T) {
	abs := filepath.Join(t.TempDir(), "run", "portal.sock")
	for _, tc := range []struct {
		name string
		opts LoadOptions
		want string
	}{
		{"default", LoadOptions{Flags: map[string]string{"data_dir": "/srv/p"}}, filepath.Join("/srv/p", "portal.sock")},
		{"relative", LoadOptions{Flags: map[string]string{"data_dir": "/srv/p", "admin.socket": "run/a.sock"}}, filepath.Join("/srv/p", "run", "a.sock")},
		{"absolute", LoadOptions{Env: []string{"PORTAL_ADMIN_SOCKET=" + abs}}, abs},
		{"flag empty", LoadOptions{Flags: map[string]string{"admin.socket": ""}}, ""},
		{"file empty", LoadOptions{File: writeFile(t, "c.yaml", "admin:\n  socket: \"\"\n")}, ""},
		{"env off", LoadOptions{Env: []string{"PORTAL_ADMIN_SOCKET=off"}}, ""},
		{"env empty is unset", LoadOptions{Env: []string{"PORTAL_ADMIN_SOCKET="}, Flags: map[string]string{"data_dir": "/d"}}, filepath.Join("/d", "portal.sock")},
	} {
		cfg, err := Load(tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := cfg.AdminSocketPath(); got != tc.want {
			t.Errorf("%s: AdminSocketPath() = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestLoadPrecedence(t *testing.T) {
	file := `
listen: 10.0.0.1:9000
public_url: https://file.example/
objects:
  backend: s3
  s3:
    bucket: from-file
    path_style: true
uploads:
  multipart_part_size: 8MiB
downloads:
  url_ttl: 10m
limits:
  max_body: 2097152
log:
  level: debug
`
	tests := []struct {
		name  string
		file  string
		env   []string
		flags map[string]string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "file overrides defaults",
			file: file,
			check: func(t *testing.T, c *Config) {
				want := wantDefaults()
				want.Listen = "10.0.0.1:9000"
				want.PublicURLSetting = "https://file.example/"
				want.Objects.Backend = "s3"
				want.Objects.S3.Bucket = "from-file"
				want.Objects.S3.PathStyle = true
				want.Uploads.MultipartPartSize = 8 * MiB
				want.Downloads.URLTTL = 10 * time.Minute
				want.Limits.MaxBody = 2 * MiB
				want.Log.Level = "debug"
				if !reflect.DeepEqual(*c, want) {
					t.Errorf("\n got %+v\nwant %+v", *c, want)
				}
				if got := c.PublicURL(); got != "https://file.example" {
					t.Errorf("PublicURL() = %q", got)
				}
			},
		},
		{
			name: "env overrides file",
			file: file,
			env: []string{
				"PORTAL_LISTEN=10.0.0.2:9001",
				"PORTAL_OBJECTS_S3_BUCKET=from-env",
				"PORTAL_OBJECTS_S3_PATH_STYLE=false",
				"PORTAL_DOWNLOADS_URL_TTL=20m",
				"PORTAL_LIMITS_MAX_BODY=512KiB",
				"PORTAL_DOWNLOADS_LEDGER_QUEUE=50",
				"PORTAL_UPDATES_PUBLIC=true",
				"PORTAL_SIGNING_MASTER_KEY=" + masterKey,
			},
			check: func(t *testing.T, c *Config) {
				for _, f := range []struct {
					name      string
					got, want any
				}{
					{"listen", c.Listen, "10.0.0.2:9001"},
					{"bucket", c.Objects.S3.Bucket, "from-env"},
					{"path_style", c.Objects.S3.PathStyle, false},
					{"url_ttl", c.Downloads.URLTTL, 20 * time.Minute},
					{"max_body", c.Limits.MaxBody, 512 * KiB},
					{"ledger_queue", c.Downloads.LedgerQueue, 50},
					{"public", c.Updates.Public, true},
					{"master_key", c.Signing.MasterKey, masterKey},
					// Keys the environment leaves alone keep the file's value.
					{"level", c.Log.Level, "debug"},
					{"backend", c.Objects.Backend, "s3"},
				} {
					if f.got != f.want {
						t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
					}
				}
			},
		},
		{
			name: "flags override env",
			file: file,
			env:  []string{"PORTAL_LISTEN=10.0.0.2:9001", "PORTAL_DATA_DIR=/env", "PORTAL_OBJECTS_S3_BUCKET=from-env"},
			flags: map[string]string{
				"listen":            "10.0.0.3:9002",
				"data-dir":          "/flag",
				"objects.s3.bucket": "from-flag",
			},
			check: func(t *testing.T, c *Config) {
				if c.Listen != "10.0.0.3:9002" || c.DataDir != "/flag" || c.Objects.S3.Bucket != "from-flag" {
					t.Errorf("listen %q, data_dir %q, bucket %q: want the flags' values", c.Listen, c.DataDir, c.Objects.S3.Bucket)
				}
			},
		},
		{
			name:  "flag may clear a value",
			file:  file,
			flags: map[string]string{"public_url": ""},
			check: func(t *testing.T, c *Config) {
				if c.PublicURLSetting != "" || c.PublicURL() != "http://10.0.0.1:9000" {
					t.Errorf("public_url %q, PublicURL() %q", c.PublicURLSetting, c.PublicURL())
				}
			},
		},
		{
			name: "env without a file",
			env:  []string{"PORTAL_DATA_DIR=/var/lib/portal", "PORTAL_PUBLIC_URL=https://dl.example/portal"},
			check: func(t *testing.T, c *Config) {
				if c.DataDir != "/var/lib/portal" || c.PublicURL() != "https://dl.example/portal" {
					t.Errorf("data_dir %q, PublicURL() %q", c.DataDir, c.PublicURL())
				}
			},
		},
		{
			name: "empty and repeated env variables",
			file: file,
			env:  []string{"PORTAL_LISTEN=", "PORTAL_DATA_DIR=/first", "PORTAL_DATA_DIR=/last", "PORTAL_LOG_LEVEL=warn", "PORTAL_LOG_LEVEL="},
			check: func(t *testing.T, c *Config) {
				if c.Listen != "10.0.0.1:9000" || c.DataDir != "/last" || c.Log.Level != "debug" {
					t.Errorf("listen %q, data_dir %q, log.level %q: empty env must count as unset, the last repeat must win",
						c.Listen, c.DataDir, c.Log.Level)
				}
			},
		},
		{
			name: "invalid file value replaced by a valid env value",
			file: "downloads:\n  url_ttl: 5x\n",
			env:  []string{"PORTAL_DOWNLOADS_URL_TTL=2m"},
			check: func(t *testing.T, c *Config) {
				if c.Downloads.URLTTL != 2*time.Minute {
					t.Errorf("url_ttl = %v", c.Downloads.URLTTL)
				}
			},
		},
		{
			name: "keys without a value keep their defaults",
			file: "listen:\nobjects:\nlog:\n  level: ~\nstore: {}\n",
			check: func(t *testing.T, c *Config) {
				if want := wantDefaults(); !reflect.DeepEqual(*c, want) {
					t.Errorf("\n got %+v\nwant %+v", *c, want)
				}
			},
		},
		{
			name: "scalars read as text",
			file: "objects:\n  s3:\n    region: 1\n",
			check: func(t *testing.T, c *Config) {
				if c.Objects.S3.Region != "1" {
					t.Errorf("region = %q", c.Objects.S3.Region)
				}
			},
		},
		{
			name: "key case does not matter in the file",
			file: "Listen: 10.0.0.9:1\nLOG:\n  Level: warn\n",
			check: func(t *testing.T, c *Config) {
				if c.Listen != "10.0.0.9:1" || c.Log.Level != "warn" {
					t.Errorf("listen %q, log.level %q", c.Listen, c.Log.Level)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env, Flags: tt.flags}
			if tt.file != "" {
				opts.File = writeFile(t, "portal.yaml", tt.file)
			}
			cfg, err := Load(opts)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

func TestLoadFileFormats(t *testing.T) {
	tests := []struct{ name, content string }{
		{"portal.yml", "objects:\n  s3:\n    bucket: b\n"},
		{"portal.json", `{"objects": {"s3": {"bucket": "b"}}, "limits": {"max_body": 2048}}`},
		{"portal.toml", "[objects.s3]\nbucket = \"b\"\n"},
		{"portal.conf", "objects:\n  s3:\n    bucket: b\n"}, // unknown extension: YAML
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(LoadOptions{File: writeFile(t, tt.name, tt.content)})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if cfg.Objects.S3.Bucket != "b" {
				t.Errorf("bucket = %q", cfg.Objects.S3.Bucket)
			}
			if tt.name == "portal.json" && cfg.Limits.MaxBody != 2048 {
				// JSON numbers arrive as float64.
				t.Errorf("max_body = %d", cfg.Limits.MaxBody)
			}
		})
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	tests := []struct {
		name, file, content string
		want                []string
	}{
		{
			name: "top level", file: "portal.yaml",
			content: "listen: 127.0.0.1:1\nlisten_addr: x\n",
			want:    []string{`configs: unknown key "listen_addr" in `},
		},
		{
			name: "nested", file: "portal.yaml",
			content: "objects:\n  s3:\n    bukcet: x\n",
			want:    []string{`configs: unknown key "objects.s3.bukcet" in `, `did you mean "objects.s3.bucket"`},
		},
		{
			name: "unknown section", file: "portal.yaml",
			content: "etcd:\n  endpoints: x\n",
			want:    []string{`configs: unknown key "etcd" in `},
		},
		{
			name: "every unknown key is reported", file: "portal.yaml",
			content: "lisen: x\nlog:\n  levle: debug\n",
			want:    []string{`unknown key "lisen"`, `unknown key "log.levle"`},
		},
		{
			name: "section written as a value", file: "portal.yaml",
			content: "objects: s3\n",
			want:    []string{`configs: key "objects" in `, "is a section"},
		},
		{
			name: "value written as a section", file: "portal.yaml",
			content: "listen:\n  host: x\n",
			want:    []string{`configs: key "listen" in `, "takes a value, not a mapping"},
		},
		{
			name: "json", file: "portal.json",
			content: `{"downloads": {"url_tll": "5m"}}`,
			want:    []string{`configs: unknown key "downloads.url_tll" in `},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.file, tt.content)
			_, err := Load(LoadOptions{File: path})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadInvalidValues(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   []string
		flags map[string]string
		want  string
		// hide must not appear in the error: a secret value.
		hide string
	}{
		{name: "duration", file: "downloads:\n  url_ttl: 5x\n", want: `configs: downloads.url_ttl: "5x" is not a duration`},
		{name: "duration from env", env: []string{"PORTAL_UPLOADS_URL_TTL=soon"}, want: `configs: uploads.url_ttl: "soon" is not a duration`},
		{name: "duration without unit", file: "uploads:\n  sweep_interval: 60\n", want: `configs: uploads.sweep_interval: 60 is not a duration (give a unit`},
		{name: "negative duration", flags: map[string]string{"uploads.sweep_interval": "-1m"}, want: `configs: uploads.sweep_interval: -1m0s is not positive`},
		{name: "no completes", env: []string{"PORTAL_UPLOADS_MAX_CONCURRENT_COMPLETES=0"}, want: `configs: uploads.max_concurrent_completes: 0 is not positive`},
		{name: "zero duration", file: "downloads:\n  ledger_flush_interval: 0s\n", want: `configs: downloads.ledger_flush_interval: 0s is not positive`},
		{name: "size", file: "limits:\n  max_body: 1 megabyte\n", want: `configs: limits.max_body: "1 megabyte" is not a size`},
		{name: "negative size", file: "limits:\n  max_body: -1\n", want: `configs: limits.max_body: -1 is not a size`},
		{name: "zero size", env: []string{"PORTAL_SIGNING_SPARKLE_MAX_SIZE=0"}, want: `configs: signing.sparkle_max_size: 0 is not positive`},
		{name: "part size below 5MiB", file: "uploads:\n  multipart_part_size: 4MiB\n", want: `configs: uploads.multipart_part_size: 4MiB is not between 5MiB and 5GiB`},
		{name: "part size above 5GiB", file: "uploads:\n  multipart_part_size: 6GiB\n", want: `configs: uploads.multipart_part_size: 6GiB is not between`},
		{name: "integer", env: []string{"PORTAL_DOWNLOADS_LEDGER_QUEUE=many"}, want: `configs: downloads.ledger_queue: "many" is not an integer`},
		{name: "zero integer", file: "limits:\n  auth_failures_per_minute: 0\n", want: `configs: limits.auth_failures_per_minute: 0 is not positive`},
		{name: "zero idle", file: "limits:\n  body_idle_timeout: 0s\n", want: `configs: limits.body_idle_timeout: 0s is not positive`},
		{name: "negative write idle", file: "limits:\n  write_idle_timeout: -1s\n", want: `configs: limits.write_idle_timeout: -1s is not positive`},
		{name: "negative connection cap", file: "limits:\n  connections_per_address: -1\n", want: `configs: limits.connections_per_address: -1 is negative (0 means no cap)`},
		{name: "ledger retention below a day", env: []string{"PORTAL_DOWNLOADS_LEDGER_RETENTION=1h"}, want: `configs: downloads.ledger_retention: 1h0m0s is below 24h (0 keeps every grant)`},
		{name: "negative link retention", file: "downloads:\n  link_retention: -1h\n", want: `configs: downloads.link_retention: -1h0m0s is negative`},
		{name: "zero links per license", env: []string{"PORTAL_DOWNLOADS_LINKS_PER_LICENSE=0"}, want: `configs: downloads.links_per_license: 0 is not positive`},
		{name: "negative anonymous grants", file: "downloads:\n  anonymous_grants_per_minute: -5\n", want: `configs: downloads.anonymous_grants_per_minute: -5 is negative (0 means no limit)`},
		{name: "bool", env: []string{"PORTAL_UPDATES_PUBLIC=maybe"}, want: `configs: updates.public: "maybe" is not true or false`},
		{name: "string given a list", file: "listen: [a, b]\n", want: `configs: listen: [a b] is not a string`},
		{name: "store enum", file: "store:\n  backend: sqlite\n", want: `configs: store.backend: "sqlite" is not one of bolt, etcd`},
		{name: "etcd without endpoints", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.endpoints: required when store.backend is etcd`},
		{name: "etcd endpoint without scheme", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=http://etcd1:2379,etcd2:2379", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.endpoints: "etcd2:2379" must start with http:// or https://`},
		{name: "etcd endpoint without port", file: "store:\n  backend: etcd\n  etcd:\n    endpoints: [https://etcd1]\nobjects:\n  backend: s3\n  s3:\n    bucket: b\n", want: `configs: store.etcd.endpoints: "https://etcd1" must name a host and port`},
		{name: "etcd endpoint password", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=https://root:hunter2@etcd1:2379", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.endpoints: "https://root:xxxxx@etcd1:2379" must not hold user info`, hide: "hunter2"},
		{name: "etcd prefix without slash", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=http://etcd1:2379", "PORTAL_STORE_ETCD_PREFIX=portal", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.prefix: "portal" must be non-empty and end with "/"`},
		{name: "etcd half credentials", file: "store:\n  backend: etcd\n  etcd:\n    endpoints: [http://etcd1:2379]\n    password: s3cr3t-etcd\nobjects:\n  backend: s3\n  s3:\n    bucket: b\n", want: `configs: store.etcd.username: store.etcd.username and store.etcd.password must be set together`, hide: "s3cr3t-etcd"},
		{name: "etcd half client certificate", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=https://etcd1:2379", "PORTAL_STORE_ETCD_TLS_CERT_FILE=/etc/portal/etcd.crt", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.tls.cert_file: store.etcd.tls.cert_file and store.etcd.tls.key_file must be set together`},
		{name: "etcd lease shorter than etcd allows", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=http://etcd1:2379", "PORTAL_STORE_ETCD_LEASE_TTL=1s", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.lease_ttl: 1s must be between 2s and 5m`},
		{name: "etcd lease too long", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=http://etcd1:2379", "PORTAL_STORE_ETCD_LEASE_TTL=1h", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.lease_ttl: 1h0m0s must be between 2s and 5m`},
		{name: "etcd zero dial timeout", env: []string{"PORTAL_STORE_BACKEND=etcd", "PORTAL_STORE_ETCD_ENDPOINTS=http://etcd1:2379", "PORTAL_STORE_ETCD_DIAL_TIMEOUT=0s", "PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, want: `configs: store.etcd.dial_timeout: 0s is not positive`},
		{name: "objects enum", env: []string{"PORTAL_OBJECTS_BACKEND=gcs"}, want: `configs: objects.backend: "gcs" is not one of local, s3`},
		{name: "log enum", flags: map[string]string{"log.level": "verbose"}, want: `configs: log.level: "verbose" is not one of debug, info, warn, error`},
		{name: "listen without port", file: "listen: localhost\n", want: `configs: listen: "localhost" is not host:port`},
		{name: "listen port not a number", env: []string{"PORTAL_LISTEN=localhost:http"}, want: `configs: listen: "localhost:http" has no port number`},
		{name: "listen port too big", flags: map[string]string{"listen": ":70000"}, want: `configs: listen: ":70000" has no port number`},
		{name: "public url relative", file: "public_url: dl.example.com\n", want: `configs: public_url: "dl.example.com" is not an absolute http(s) URL`},
		{name: "public url scheme", file: "public_url: ftp://dl.example.com\n", want: `configs: public_url: "ftp://dl.example.com" is not an absolute http(s) URL`},
		{name: "public url query", file: "public_url: https://dl.example.com/?x=1\n", want: `configs: public_url: "https://dl.example.com/?x=1" must not have a query`},
		{name: "public url fragment", env: []string{"PORTAL_PUBLIC_URL=https://dl.example.com/#top"}, want: `configs: public_url: "https://dl.example.com/#top" must not have a fragment`},
		{name: "public url user info", env: []string{"PORTAL_PUBLIC_URL=https://u:hunter2@dl.example.com"}, want: `configs: public_url: "https://u:xxxxx@dl.example.com" must not hold user info`, hide: "hunter2"},
		{name: "s3 endpoint", file: "objects:\n  s3:\n    endpoint: minio:9000\n", want: `configs: objects.s3.endpoint: "minio:9000" is not an absolute http(s) URL`},
		{name: "s3 without bucket", file: "objects:\n  backend: s3\n", want: `configs: objects.s3.bucket: required when objects.backend is s3`},
		{name: "s3 without region", env: []string{"PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"}, flags: map[string]string{"objects.s3.region": ""}, want: `configs: objects.s3.region: required`},
		{name: "s3 half credentials", file: "objects:\n  s3:\n    secret_key: sk-0123456789\n", want: `configs: objects.s3.access_key: objects.s3.access_key and objects.s3.secret_key must be set together`, hide: "sk-0123456789"},
		{name: "data dir empty", flags: map[string]string{"data_dir": ""}, want: `configs: data_dir: must not be empty`},
		{name: "max ttl above 168h", file: "objects:\n  max_ttl: 169h\n", want: `configs: objects.max_ttl: 169h0m0s is above the 168h ceiling`},
		{name: "share link ttl above 168h", file: "downloads:\n  share_link_max_ttl: 200h\n", want: `configs: downloads.share_link_max_ttl: 200h0m0s is above the 168h ceiling`},
		{name: "url ttl above max url ttl", file: "downloads:\n  url_ttl: 2h\n", want: `configs: downloads.url_ttl: 2h0m0s is above downloads.max_url_ttl (1h0m0s)`},
		{name: "max url ttl above objects max ttl", file: "objects:\n  max_ttl: 30m\ndownloads:\n  url_ttl: 1m\n", want: `configs: downloads.max_url_ttl: 1h0m0s is above objects.max_ttl (30m0s)`},
		{name: "upload ttl above objects max ttl", file: "objects:\n  max_ttl: 1h\nuploads:\n  url_ttl: 2h\n", want: `configs: uploads.url_ttl: 2h0m0s is above objects.max_ttl (1h0m0s)`},
		{name: "share redirect above max url ttl", file: "downloads:\n  share_redirect_ttl: 2h\n", want: `configs: downloads.share_redirect_ttl: 2h0m0s is above downloads.max_url_ttl`},
		{name: "master key not base64", env: []string{"PORTAL_SIGNING_MASTER_KEY=not*base64*secret"}, want: `configs: signing.master_key: signing master key is not valid base64`, hide: "not*base64*secret"},
		{name: "master key wrong length", env: []string{"PORTAL_SIGNING_MASTER_KEY=c2hvcnRzZWNyZXQ="}, want: `configs: signing.master_key: signing master key must decode to 32 bytes`, hide: "c2hvcnRzZWNyZXQ="},
		{name: "local secret too short", file: "objects:\n  local:\n    secret: shortsecret\n", want: `configs: objects.local.secret: keyring: secret of key "default" is shorter than 32 bytes`, hide: "shortsecret"},
		{name: "secret of the wrong type", file: "signing:\n  master_key: [topsecret]\n", want: `configs: signing.master_key: the value is not a string`, hide: "topsecret"},
		{name: "metrics token short", env: []string{"PORTAL_METRICS_TOKEN=tooshort"}, want: `configs: metrics.token: must be at least 16 characters`, hide: "tooshort"},
		{name: "metrics token with a space", file: "metrics:\n  token: 0123456789 abcdefghij\n", want: `configs: metrics.token: must be at least 16 characters without spaces`, hide: "0123456789 abcdefghij"},
		{name: "metrics listen", env: []string{"PORTAL_METRICS_LISTEN=localhost"}, want: `configs: metrics.listen: "localhost" is not host:port`},
		{name: "metrics listen is listen", flags: map[string]string{"listen": "127.0.0.1:8080", "metrics.listen": "127.0.0.1:8080"}, want: `configs: metrics.listen: "127.0.0.1:8080" is the listen address`},
		{name: "unknown flag key", flags: map[string]string{"lisen": "x"}, want: `configs: unknown flag key "lisen"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env, Flags: tt.flags}
			if tt.file != "" {
				opts.File = writeFile(t, "portal.yaml", tt.file)
			}
			cfg, err := Load(opts)
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want error %q", cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q\n does not contain %q", err, tt.want)
			}
			if tt.hide != "" && strings.Contains(err.Error(), tt.hide) {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	path := writeFile(t, "portal.yaml", "listen: nope\nlog:\n  level: loud\n")
	_, err := Load(LoadOptions{File: path, Env: []string{"PORTAL_DOWNLOADS_URL_TTL=5x"}})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	// A value that does not decode stops before the semantic checks, which
	// would only repeat it; the semantic checks then report together.
	if !strings.Contains(err.Error(), "downloads.url_ttl") {
		t.Errorf("error %q misses downloads.url_ttl", err)
	}
	_, err = Load(LoadOptions{File: path})
	for _, key := range []string{"listen:", "log.level:"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("error %v misses %s", err, key)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent.yaml")
	_, err := Load(LoadOptions{File: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load = %v, want an error naming %s", err, path)
	}
	bad := writeFile(t, "bad.yaml", "listen: [\n")
	if _, err := Load(LoadOptions{File: bad}); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Load = %v, want a parse error naming %s", err, bad)
	}
}

// TestLoadEtcdStore: an etcd store loads, its endpoints from a
// comma-separated environment variable. (Local objects that are not shared
// load too, for commands that only use the store; app.Open refuses them.)
func TestLoadEtcdStore(t *testing.T) {
	for name, env := range map[string][]string{
		"s3 objects":           {"PORTAL_OBJECTS_BACKEND=s3", "PORTAL_OBJECTS_S3_BUCKET=b"},
		"shared local objects": {"PORTAL_OBJECTS_LOCAL_SHARED=true"},
		"local objects":        nil,
	} {
		t.Run(name, func(t *testing.T) {
			env = append(env, "PORTAL_STORE_BACKEND=etcd",
				"PORTAL_STORE_ETCD_ENDPOINTS=https://etcd1:2379, https://etcd2:2379,,https://etcd3:2379",
				"PORTAL_STORE_ETCD_USERNAME=portal", "PORTAL_STORE_ETCD_PASSWORD=pw",
				"PORTAL_STORE_ETCD_TLS_CA_FILE=/etc/portal/etcd-ca.pem")
			cfg, err := Load(LoadOptions{Env: env})
			if err != nil {
				t.Fatal(err)
			}
			want := EtcdConfig{
				Endpoints: []string{"https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"},
				Prefix:    "portal/", Username: "portal", Password: "pw", DialTimeout: 5 * time.Second, LeaseTTL: 10 * time.Second,
				TLS: EtcdTLSConfig{CAFile: "/etc/portal/etcd-ca.pem"},
			}
			if cfg.Store.Backend != "etcd" || !reflect.DeepEqual(cfg.Store.Etcd, want) {
				t.Fatalf("store %+v", cfg.Store)
			}
			if !cfg.Store.Etcd.TLS.Enabled() {
				t.Fatal("a CA file does not turn TLS on")
			}
		})
	}
}

func TestLoadIgnoresUnrelatedEnv(t *testing.T) {
	env := []string{
		"PORTAL_URL=https://portal.example",
		"PORTAL_TOKEN=tok_secret",
		"PORTAL_LICENSE=lic_secret",
		"PORTAL_CONFIG=/etc/portal.yaml",
		"PORTAL_TEST_S3_ENDPOINT=http://127.0.0.1:7070",
		"PORTAL_OBJECTS=s3",             // a section, not a key
		"PORTAL_OBJECTS_S3_BUKCET=typo", // not a key: ignored, unlike in a file
		"portal_listen=0.0.0.0:1",       // names are case-sensitive
		"PORTAL_",
		"PORTAL_LISTEN", // no "="
		"HOME=/root",
		"LISTEN=0.0.0.0:2",
	}
	cfg, err := Load(LoadOptions{Env: env})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if want := wantDefaults(); !reflect.DeepEqual(*cfg, want) {
		t.Errorf("\n got %+v\nwant %+v", *cfg, want)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want Size
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", MiB, true},
		{"100B", 100, true},
		{"512KiB", 512 << 10, true},
		{"64MiB", 64 << 20, true},
		{"1GiB", 1 << 30, true},
		{"2TiB", 2 << 40, true},
		{"10MB", 10_000_000, true},
		{"1kb", 1000, true},
		{"3gb", 3_000_000_000, true},
		{"64 MiB", 64 << 20, true},
		{" 64mib ", 64 << 20, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"8388608TiB", 0, false}, // 2^63: overflows
		{"9223372036854775808", 0, false},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"1.5GiB", 0, false},
		{"64M", 0, false},
		{"64 megabytes", 0, false},
		{"0x10", 0, false},
		{"1_000", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", tt.in, got)
		}
	}
}

func TestSizeString(t *testing.T) {
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1000001, "1000001"},
		{KiB, "1KiB"},
		{64 * MiB, "64MiB"},
		{1536 * MiB, "1536MiB"},
		{5 * GiB, "5GiB"},
		{10 * MB, "10MB"},
		{3 * TiB, "3TiB"},
	}
	for _, tt := range tests {
		got := tt.in.String()
		if got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if back, err := ParseSize(got); err != nil || back != tt.in {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", got, back, err, int64(tt.in))
		}
	}
}

func TestPublicURL(t *testing.T) {
	tests := []struct {
		listen, public, want string
	}{
		{"127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{":8080", "", "http://localhost:8080"},
		{"0.0.0.0:80", "", "http://localhost:80"},
		{"[::]:8080", "", "http://localhost:8080"},
		{"[::1]:8080", "", "http://[::1]:8080"},
		{"portal.internal:8080", "", "http://portal.internal:8080"},
		{":8080", "https://dl.example.com/", "https://dl.example.com"},
		{":8080", "https://dl.example.com/portal//", "https://dl.example.com/portal"},
	}
	for _, tt := range tests {
		c := &Config{Listen: tt.listen, PublicURLSetting: tt.public}
		if got := c.PublicURL(); got != tt.want {
			t.Errorf("listen %q public_url %q: PublicURL() = %q, want %q", tt.listen, tt.public, got, tt.want)
		}
	}
}

func TestDataPath(t *testing.T) {
	c := &Config{DataDir: "/var/lib/portal"}
	if got, want := c.DataPath(), filepath.Clean("/var/lib/portal"); got != want {
		t.Errorf("DataPath() = %q, want %q", got, want)
	}
	if got, want := c.DataPath("objects", "keys"), filepath.Join("/var/lib/portal", "objects", "keys"); got != want {
		t.Errorf("DataPath = %q, want %q", got, want)
	}
}

// TestDefaultYAMLMatchesConfig keeps the documentation and the struct in
// step: every key of default.yaml is a Config field and every field is a key
// of default.yaml, documented by a comment.
func TestDefaultYAMLMatchesConfig(t *testing.T) {
	d := viper.New()
	d.SetConfigType("yaml")
	if err := d.ReadConfig(bytes.NewReader(DefaultYAML)); err != nil {
		t.Fatalf("default.yaml: %v", err)
	}
	yamlKeys := d.AllKeys()
	slices.Sort(yamlKeys)
	fieldKeys := Keys()
	for _, k := range yamlKeys {
		if !slices.Contains(fieldKeys, k) {
			t.Errorf("default.yaml key %q has no Config field", k)
		}
	}
	for _, k := range fieldKeys {
		if !slices.Contains(yamlKeys, k) {
			t.Errorf("Config field %q is missing from default.yaml", k)
		}
	}

	// Each leaf key's line is preceded by a comment, directly or through a
	// run of keys that share it (access_key and secret_key).
	lines := strings.Split(string(DefaultYAML), "\n")
	for i, line := range lines {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasSuffix(trimmed, ":") {
			continue // blank, comment or section header
		}
		j := i - 1
		for j >= 0 && !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			prev := strings.TrimSpace(lines[j])
			if prev == "" || strings.HasSuffix(prev, ":") {
				t.Errorf("default.yaml line %d %q has no comment", i+1, trimmed)
				break
			}
			j--
		}
	}
}

func TestEnvNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, k := range Keys() {
		name := EnvName(k)
		if other, dup := seen[name]; dup {
			t.Errorf("keys %q and %q share %s", other, k, name)
		}
		seen[name] = k
	}
	for key, want := range map[string]string{
		"listen":            "PORTAL_LISTEN",
		"data_dir":          "PORTAL_DATA_DIR",
		"objects.s3.bucket": "PORTAL_OBJECTS_S3_BUCKET",
	} {
		if got := EnvName(key); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", key, got, want)
		}
	}
}

// The loader must not depend on or change the process environment.
func TestLoadIgnoresProcessEnv(t *testing.T) {
	t.Setenv("PORTAL_LISTEN", "10.9.9.9:1")
	cfg, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != wantDefaults().Listen {
		t.Errorf("listen = %q: read from the process environment", cfg.Listen)
	}
}
