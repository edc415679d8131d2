package s3store_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/objects/s3store/s3test"
)

// TestProbe runs the start-up probe against the S3 test server, well and
// badly configured: each misconfiguration is named.
func TestProbe(t *testing.T) {
	good := s3test.Config(t)
	ctx := context.Background()

	// A closed port: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for _, c := range []struct {
		name string
		edit func(*s3store.Config)
		want string // "" = the probe passes
	}{
		{"good", func(*s3store.Config) {}, ""},
		{"wrong secret", func(c *s3store.Config) { c.SecretKey = "not-the-secret" }, "S3 refused the credentials (SignatureDoesNotMatch)"},
		{"unknown access key", func(c *s3store.Config) { c.AccessKey = "portalnobody" }, "S3 refused the credentials ("}, // InvalidAccessKeyId on AWS, XAdminUserNotFound on versitygw
		{"missing bucket", func(c *s3store.Config) { c.Bucket = "no-such-bucket-here" }, "bucket no-such-bucket-here does not exist"},
		{"unreachable endpoint", func(c *s3store.Config) { c.Endpoint = closed }, "S3 endpoint " + closed + " is unreachable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := good
			c.edit(&cfg)
			s, err := s3store.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Probe(ctx)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Probe: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Probe: %v, want an error saying %q", err, c.want)
			}
		})
	}

	// The probe cleans up after itself.
	s, err := s3store.New(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Client().ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(good.Bucket), Prefix: aws.String(s3store.ProbePrefix)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Fatalf("probe objects left behind: %d, first %s", len(out.Contents), aws.ToString(out.Contents[0].Key))
	}
}
