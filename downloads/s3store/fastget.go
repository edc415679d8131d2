package s3store

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fastGet presigns GetObject without the SDK's per-operation machinery
// (middleware stack, endpoint rules, auth scheme resolution), which costs
// most of a presign: download grants mint one GET URL per request.
//
// The URL's shape is not re-derived from the configuration: New asks the
// SDK presigner once, with throwaway credentials and offline, for the URL of
// two probe keys, learns from them the scheme, host, path prefix (the
// bucket, in path-style addressing) and signing region, and keeps the fast
// path only if it then reproduces both SDK URLs byte for byte (signature
// included) at the SDK's signing time. Whatever the SDK's endpoint rules
// decide (path-style or virtual-hosted, custom endpoints with or without a
// path, AWS regional endpoints, FIPS or dual-stack from the environment) is
// thus what the fast path does; any configuration whose URL does not fit
// "prefix + / + S3-escaped key" with a plain SigV4 query signature keeps
// the SDK presigner (see newFastGet).
type fastGet struct {
	scheme string // "http" or "https"
	host   string // as in the URL (with a port when the SDK keeps one)
	prefix string // escaped path before "/" + key: "" or "/bucket" or ...
	region string // signing region (from the SDK's credential scope)
	signer *v4.Signer
}

// Probe values: fixed, so that New's self-check is reproducible.
const (
	probeAccessKey   = "AKIDPORTALPROBE"
	probeSecret      = "portal-probe-secret"
	probeToken       = "portal-probe-token"
	probeDisposition = `attachment; filename="a b+c%d.bin"`
	probeExpires     = 3600
)

// probeKeys are presigned by the SDK and by the fast path at New; the second
// holds every character class the escaping must get right.
var probeKeys = [...]string{"probe", "p/a b+c%d~e!f'g(h)i*j,k;l=m&n$o@p:q/ü版/x.y_z-0"}

