package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/local"
	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// configFlags registers the flags every store-opening command shares and
// returns a loader that merges them over file and environment.
func configFlags(fs *flag.FlagSet) func() (*configs.Config, error) {
	file := fs.String("config", "", "config file (YAML)")
	listen := fs.String("listen", "", "address to listen on (listen)")
	dataDir := fs.String("data-dir", "", "data directory (data_dir)")
	return func() (*configs.Config, error) {
		flags := map[string]string{}
		if *listen != "" {
			flags["listen"] = *listen
		}
		if *dataDir != "" {
			flags["data_dir"] = *dataDir
		}
		return configs.Load(configs.LoadOptions{File: *file, Env: os.Environ(), Flags: flags})
	}
}

// app holds the opened store and services.
type app struct {
	cfg      *configs.Config
	db       store.DB
	catalog  *releases.Service
	licenses *licenses.Service
	tokens   *tokens.Service
	sealer   *signing.Sealer
}

func openStore(cfg *configs.Config) (*app, error) {
	db, err := bolt.Open(cfg.DataPath("portal.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	mk, err := signing.ParseMasterKey(cfg.Signing.MasterKey)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("signing.master_key: %w", err)
	}
	sealer, err := signing.NewSealer(mk)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("signing.master_key: %w", err)
	}
	catalog := releases.New(db, nil)
	return &app{
		cfg: cfg, db: db, catalog: catalog,
		licenses: licenses.New(db, catalog, nil),
		tokens:   tokens.New(db, nil),
		sealer:   sealer,
	}, nil
}

// openObjects opens the configured object store. blobs is the handler of
// the local store's signed links, nil for S3.
func openObjects(ctx context.Context, cfg *configs.Config) (objs objects.ObjectStore, blobs http.Handler, err error) {
	switch cfg.Objects.Backend {
	case "s3":
		s, err := s3store.New(ctx, s3store.Config{
			Bucket: cfg.Objects.S3.Bucket, Region: cfg.Objects.S3.Region, Endpoint: cfg.Objects.S3.Endpoint,
			PathStyle: cfg.Objects.S3.PathStyle, AccessKey: cfg.Objects.S3.AccessKey, SecretKey: cfg.Objects.S3.SecretKey,
			MaxTTL: cfg.Objects.MaxTTL,
		})
		if err != nil {
			return nil, nil, err
		}
		return s, nil, nil
	default:
		keys, err := local.LoadOrCreateKeyring(cfg.DataPath("secrets", "blob-keys"), cfg.Objects.Local.Secret)
		if err != nil {
			return nil, nil, err
		}
		s, err := local.Open(local.Options{
			Root: cfg.DataPath("objects"), BaseURL: cfg.PublicURL(), Keys: keys, MaxTTL: cfg.Objects.MaxTTL,
		})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Handler(), nil
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(strings.ToUpper(level)))
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

func printConfig() error {
	_, err := os.Stdout.Write(configs.DefaultYAML)
	return err
}
