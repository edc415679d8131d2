// Package s3store keeps the portal's objects in any S3-compatible store (AWS
// S3, R2, Ceph RGW, MinIO, versitygw, ...). Clients upload and download with
// SigV4 presigned URLs; the portal itself only presigns, stats, reads back
// (to verify), deletes and completes multipart uploads.
package s3store

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

// Config selects the bucket and how to reach it.
type Config struct {
	Bucket string
	// Region defaults to us-east-1 (what most S3-compatible stores expect).
	Region string
	// Endpoint is the store's base URL (e.g. http://127.0.0.1:7070); empty
	// means AWS S3 itself.
	Endpoint string
	// PathStyle addresses the bucket as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY; most self-hosted stores need it.
	PathStyle bool
	// AccessKey and SecretKey are static credentials (SessionToken with
	// them for temporary ones). When AccessKey is empty the AWS default
	// credential chain is used (env, shared files, web identity, IMDS, ...).
	AccessKey    string
	SecretKey    string
	SessionToken string
	// Credentials, when set, is used instead of the static keys and the
	// default chain (e.g. an assumed role). Temporary credentials cap TTLs.
	Credentials aws.CredentialsProvider
	// MaxTTL caps every presigned URL's lifetime; 0 or anything above 7 days
	// means 7 days. Temporary credentials cap it further (see Store.MaxTTL).
	MaxTTL time.Duration
	// HTTPClient, when set, is used for the portal's own calls to the store
	// (and Probe's presigned requests).
	HTTPClient *http.Client
}

// Store is an ObjectStore and Multipart backed by one S3 bucket. It holds one
// S3 client and one presign client, and is safe for concurrent use. GET URLs
// are presigned by a fast path of its own when New could check it against
// the SDK (see fastGet).
type Store struct {
	bucket  string
	maxTTL  time.Duration
	client  *s3.Client
	presign *s3.PresignClient
	creds   aws.CredentialsProvider
	fast    *fastGet // nil: GET URLs go through presign
	slowWhy string   // why fast is nil
	httpc   *http.Client
}

var (
	_ objects.ObjectStore = (*Store)(nil)
	_ objects.Multipart   = (*Store)(nil)
)

// credentialMargin is kept between a presigned URL's expiry and the expiry of
// temporary credentials that signed it: S3 refuses a URL once its signing
// credentials expire, whatever X-Amz-Expires says.
const credentialMargin = time.Minute

// New builds the clients. It does not contact the store (use Ping), but it
// does resolve the credential chain's configuration when AccessKey is empty.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, portal.Errorf(portal.EInvalid, "s3store: bucket is required")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, portal.Errorf(portal.EInvalid, "s3store: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, portal.Errorf(portal.EInvalid, "s3store: access key and secret key go together")
	}
	maxTTL := cfg.MaxTTL
	if maxTTL <= 0 || maxTTL > objects.MaxLinkTTL {
		maxTTL = objects.MaxLinkTTL
	}

	opts := []func(*config.LoadOptions) error{config.WithRegion(cfg.Region)}
	switch {
	case cfg.Credentials != nil:
		opts = append(opts, config.WithCredentialsProvider(cfg.Credentials))
	case cfg.AccessKey != "":
		opts = append(opts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	if cfg.HTTPClient != nil {
		opts = append(opts, config.WithHTTPClient(cfg.HTTPClient))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3store: load AWS configuration: %w", err)
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(strings.TrimRight(cfg.Endpoint, "/"))
		}
		o.UsePathStyle = cfg.PathStyle
		// Checksums only where the portal asks for them: the SDK's default
		// CRC32 trailers are not understood by every S3-compatible store,
		// and a presigned PUT must carry exactly the portal's SHA-256.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	creds := awsCfg.Credentials
	if _, cached := creds.(*aws.CredentialsCache); creds != nil && !cached {
		// LoadDefaultConfig caches already; PresignGet retrieves per call.
		creds = aws.NewCredentialsCache(creds)
	}
	s := &Store{
		bucket:  cfg.Bucket,
		maxTTL:  maxTTL,
		client:  client,
		presign: s3.NewPresignClient(client),
		creds:   creds,
		httpc:   cfg.HTTPClient,
	}
	if s.httpc == nil {
		s.httpc = http.DefaultClient
	}
	s.fast, s.slowWhy = newFastGet(ctx, client, cfg.Bucket)
	return s, nil
}

// Client returns the underlying S3 client (for tests and tooling).
func (s *Store) Client() *s3.Client { return s.client }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// MaxTTL is the configured cap (at most 7 days), lowered to the remaining
// life of the signing credentials (less a minute) when they are temporary.
// It may retrieve credentials, bounded by 10 seconds.
func (s *Store) MaxTTL() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	max, err := s.ttlCap(ctx)
	if err != nil {
		return 0
	}
	return max
}

