package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
)

// MaxSinglePut is the largest object sent in one PUT (S3's limit); larger
// ones go in parts through objects.Multipart.
const MaxSinglePut = 5 << 30

// CopyOptions tune Copy.
type CopyOptions struct {
	// Concurrency is how many objects are copied at once (default 4).
	Concurrency int
	// HTTP sends the presigned PUTs to stores that are not an
	// objects.Putter (default http.DefaultClient).
	HTTP *http.Client
	// PartSize is the part size for objects above MultipartAbove (defaults
	// 512 MiB and MaxSinglePut), on stores that implement
	// objects.Multipart.
	PartSize, MultipartAbove int64
	// Progress, when set, is called (one call at a time) with bytes as
	// they are copied, and with a skipped object's whole size.
	Progress func(n int64)
}

// CopyReport is what Copy did.
type CopyReport struct {
	// Copied objects were written and verified; Skipped ones were already
	// in the target with the catalog's size and SHA-256.
	Copied, Skipped int
	Bytes           int64
	// Missing are the objects the catalog names and the source lacks.
	Missing []Object
	// Failed are the objects that could not be copied or did not verify;
	// a rerun tries them again.
	Failed []Problem
}

// OK reports whether every object is in the target.
func (r CopyReport) OK() bool { return len(r.Missing) == 0 && len(r.Failed) == 0 }

