package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// UploadOptions tune UploadFile. Zero values take the defaults.
type UploadOptions struct {
	// Parallel is how many parts of a multipart upload are sent at once
	// (default 4).
	Parallel int
	// Attempts is how many times one PUT (the whole file or one part) is
	// tried before the upload fails (default 3). Only network errors, 408,
	// 429 and 5xx answers are retried; any other refusal will not change.
	Attempts int
	// Progress, when set, is told how many bytes were sent (negative when a
	// failed attempt's bytes are taken back before a retry). It is called
	// from several goroutines at once during a multipart upload.
	Progress func(delta int64)
	// RetryDelay is the pause before the second attempt, doubled for each
	// further one (default 1s).
	RetryDelay time.Duration
}

// UploadFile sends size bytes of f as up says: one PUT, or the parts of a
// multipart upload in parallel, each read with its own io.SectionReader so
// f is never read through a shared offset. It does not complete the upload:
// call CompleteArtifact afterwards.
func (c *Client) UploadFile(ctx context.Context, up Upload, f io.ReaderAt, size int64, opts UploadOptions) error {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 3
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	if opts.Progress == nil {
		opts.Progress = func(int64) {}
	}
	if !up.Multipart {
		return c.putRetry(ctx, up.SignedRequest, io.NewSectionReader(f, 0, size), opts)
	}
	if up.PartSize <= 0 {
		return fmt.Errorf("upload instructions: multipart without a part size")
	}
	if n := (size + up.PartSize - 1) / up.PartSize; int64(len(up.Parts)) != n {
		return fmt.Errorf("upload instructions: %d parts for %d bytes in parts of %d (want %d)", len(up.Parts), size, up.PartSize, n)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(opts.Parallel, len(up.Parts)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(up.Parts)) || ctx.Err() != nil {
					return
				}
				off := i * up.PartSize
				part := io.NewSectionReader(f, off, min(up.PartSize, size-off))
				if err := c.putRetry(ctx, up.Parts[i], part, opts); err != nil {
					cancel(fmt.Errorf("part %d of %d: %w", i+1, len(up.Parts), err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

// putRetry sends body with up to opts.Attempts tries.
func (c *Client) putRetry(ctx context.Context, sr SignedRequest, body *io.SectionReader, opts UploadOptions) error {
	delay := opts.RetryDelay
	var err error
	for attempt := 1; ; attempt++ {
		var retry bool
		if retry, err = c.put(ctx, sr, body, opts.Progress); err == nil {
			return nil
		}
		if !retry || attempt >= opts.Attempts || ctx.Err() != nil {
			if attempt > 1 {
				return fmt.Errorf("%w (after %d attempts)", err, attempt)
			}
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return err
		}
		delay *= 2
	}
}

// put sends one signed PUT and reports whether a failure is worth retrying.
func (c *Client) put(ctx context.Context, sr SignedRequest, body *io.SectionReader, progress func(int64)) (retry bool, err error) {
	size := body.Size()
	// Each attempt reads the section from its start.
	cr := &countingReader{r: io.NewSectionReader(body, 0, size), progress: progress}
	var rd io.Reader = cr
	if size == 0 {
		rd = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, sr.Method, sr.URL, rd)
	if err != nil {
		return false, fmt.Errorf("upload instructions: %w", err)
	}
	for k, v := range sr.Headers {
		if strings.EqualFold(k, "Content-Length") {
			// net/http sends ContentLength, not this header; a signed
			// length other than the body's can only be refused.
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n != size {
				return false, fmt.Errorf("upload instructions want %s bytes, the file has %d", v, size)
			}
			continue
		}
		req.Header.Set(k, v)
	}
	req.ContentLength = size
	res, err := c.http().Do(req)
	if err != nil {
		progress(-cr.n.Load())
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return true, fmt.Errorf("%s to storage: %w", sr.Method, stripURL(err))
	}
	defer res.Body.Close()
	if res.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
		return false, nil
	}
	progress(-cr.n.Load())
	b, _ := io.ReadAll(io.LimitReader(res.Body, 2<<10))
	retry = res.StatusCode >= 500 || res.StatusCode == http.StatusRequestTimeout || res.StatusCode == http.StatusTooManyRequests
	return retry, fmt.Errorf("%s to storage: HTTP %d: %s", sr.Method, res.StatusCode, snippet(b))
}

// Get starts a GET of a signed URL (a Grant's URL), without the client's
// Authorization header. The caller closes the body. Any status but 200 is an
// error.
func (c *Client) Get(ctx context.Context, signedURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, signedURL, nil)
	if err != nil {
		return nil, fmt.Errorf("download URL: %w", stripURL(err))
	}
	res, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET from storage: %w", stripURL(err))
	}
	if res.StatusCode != http.StatusOK {
		defer res.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(res.Body, 2<<10))
		return nil, fmt.Errorf("GET from storage: HTTP %d: %s", res.StatusCode, snippet(b))
	}
	return res, nil
}

type countingReader struct {
	r        io.Reader
	n        atomic.Int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		c.progress(int64(n))
	}
	return n, err
}

// stripURL removes the URL, whose query holds a signature, from a
// transport error.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "(no body)"
	}
	return s
}
