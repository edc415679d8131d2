package inventory_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/objects/objectstest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/publishing/inventory"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store/bolt"
)

type fixture struct {
	cat   *releases.Service
	data  map[string][]byte // object key -> content
	names map[string]string // filename -> object key
}

// catalog makes a product with a published release of n artifacts, a
// draft with one uploaded and one waiting artifact, and puts the uploaded
// ones' bytes into st.
func catalog(t *testing.T, st objects.ObjectStore, n int) fixture {
	t.Helper()
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
	db, err := bolt.Open(filepath.Join(t.TempDir(), "portal.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cat := releases.New(db, nil)
	f := fixture{cat: cat, data: map[string][]byte{}, names: map[string]string{}}
	slug := fmt.Sprintf("inv%d", time.Now().UnixNano()%1e9)
	if _, err := cat.CreateProduct(ctx, releases.Product{Slug: slug, Name: "Inventory", Distribution: releases.Open}); err != nil {
		t.Fatal(err)
	}
	add := func(ver, file string, size int, upload bool) {
		data := bytes.Repeat([]byte(file), size/len(file)+1)[:size]
		sum := sha256.Sum256(data)
		a, _, err := cat.AddArtifact(ctx, slug, ver, releases.NewArtifact{
			Filename: file, Platform: "linux", Arch: "amd64", Size: int64(size), SHA256: hex.EncodeToString(sum[:]),
		}, time.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if !upload {
			return
		}
		objectstest.Upload(t, st, a.ObjectKey, data)
		_, err = cat.Update(ctx, slug, ver, releases.Change{Action: "artifact.uploaded", Filename: file}, func(r *releases.Release) error {
			x, _ := r.Artifact(file)
			x.Status = releases.Uploaded
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		f.data[a.ObjectKey], f.names[file] = data, a.ObjectKey
	}
	for _, ver := range []string{"1.0.0", "2.0.0"} {
		if _, err := cat.CreateRelease(ctx, slug, releases.NewRelease{Version: ver}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		add("1.0.0", fmt.Sprintf("app-%d.tar.gz", i), 1000+i*7919, true)
	}
	if _, err := cat.Publish(ctx, slug, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	add("2.0.0", "draft.tar.gz", 3000, true)
	add("2.0.0", "waiting.tar.gz", 10, false)
	return f
}

func TestCatalogAndCheck(t *testing.T) {
	ctx := context.Background()
	st, _ := objectstest.LocalStore(t)
	f := catalog(t, st, 5)
	all, err := inventory.Catalog(ctx, f.cat, false)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := inventory.Catalog(ctx, f.cat, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 || len(pub) != 5 {
		t.Fatalf("%d objects, %d published; want 6 and 5", len(all), len(pub))
	}
	rep, err := inventory.Check(ctx, st, all, inventory.CheckOptions{Read: true})
	if err != nil || rep.Checked != 6 || len(rep.Problems) != 0 {
		t.Fatalf("check of a complete store: %+v, %v", rep, err)
	}

	// One object missing, one replaced by other bytes of the same size.
	gone, other := f.names["app-1.tar.gz"], f.names["app-3.tar.gz"]
	if err := st.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(f.data[other])
	bad[0] ^= 1
	objectstest.Upload(t, st, other, bad)
	for _, read := range []bool{false, true} {
		rep, err = inventory.Check(ctx, st, all, inventory.CheckOptions{Read: read})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range rep.Problems {
			got = append(got, p.Kind+" "+p.Object.Filename)
		}
		if want := []string{"missing app-1.tar.gz", "sha256 app-3.tar.gz"}; !slices.Equal(got, want) {
			t.Fatalf("read %v: problems %q, want %q", read, got, want)
		}
	}

	var s inventory.Sampler
	if r := s.Result(); r.Done {
		t.Fatal("done before running")
	}
	res := s.Run(ctx, f.cat, st, inventory.SampleOptions{Size: 100})
	if !res.Done || res.Objects != 5 || res.Sampled != 5 || res.Checked != 5 || res.Missing != 2 || res.Error != "" {
		t.Fatalf("sample: %+v", res)
	}
	if !strings.Contains(s.Result().Problems[0].String(), "app-1.tar.gz") {
		t.Fatalf("sample problems: %v", s.Result().Problems)
	}
	if got := inventory.Sample(all, 3); len(got) != 3 {
		t.Fatalf("sample of 3: %d", len(got))
	}
}

// TestCopyLocalS3AndBack copies local -> S3 and back, resumes after a
// partial copy, and reports what the source lacks.
func TestCopyLocalS3AndBack(t *testing.T) {
	ctx := context.Background()
	local, _ := objectstest.LocalStore(t)
	s3 := s3test.Store(t)
	f := catalog(t, local, 6)
	objs, err := inventory.Catalog(ctx, f.cat, false)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, o := range objs {
		total += o.Size
	}

	// A partial copy first: two objects only.
	rep, err := inventory.Copy(ctx, local, s3, objs[:2], inventory.CopyOptions{})
	if err != nil || rep.Copied != 2 || !rep.OK() {
		t.Fatalf("partial copy: %+v, %v", rep, err)
	}
	// Then all, with one object gone from the source.
	gone := f.names["app-4.tar.gz"]
	if err := local.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}
	var progress int64
	rep, err = inventory.Copy(ctx, local, s3, objs, inventory.CopyOptions{Progress: func(n int64) { progress += n }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 2 || rep.Copied != 4 || len(rep.Missing) != 1 || rep.Missing[0].Key != gone || len(rep.Failed) != 0 || rep.OK() {
		t.Fatalf("resumed copy: %+v", rep)
	}
	if want := total - int64(len(f.data[gone])); progress != want {
		t.Fatalf("progress %d bytes, want %d", progress, want)
	}
	// Everything but the missing object is in S3, byte for byte.
	chk, err := inventory.Check(ctx, s3, objs, inventory.CheckOptions{Read: true})
	if err != nil || len(chk.Problems) != 1 || chk.Problems[0].Kind != inventory.Missing || chk.Problems[0].Object.Key != gone {
		t.Fatalf("check of S3 after the copy: %+v, %v", chk, err)
	}

	// And back, into an empty local store.
	back, _ := objectstest.LocalStore(t)
	present := slices.DeleteFunc(slices.Clone(objs), func(o inventory.Object) bool { return o.Key == gone })
	rep, err = inventory.Copy(ctx, s3, back, present, inventory.CopyOptions{Concurrency: 2})
	if err != nil || rep.Copied != len(present) || !rep.OK() {
		t.Fatalf("copy back: %+v, %v", rep, err)
	}
	chk, err = inventory.Check(ctx, back, present, inventory.CheckOptions{Read: true})
	if err != nil || len(chk.Problems) != 0 {
		t.Fatalf("check after the copy back: %+v, %v", chk, err)
	}
	// A rerun copies nothing.
	rep, err = inventory.Copy(ctx, s3, back, present, inventory.CopyOptions{})
	if err != nil || rep.Skipped != len(present) || rep.Copied != 0 {
		t.Fatalf("rerun: %+v, %v", rep, err)
	}
}

// TestCopyRefusesWrongSource: a source object whose bytes are not the
// catalog's is reported, and the target keeps nothing under its key.
func TestCopyRefusesWrongSource(t *testing.T) {
	ctx := context.Background()
	for _, target := range []string{"local", "s3"} {
		t.Run(target, func(t *testing.T) {
			src, _ := objectstest.LocalStore(t)
			var dst objects.ObjectStore
			if target == "s3" {
				dst = s3test.Store(t)
			} else {
				dst, _ = objectstest.LocalStore(t)
			}
			f := catalog(t, src, 2)
			objs, _ := inventory.Catalog(ctx, f.cat, true)
			key := objs[0].Key
			bad := bytes.Clone(f.data[key])
			bad[len(bad)-1] ^= 1
			objectstest.Upload(t, src, key, bad)
			rep, err := inventory.Copy(ctx, src, dst, objs, inventory.CopyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Copied != 1 || len(rep.Failed) != 1 || rep.Failed[0].Kind != inventory.BadHash || !strings.Contains(rep.Failed[0].Detail, "source") {
				t.Fatalf("copy: %+v", rep)
			}
			if _, err := dst.Stat(ctx, key); err == nil {
				t.Fatal("the target kept the wrong bytes")
			}
		})
	}
}

func TestMultipartCopy(t *testing.T) {
	ctx := context.Background()
	src, _ := objectstest.LocalStore(t)
	dst := s3test.Store(t)
	// One object of 11 MiB, sent in parts of 5 MiB.
	data := bytes.Repeat([]byte("0123456789abcdef"), 11<<16)
	sum := sha256.Sum256(data)
	key := objectstest.RandomKey("big.bin")
	objectstest.Upload(t, src, key, data)
	o := inventory.Object{Key: key, Product: "p", Version: "1.0.0", Filename: "big.bin", Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	rep, err := inventory.Copy(ctx, src, dst, []inventory.Object{o}, inventory.CopyOptions{MultipartAbove: 6 << 20, PartSize: objects.MinPartSize})
	if err != nil || rep.Copied != 1 || !rep.OK() {
		t.Fatalf("multipart copy: %+v, %v", rep, err)
	}
	chk, err := inventory.Check(ctx, dst, []inventory.Object{o}, inventory.CheckOptions{})
	if err != nil || len(chk.Problems) != 0 {
		t.Fatalf("check: %+v, %v", chk, err)
	}
}
