package s3store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store"
	"github.com/portaldist/portal/objects/s3store/s3test"
)

// oddKeys have every character class the path escaping must get right.
var oddKeys = []string{
	"p/x/1/app 1.0 (x64).zip",
	"p/x/1/ünïcode 版本.tar.gz",
	"p/x/1/a+b%20c%2Fd~e!f'g(h)i*j.bin",
	"p/x+y/%41/~/!'()*/f",
	"p/x/1/semi;colon,comma=eq&amp$dollar@at:colon#hash?q[b]",
}

// sdkGet presigns the same GET through the SDK presigner on s's own client.
func sdkGet(t *testing.T, s *s3store.Store, key, filename string, ttl time.Duration) string {
	t.Helper()
	name, err := objects.DownloadName(key, filename)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s3.NewPresignClient(s.Client()).PresignGetObject(context.Background(), &s3.GetObjectInput{
		Bucket:                     aws.String(s.Bucket()),
		Key:                        aws.String(key),
		ResponseContentDisposition: aws.String(objects.ContentDisposition(name)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		t.Fatal(err)
	}
	return req.URL
}

// TestPresignGetMatchesSDK: the fast path's URL is the SDK presigner's, byte
// for byte (signature included) when both sign in the same second, and
// always has the same scheme, host, path and query parameter set.
func TestPresignGetMatchesSDK(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  s3store.Config
		base string // expected scheme://host/path-prefix
	}{
		{"path-style", s3store.Config{Endpoint: "http://127.0.0.1:9", PathStyle: true}, "http://127.0.0.1:9/bucket/"},
		{"path-style-host", s3store.Config{Endpoint: "https://s3.example.com:8443", PathStyle: true}, "https://s3.example.com:8443/bucket/"},
		{"virtual-hosted", s3store.Config{Endpoint: "https://s3.example.com"}, "https://bucket.s3.example.com/"},
		{"endpoint-path", s3store.Config{Endpoint: "https://gw.example.com/s3/", PathStyle: true}, "https://gw.example.com/s3/bucket/"},
		{"aws", s3store.Config{Region: "eu-west-3"}, "https://bucket.s3.eu-west-3.amazonaws.com/"},
		{"aws-dotted-bucket", s3store.Config{Region: "eu-west-3", Bucket: "my.bucket"}, "https://s3.eu-west-3.amazonaws.com/my.bucket/"},
		{"session-token", s3store.Config{Region: "us-west-2", AccessKey: "ASIATEMP", SecretKey: "secret", SessionToken: "the/token+="}, "https://bucket.s3.us-west-2.amazonaws.com/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.Bucket == "" {
				cfg.Bucket = "bucket"
			}
			if cfg.AccessKey == "" {
				cfg.AccessKey, cfg.SecretKey = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
			}
			s, err := s3store.New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if why := s3store.SlowGetReason(s); why != "" {
				t.Fatalf("fast path off: %s", why)
			}
			for _, key := range oddKeys {
				for _, filename := range []string{"", "Tëst (1).zip", `q"uote;d+%.tar.gz`} {
					var fast objects.SignedRequest
					var sdk string
					for range 5 { // until both sign in the same second
						sdk = sdkGet(t, s, key, filename, 20*time.Minute)
						if fast, err = s.PresignGet(ctx, key, 20*time.Minute, filename); err != nil {
							t.Fatal(err)
						}
						if query(t, sdk).Get("X-Amz-Date") == query(t, fast.URL).Get("X-Amz-Date") {
							break
						}
					}
					if !strings.HasPrefix(fast.URL, tc.base) {
						t.Errorf("URL %s, want it under %s", fast.URL, tc.base)
					}
					sameMeaning(t, fast.URL, sdk)
					if query(t, sdk).Get("X-Amz-Date") == query(t, fast.URL).Get("X-Amz-Date") && fast.URL != sdk {
						t.Errorf("signed in the same second:\nfast %s\nSDK  %s", fast.URL, sdk)
					}
					if fast.Method != http.MethodGet || len(fast.Headers) != 0 {
						t.Errorf("method %s, headers %v", fast.Method, fast.Headers)
					}
					date, _ := time.Parse("20060102T150405Z", query(t, fast.URL).Get("X-Amz-Date"))
					if !fast.ExpiresAt.Equal(date.Add(20 * time.Minute)) {
						t.Errorf("ExpiresAt %v, signed at %v for 20m", fast.ExpiresAt, date)
					}
				}
			}
			if tok := cfg.SessionToken; tok != "" {
				sr, _ := s.PresignGet(ctx, oddKeys[0], time.Minute, "")
				if got := query(t, sr.URL).Get("X-Amz-Security-Token"); got != tok {
					t.Errorf("X-Amz-Security-Token %q, want %q", got, tok)
				}
			}
		})
	}
}

