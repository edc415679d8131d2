// Package s3test gives tests the S3-compatible server that scripts/test.sh
// starts (scripts/s3-server.sh). Any package's tests may use it.
package s3test

import (
	"context"
	"os"
	"testing"

	"github.com/portaldist/portal/objects/s3store"
)

// Environment variables written by scripts/s3-server.sh start.
const (
	EnvEndpoint  = "PORTAL_TEST_S3_ENDPOINT"
	EnvAccessKey = "PORTAL_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "PORTAL_TEST_S3_SECRET_KEY"
	EnvBucket    = "PORTAL_TEST_S3_BUCKET"
	EnvRegion    = "PORTAL_TEST_S3_REGION"
	// EnvSkip set to 1 skips S3 tests instead of failing them.
	EnvSkip = "PORTAL_SKIP_S3"
)

// Config returns the test server's configuration (path-style, static
// credentials). When the variables are missing the test is skipped if
// PORTAL_SKIP_S3=1 (the message says SKIPPED) and fails otherwise: an S3 test
// that silently does not run is a defect.
func Config(t testing.TB) s3store.Config {
	t.Helper()
	cfg := s3store.Config{
		Endpoint:  os.Getenv(EnvEndpoint),
		AccessKey: os.Getenv(EnvAccessKey),
		SecretKey: os.Getenv(EnvSecretKey),
		Bucket:    os.Getenv(EnvBucket),
		Region:    os.Getenv(EnvRegion),
		PathStyle: true,
	}
	if cfg.Endpoint == "" || cfg.AccessKey == "" || cfg.SecretKey == "" || cfg.Bucket == "" {
		if os.Getenv(EnvSkip) == "1" {
			t.Skip("SKIPPED: S3 tests (PORTAL_SKIP_S3=1 and no PORTAL_TEST_S3_* environment)")
		}
		t.Fatal("no S3 test server: run scripts/test.sh, or eval \"$(scripts/s3-server.sh start DIR)\" " +
			"before go test (or set PORTAL_SKIP_S3=1 to skip S3 tests)")
	}
	return cfg
}

// Store returns a Store on the test server, after checking it answers.
func Store(t testing.TB) *s3store.Store {
	t.Helper()
	ctx := context.Background()
	s, err := s3store.New(ctx, Config(t))
	if err != nil {
		t.Fatalf("s3store.New: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("S3 test server does not answer: %v", err)
	}
	return s
}
