package app

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/portaldist/portal/configs"
)

// With tls.acme.domains the main listener's TLS comes from an ACME
// manager: HTTP/2 and the TLS-ALPN-01 challenge are offered, the cache
// directory is made, and a name not listed is refused without asking the
// CA (this test has no network beyond 127.0.0.1).
func TestOpenACME(t *testing.T) {
	data := t.TempDir()
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{
		"data_dir": data, "log.access": "false", "public_url": "https://dl.example.com",
		"tls.acme.domains": "dl.example.com", "tls.acme.email": "ops@example.com",
	}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	tc := a.http.TLSConfig
	if tc == nil || tc.GetCertificate == nil {
		t.Fatal("no TLS configuration from tls.acme.domains")
	}
	for _, p := range []string{"h2", "http/1.1", "acme-tls/1"} {
		if !slices.Contains(tc.NextProtos, p) {
			t.Errorf("NextProtos %q lacks %s", tc.NextProtos, p)
		}
	}
	if fi, err := os.Stat(filepath.Join(data, "acme")); err != nil || !fi.IsDir() {
		t.Fatalf("cache dir: %v", err)
	}
	if _, err := tc.GetCertificate(&tls.ClientHelloInfo{ServerName: "elsewhere.example.org"}); err == nil ||
		!strings.Contains(err.Error(), "not configured") {
		t.Fatalf("certificate for a name not listed: %v", err)
	}
	// Without certificate files there is nothing for SIGHUP to read.
	if err := a.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
}