func (s *Store) ttlCap(ctx context.Context) (time.Duration, error) {
	max := s.maxTTL
	if s.creds == nil {
		return 0, portal.Errorf(portal.EInternal, "s3store: no credentials configured")
	}
	c, err := s.creds.Retrieve(ctx)
	if err != nil {
		return 0, fmt.Errorf("s3store: retrieve credentials: %w", err)
	}
	if c.CanExpire {
		max = min(max, time.Until(c.Expires)-credentialMargin)
	}
	return max, nil
}

// capFor is ttlCap for credentials already retrieved, at now.
func (s *Store) capFor(c aws.Credentials, now time.Time) time.Duration {
	max := s.maxTTL
	if c.CanExpire {
		max = min(max, c.Expires.Sub(now)-credentialMargin)
	}
	return max
}

func (s *Store) ttl(ctx context.Context, ttl time.Duration) (time.Duration, error) {
	max, err := s.ttlCap(ctx)
	if err != nil {
		return 0, err
	}
	ttl, err = objects.CapTTL(ttl, max)
	if err != nil {
		return 0, err
	}
	return ttl.Truncate(time.Second), nil
}

// PresignGet mints a GET URL whose response carries Content-Disposition:
// attachment (response-content-disposition, part of the signed query).
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, filename string) (objects.SignedRequest, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.SignedRequest{}, err
	}
	name, err := objects.DownloadName(key, filename)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	if s.fast != nil {
		if s.creds == nil {
			return objects.SignedRequest{}, portal.Errorf(portal.EInternal, "s3store: no credentials configured")
		}
		c, err := s.creds.Retrieve(ctx)
		if err != nil {
			return objects.SignedRequest{}, fmt.Errorf("s3store: retrieve credentials: %w", err)
		}
		// Credentials without a secret are left to the SDK, as before.
		if c.AccessKeyID != "" && c.SecretAccessKey != "" {
			now := time.Now()
			if ttl, err = objects.CapTTL(ttl, s.capFor(c, now)); err != nil {
				return objects.SignedRequest{}, err
			}
			ttl = ttl.Truncate(time.Second)
			u, err := s.fast.presign(ctx, c, key, objects.ContentDisposition(name), int64(ttl/time.Second), now)
			if err != nil {
				return objects.SignedRequest{}, fmt.Errorf("s3store: presign GET %s: %w", key, err)
			}
			// X-Amz-Date is now, to the second.
			return objects.SignedRequest{Method: http.MethodGet, URL: u, ExpiresAt: now.UTC().Truncate(time.Second).Add(ttl)}, nil
		}
	}
	return s.presignGetSDK(ctx, key, name, ttl)
}