// sameMeaning compares two presigned URLs except for the signing time and
// the signature: same scheme, host, escaped path and query parameters.
func sameMeaning(t *testing.T, got, want string) {
	t.Helper()
	g, err := url.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := url.Parse(want)
	if err != nil {
		t.Fatal(err)
	}
	if g.Scheme != w.Scheme || g.Host != w.Host || g.EscapedPath() != w.EscapedPath() {
		t.Errorf("URL %s, SDK %s", got, want)
	}
	gq, wq := g.Query(), w.Query()
	if len(gq) != len(wq) {
		t.Errorf("query parameters %v, SDK %v", gq, wq)
	}
	for k, wv := range wq {
		gv, ok := gq[k]
		switch {
		case !ok || len(gv) != len(wv):
			t.Errorf("query parameter %s: %q, SDK %q", k, gv, wv)
		case k == "X-Amz-Date" || k == "X-Amz-Signature":
		case k == "X-Amz-Credential":
			// The date in the scope may differ across midnight only.
			if a, b := strings.Split(gv[0], "/"), strings.Split(wv[0], "/"); len(a) != 5 || len(b) != 5 ||
				a[0] != b[0] || a[2] != b[2] || a[3] != b[3] || a[4] != b[4] {
				t.Errorf("credential %s, SDK %s", gv[0], wv[0])
			}
		case gv[0] != wv[0]:
			t.Errorf("query parameter %s: %q, SDK %q", k, gv[0], wv[0])
		}
	}
}

