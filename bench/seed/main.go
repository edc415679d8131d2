// Command seed fills a portal data directory with the benchmark catalog of
// scripts/bench.sh: one licensed product with N releases of four platforms
// each, M licenses (unlimited downloads), one admin token, and real objects
// in the local store for the newest releases.
//
//	seed -data-dir DIR -out DIR [-releases 10000] [-licenses 100000]
//	     [-service-releases 5] [-blob-size 256MiB] [-keys 1000]
//
// It opens the data directory with app.Open, the wiring `portal serve` uses,
// under the default configuration (bbolt with NoSync, and Offline: no
// upload sweep, no index reloads competing with the writes) while no server
// runs. The newest -service-releases releases go the way the API takes them: releases.Service.CreateRelease,
// publishing.Service.AddArtifact, a PUT of real bytes through the local
// store's /blobs/ handler, publishing.Service.Complete (read back, SHA-256,
// SHA-512, Ed25519 and minisign signatures) and releases.Service.Publish.
// That costs ~10 store transactions per release, so the older releases are
// written straight into the catalog's key layout (rel/r/<slug>/<VersionKey>)
// in transactions of store.MaxTxnOps releases each (the most one
// transaction may write), as records built the same way: real digests
// and signatures over small deterministic contents, a fresh object key, no
// object behind it (nothing downloads them). The tool checks that both kinds
// of record have the same JSON fields, so a change of the catalog's records
// fails here loudly instead of seeding a different shape.
//
// Files written to -out:
//
//	token        the admin token
//	keys         -keys license keys, one a line
//	seed.json    product, versions, the downloadable object and timings
package main

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/signing"
	"github.com/portaldist/portal/store"
	"github.com/portaldist/portal/tokens"
)

// platforms are the four builds of every release; the first is the one the
// benchmark downloads (platform=linux&arch=amd64), an AppImage so that the
// electron feed latest-linux.yml offers it.
var platforms = []struct{ platform, arch, ext string }{
	{"linux", "amd64", "AppImage"},
	{"linux", "arm64", "tar.gz"},
	{"darwin", "universal", "zip"},
	{"windows", "amd64", "msi"},
}

// Summary is seed.json.
type Summary struct {
	Product         string `json:"product"`
	Releases        int    `json:"releases"`
	Licenses        int    `json:"licenses"`
	Oldest          string `json:"oldest"`
	Latest          string `json:"latest"`
	BlobFilename    string `json:"blob_filename"`
	BlobObjectKey   string `json:"blob_object_key"`
	BlobSize        int64  `json:"blob_size"`
	BlobSHA256      string `json:"blob_sha256"`
	ServiceReleases int    `json:"service_releases"`
	// ServicePerRel is what one release of four small files costs through
	// the services (CreateRelease .. Publish, uploads included), measured on
	// all but the newest (which carries the big blob).
	ServicePerRel    float64 `json:"service_seconds_per_release"`
	ServiceProjected float64 `json:"service_seconds_projected_for_all"`
	DirectSeconds    float64 `json:"direct_seconds"` // all direct releases
	LicenseSeconds   float64 `json:"license_seconds"`
	TotalSeconds     float64 `json:"total_seconds"`
}

func main() {
	dataDir := flag.String("data-dir", "", "portal data directory (created)")
	out := flag.String("out", "", "directory for token, keys and seed.json")
	slug := flag.String("product", "app", "product slug")
	nRel := flag.Int("releases", 10000, "releases")
	nSvc := flag.Int("service-releases", 5, "newest releases made through the services, with real objects")
	nLic := flag.Int("licenses", 100000, "licenses")
	nKeys := flag.Int("keys", 1000, "license keys written to OUT/keys")
	blobSize := flag.Int64("blob-size", 256<<20, "bytes of the newest linux/amd64 artifact")
	smallSize := flag.Int64("small-size", 64<<10, "bytes of the other real artifacts")
	flag.Parse()
	if *dataDir == "" || *out == "" || *nRel < 1 || *nSvc < 1 || *nSvc > *nRel || *nKeys > *nLic {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dataDir, *out, *slug, *nRel, *nSvc, *nLic, *nKeys, *blobSize, *smallSize); err != nil {
		log.Fatalf("seed: %v", err)
	}
}