// presignGetSDK is PresignGet through the SDK presigner: the fallback when
// the fast path is off (see fastGet) or the credentials are unusual.
func (s *Store) presignGetSDK(ctx context.Context, key, name string, ttl time.Duration) (objects.SignedRequest, error) {
	ttl, err := s.ttl(ctx, ttl)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{
		Bucket:                     aws.String(s.bucket),
		Key:                        aws.String(key),
		ResponseContentDisposition: aws.String(objects.ContentDisposition(name)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return objects.SignedRequest{}, fmt.Errorf("s3store: presign GET %s: %w", key, err)
	}
	return signed(req, ttl)
}

// PresignPut mints a PUT URL with Content-Length and x-amz-checksum-sha256
// signed as headers: S3 refuses a body of another size (signature mismatch)
// or another SHA-256 (BadDigest), and stores nothing.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, sha256Hex string, ttl time.Duration) (objects.SignedRequest, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.SignedRequest{}, err
	}
	if size < 0 || size > objects.MaxObjectSize {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "object size %d is outside 0..%d", size, int64(objects.MaxObjectSize))
	}
	sum, err := decodeSHA256(sha256Hex)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	if ttl, err = s.ttl(ctx, ttl); err != nil {
		return objects.SignedRequest{}, err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(key),
		ContentLength:  aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return objects.SignedRequest{}, fmt.Errorf("s3store: presign PUT %s: %w", key, err)
	}
	out, err := signed(req, ttl)
	if err != nil {
		return out, err
	}
	// The v4 signer signs Content-Length only when it is above zero; the
	// checksum header still binds an empty body.
	out.Headers["Content-Length"] = strconv.FormatInt(size, 10)
	if out.Headers["x-amz-checksum-sha256"] == "" {
		return objects.SignedRequest{}, fmt.Errorf("s3store: presign PUT %s: checksum header was not signed", key)
	}
	return out, nil
}

// signed turns the SDK's presigned request into the portal's shape: header
// names lower-cased except Content-Length, Host left to the client, and the
// exact expiry read back from the signed query.
func signed(req *v4.PresignedHTTPRequest, ttl time.Duration) (objects.SignedRequest, error) {
	out := objects.SignedRequest{
		Method:  req.Method,
		URL:     req.URL,
		Headers: make(map[string]string, len(req.SignedHeader)),
	}
	for k, v := range req.SignedHeader {
		switch lk := strings.ToLower(k); lk {
		case "host":
		case "content-length":
			out.Headers["Content-Length"] = strings.Join(v, ",")
		default:
			out.Headers[lk] = strings.Join(v, ",")
		}
	}
	out.ExpiresAt = time.Now().UTC().Truncate(time.Second).Add(ttl)
	if i := strings.Index(req.URL, "X-Amz-Date="); i >= 0 {
		v := req.URL[i+len("X-Amz-Date="):]
		if j := strings.IndexByte(v, '&'); j >= 0 {
			v = v[:j]
		}
		if t, err := time.Parse("20060102T150405Z", v); err == nil {
			out.ExpiresAt = t.Add(ttl)
		}
	}
	return out, nil
}

func decodeSHA256(h string) ([]byte, error) {
	if len(h) != 64 || strings.ToLower(h) != h {
		return nil, portal.Errorf(portal.EInvalid, "SHA-256 must be 64 lower-case hex digits")
	}
	sum, err := hex.DecodeString(h)
	if err != nil {
		return nil, portal.Errorf(portal.EInvalid, "SHA-256 must be 64 lower-case hex digits")
	}
	return sum, nil
}

// Stat uses HeadObject with checksum mode enabled; SHA256 is set when the
// object was stored with a full-object SHA-256 (every single PUT the portal
// mints), "" for multipart objects.
func (s *Store) Stat(ctx context.Context, key string) (objects.ObjectInfo, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return objects.ObjectInfo{}, mapErr("stat", key, err)
	}
	info := objects.ObjectInfo{Size: aws.ToInt64(out.ContentLength)}
	if c := aws.ToString(out.ChecksumSHA256); c != "" && out.ChecksumType != types.ChecksumTypeComposite {
		if raw, err := base64.StdEncoding.DecodeString(c); err == nil && len(raw) == 32 {
			info.SHA256 = hex.EncodeToString(raw)
		}
	}
	return info, nil
}

// Open streams the object; the caller closes the reader.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := objects.CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, mapErr("open", key, err)
	}
	return out.Body, nil
}

