// Package inventory holds what the catalog says object storage must hold:
// the objects of uploaded artifacts, with their size and SHA-256, and the
// checks and copies that hold an object store to it. `portal objects
// verify` checks every object, `serve` a sample at start (Sampler, shown
// by /readyz), and `portal objects copy` copies them from one store to
// another, verified.
//
// The catalog is the source of truth: an object is "named" when an
// artifact in status uploaded points at it, in a release of any status
// (a draft's uploaded artifact is published later without a new upload;
// a yanked release can be unyanked). Objects nobody names (failed or
// abandoned uploads) are neither checked nor copied.
package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
)

// Object is one object the catalog names.
type Object struct {
	Key      string `json:"key"`
	Product  string `json:"product"`
	Version  string `json:"version"`
	Filename string `json:"filename"`
	// Status is the release's: draft, published or yanked.
	Status string `json:"status"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (o Object) String() string {
	return fmt.Sprintf("%s %s %s (%s, object %s)", o.Product, o.Version, o.Filename, o.Status, o.Key)
}

// Catalog lists the objects of every uploaded artifact, by product,
// version and filename; with publishedOnly, only those of published
// releases (the ones downloads are granted for).
func Catalog(ctx context.Context, cat *releases.Service, publishedOnly bool) ([]Object, error) {
	products, err := cat.Products(ctx)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var out []Object
	for _, p := range products {
		err := cat.Each(ctx, p.Slug, func(r releases.Release) error {
			if publishedOnly && r.Status != releases.Published {
				return nil
			}
			for _, a := range r.Artifacts {
				if a.Status != releases.Uploaded || a.ObjectKey == "" {
					continue
				}
				out = append(out, Object{
					Key: a.ObjectKey, Product: r.Product, Version: r.Version, Filename: a.Filename,
					Status: r.Status, Size: a.Size, SHA256: a.SHA256,
				})
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
	}
	return out, nil
}

// Problem kinds.
const (
	Missing    = "missing" // the store has no object under the key
	BadSize    = "size"    // the object's size is not the catalog's
	BadHash    = "sha256"  // the object's SHA-256 is not the catalog's
	Unreadable = "error"   // the store failed to answer (see Detail)
)

// Problem is an object that is not as the catalog says.
type Problem struct {
	Object Object `json:"object"`
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s: %s", p.Kind, p.Object, p.Detail) }

// CheckOptions tune Check.
type CheckOptions struct {
	// Concurrency is how many objects are checked at once (default 8).
	Concurrency int
	// Read reads and hashes every object. Without it an object is hashed
	// only when the store does not record its SHA-256 (an S3 multipart
	// object); Stat's size and recorded hash are trusted otherwise.
	Read bool
	// Progress, when set, is called (from any goroutine, one call at a
	// time) after each object with the bytes read for it.
	Progress func(o Object, read int64)
}

// Report is what Check found.
type Report struct {
	Checked  int       `json:"checked"`
	Problems []Problem `json:"problems"`
}

// Check checks each object in st: present, of the catalog's size, and of
// its SHA-256 (see CheckOptions.Read). It stops early only when ctx ends,
// and then returns ctx's error with what it found so far. Problems are in
// objs' order.
func Check(ctx context.Context, st objects.ObjectStore, objs []Object, opts CheckOptions) (Report, error) {
	conc := opts.Concurrency
	if conc <= 0 {
		conc = 8
	}
	problems := make([]*Problem, len(objs))
	checked := make([]bool, len(objs))
	var mu sync.Mutex
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(conc, max(len(objs), 1)) {
		wg.Go(func() {
			for i := range next {
				p, read := checkOne(ctx, st, objs[i], opts.Read)
				if ctx.Err() != nil {
					continue // an answer cut short says nothing
				}
				problems[i], checked[i] = p, true
				if opts.Progress != nil {
					mu.Lock()
					opts.Progress(objs[i], read)
					mu.Unlock()
				}
			}
		})
	}
feed:
	for i := range objs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	var rep Report
	for i := range objs {
		if checked[i] {
			rep.Checked++
		}
		if problems[i] != nil {
			rep.Problems = append(rep.Problems, *problems[i])
		}
	}
	return rep, ctx.Err()
}

// checkOne checks one object and says how many bytes it read.
func checkOne(ctx context.Context, st objects.ObjectStore, o Object, read bool) (*Problem, int64) {
	info, err := st.Stat(ctx, o.Key)
	if err != nil {
		return statProblem(o, err), 0
	}
	if info.Size != o.Size {
		return &Problem{o, BadSize, fmt.Sprintf("the store holds %d bytes, the catalog says %d", info.Size, o.Size)}, 0
	}
	if info.SHA256 != "" && info.SHA256 != o.SHA256 {
		return &Problem{o, BadHash, fmt.Sprintf("the store records SHA-256 %s, the catalog says %s", info.SHA256, o.SHA256)}, 0
	}
	if !read && info.SHA256 != "" {
		return nil, 0
	}
	sum, n, err := hashObject(ctx, st, o.Key)
	if err != nil {
		return statProblem(o, err), n
	}
	if n != o.Size {
		return &Problem{o, BadSize, fmt.Sprintf("read %d bytes, the catalog says %d", n, o.Size)}, n
	}
	if sum != o.SHA256 {
		return &Problem{o, BadHash, fmt.Sprintf("the content hashes to %s, the catalog says %s", sum, o.SHA256)}, n
	}
	return nil, n
}

func statProblem(o Object, err error) *Problem {
	if portal.ErrorCode(err) == portal.ENotFound {
		return &Problem{o, Missing, "the store has no object under this key"}
	}
	return &Problem{o, Unreadable, err.Error()}
}

// hashObject reads the object and returns its SHA-256 and length.
func hashObject(ctx context.Context, st objects.ObjectStore, key string) (string, int64, error) {
	rc, err := st.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Sample returns up to n of objs chosen at random (all of them when there
// are no more than n), in objs' order.
func Sample(objs []Object, n int) []Object {
	if len(objs) <= n {
		return objs
	}
	idx := rand.Perm(len(objs))[:n]
	sort.Ints(idx)
	out := make([]Object, n)
	for i, j := range idx {
		out[i] = objs[j]
	}
	return out
}

// SampleResult is the outcome of a start-up sample, as /readyz shows it.
type SampleResult struct {
	// Done is false while the check runs.
	Done bool `json:"done"`
	// Objects is how many objects published releases name; Sampled how
	// many were chosen and Checked how many were answered in time.
	Objects int `json:"objects"`
	Sampled int `json:"sampled"`
	Checked int `json:"checked"`
	// Missing counts the problems found (missing, wrong size or hash,
	// unreadable); Problems names the first MaxSampleProblems.
	Missing  int       `json:"missing"`
	Problems []Problem `json:"problems,omitempty"`
	// Error says why the check could not run or finish (for example the
	// time bound).
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at,omitzero"`
}

