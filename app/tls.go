package app

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"sync/atomic"

	"golang.org/x/crypto/acme/autocert"

	"github.com/portaldist/portal/configs"
)

// hstsValue is the Strict-Transport-Security header of every answer over
// TLS: browsers that saw it refuse plain HTTP to this host for a year.
const hstsValue = "max-age=31536000"

// certPair is the certificate of tls.cert_file and tls.key_file. The TLS
// server asks get for it at every handshake, so a reload reaches every new
// connection while established ones keep the certificate they negotiated.
type certPair struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// loadCertPair reads the pair; the error names the keys.
func loadCertPair(certFile, keyFile string) (*certPair, error) {
	p := &certPair{certFile: certFile, keyFile: keyFile}
	if err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// reload reads both files again and, when they hold a certificate and its
// matching key, makes them the current pair. On any error the current
// pair stays.
func (p *certPair) reload() error {
	c, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return fmt.Errorf("app: tls.cert_file %s, tls.key_file %s: %w", p.certFile, p.keyFile, err)
	}
	p.cur.Store(&c)
	return nil
}

func (p *certPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.cur.Load(), nil
}

// openTLS builds the main listener's TLS configuration from cfg: the
// certificate files, or ACME for tls.acme.domains; nil when cfg serves
// plain HTTP. HTTP/2 is offered first, then HTTP/1.1.
func (a *App) openTLS(cfg *configs.Config) (*tls.Config, error) {
	switch {
	case cfg.TLS.CertFile != "":
		p, err := loadCertPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, err
		}
		a.certs = p
		return &tls.Config{
			GetCertificate: p.get,
			NextProtos:     []string{"h2", "http/1.1"},
			MinVersion:     tls.VersionTLS12,
		}, nil
	case len(cfg.TLS.ACME.Domains) > 0:
		dir := cfg.ACMECacheDir()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("app: tls.acme.cache_dir: %w", err)
		}
		// The certificates are obtained on the first handshake for each
		// name and renewed by the manager before they expire; the CA
		// checks the names with the TLS-ALPN-01 challenge on this
		// listener ("acme-tls/1" among NextProtos), so it must be reached
		// on port 443. Names not listed are refused before any request to
		// the CA.
		m := &autocert.Manager{
			Prompt:     autocert.AcceptTOS,
			Cache:      autocert.DirCache(dir),
			HostPolicy: autocert.HostWhitelist(cfg.TLS.ACME.Domains...),
			Email:      cfg.TLS.ACME.Email,
		}
		tc := m.TLSConfig()
		tc.MinVersion = tls.VersionTLS12
		return tc, nil
	}
	return nil, nil
}

// ReloadTLS reads tls.cert_file and tls.key_file again: new connections
// get the new certificate, established ones and their in-flight requests
// keep the old one. When the files do not hold a valid pair the old one
// stays in use and the error is returned. Both outcomes are logged. It is
// what `portal serve` does on SIGHUP; without certificate files (plain
// HTTP, or ACME, which renews by itself) there is nothing to read and it
// returns nil. Safe to call concurrently with Serve.
func (a *App) ReloadTLS() error {
	if a.certs == nil {
		a.Log.Info("tls: nothing to reload (tls.cert_file is not set)")
		return nil
	}
	if err := a.certs.reload(); err != nil {
		a.Log.Error("tls: reload failed, still serving the previous certificate", "err", err)
		return err
	}
	c := a.certs.cur.Load()
	attrs := []any{"cert_file", a.certs.certFile}
	if c.Leaf != nil {
		attrs = append(attrs, "subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.String(),
			"not_after", c.Leaf.NotAfter.UTC())
	}
	a.Log.Info("tls: certificate reloaded", attrs...)
	return nil
}

// hsts adds Strict-Transport-Security to every answer of h.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsValue)
		h.ServeHTTP(w, r)
	})
}