// Delete removes the object; S3 answers success for a missing key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := objects.CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
	})
	if err != nil && !portal.IsCode(mapErr("delete", key, err), portal.ENotFound) {
		return mapErr("delete", key, err)
	}
	return nil
}

// Ping checks that the bucket exists and the credentials may use it.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		return fmt.Errorf("s3store: bucket %s: %w", s.bucket, err)
	}
	return nil
}

// CreateMultipart starts a multipart upload. Parts carry no per-part
// checksum (clients are not asked for part hashes), so the completed object
// has no stored SHA-256: verify it through Open.
func (s *Store) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := objects.CheckKey(key); err != nil {
		return "", err
	}
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return "", mapErr("create multipart", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart mints an UploadPart URL with Content-Length signed.
func (s *Store) PresignPart(ctx context.Context, key, uploadID string, n int32, size int64, ttl time.Duration) (objects.SignedRequest, error) {
	if err := objects.CheckKey(key); err != nil {
		return objects.SignedRequest{}, err
	}
	if uploadID == "" {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "upload ID is empty")
	}
	if n < 1 || n > 10000 {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "part number %d is outside 1..10000", n)
	}
	if size < 1 || size > 5<<30 {
		return objects.SignedRequest{}, portal.Errorf(portal.EInvalid, "part size %d is outside 1 B..5 GiB", size)
	}
	ttl, err := s.ttl(ctx, ttl)
	if err != nil {
		return objects.SignedRequest{}, err
	}
	req, err := s.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		UploadId:      aws.String(uploadID),
		PartNumber:    aws.Int32(n),
		ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return objects.SignedRequest{}, fmt.Errorf("s3store: presign part %d of %s: %w", n, key, err)
	}
	out, err := signed(req, ttl)
	if err != nil {
		return out, err
	}
	if out.Headers["Content-Length"] != strconv.FormatInt(size, 10) {
		return objects.SignedRequest{}, fmt.Errorf("s3store: presign part %d of %s: Content-Length was not signed", n, key)
	}
	return out, nil
}

// CompleteMultipart lists the uploaded parts and completes the upload with
// them in part-number order.
func (s *Store) CompleteMultipart(ctx context.Context, key, uploadID string) error {
	if err := objects.CheckKey(key); err != nil {
		return err
	}
	if uploadID == "" {
		return portal.Errorf(portal.EInvalid, "upload ID is empty")
	}
	var parts []types.CompletedPart
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return mapErr("list parts", key, err)
		}
		for _, part := range page.Parts {
			parts = append(parts, types.CompletedPart{ETag: part.ETag, PartNumber: part.PartNumber})
		}
	}
	if len(parts) == 0 {
		return portal.Errorf(portal.EInvalid, "multipart upload of %s has no parts", key)
	}
	slices.SortFunc(parts, func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber)) - int(aws.ToInt32(b.PartNumber))
	})
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return mapErr("complete multipart", key, err)
	}
	return nil
}

// AbortMultipart discards the upload; an unknown upload is not an error.
func (s *Store) AbortMultipart(ctx context.Context, key, uploadID string) error {
	if err := objects.CheckKey(key); err != nil {
		return err
	}
	if uploadID == "" {
		return portal.Errorf(portal.EInvalid, "upload ID is empty")
	}
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if err != nil {
		if err := mapErr("abort multipart", key, err); !portal.IsCode(err, portal.ENotFound) {
			return err
		}
	}
	return nil
}

// mapErr turns a missing object or upload into ENotFound (keeping the cause
// for the logs) and wraps everything else as an internal error.
func mapErr(op, key string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return &portal.Error{Code: portal.ENotFound, Message: "object not found", Err: err}
		}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		var nb *types.NoSuchBucket
		if !errors.As(err, &nb) {
			return &portal.Error{Code: portal.ENotFound, Message: "object not found", Err: err}
		}
	}
	return fmt.Errorf("s3store: %s %s: %w", op, key, err)
}
