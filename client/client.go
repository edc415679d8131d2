// Package client is a small typed client for the portal's HTTP API (the
// catalog calls a publisher makes, and the download calls a customer makes)
// plus the transfers to and from the signed storage URLs the portal mints.
//
// API calls carry the client's Authorization header; requests to signed
// URLs never do: the URL carries its own signature, and S3 refuses a request
// that has both.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to one portal. Its fields may be changed before first use;
// it is then safe for concurrent use.
type Client struct {
	// BaseURL is the portal's address, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Auth is the whole Authorization header value sent with API calls
	// ("Bearer <token>" or "License <key>"); empty sends none.
	Auth string
	// HTTP is the client used for every request (default http.DefaultClient).
	HTTP *http.Client
}

// New returns a client for the portal at baseURL. auth is the whole
// Authorization header value (see Bearer and License), or "".
func New(baseURL, auth string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Auth: auth, HTTP: http.DefaultClient}
}

// Bearer is the Authorization value for an API token.
func Bearer(token string) string { return "Bearer " + token }

// License is the Authorization value for a license key.
func License(key string) string { return "License " + key }

// Error is a refusal from the portal, decoded from its error envelope
// {"error":{"code":...,"message":...}}. A response without an envelope (a
// proxy's page, say) has an empty Code and a Message made from the body.
type Error struct {
	Status  int
	Code    string
	Message string
	// URL is the address that answered (without its query), so an answer
	// from something that is not a portal can say where it came from.
	URL string
	// Expected and Actual are set on the 422 that completing an artifact
	// whose stored bytes do not match its declaration returns. Actual.SHA256
	// may be empty when the store could not tell.
	Expected, Actual *Sum
}

// Sum is a file's size and lower-hex SHA-256.
type Sum struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// FromPortal reports whether the answer carried the portal's error
// envelope. A 404 without one usually means the base URL points at another
// server, or at the wrong path of this one.
func (e *Error) FromPortal() bool { return e.Code != "" }

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// Release is a release as the API shows it.
type Release struct {
	Product     string            `json:"product"`
	Version     string            `json:"version"`
	Channel     string            `json:"channel"`
	Status      string            `json:"status"`
	Notes       string            `json:"notes,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Rollout     int               `json:"rollout,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	PublishedAt *time.Time        `json:"published_at,omitempty"`
	YankedAt    *time.Time        `json:"yanked_at,omitempty"`
	Artifacts   []Artifact        `json:"artifacts"`
}

// Artifact returns the artifact named filename, or nil.
func (r *Release) Artifact(filename string) *Artifact {
	for i := range r.Artifacts {
		if r.Artifacts[i].Filename == filename {
			return &r.Artifacts[i]
		}
	}
	return nil
}

// Artifact is one file of a release. Status is "waiting", "uploaded" or
// "failed".
type Artifact struct {
	Filename   string            `json:"filename"`
	Platform   string            `json:"platform"`
	Arch       string            `json:"arch"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256"`
	Status     string            `json:"status"`
	Failure    string            `json:"failure,omitempty"`
	Signatures map[string]string `json:"signatures,omitempty"`
}

// NewRelease declares a release; empty Channel means stable.
type NewRelease struct {
	Version  string            `json:"version"`
	Channel  string            `json:"channel,omitempty"`
	Notes    string            `json:"notes,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Rollout is the staged rollout percentage; nil leaves the portal's
	// default (everyone).
	Rollout *int `json:"rollout,omitempty"`
}

// NewArtifact declares a file of a release.
type NewArtifact struct {
	Filename string `json:"filename"`
	Platform string `json:"platform"`
	Arch     string `json:"arch"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// SparkleSignature is an optional publisher-made Sparkle EdDSA
	// signature (base64), used for files too large for the portal to sign.
	SparkleSignature string `json:"sparkle_signature,omitempty"`
}

// SignedRequest is a request minted by the portal: send Method to URL with
// exactly Headers, before ExpiresAt, and no Authorization header.
type SignedRequest struct {
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// Upload says how to send a declared file: one signed PUT, or (Multipart)
// one signed PUT per part of PartSize bytes, the last one shorter.
type Upload struct {
	SignedRequest
	Multipart bool            `json:"multipart,omitempty"`
	PartSize  int64           `json:"part_size,omitempty"`
	Parts     []SignedRequest `json:"parts,omitempty"`
}

// Grant is a download the portal allowed: a short-lived signed URL and what
// the file must be.
type Grant struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	Filename  string    `json:"filename"`
	Size      int64     `json:"size"`
	SHA256    string    `json:"sha256"`
	// Version is the release the grant is for, when the portal says so
	// (useful when "latest" was asked for).
	Version string `json:"version,omitempty"`
}

// DownloadQuery selects the artifact of a release to download.
type DownloadQuery struct {
	Platform, Arch string
	// Channel is the channel "latest" resolves on; empty means stable.
	Channel string
}

// Keys are a product's public signing keys.
type Keys struct {
	// Minisign is the base64 minisign public key line.
	Minisign string `json:"minisign"`
}

func releasePath(product, version string) string {
	return "/v1/products/" + url.PathEscape(product) + "/releases/" + url.PathEscape(version)
}

