package s3store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// fastGet presigns GetObject without the SDK's per-operation machinery
// (middleware stack, endpoint rules, auth scheme resolution) and without
// v4.Signer's general-purpose request handling, which together cost ~25 µs
// and ~350 allocations per URL: download grants mint one GET URL per request.
// It signs SigV4 itself for this one fixed request shape (see presign).
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
	// canonHost is the host as signed (no default port).
	canonHost string
	key       atomic.Pointer[derivedKey] // the last signing key derived
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
		} else if g.scheme != f.scheme || g.host != f.host || g.prefix != f.prefix || g.region != f.region {
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
	return &fastGet{scheme: u.Scheme, host: u.Host, prefix: prefix, region: scope[2], canonHost: canonicalHost(u.Scheme, u.Host)}, signedAt, ""
}

// presign returns the SigV4 query-signed GET URL for key, valid for expires
// seconds from signedAt, whose response carries disposition: the URL the SDK
// presigner mints for GetObject with ResponseContentDisposition, built in one
// buffer. Only this fixed shape is signed here (one signed header, host; an
// unsigned payload; the query below), so the canonical request is written
// directly instead of through v4.Signer's general-purpose maps, URL parsing
// and sorting; New checks it against the SDK (see newFastGet) and the tests
// against v4.Signer.PresignHTTP.
func (f *fastGet) presign(_ context.Context, creds aws.Credentials, key, disposition string, expires int64, signedAt time.Time) (string, error) {
	signedAt = signedAt.UTC()
	var dateBuf [16]byte
	amzDate := signedAt.AppendFormat(dateBuf[:0], "20060102T150405Z")
	day := amzDate[:8]

	b := make([]byte, 0, 512+3*len(key)+3*len(disposition)+3*len(creds.SessionToken))
	b = append(b, f.scheme...)
	b = append(b, "://"...)
	b = append(b, f.host...)
	pathStart := len(b)
	b = append(b, f.prefix...)
	b = append(b, '/')
	b = appendEscaped(b, key, false)
	pathEnd := len(b)
	b = append(b, '?')
	queryStart := len(b)
	// Canonical order: parameters sorted by (escaped) name.
	b = append(b, "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="...)
	b = appendEscaped(b, creds.AccessKeyID, true)
	b = append(b, "%2F"...)
	b = append(b, day...)
	b = append(b, "%2F"...)
	b = appendEscaped(b, f.region, true)
	b = append(b, "%2Fs3%2Faws4_request&X-Amz-Date="...)
	b = append(b, amzDate...)
	b = append(b, "&X-Amz-Expires="...)
	b = strconv.AppendInt(b, expires, 10)
	if creds.SessionToken != "" {
		b = append(b, "&X-Amz-Security-Token="...)
		b = appendEscaped(b, creds.SessionToken, true)
	}
	b = append(b, "&X-Amz-SignedHeaders=host&response-content-disposition="...)
	b = appendEscaped(b, disposition, true)
	b = append(b, "&x-id=GetObject"...)
	queryEnd := len(b)

	h := sha256.New()
	h.Write([]byte("GET\n"))
	h.Write(b[pathStart:pathEnd])
	h.Write([]byte("\n"))
	h.Write(b[queryStart:queryEnd])
	h.Write([]byte("\nhost:"))
	h.Write([]byte(f.canonHost))
	h.Write([]byte("\n\nhost\nUNSIGNED-PAYLOAD"))
	var sum [sha256.Size]byte
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], h.Sum(sum[:0]))

	mac := hmac.New(sha256.New, f.signingKey(creds.SecretAccessKey, day))
	mac.Write([]byte("AWS4-HMAC-SHA256\n"))
	mac.Write(amzDate)
	mac.Write([]byte{'\n'})
	mac.Write(day)
	mac.Write([]byte{'/'})
	mac.Write([]byte(f.region))
	mac.Write([]byte("/s3/aws4_request\n"))
	mac.Write(hexSum[:])

	b = append(b, "&X-Amz-Signature="...)
	b = hex.AppendEncode(b, mac.Sum(sum[:0]))
	return string(b), nil
}

// derivedKey is a SigV4 signing key: valid for one secret, day and region.
type derivedKey struct {
	secret, day string
	key         []byte
}

// signingKey returns the signing key for secret on day (YYYYMMDD), derived
// once per day and secret (SigV4 scopes it to the day, region and service).
func (f *fastGet) signingKey(secret string, day []byte) []byte {
	if k := f.key.Load(); k != nil && k.secret == secret && k.day == string(day) {
		return k.key
	}
	k := &derivedKey{secret: secret, day: string(day)}
	k.key = hmacSHA256([]byte("AWS4"+secret), day)
	k.key = hmacSHA256(k.key, []byte(f.region))
	k.key = hmacSHA256(k.key, []byte("s3"))
	k.key = hmacSHA256(k.key, []byte("aws4_request"))
	f.key.Store(k)
	return k.key
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

// canonicalHost is the host SigV4 signs, as v4.Signer derives it from the
// URL's: without a port that is the scheme's default.
func canonicalHost(scheme, host string) string {
	if (scheme == "http" && strings.HasSuffix(host, ":80")) || (scheme == "https" && strings.HasSuffix(host, ":443")) {
		h := host[:strings.LastIndexByte(host, ':')]
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1] // as the SDK does
		}
		return h
	}
	return host
}

// escapeKey is S3's URI encoding of an object key in a path: every byte but
// the unreserved characters (A-Z a-z 0-9 - . _ ~) and '/' as %XX.
func escapeKey(key string) string { return string(appendEscaped(nil, key, false)) }

// appendEscaped appends s URI-encoded as SigV4 wants it: unreserved
// characters as they are, every other byte as %XX (upper-case hex); '/'
// escaped too when slash is true (query names and values), kept otherwise
// (S3 object paths).
func appendEscaped(b []byte, s string, slash bool) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/' && !slash:
			b = append(b, c)
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return b
}
