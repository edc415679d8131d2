package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/store/etcd"
)

// OpenDB opens the metadata store cfg names (store.backend): the bbolt file
// in data_dir (noSync skips its fsyncs), or the etcd cluster of store.etcd,
// which must answer within store.etcd.dial_timeout. Commands that work on a
// second configuration's store (copying between stores) use it too.
func OpenDB(ctx context.Context, cfg *configs.Config, noSync bool) (store.DB, error) {
	switch cfg.Store.Backend {
	case "etcd":
		opts, err := EtcdOptions(cfg.Store.Etcd)
		if err != nil {
			return nil, err
		}
		return etcd.Open(ctx, opts)
	case "bolt", "":
		return bolt.Open(cfg.DataPath("portal.db"), bolt.Options{NoSync: noSync})
	}
	return nil, fmt.Errorf("store.backend: unknown driver %q", cfg.Store.Backend)
}

// checkSharedObjects refuses local objects that the replicas of an etcd
// store could not all reach: each would hold its own uploads, and the others
// would grant downloads of objects they lack.
func checkSharedObjects(cfg *configs.Config) error {
	if cfg.Store.Backend == "etcd" && cfg.Objects.Backend == "local" && !cfg.Objects.Local.Shared {
		return errors.New("objects.backend: local objects cannot be shared by the replicas of store.backend etcd: " +
			"use objects.backend s3, or set objects.local.shared: true if data_dir/objects is a filesystem every replica mounts")
	}
	return nil
}

// EtcdOptions turns store.etcd's settings into the driver's, reading the
// TLS files. TLS is on when any TLS file is set or an endpoint is https://;
// then every endpoint must be https://.
func EtcdOptions(c configs.EtcdConfig) (etcd.Options, error) {
	opts := etcd.Options{
		Endpoints: c.Endpoints, Prefix: c.Prefix,
		Username: c.Username, Password: c.Password, DialTimeout: c.DialTimeout,
	}
	secure := c.TLS.Enabled()
	for _, ep := range c.Endpoints {
		secure = secure || strings.HasPrefix(ep, "https://")
	}
	if !secure {
		return opts, nil
	}
	for _, ep := range c.Endpoints {
		if !strings.HasPrefix(ep, "https://") {
			return opts, fmt.Errorf("store.etcd.endpoints: %q is not https:// while TLS is on (store.etcd.tls or another https:// endpoint)", ep)
		}
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return opts, fmt.Errorf("store.etcd.tls.ca_file: %w", err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return opts, fmt.Errorf("store.etcd.tls.ca_file: %s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	if c.TLS.CertFile != "" || c.TLS.KeyFile != "" {
		if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
			return opts, errors.New("store.etcd.tls: cert_file and key_file must be set together")
		}
		pair, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return opts, fmt.Errorf("store.etcd.tls.cert_file: %w", err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	opts.TLS = t
	return opts, nil
}