// Release returns a release. An unknown release is an *Error with Status 404.
func (c *Client) Release(ctx context.Context, product, version string) (Release, error) {
	var r Release
	err := c.call(ctx, http.MethodGet, releasePath(product, version), nil, &r)
	return r, err
}

// CreateRelease creates a draft release.
func (c *Client) CreateRelease(ctx context.Context, product string, in NewRelease) (Release, error) {
	var r Release
	err := c.call(ctx, http.MethodPost, "/v1/products/"+url.PathEscape(product)+"/releases", in, &r)
	return r, err
}

// Publish publishes a release whose artifacts are all uploaded.
func (c *Client) Publish(ctx context.Context, product, version string) (Release, error) {
	var r Release
	err := c.call(ctx, http.MethodPost, releasePath(product, version)+"/publish", nil, &r)
	return r, err
}

// DeclareArtifact declares a file (again, replacing a waiting or failed
// one) and returns how to upload it.
func (c *Client) DeclareArtifact(ctx context.Context, product, version string, in NewArtifact) (Artifact, Upload, error) {
	var out struct {
		Artifact Artifact `json:"artifact"`
		Upload   Upload   `json:"upload"`
	}
	err := c.call(ctx, http.MethodPost, releasePath(product, version)+"/artifacts", in, &out)
	return out.Artifact, out.Upload, err
}

// CompleteArtifact asks the portal to verify an upload. A mismatch is an
// *Error with Status 422 and Expected and Actual set.
func (c *Client) CompleteArtifact(ctx context.Context, product, version, filename string) (Artifact, error) {
	var out struct {
		Artifact Artifact `json:"artifact"`
	}
	err := c.call(ctx, http.MethodPost, releasePath(product, version)+"/artifacts/"+url.PathEscape(filename)+"/complete", nil, &out)
	return out.Artifact, err
}

// DeleteArtifact removes a file from a draft release.
func (c *Client) DeleteArtifact(ctx context.Context, product, version, filename string) error {
	return c.call(ctx, http.MethodDelete, releasePath(product, version)+"/artifacts/"+url.PathEscape(filename), nil, nil)
}

// Download asks for a download of a release's artifact for a platform and
// arch; version may be "latest". Refusals (license_expired, not_entitled,
// quota_exceeded, ...) are *Error values.
func (c *Client) Download(ctx context.Context, product, version string, q DownloadQuery) (Grant, error) {
	v := url.Values{"platform": {q.Platform}, "arch": {q.Arch}}
	if q.Channel != "" {
		v.Set("channel", q.Channel)
	}
	var g Grant
	err := c.call(ctx, http.MethodGet, releasePath(product, version)+"/download?"+v.Encode(), nil, &g)
	return g, err
}

// Keys returns a product's public signing keys.
func (c *Client) Keys(ctx context.Context, product string) (Keys, error) {
	var k Keys
	err := c.call(ctx, http.MethodGet, "/v1/products/"+url.PathEscape(product)+"/keys", nil, &k)
	return k, err
}

// Minisig returns the .minisig text of an artifact.
func (c *Client) Minisig(ctx context.Context, product, version, filename string) ([]byte, error) {
	res, err := c.send(ctx, http.MethodGet, releasePath(product, version)+"/artifacts/"+url.PathEscape(filename+".minisig"), nil)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	// A .minisig is four short lines; anything much longer is not one.
	return io.ReadAll(io.LimitReader(res.Body, 64<<10))
}

// call sends a JSON request and decodes a JSON response into out (if not
// nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	res, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 16<<20)).Decode(out); err != nil {
		return fmt.Errorf("%s %s: reading the response: %w", method, stripQuery(path), err)
	}
	return nil
}

// send makes an API request and turns a non-2xx answer into an *Error.
// The caller closes the body of a successful response.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Auth != "" {
		req.Header.Set("Authorization", c.Auth)
	}
	res, err := c.http().Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode/100 != 2 {
		defer res.Body.Close()
		e := decodeError(res)
		e.URL = stripQuery(c.BaseURL + path)
		return nil, e
	}
	return res, nil
}

func (c *Client) http() *http.Client {
	if c.HTTP == nil {
		return http.DefaultClient
	}
	return c.HTTP
}

// decodeError reads the error envelope of a failed response.
func decodeError(res *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var env struct {
		Error struct {
			Code     string `json:"code"`
			Message  string `json:"message"`
			Expected *Sum   `json:"expected"`
			Actual   *Sum   `json:"actual"`
		} `json:"error"`
	}
	e := &Error{Status: res.StatusCode}
	if json.Unmarshal(b, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message = env.Error.Code, env.Error.Message
		e.Expected, e.Actual = env.Error.Expected, env.Error.Actual
		return e
	}
	e.Message = strings.TrimSpace(string(b))
	if len(e.Message) > 200 {
		e.Message = e.Message[:200] + "..."
	}
	if e.Message == "" {
		e.Message = http.StatusText(res.StatusCode)
	}
	return e
}

// stripQuery drops the query of a path or URL, which may hold a signature,
// before it goes into an error message.
func stripQuery(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		return s[:i]
	}
	return s
}
