package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/portaldist/portal/objects"
)

// ProbePrefix is where Probe writes its probe objects (and deletes them).
const ProbePrefix = "portal-probe/"

// Probe checks, at start, that the store works the way the portal will
// use it: the bucket exists and the credentials may use it, and a small
// probe object uploaded through a presigned PUT reads back, byte for byte,
// through a presigned GET, as a client would send them (plain HTTP, no
// SDK). It then deletes the object. It takes a few round trips; run it once
// at start, not per request (Ping is the cheap readiness check).
//
// The error names the cause an operator can act on: "S3 refused the
// credentials (SignatureDoesNotMatch)" for a wrong secret (InvalidAccessKeyId
// for an unknown access key), "bucket X does not exist", "S3 endpoint X is
// unreachable: ...", "S3 refused access to bucket X (AccessDenied)", or the
// step of the round trip that failed and what S3 answered.
func (s *Store) Probe(ctx context.Context) error {
	if err := s.probeBucket(ctx); err != nil {
		return err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	key := ProbePrefix + hex.EncodeToString(nonce[:])
	body := []byte("portal start-up probe " + key + "\n")
	sum := sha256.Sum256(body)
	err := s.probeRoundTrip(ctx, key, body, hex.EncodeToString(sum[:]))
	// Delete whatever the PUT may have left, even after a failed GET.
	if derr := s.Delete(context.WithoutCancel(ctx), key); derr != nil && err == nil {
		err = fmt.Errorf("s3store: probe: delete the probe object %s: %w", key, derr)
	}
	return err
}

// probeBucket checks the bucket with HeadBucket. A HEAD answer has no body,
// so its 403 or 404 does not say why (versitygw, for one, answers an
// unknown access key with 404): it then asks for a missing object with
// GET, whose error body carries the store's code.
func (s *Store) probeBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	if transportError(err) {
		return s.cause(0, "", err, true)
	}
	_, gerr := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(ProbePrefix + "missing")})
	if gerr != nil {
		if e := s.explain(gerr); e != nil {
			return e
		}
	}
	if e := s.explain(err); e != nil {
		return e
	}
	return fmt.Errorf("s3store: bucket %s: %w", s.bucket, err)
}

// transportError reports whether err is a failure to reach the store
// rather than an answer from it.
func transportError(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() != 0 {
		return false // the store answered
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// explain turns an SDK error into the operator's cause, or nil when it
// does not recognise it.
func (s *Store) explain(err error) error {
	status, code := 0, ""
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	return s.cause(status, code, err, transportError(err))
}

// cause names what an S3 answer (status, error code) or a transport
// failure means for the operator; nil when it is not one it knows.
func (s *Store) cause(status int, code string, err error, transport bool) error {
	switch {
	case transport:
		return fmt.Errorf("s3store: S3 endpoint %s is unreachable: %w", s.endpoint(), err)
	case code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" || code == "InvalidSecurity" ||
		code == "ExpiredToken" || code == "InvalidToken" || code == "TokenRefreshRequired" ||
		code == "XAdminUserNotFound": // versitygw's unknown access key
		return fmt.Errorf("s3store: S3 refused the credentials (%s): check objects.s3.access_key and objects.s3.secret_key", code)
	case code == "NoSuchBucket" || (status == http.StatusNotFound && code != "NoSuchKey"):
		return fmt.Errorf("s3store: bucket %s does not exist (create it, or fix objects.s3.bucket)", s.bucket)
	case code == "AccessDenied" || code == "AllAccessDisabled":
		return fmt.Errorf("s3store: S3 refused access to bucket %s (%s): the credentials need s3:GetObject, s3:PutObject and s3:DeleteObject on it", s.bucket, code)
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException":
		return fmt.Errorf("s3store: bucket %s is in another region (%s): fix objects.s3.region", s.bucket, code)
	}
	return nil
}

func (s *Store) endpoint() string {
	if ep := s.client.Options().BaseEndpoint; ep != nil {
		return *ep
	}
	return "(AWS S3, region " + s.client.Options().Region + ")"
}

// probeRoundTrip uploads body to key with a presigned PUT and reads it back
// with a presigned GET, over plain HTTP.
func (s *Store) probeRoundTrip(ctx context.Context, key string, body []byte, sha256Hex string) error {
	put, err := s.PresignPut(ctx, key, int64(len(body)), sha256Hex, time.Minute)
	if err != nil {
		return fmt.Errorf("s3store: probe: presign PUT: %w", err)
	}
	if _, err := s.probeDo(ctx, "PUT", put, body); err != nil {
		return err
	}
	get, err := s.PresignGet(ctx, key, time.Minute, "probe.txt")
	if err != nil {
		return fmt.Errorf("s3store: probe: presign GET: %w", err)
	}
	got, err := s.probeDo(ctx, "GET", get, nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("s3store: probe: a presigned GET of the probe object returned %d other bytes than the %d uploaded", len(got), len(body))
	}
	return nil
}

// probeDo sends a minted request as a client would and returns the body
// of a 2xx answer; any other answer is explained with S3's error code.
func (s *Store) probeDo(ctx context.Context, step string, sr objects.SignedRequest, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, sr.Method, sr.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("s3store: probe: %s: %w", step, err)
	}
	for k, v := range sr.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body))
	if body == nil {
		req.Body, req.ContentLength = nil, 0
	}
	res, err := s.httpc.Do(req)
	if err != nil {
		return nil, s.cause(0, "", err, true)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("s3store: probe: %s: reading the answer: %w", step, err)
	}
	if res.StatusCode/100 == 2 {
		return b, nil
	}
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	xml.Unmarshal(b, &e)
	if err := s.cause(res.StatusCode, e.Code, nil, false); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("s3store: probe: a presigned %s of a probe object got %s (%s %s): presigned URLs do not work with this store", step, res.Status, e.Code, e.Message)
}