// Copy copies every object of objs from src to dst, each read once from
// src and hashed on the way, written so that dst refuses any content
// other than the catalog's size and SHA-256 (objects.Putter, or a
// presigned PUT that binds both), then checked with dst.Stat. Objects
// already in dst with the catalog's size and SHA-256 are skipped, so an
// interrupted copy resumes where it stopped. It stops early only when ctx
// ends, returning ctx's error.
func Copy(ctx context.Context, src, dst objects.ObjectStore, objs []Object, opts CopyOptions) (CopyReport, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.HTTP == nil {
		opts.HTTP = http.DefaultClient
	}
	if opts.MultipartAbove <= 0 {
		opts.MultipartAbove = MaxSinglePut
	}
	if opts.PartSize <= 0 {
		opts.PartSize = 512 << 20
	}
	var mu sync.Mutex
	progress := func(n int64) {
		if opts.Progress != nil && n > 0 {
			mu.Lock()
			opts.Progress(n)
			mu.Unlock()
		}
	}
	var rep CopyReport
	next := make(chan Object)
	var wg sync.WaitGroup
	for range min(opts.Concurrency, max(len(objs), 1)) {
		wg.Go(func() {
			for o := range next {
				res, p := copyOne(ctx, src, dst, o, opts, progress)
				if ctx.Err() != nil {
					continue
				}
				mu.Lock()
				switch {
				case res == skipped:
					rep.Skipped++
				case res == copied:
					rep.Copied++
					rep.Bytes += o.Size
				case p != nil && p.Kind == Missing:
					rep.Missing = append(rep.Missing, o)
				case p != nil:
					rep.Failed = append(rep.Failed, *p)
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, o := range objs {
		select {
		case next <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return rep, ctx.Err()
}

type outcome int

const (
	failed outcome = iota
	skipped
	copied
)

func copyOne(ctx context.Context, src, dst objects.ObjectStore, o Object, opts CopyOptions, progress func(int64)) (outcome, *Problem) {
	if present(ctx, dst, o) {
		progress(o.Size)
		return skipped, nil
	}
	rc, err := src.Open(ctx, o.Key)
	if err != nil {
		p := statProblem(o, err)
		if p.Kind == Missing {
			p.Detail = "the source store has no object under this key"
		}
		return failed, p
	}
	defer rc.Close()
	h := sha256.New()
	body := &meter{r: rc, h: h, progress: progress}
	err = put(ctx, dst, o, body, opts)
	if body.n == o.Size {
		// The whole object went through: say when the source itself is
		// wrong rather than blame the target.
		if sum := hex.EncodeToString(h.Sum(nil)); sum != o.SHA256 {
			return failed, &Problem{o, BadHash, fmt.Sprintf("the source's object hashes to %s, the catalog says %s; not copied", sum, o.SHA256)}
		}
	} else if body.eof {
		return failed, &Problem{o, BadSize, fmt.Sprintf("the source's object has %d bytes, the catalog says %d; not copied", body.n, o.Size)}
	}
	if err != nil {
		return failed, &Problem{o, Unreadable, "write to the target: " + err.Error()}
	}
	// The target checked size and hash as it took the bytes; its Stat
	// confirms what it kept.
	info, err := dst.Stat(ctx, o.Key)
	switch {
	case err != nil:
		return failed, &Problem{o, Unreadable, "the target, after the copy: " + err.Error()}
	case info.Size != o.Size:
		return failed, &Problem{o, BadSize, fmt.Sprintf("the target holds %d bytes after the copy, the catalog says %d", info.Size, o.Size)}
	case info.SHA256 != "" && info.SHA256 != o.SHA256:
		return failed, &Problem{o, BadHash, fmt.Sprintf("the target records SHA-256 %s after the copy, the catalog says %s", info.SHA256, o.SHA256)}
	}
	return copied, nil
}

// present reports whether dst already holds o as the catalog says, hashing
// it when dst does not record its SHA-256.
func present(ctx context.Context, dst objects.ObjectStore, o Object) bool {
	info, err := dst.Stat(ctx, o.Key)
	if err != nil || info.Size != o.Size {
		return false
	}
	if info.SHA256 != "" {
		return info.SHA256 == o.SHA256
	}
	sum, n, err := hashObject(ctx, dst, o.Key)
	return err == nil && n == o.Size && sum == o.SHA256
}

// meter hashes and counts what is read through it.
type meter struct {
	r        io.Reader
	h        hash.Hash
	n        int64
	eof      bool
	progress func(int64)
}

func (m *meter) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.h.Write(p[:n])
	m.n += int64(n)
	m.progress(int64(n))
	if err == io.EOF {
		m.eof = true
	}
	return n, err
}

// put writes body (o.Size bytes, o.SHA256) under o.Key in dst.
func put(ctx context.Context, dst objects.ObjectStore, o Object, body io.Reader, opts CopyOptions) error {
	if p, ok := dst.(objects.Putter); ok {
		return p.Put(ctx, o.Key, body, o.Size, o.SHA256)
	}
	if mp, ok := dst.(objects.Multipart); ok && o.Size > opts.MultipartAbove {
		return putParts(ctx, dst, mp, o, body, opts)
	}
	req, err := dst.PresignPut(ctx, o.Key, o.Size, o.SHA256, time.Hour)
	if err != nil {
		return err
	}
	return send(ctx, opts.HTTP, req, io.LimitReader(body, o.Size), o.Size)
}

// putParts uploads body in parts of opts.PartSize (more when 10000 parts
// would not hold it).
func putParts(ctx context.Context, dst objects.ObjectStore, mp objects.Multipart, o Object, body io.Reader, opts CopyOptions) (err error) {
	part := max(opts.PartSize, (o.Size+9999)/10000, objects.MinPartSize)
	id, err := mp.CreateMultipart(ctx, o.Key)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			mp.AbortMultipart(context.WithoutCancel(ctx), o.Key, id)
		}
	}()
	for n, off := int32(1), int64(0); off < o.Size; n, off = n+1, off+part {
		size := min(part, o.Size-off)
		req, err := mp.PresignPart(ctx, o.Key, id, n, size, time.Hour)
		if err != nil {
			return err
		}
		if err := send(ctx, opts.HTTP, req, io.LimitReader(body, size), size); err != nil {
			return fmt.Errorf("part %d: %w", n, err)
		}
	}
	return mp.CompleteMultipart(ctx, o.Key, id)
}

// send makes a minted request with body (exactly size bytes).
func send(ctx context.Context, hc *http.Client, sr objects.SignedRequest, body io.Reader, size int64) error {
	req, err := http.NewRequestWithContext(ctx, sr.Method, sr.URL, io.NopCloser(body))
	if err != nil {
		return err
	}
	for k, v := range sr.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2<<10))
	return portal.Errorf(portal.EInternal, "the store answered %s: %s", resp.Status, strings.TrimSpace(string(msg)))
}
