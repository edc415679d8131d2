package app_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/store/bolt"
)

// TestOpenChecksS3: with objects.backend s3, Open (portal serve) checks the
// bucket and a presigned round trip before anything is served, and
// refuses to start with the real cause; a good configuration starts.
func TestOpenChecksS3(t *testing.T) {
	good := s3test.Config(t)
	ctx := context.Background()
	use := func(cfg *configs.Config) {
		cfg.Objects.Backend = "s3"
		cfg.Objects.S3.Bucket, cfg.Objects.S3.Region, cfg.Objects.S3.Endpoint = good.Bucket, good.Region, good.Endpoint
		cfg.Objects.S3.PathStyle, cfg.Objects.S3.AccessKey, cfg.Objects.S3.SecretKey = true, good.AccessKey, good.SecretKey
	}
	for _, c := range []struct {
		name string
		edit func(*configs.Config)
		want string
	}{
		{"wrong secret", func(cfg *configs.Config) { cfg.Objects.S3.SecretKey = "wrong" }, "S3 refused the credentials (SignatureDoesNotMatch)"},
		{"missing bucket", func(cfg *configs.Config) { cfg.Objects.S3.Bucket = "portal-missing" }, "bucket portal-missing does not exist"},
		{"good", func(*configs.Config) {}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config(t, t.TempDir(), "http://127.0.0.1:1")
			use(cfg)
			c.edit(cfg)
			a, err := app.Open(ctx, cfg, app.Options{})
			if c.want == "" {
				if err != nil {
					t.Fatalf("Open with a good S3 configuration: %v", err)
				}
				if err := a.Close(ctx); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				a.Close(ctx)
				t.Fatalf("Open started on a misconfigured S3 store; want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want the cause %q", err, c.want)
			}
			db, err := bolt.Open(cfg.DataPath("portal.db"), bolt.Options{LockTimeout: 100 * time.Millisecond})
			if err != nil {
				t.Fatalf("the store is still held after a refused Open: %v", err)
			}
			db.Close()
		})
	}
}