// storeEnv is the environment's PORTAL_STORE_* settings and
// PORTAL_OBJECTS_LOCAL_SHARED, the only ones the seed takes from it.
func storeEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PORTAL_STORE_") || strings.HasPrefix(kv, "PORTAL_OBJECTS_LOCAL_SHARED=") {
			out = append(out, kv)
		}
	}
	return out
}

func version(i int) string { return fmt.Sprintf("1.%d.%d", i/100, i%100) }

func filename(slug, ver string, i int) string {
	p := platforms[i]
	return fmt.Sprintf("%s-%s-%s-%s.%s", slug, ver, p.platform, p.arch, p.ext)
}

func run(dataDir, out, slug string, nRel, nSvc, nLic, nKeys int, blobSize, smallSize int64) (err error) {
	start := time.Now()
	// The seed writes offline, as a command on the store: its changes are
	// audited as the local operator's.
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
	for _, d := range []string{dataDir, out} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	// The default config: no master key, the local store under
	// DATA/objects with its keyring file, reached at the default listen
	// address; the metadata store as PORTAL_STORE_* say (bbolt in DATA by
	// default, or an etcd cluster with PORTAL_OBJECTS_LOCAL_SHARED=true).
	cfg, err := configs.Load(configs.LoadOptions{Env: storeEnv(), Flags: map[string]string{"data_dir": dataDir}})
	if err != nil {
		return err
	}
	p, err := app.Open(ctx, cfg, app.Options{NoSync: true, Offline: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, p.Close(ctx)) }()
	db, catalog, keys, pub := p.DB, p.Catalog, p.Keys, p.Publishing

	sealed, err := keys.New(slug)
	if err != nil {
		return err
	}
	if _, err := catalog.CreateProduct(ctx, releases.Product{Slug: slug, Name: "Benchmark App", Distribution: releases.Licensed, SigningKey: sealed}); err != nil {
		return err
	}
	key, err := keys.SigningKeys(ctx, slug)
	if err != nil {
		return err
	}

	sum := Summary{Product: slug, Releases: nRel, Licenses: nLic, Oldest: version(0), Latest: version(nRel - 1), ServiceReleases: nSvc}

	// Older releases, straight into the store.
	t := time.Now()
	nDirect := nRel - nSvc
	base := time.Now().UTC().Truncate(time.Second).Add(-time.Duration(nRel) * time.Hour)
	const batch = store.MaxTxnOps
	for lo := 0; lo < nDirect; lo += batch {
		hi := min(lo+batch, nDirect)
		recs := make([][2][]byte, 0, hi-lo)
		for i := lo; i < hi; i++ {
			r, err := directRelease(key, slug, i, base.Add(time.Duration(i)*time.Hour))
			if err != nil {
				return err
			}
			v, err := releases.ParseVersion(r.Version)
			if err != nil {
				return err
			}
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			recs = append(recs, [2][]byte{append([]byte("rel/r/"+slug+"/"), releases.VersionKey(v)...), b})
		}
		if err := db.Update(ctx, func(tx store.Tx) error {
			for _, kv := range recs {
				if err := tx.Put(kv[0], kv[1]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	sum.DirectSeconds = time.Since(t).Seconds()
	if nDirect > 0 {
		r, err := catalog.Release(ctx, slug, version(nDirect-1))
		if err != nil || r.Status != releases.Published || len(r.Artifacts) != len(platforms) {
			return fmt.Errorf("a directly written release is not readable through the catalog: %+v, %v", r, err)
		}
	}

	// Newest releases, through the services, with real objects.
	t = time.Now()
	blobs := p.Blobs
	var small time.Duration
	for i := nDirect; i < nRel; i++ {
		if i == nRel-1 {
			small = time.Since(t)
		}
		ver := version(i)
		if _, err := catalog.CreateRelease(ctx, slug, releases.NewRelease{Version: ver, Channel: "stable", Notes: "Release " + ver}); err != nil {
			return err
		}
		for j := range platforms {
			size := smallSize
			if i == nRel-1 && j == 0 {
				size = blobSize
			}
			data := content(slug, ver, j, size)
			a, up, err := pub.AddArtifact(ctx, slug, ver, releases.NewArtifact{
				Filename: filename(slug, ver, j), Platform: platforms[j].platform, Arch: platforms[j].arch,
				Size: size, SHA256: sha256Hex(data),
			}, "")
			if err != nil {
				return err
			}
			if err := put(blobs, up, data); err != nil {
				return fmt.Errorf("upload %s: %w", a.Filename, err)
			}
			a, err = pub.Complete(ctx, slug, ver, a.Filename)
			if err != nil {
				return err
			}
			if i == nRel-1 && j == 0 {
				sum.BlobFilename, sum.BlobObjectKey, sum.BlobSize, sum.BlobSHA256 = a.Filename, a.ObjectKey, a.Size, a.SHA256
			}
		}
		if _, err := catalog.Publish(ctx, slug, ver); err != nil {
			return err
		}
	}
	if nSvc > 1 {
		sum.ServicePerRel = small.Seconds() / float64(nSvc-1)
		sum.ServiceProjected = sum.ServicePerRel * float64(nRel)
	}
	if nDirect > 0 {
		if err := sameShape(ctx, catalog, slug, version(nDirect-1), version(nRel-1)); err != nil {
			return err
		}
	}

	// Licenses, through licenses.Service.Put in batches.
	t = time.Now()
	lics := p.Licenses
	kf, err := os.Create(filepath.Join(out, "keys"))
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	// Random IDs and keys, as licenses made over time through the API: the
	// records and the key index are written at random places in the file,
	// which is slow (one of Put's small transactions dirties two random
	// leaves a license; minutes for 1,000,000, hence scripts/bench.sh's
	// cache) but lays the file out as a real catalog's is, which decides
	// how much of it a start maps into memory. (Writing them in key-digest
	// order with ascending IDs is faster, but interleaves index and record
	// pages so that the start-up scan of the key index maps nearly the
	// whole file: 1.5 GB resident instead of 0.4.)
	const licBatch = 10000
	for lo := 0; lo < nLic; lo += licBatch {
		hi := min(lo+licBatch, nLic)
		ls := make([]licenses.License, 0, hi-lo)
		for i := lo; i < hi; i++ {
			k := secret.New(licenses.KeyPrefix)
			if i < nKeys {
				fmt.Fprintln(kf, k)
			}
			l := licenses.License{
				ID: randomHex(8), Customer: "customer " + strconv.Itoa(i), Product: slug,
				OnExpiry: licenses.OnExpiryRevoke, DownloadsPerDay: 0, Status: licenses.Active,
				CreatedAt: now, UpdatedAt: now, KeyHint: secret.Hint(k), KeyDigest: secret.Digest(k),
			}
			if err := l.Validate(); err != nil {
				return err
			}
			ls = append(ls, l)
		}
		if err := lics.Put(ctx, ls); err != nil {
			return err
		}
	}
	if err := kf.Close(); err != nil {
		return err
	}
	sum.LicenseSeconds = time.Since(t).Seconds()

	_, tok, err := p.Tokens.Create(ctx, "bench", tokens.Admin, nil)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "token"), []byte(tok+"\n"), 0o600); err != nil {
		return err
	}
	sum.TotalSeconds = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(sum, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "seed.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seed: %d releases (%d direct in %.1fs; %d through the services, %.1f ms per small release, %.0fs projected for all), %d licenses in %.1fs, total %.1fs\n",
		nRel, nDirect, sum.DirectSeconds, nSvc, 1000*sum.ServicePerRel, sum.ServiceProjected, nLic, sum.LicenseSeconds, sum.TotalSeconds)
	return nil
}

// directRelease is release i as the services leave it after
// CreateRelease, AddArtifact, Complete and Publish of four small files.
func directRelease(key *signing.KeySet, slug string, i int, created time.Time) (releases.Release, error) {
	ver := version(i)
	uploaded := created.Add(time.Minute)
	published := created.Add(2 * time.Minute)
	r := releases.Release{
		Product: slug, Version: ver, Channel: "stable", Status: releases.Published,
		Notes: "Release " + ver, CreatedAt: created, PublishedAt: &published,
		Artifacts: make([]releases.Artifact, 0, len(platforms)),
	}
	for j, p := range platforms {
		data := content(slug, ver, j, 256)
		d := signing.NewDigester(publishing.DefaultSparkleMaxSize)
		d.Write(data)
		s := d.Sum()
		fn := filename(slug, ver, j)
		minisig, err := key.Minisign.MinisignSign(s.BLAKE2b512, signing.TrustedComment(uploaded, fn))
		if err != nil {
			return r, err
		}
		up := uploaded
		r.Artifacts = append(r.Artifacts, releases.Artifact{
			Filename: fn, Platform: p.platform, Arch: p.arch, Size: int64(len(data)),
			SHA256: s.SHA256Hex(), SHA512: s.SHA512Base64(), Status: releases.Uploaded,
			Signatures: map[string]string{"ed25519": key.Sparkle.SparkleSign(s.Data), "minisign": string(minisig)},
			CreatedAt:  created, UploadedAt: &up,
			ObjectKey: fmt.Sprintf("p/%s/%s", slug, randomHex(16)),
		})
	}
	return r, nil
}

// sameShape checks that a directly written release and one the services
// wrote have the same JSON fields, recursively (values differ, of course).
func sameShape(ctx context.Context, catalog *releases.Service, slug, direct, service string) error {
	var shapes [2]any
	for n, ver := range []string{direct, service} {
		r, err := catalog.Release(ctx, slug, ver)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(r)
		var m any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		shapes[n] = shape(m)
	}
	if !reflect.DeepEqual(shapes[0], shapes[1]) {
		a, _ := json.Marshal(shapes[0])
		b, _ := json.Marshal(shapes[1])
		return fmt.Errorf("directly written release %s has another shape than %s written by the services:\n%s\n%s", direct, service, a, b)
	}
	return nil
}

func shape(v any) any {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		out := make([]any, 0, 2*len(keys))
		for _, k := range keys {
			out = append(out, k, shape(v[k]))
		}
		return out
	case []any:
		if len(v) == 0 {
			return []any{}
		}
		return []any{shape(v[0])}
	default:
		return fmt.Sprintf("%T", v)
	}
}

// content is the deterministic bytes of artifact j of a version.
func content(slug, ver string, j int, size int64) []byte {
	seed := [32]byte{}
	copy(seed[:], slug+"/"+ver+"/"+strconv.Itoa(j))
	b := make([]byte, size)
	rand.NewChaCha8(seed).Read(b) // fast, reproducible
	return b
}

// put uploads data the way a publisher does, through the local store's
// /blobs/ handler (in process: no server runs while seeding).
func put(h http.Handler, up publishing.Upload, data []byte) error {
	if up.Multipart {
		return fmt.Errorf("unexpected multipart upload on the local store")
	}
	req := httptest.NewRequest(up.Method, up.URL, bytes.NewReader(data))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(data))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		b, _ := io.ReadAll(w.Body)
		return fmt.Errorf("HTTP %d: %s", w.Code, strings.TrimSpace(string(b)))
	}
	return nil
}

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	crand.Read(b)
	return hex.EncodeToString(b)
}
