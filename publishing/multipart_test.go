package publishing

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// generated is a deterministic file of size bytes cut into parts of
// partSize: part i is a ChaCha8 stream seeded with (seed, i), so any part
// can be produced on its own, in any order, without holding the file.
type generated struct {
	seed           uint64
	size, partSize int64
}

func (g generated) parts() int { return int((g.size + g.partSize - 1) / g.partSize) }

func (g generated) partLen(i int) int64 { return min(g.partSize, g.size-int64(i)*g.partSize) }

// part returns part i (0-based).
func (g generated) part(i int) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], g.seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(i))
	return io.LimitReader(rand.NewChaCha8(s), g.partLen(i))
}

// digests streams the whole file through a Digester that keeps nothing.
func (g generated) digests() signing.Digests {
	d := signing.NewDigester(-1)
	for i := range g.parts() {
		io.Copy(d, g.part(i))
	}
	return d.Sum()
}

// bytes returns the whole file; only for small files.
func (g generated) bytes() []byte {
	var b bytes.Buffer
	for i := range g.parts() {
		io.Copy(&b, g.part(i))
	}
	return b.Bytes()
}

// uploadParts PUTs the given parts (1-based numbers; all when nil) in
// parallel, one goroutine each, through the minted part URLs only.
func uploadParts(up Upload, g generated, which []int) error {
	if which == nil {
		for i := range len(up.Parts) {
			which = append(which, i+1)
		}
	}
	errs := make(chan error, len(which))
	var wg sync.WaitGroup
	for _, n := range which {
		wg.Go(func() {
			status, msg, err := send(up.Parts[n-1], g.part(n-1), -1)
			if err == nil && status != http.StatusOK {
				err = fmt.Errorf("status %d: %s", status, msg)
			}
			if err != nil {
				errs <- fmt.Errorf("part %d: %w", n, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (e *env) declareGenerated(filename string, g generated) (releases.Artifact, Upload) {
	e.t.Helper()
	sum := g.digests()
	a, up, err := e.svc.AddArtifact(e.ctx, product, version, declaration(filename, g.size, sum.SHA256Hex()), "")
	if err != nil {
		e.t.Fatalf("AddArtifact %s: %v", filename, err)
	}
	return a, up
}

// checkMultipart checks the shape of a multipart Upload for g.
func checkMultipart(t *testing.T, up Upload, g generated) {
	t.Helper()
	if !up.Multipart || up.PartSize != g.partSize || len(up.Parts) != g.parts() || up.URL != "" {
		t.Fatalf("upload: multipart %v, part size %d, %d parts; want %d parts of %d", up.Multipart, up.PartSize, len(up.Parts), g.parts(), g.partSize)
	}
	for i, p := range up.Parts {
		if p.Method != "PUT" || p.Headers["Content-Length"] != fmt.Sprint(g.partLen(i)) {
			t.Fatalf("part %d: %s, headers %v; want PUT of %d bytes", i+1, p.Method, p.Headers, g.partLen(i))
		}
		if time.Until(p.ExpiresAt) < 50*time.Minute || up.ExpiresAt.After(p.ExpiresAt) {
			t.Fatalf("part %d expires at %v, upload at %v", i+1, p.ExpiresAt, up.ExpiresAt)
		}
	}
}

// expectUploadGone fails unless the multipart upload is gone: a minted part
// URL for it no longer works.
func (e *env) expectUploadGone(key, uploadID string) {
	e.t.Helper()
	sr, err := e.objects.(objects.Multipart).PresignPart(e.ctx, key, uploadID, 1, 1, time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	status, _, err := send(sr, strings.NewReader("x"), -1)
	if err != nil || status/100 != 4 {
		e.t.Fatalf("PUT to a part of an aborted upload: %d, %v; want 4xx", status, err)
	}
}

func TestMultipartSmall(t *testing.T) {
	objs := s3test.Store(t)
	const mib = 1 << 20
	opts := Options{MultipartThreshold: 6 * mib, PartSize: 5 * mib}
	e := newEnv(t, objs, opts)
	g := generated{seed: 1, size: 12 * mib, partSize: 5 * mib}
	data := g.bytes()

	a, up := e.declareGenerated("big.zip", g)
	checkMultipart(t, up, g)
	uploadID := e.artifact(a.Filename).UploadID
	if uploadID == "" || a.UploadID == "" || a.Public().UploadID != "" {
		t.Fatalf("upload ID %q in the catalog, %q returned: want it recorded and server-only", uploadID, a.UploadID)
	}

	_, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if pe := portalError(t, err, portal.EConflict); !strings.HasPrefix(pe.Message, "upload not complete: ") {
		t.Fatalf("message %q", pe.Message)
	}
	if got := e.artifact(a.Filename); got.Status != releases.Waiting || got.UploadID != uploadID {
		t.Fatalf("after an early complete: %+v, want waiting with its upload", got)
	}

	// A part PUT again replaces the earlier one: first wrong bytes for part 1.
	status, msg, err := send(up.Parts[0], bytes.NewReader(bytes.Repeat([]byte{'x'}, int(g.partLen(0)))), -1)
	if err != nil || status != http.StatusOK {
		t.Fatalf("wrong part 1: %d %s %v", status, msg, err)
	}
	if err := uploadParts(up, g, nil); err != nil {
		t.Fatal(err)
	}
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	e.verifyUploaded(got, data)
	if again, err := e.svc.Complete(e.ctx, product, version, a.Filename); err != nil || again.UploadedAt == nil || !again.UploadedAt.Equal(*got.UploadedAt) {
		t.Fatalf("second Complete: %+v, %v", again, err)
	}
	if _, err := e.cat.Publish(e.ctx, product, version); err != nil {
		t.Fatal(err)
	}
}

// TestMultipartIncomplete: the store assembles whatever parts it has, so a
// complete with a part missing fails verification, and the object and the
// upload are gone. Deleting or sweeping a waiting multipart artifact aborts
// its upload.
func TestMultipartIncomplete(t *testing.T) {
	objs := s3test.Store(t)
	const mib = 1 << 20
	e := newEnv(t, objs, Options{MultipartThreshold: 6 * mib, PartSize: 5 * mib, UploadGrace: time.Second})
	g := generated{seed: 2, size: 12 * mib, partSize: 5 * mib}

	a, up := e.declareGenerated("gap.zip", g)
	if err := uploadParts(up, g, []int{1, 3}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	pe := portalError(t, err, portal.EUnprocessable)
	if act := pe.Details["actual"].(map[string]any); act["size"] != 7*int64(mib) {
		t.Fatalf("actual %v, want the 7 MiB of parts 1 and 3", act)
	}
	if got := e.artifact(a.Filename); got.Status != releases.Failed || got.UploadID != "" {
		t.Fatalf("%+v, want failed", got)
	}
	e.expectGone(a.ObjectKey)

	// Deleted while waiting: upload aborted.
	a, up = e.declareGenerated("deleted.zip", g)
	id := e.artifact(a.Filename).UploadID
	if err := uploadParts(up, g, []int{1}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteArtifact(e.ctx, product, version, a.Filename); err != nil {
		t.Fatal(err)
	}
	e.expectUploadGone(a.ObjectKey, id)

	// Expired while waiting: failed by the sweeper, upload aborted.
	a, up = e.declareGenerated("expired.zip", g)
	id = e.artifact(a.Filename).UploadID
	if err := uploadParts(up, g, []int{2}); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(a.UploadExpiresAt.Add(time.Minute))
	if n, err := e.svc.Sweep(e.ctx); n != 1 || err != nil {
		t.Fatalf("Sweep: %d, %v", n, err)
	}
	if got := e.artifact(a.Filename); got.Status != releases.Failed || got.Failure != FailureExpired || got.UploadID != "" {
		t.Fatalf("%+v, want failed as expired", got)
	}
	e.expectUploadGone(a.ObjectKey, id)
}

// TestMultipartLocal: a backend without multipart support always gets a
// single PUT.
func TestMultipartLocal(t *testing.T) {
	st, _ := objectstest.LocalStore(t)
	const mib = 1 << 20
	e := newEnv(t, st, Options{MultipartThreshold: 1 * mib, PartSize: 5 * mib})
	g := generated{seed: 3, size: 6 * mib, partSize: 6 * mib}
	a, up := e.declareGenerated("one.zip", g)
	put(t, up, g.bytes(), 0)
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatal(err)
	}
	e.verifyUploaded(got, g.bytes())
}

// TestMultipartLarge uploads a 200 MiB generated file in four 64 MiB parts,
// in parallel, and verifies it. The test never holds the file; Complete
// buffers it for the Sparkle signature (it is under the 256 MiB default).
func TestMultipartLarge(t *testing.T) {
	objs := s3test.Store(t)
	const mib = 1 << 20
	e := newEnv(t, objs, Options{})
	g := generated{seed: 4, size: 200 * mib, partSize: 64 * mib}
	sum := g.digests()

	a, up, err := e.svc.AddArtifact(e.ctx, product, version, declaration("large.tar.gz", g.size, sum.SHA256Hex()), "")
	if err != nil {
		t.Fatal(err)
	}
	checkMultipart(t, up, g)
	if up.Parts[3].Headers["Content-Length"] != fmt.Sprint(8*mib) {
		t.Fatalf("last part headers %v, want 8 MiB", up.Parts[3].Headers)
	}
	start := time.Now()
	if err := uploadParts(up, g, nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("uploaded 4 parts in %v", time.Since(start))
	start = time.Now()
	got, err := e.svc.Complete(e.ctx, product, version, a.Filename)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	t.Logf("completed (assembled, read back, signed) in %v", time.Since(start))
	if got.Status != releases.Uploaded || got.SHA512 != sum.SHA512Base64() {
		t.Fatalf("%+v, want uploaded with SHA-512 %s", got, sum.SHA512Base64())
	}
	if _, err := signing.ParseSparkleSignature(got.Signatures["ed25519"]); err != nil {
		t.Fatalf("Sparkle signature: %v", err)
	}
	if _, err := signing.VerifyMinisign(e.key.Minisign.MinisignPublicKey(), sum.BLAKE2b512, []byte(got.Signatures["minisign"])); err != nil {
		t.Fatalf("minisign: %v", err)
	}
	info, err := objs.Stat(e.ctx, a.ObjectKey)
	if err != nil || info.Size != g.size {
		t.Fatalf("Stat: %+v, %v", info, err)
	}
}

func TestPartSize(t *testing.T) {
	const mib = 1 << 20
	s := New(nil, nil, nil, Options{PartSize: 64 * mib})
	for _, c := range []struct{ size, want int64 }{
		{1, 64 * mib},
		{10000 * 64 * mib, 64 * mib},
		{10000*64*mib + 1, 65 * mib},
		{5 << 40, 525 * mib},
	} {
		ps := s.partSize(c.size)
		if ps != c.want || (c.size+ps-1)/ps > maxParts {
			t.Errorf("partSize(%d) = %d, want %d", c.size, ps, c.want)
		}
	}
}