func TestPresignGetTemporaryCredentials(t *testing.T) {
	ctx := context.Background()
	s := offline(t, s3store.Config{Credentials: expiringCreds{time.Now().Add(30 * time.Minute)}})
	if why := s3store.SlowGetReason(s); why != "" {
		t.Fatalf("fast path off: %s", why)
	}
	sr, err := s.PresignGet(ctx, "p/k", time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	q := query(t, sr.URL)
	if q.Get("X-Amz-Security-Token") != "token" || !strings.HasPrefix(q.Get("X-Amz-Credential"), "ASIATEMP/") {
		t.Errorf("temporary credentials not in the URL: %s", sr.URL)
	}
	if d := time.Until(sr.ExpiresAt); d > 29*time.Minute || d < 28*time.Minute {
		t.Errorf("GET with 30m credentials expires in %v", d)
	}
	if exp, _ := strconv.Atoi(q.Get("X-Amz-Expires")); exp < 28*60 || exp > 29*60 {
		t.Errorf("GET with 30m credentials signed for %d s", exp)
	}
}

func TestPresignGetFallback(t *testing.T) {
	ctx := context.Background()
	// Directory buckets need a session from the store: not probed, not fast.
	s, err := s3store.New(ctx, s3store.Config{Bucket: "b--usw2-az1--x-s3", Region: "us-west-2", AccessKey: "A", SecretKey: "S"})
	if err != nil {
		t.Fatal(err)
	}
	if s3store.SlowGetReason(s) == "" {
		t.Error("directory bucket on the fast path")
	}

	s = offline(t, s3store.Config{})
	fast, err := s.PresignGet(ctx, oddKeys[2], time.Hour, "Tëst.zip")
	if err != nil {
		t.Fatal(err)
	}
	s3store.DisableFastGet(s)
	slow, err := s.PresignGet(ctx, oddKeys[2], time.Hour, "Tëst.zip")
	if err != nil {
		t.Fatal(err)
	}
	sameMeaning(t, fast.URL, slow.URL)
	if d := slow.ExpiresAt.Sub(fast.ExpiresAt); d < 0 || d > 2*time.Second {
		t.Errorf("ExpiresAt fast %v, SDK %v", fast.ExpiresAt, slow.ExpiresAt)
	}
}

// TestPresignGetOddKeys downloads objects whose keys need escaping from the
// S3 test server through fast-path URLs.
func TestPresignGetOddKeys(t *testing.T) {
	ctx := context.Background()
	st := s3test.Store(t)
	if why := s3store.SlowGetReason(st); why != "" {
		t.Fatalf("fast path off: %s", why)
	}
	prefix := strings.TrimSuffix(objectstest.RandomKey("x"), "/x")
	for _, name := range []string{
		"with space.bin", "ünïcode 版本.bin", "a+b.bin", "100%.bin", "%41%2F.bin", "~tilde~.bin",
		"bang!.bin", "it's.bin", "(paren).bin", "star*.bin", "all +%~!'()* .bin",
		"seg ü/+%/~!/'()*/leaf",
	} {
		key := prefix + "/" + name
		data := objectstest.RandomBytes(100)
		objectstest.Upload(t, st, key, data)
		sr, err := st.PresignGet(ctx, key, time.Minute, "")
		if err != nil {
			t.Fatal(err)
		}
		resp := objectstest.Do(t, sr, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
			t.Errorf("GET %q (%s): %s, %d bytes: %.300s", key, sr.URL, resp.Status, len(body), body)
		}
		// A neighbouring key is not reachable by the same signature.
		tampered := strings.Replace(sr.URL, "/leaf?", "/leaf2?", 1)
		tampered = strings.Replace(tampered, ".bin?", ".bim?", 1)
		resp = objectstest.Do(t, objects.SignedRequest{Method: http.MethodGet, URL: tampered}, nil, nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("GET of a renamed key with the same signature: %s", resp.Status)
		}
	}
}

func BenchmarkPresignGet(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"fast", "sdk-fallback", "fast-session-token"} {
		b.Run(mode, func(b *testing.B) {
			cfg := s3store.Config{
				Bucket: "bench", Endpoint: "http://127.0.0.1:9", PathStyle: true,
				AccessKey: "AKIDEXAMPLE", SecretKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
			}
			if mode == "fast-session-token" {
				cfg.Credentials = credentials.NewStaticCredentialsProvider("ASIATEMP", cfg.SecretKey, strings.Repeat("t", 800))
				cfg.AccessKey, cfg.SecretKey = "", ""
			}
			st, err := s3store.New(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if mode == "sdk-fallback" {
				s3store.DisableFastGet(st)
			} else if why := s3store.SlowGetReason(st); why != "" {
				b.Fatal(why)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.PresignGet(ctx, "p/product/0123456789/app-1.2.3-linux-amd64.tar.gz", 15*time.Minute, "app-1.2.3-linux-amd64.tar.gz"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestFastGetSignsAsV4Signer compares the fast path's own SigV4 with
// v4.Signer.PresignHTTP across days (the cached signing key), secrets, session
// tokens, TTLs, keys and dispositions.
func TestFastGetSignsAsV4Signer(t *testing.T) {
	for _, cfg := range []s3store.Config{
		{Endpoint: "http://127.0.0.1:9", PathStyle: true},
		{Endpoint: "https://s3.example.com:443"},
		{Endpoint: "http://[::1]:80/x", PathStyle: true},
		{Region: "ap-southeast-2"},
	} {
		cfg.Bucket = "bucket"
		s := offline(t, cfg)
		if why := s3store.SlowGetReason(s); why != "" {
			t.Fatalf("%+v: fast path off: %s", cfg, why)
		}
		at := time.Date(2026, 3, 1, 23, 59, 58, 999e6, time.FixedZone("x", 3600))
		for i, key := range append(oddKeys, "p/k", strings.Repeat("ü/", 300)+"z") {
			for j, creds := range []aws.Credentials{
				{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
				{AccessKeyID: "ASIA/odd key", SecretAccessKey: "other", SessionToken: "FwoGZXIvYXdzE+/=token with space"},
			} {
				at = at.Add(time.Duration(i*j+1) * 17 * time.Hour / 10)
				disp := objects.ContentDisposition([]string{"a.zip", "Tëst (1).zip", `q"uote;d+%/.tar.gz`}[(i+j)%3])
				exp := int64(1 + (i*7919+j)%604800)
				got, err := s3store.FastGetAt(s, creds, key, disp, exp, at)
				if err != nil {
					t.Fatal(err)
				}
				want, err := s3store.RefGetAt(s, creds, key, disp, exp, at)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%+v at %v:\nfast      %s\nv4.Signer %s", cfg, at, got, want)
				}
			}
		}
	}
}
