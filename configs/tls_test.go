package configs

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// tls.* keys: the list from a file or comma-separated from the
// environment, the ACME cache default, https in PublicURL.
func TestLoadTLS(t *testing.T) {
	cfg, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLSEnabled() || cfg.TLS.ACME.Domains != nil {
		t.Fatalf("TLS on by default: %+v", cfg.TLS)
	}
	if got, want := cfg.ACMECacheDir(), filepath.Join("data", "acme"); got != want {
		t.Errorf("ACMECacheDir = %q, want %q", got, want)
	}

	file := writeFile(t, "portal.yaml", "public_url: https://dl.example.com\ntls:\n  acme:\n    domains: [dl.example.com, www.example.com]\n    email: ops@example.com\n    cache_dir: /var/cache/acme\n")
	cfg, err = Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dl.example.com", "www.example.com"}; !reflect.DeepEqual(cfg.TLS.ACME.Domains, want) {
		t.Errorf("domains from file = %q", cfg.TLS.ACME.Domains)
	}
	if !cfg.TLSEnabled() || cfg.ACMECacheDir() != "/var/cache/acme" || cfg.TLS.ACME.Email != "ops@example.com" {
		t.Errorf("acme from file: %+v", cfg.TLS)
	}

	cfg, err = Load(LoadOptions{Env: []string{"PORTAL_TLS_ACME_DOMAINS=dl.example.com, www.example.com,", "PORTAL_PUBLIC_URL=https://www.example.com/"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dl.example.com", "www.example.com"}; !reflect.DeepEqual(cfg.TLS.ACME.Domains, want) {
		t.Errorf("domains from env = %q", cfg.TLS.ACME.Domains)
	}

	cfg, err = Load(LoadOptions{Env: []string{"PORTAL_TLS_CERT_FILE=/etc/portal/cert.pem", "PORTAL_TLS_KEY_FILE=/etc/portal/key.pem"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.PublicURL(), "https://127.0.0.1:8080"; got != want {
		t.Errorf("PublicURL with TLS = %q, want %q", got, want)
	}
}

func TestLoadTLSInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		file string
		env  []string
		want string
	}{
		{name: "cert without key", env: []string{"PORTAL_TLS_CERT_FILE=/c.pem"}, want: "configs: tls.cert_file: tls.cert_file and tls.key_file (PORTAL_TLS_CERT_FILE, PORTAL_TLS_KEY_FILE) must be set together"},
		{name: "key without cert", file: "tls:\n  key_file: /k.pem\n", want: "configs: tls.cert_file: tls.cert_file and tls.key_file"},
		{name: "both files and acme", env: []string{"PORTAL_TLS_CERT_FILE=/c.pem", "PORTAL_TLS_KEY_FILE=/k.pem", "PORTAL_TLS_ACME_DOMAINS=dl.example.com"}, want: "configs: tls.acme.domains: set either tls.acme.domains or tls.cert_file"},
		{name: "ip domain", env: []string{"PORTAL_TLS_ACME_DOMAINS=192.0.2.1"}, want: `configs: tls.acme.domains: "192.0.2.1" is an IP address`},
		{name: "bare name", file: "tls:\n  acme:\n    domains: [localhost]\n", want: `configs: tls.acme.domains: "localhost" is not a fully qualified host name`},
		{name: "bad label", file: "tls:\n  acme:\n    domains: [\"dl_x.example.com\"]\n", want: `configs: tls.acme.domains: "dl_x.example.com" is not a fully qualified`},
		{name: "not strings", file: "tls:\n  acme:\n    domains: [[a]]\n", want: "configs: tls.acme.domains: [[a]] is not a list of strings"},
		{name: "public url host not listed", env: []string{"PORTAL_TLS_ACME_DOMAINS=dl.example.com", "PORTAL_PUBLIC_URL=https://other.example.com"}, want: `configs: tls.acme.domains: does not include "other.example.com", the host of public_url`},
		{name: "email without domains", env: []string{"PORTAL_TLS_ACME_EMAIL=ops@example.com"}, want: "configs: tls.acme.domains: is empty while tls.acme.email or tls.acme.cache_dir is set"},
		{name: "bad email", env: []string{"PORTAL_TLS_ACME_DOMAINS=dl.example.com", "PORTAL_TLS_ACME_EMAIL=ops"}, want: `configs: tls.acme.email: "ops" is not an email address`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			opts := LoadOptions{Env: tt.env}
			if tt.file != "" {
				opts.File = writeFile(t, "portal.yaml", tt.file)
			}
			_, err := Load(opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
