package s3store_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/s3store"
)

// These tests are offline: presigning needs no server.

type expiringCreds struct{ expires time.Time }

func (c expiringCreds) Retrieve(context.Context) (aws.Credentials, error) {
	return aws.Credentials{
		AccessKeyID: "ASIATEMP", SecretAccessKey: "secret", SessionToken: "token",
		CanExpire: true, Expires: c.expires,
	}, nil
}

func offline(t *testing.T, cfg s3store.Config) *s3store.Store {
	t.Helper()
	if cfg.Bucket == "" {
		cfg.Bucket = "bucket"
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = "http://127.0.0.1:9"
		cfg.PathStyle = true
	}
	if cfg.AccessKey == "" && cfg.Credentials == nil {
		cfg.AccessKey, cfg.SecretKey = "AKIDEXAMPLE", "secret"
	}
	s, err := s3store.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func query(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestPresignPutSignsHeaders(t *testing.T) {
	s := offline(t, s3store.Config{})
	sum := "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" // "hello"
	sr, err := s.PresignPut(context.Background(), "p/x/1/a b.zip", 5, sum, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	q := query(t, sr.URL)
	if got := q.Get("X-Amz-SignedHeaders"); got != "content-length;host;x-amz-checksum-sha256" {
		t.Errorf("signed headers %q", got)
	}
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum") || strings.EqualFold(k, "content-length") {
			t.Errorf("%s hoisted into the query string", k)
		}
	}
	want := map[string]string{"Content-Length": "5", "x-amz-checksum-sha256": "LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ="}
	if len(sr.Headers) != len(want) {
		t.Errorf("headers %v, want %v", sr.Headers, want)
	}
	for k, v := range want {
		if sr.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, sr.Headers[k], v)
		}
	}
	if !strings.HasPrefix(sr.URL, "http://127.0.0.1:9/bucket/p/x/1/a%20b.zip?") {
		t.Errorf("URL %s", sr.URL)
	}

	part, err := s.PresignPart(context.Background(), "p/x/1/a.zip", "upload-1", 3, 6<<20, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pq := query(t, part.URL)
	if pq.Get("X-Amz-SignedHeaders") != "content-length;host" || pq.Get("partNumber") != "3" || pq.Get("uploadId") != "upload-1" {
		t.Errorf("part URL query %v", pq)
	}
	if part.Headers["Content-Length"] != strconv.Itoa(6<<20) {
		t.Errorf("part headers %v", part.Headers)
	}
}

func TestPresignGetDisposition(t *testing.T) {
	s := offline(t, s3store.Config{})
	sr, err := s.PresignGet(context.Background(), "p/x/1/file", time.Hour, "Tëst.zip")
	if err != nil {
		t.Fatal(err)
	}
	q := query(t, sr.URL)
	if got, want := q.Get("response-content-disposition"), objects.ContentDisposition("Tëst.zip"); got != want {
		t.Errorf("response-content-disposition %q, want %q", got, want)
	}
	if len(sr.Headers) != 0 {
		t.Errorf("GET headers %v", sr.Headers)
	}
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil || !sr.ExpiresAt.Equal(date.Add(time.Hour)) {
		t.Errorf("ExpiresAt %v, signed at %v for 1h (%v)", sr.ExpiresAt, date, err)
	}
}

func TestTTLCaps(t *testing.T) {
	ctx := context.Background()
	s := offline(t, s3store.Config{})
	if s.MaxTTL() != objects.MaxLinkTTL {
		t.Errorf("default MaxTTL %v", s.MaxTTL())
	}
	sr, err := s.PresignGet(ctx, "p/k", 30*24*time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, sr.URL).Get("X-Amz-Expires"); got != "604800" {
		t.Errorf("30-day request signed for %s s, want 604800", got)
	}

	s = offline(t, s3store.Config{MaxTTL: 10 * time.Minute})
	sr, _ = s.PresignGet(ctx, "p/k", time.Hour, "")
	if got := query(t, sr.URL).Get("X-Amz-Expires"); got != "600" {
		t.Errorf("configured cap: %s s, want 600", got)
	}

	// Temporary credentials: never outlive them (less a minute of margin).
	s = offline(t, s3store.Config{Credentials: expiringCreds{time.Now().Add(30 * time.Minute)}})
	if m := s.MaxTTL(); m > 29*time.Minute || m < 28*time.Minute {
		t.Errorf("MaxTTL with credentials expiring in 30m: %v", m)
	}
	sr, err = s.PresignPut(ctx, "p/k", 1, strings.Repeat("0", 64), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := strconv.Atoi(query(t, sr.URL).Get("X-Amz-Expires"))
	if exp > 29*60 || exp < 28*60 {
		t.Errorf("PUT with 30m credentials signed for %d s", exp)
	}
	if query(t, sr.URL).Get("X-Amz-Security-Token") != "token" {
		t.Error("session token missing from the URL")
	}

	s = offline(t, s3store.Config{Credentials: expiringCreds{time.Now().Add(30 * time.Second)}})
	if _, err := s.PresignGet(ctx, "p/k", time.Hour, ""); err == nil {
		t.Error("presigned with credentials about to expire")
	}
}

func TestNewConfig(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []s3store.Config{
		{},
		{Bucket: "b", Endpoint: "not a url"},
		{Bucket: "b", Endpoint: "ftp://host"},
		{Bucket: "b", AccessKey: "only-access"},
	} {
		if _, err := s3store.New(ctx, cfg); !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("New(%+v): %v, want invalid", cfg, err)
		}
	}
	// No static keys: the default chain (here, the environment).
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	s, err := s3store.New(ctx, s3store.Config{Bucket: "portal-bucket"})
	if err != nil {
		t.Fatal(err)
	}
	sr, err := s.PresignGet(ctx, "p/k", time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(sr.URL, "X-Amz-Credential=AKIAENV%2F") || !strings.HasPrefix(sr.URL, "https://portal-bucket.s3.us-east-1.amazonaws.com/p/k?") {
		t.Errorf("default chain / AWS URL: %s", sr.URL)
	}
}
