package s3store

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// SlowGetReason is "" when s presigns GETs on the fast path, else why not.
func SlowGetReason(s *Store) string {
	if s.fast == nil {
		return s.slowWhy
	}
	return ""
}

// DisableFastGet makes s presign GETs through the SDK presigner (the
// fallback), for comparisons and benchmarks.
func DisableFastGet(s *Store) { s.fast, s.slowWhy = nil, "disabled by a test" }

// FastGetAt is the fast path's URL for key at signedAt; RefGetAt is the same
// request signed by v4.Signer.PresignHTTP as the SDK's S3 presigner does.
func FastGetAt(s *Store, creds aws.Credentials, key, disposition string, expires int64, signedAt time.Time) (string, error) {
	return s.fast.presign(context.Background(), creds, key, disposition, expires, signedAt)
}

var refSigner = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })

func RefGetAt(s *Store, creds aws.Credentials, key, disposition string, expires int64, signedAt time.Time) (string, error) {
	f := s.fast
	q := url.Values{"X-Amz-Expires": {strconv.FormatInt(expires, 10)}, "response-content-disposition": {disposition}, "x-id": {"GetObject"}}
	req := &http.Request{
		Method: http.MethodGet,
		URL:    &url.URL{Scheme: f.scheme, Host: f.host, Opaque: "//" + f.host + f.prefix + "/" + escapeKey(key), RawQuery: q.Encode()},
		Host:   f.host,
	}
	u, _, err := refSigner.PresignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", f.region, signedAt)
	return u, err
}