// newFastGet returns nil (and why) when GET URLs must keep going through
// the SDK presigner.
func newFastGet(ctx context.Context, client *s3.Client, bucket string) (*fastGet, string) {
	// S3 Express directory buckets (session credentials from CreateSession,
	// a network call) and ARNs (access points, Outposts, Object Lambda,
	// multi-region access points signed with SigV4a) are not probed at all.
	if strings.HasPrefix(bucket, "arn:") || strings.HasSuffix(bucket, "--x-s3") || strings.HasSuffix(bucket, "--xa-s3") {
		return nil, "bucket is an ARN or a directory bucket"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	probe := s3.NewPresignClient(client, func(o *s3.PresignOptions) {
		o.ClientOptions = append(o.ClientOptions, func(o *s3.Options) {
			o.Credentials = credentials.NewStaticCredentialsProvider(probeAccessKey, probeSecret, probeToken)
		})
	})
	creds := aws.Credentials{AccessKeyID: probeAccessKey, SecretAccessKey: probeSecret, SessionToken: probeToken}
	var f *fastGet
	for _, key := range probeKeys {
		req, err := probe.PresignGetObject(ctx, &s3.GetObjectInput{
			Bucket:                     aws.String(bucket),
			Key:                        aws.String(key),
			ResponseContentDisposition: aws.String(probeDisposition),
		}, s3.WithPresignExpires(probeExpires*time.Second))
		if err != nil {
			return nil, fmt.Sprintf("SDK presign of a probe key: %v", err)
		}
		if req.Method != http.MethodGet || len(req.SignedHeader) != 1 || req.SignedHeader.Get("Host") == "" {
			return nil, fmt.Sprintf("SDK signs headers %v", req.SignedHeader)
		}
		g, signedAt, why := parseProbe(req.URL, key)
		if g == nil {
			return nil, why
		}
		if f == nil {
			f = g
			f.signer = v4.NewSigner(func(o *v4.SignerOptions) {
				// S3's canonical URI is the path escaped once, as sent.
				o.DisableURIPathEscaping = true
			})
		} else if *g != (fastGet{scheme: f.scheme, host: f.host, prefix: f.prefix, region: f.region}) {
			return nil, "the SDK's URL depends on the key beyond its escaping"
		}
		got, err := f.presign(ctx, creds, key, probeDisposition, probeExpires, signedAt)
		if err != nil {
			return nil, fmt.Sprintf("fast presign of a probe key: %v", err)
		}
		if got != req.URL {
			return nil, fmt.Sprintf("fast URL %s differs from the SDK's %s", got, req.URL)
		}
	}
	return f, ""
}

// parseProbe splits the SDK's URL for key into the fast path's parameters,
// and checks that its query holds exactly what fastGet.presign sets.
func parseProbe(raw, key string) (*fastGet, time.Time, string) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return nil, time.Time{}, "SDK URL " + raw + " is not a plain http(s) URL"
	}
	rest := raw[len(u.Scheme)+len("://"):]
	if !strings.HasPrefix(rest, u.Host) {
		return nil, time.Time{}, "SDK URL " + raw + " has an unexpected authority"
	}
	path, _, _ := strings.Cut(rest[len(u.Host):], "?")
	prefix, ok := strings.CutSuffix(path, "/"+escapeKey(key))
	if !ok || strings.ContainsAny(prefix, "?#") {
		return nil, time.Time{}, "SDK URL path " + path + " is not a prefix and the escaped key"
	}
	q := u.Query()
	scope := strings.Split(q.Get("X-Amz-Credential"), "/")
	want := map[string]string{
		"X-Amz-Algorithm":              "AWS4-HMAC-SHA256",
		"X-Amz-Expires":                strconv.Itoa(probeExpires),
		"X-Amz-Security-Token":         probeToken,
		"X-Amz-SignedHeaders":          "host",
		"response-content-disposition": probeDisposition,
		"x-id":                         "GetObject",
		"X-Amz-Credential":             "",
		"X-Amz-Date":                   "",
		"X-Amz-Signature":              "",
	}
	for k, v := range q {
		w, known := want[k]
		if !known || len(v) != 1 || (w != "" && v[0] != w) {
			return nil, time.Time{}, fmt.Sprintf("SDK URL query %v is not the expected set", q)
		}
	}
	if len(q) != len(want) {
		return nil, time.Time{}, fmt.Sprintf("SDK URL query %v is not the expected set", q)
	}
	if len(scope) != 5 || scope[0] != probeAccessKey || scope[2] == "" || scope[3] != "s3" || scope[4] != "aws4_request" {
		return nil, time.Time{}, "unexpected credential scope " + q.Get("X-Amz-Credential")
	}
	signedAt, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return nil, time.Time{}, "unexpected X-Amz-Date " + q.Get("X-Amz-Date")
	}
	return &fastGet{scheme: u.Scheme, host: u.Host, prefix: prefix, region: scope[2]}, signedAt, ""
}

// presign returns the SigV4 query-signed GET URL for key, valid for expires
// seconds from signedAt, whose response carries disposition.
func (f *fastGet) presign(ctx context.Context, creds aws.Credentials, key, disposition string, expires int64, signedAt time.Time) (string, error) {
	var opaque strings.Builder
	opaque.Grow(2 + len(f.host) + len(f.prefix) + 1 + 3*len(key))
	opaque.WriteString("//")
	opaque.WriteString(f.host)
	opaque.WriteString(f.prefix)
	opaque.WriteByte('/')
	appendEscapedKey(&opaque, key)

	// The signer parses this query, adds its own parameters and writes it
	// back in canonical form (sorted, every name and value escaped once).
	var query strings.Builder
	query.Grow(64 + 3*len(disposition))
	query.WriteString("X-Amz-Expires=")
	query.WriteString(strconv.FormatInt(expires, 10))
	query.WriteString("&response-content-disposition=")
	query.WriteString(url.QueryEscape(disposition))
	query.WriteString("&x-id=GetObject")

	req := &http.Request{
		Method: http.MethodGet,
		// Opaque keeps the path exactly as escaped here: the signer and
		// URL.String both use it verbatim.
		URL:  &url.URL{Scheme: f.scheme, Host: f.host, Opaque: opaque.String(), RawQuery: query.String()},
		Host: f.host,
	}
	signedURL, _, err := f.signer.PresignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", f.region, signedAt)
	return signedURL, err
}

// escapeKey is S3's URI encoding of an object key in a path: every byte but
// the unreserved characters (A-Z a-z 0-9 - . _ ~) and '/' as %XX.
func escapeKey(key string) string {
	var b strings.Builder
	b.Grow(3 * len(key))
	appendEscapedKey(&b, key)
	return b.String()
}

func appendEscapedKey(b *strings.Builder, key string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}