// MaxSampleProblems is how many problems a SampleResult names.
const MaxSampleProblems = 10

// SampleOptions bound a start-up sample.
type SampleOptions struct {
	// Size is how many objects to Stat (default 200).
	Size int
	// Timeout bounds the whole check (default 30 seconds).
	Timeout time.Duration
	// Concurrency is how many Stats run at once (default 8).
	Concurrency int
	// Now is the clock of SampleResult.At (default time.Now).
	Now func() time.Time
}

// Sampler runs the start-up sample and keeps its result for /readyz. The
// zero value is ready to use and reports Done false until Run ends.
type Sampler struct {
	mu  sync.Mutex
	res SampleResult
}

// Result returns the latest result.
func (s *Sampler) Result() SampleResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.res
	r.Problems = append([]Problem(nil), r.Problems...)
	return r
}

// Run checks that a sample of the published objects exist in st with
// their size (Stat only: no object is read) and keeps the result. It
// returns the result too.
func (s *Sampler) Run(ctx context.Context, cat *releases.Service, st objects.ObjectStore, opts SampleOptions) SampleResult {
	if opts.Size <= 0 {
		opts.Size = 200
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var res SampleResult
	objs, err := Catalog(ctx, cat, true)
	if err == nil {
		res.Objects = len(objs)
		sample := Sample(objs, opts.Size)
		res.Sampled = len(sample)
		var rep Report
		rep, err = Check(ctx, st, sample, CheckOptions{Concurrency: opts.Concurrency})
		res.Checked, res.Missing = rep.Checked, len(rep.Problems)
		res.Problems = rep.Problems[:min(len(rep.Problems), MaxSampleProblems)]
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("stopped after %v with %d of %d objects checked", opts.Timeout, res.Checked, res.Sampled)
	}
	if err != nil {
		res.Error = err.Error()
	}
	res.Done, res.At = true, opts.Now().UTC()
	s.mu.Lock()
	s.res = res
	s.mu.Unlock()
	return res
}
