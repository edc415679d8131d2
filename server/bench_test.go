package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
)

// BenchmarkHandlers measures the hot endpoints of scripts/bench.sh in
// process (handler only, no sockets), next to a minimal Gin handler, so a
// CPU profile shows where the portal's time per request goes:
//
//	go test -run '^$' -bench BenchmarkHandlers -cpuprofile cpu.out ./server
//	go tool pprof -top -cum server.test cpu.out
//
// The catalog is small (the update index and "latest" are in memory and flat
// in the catalog's size, see updates.BenchmarkLatest); the 10,000 licenses
// are used in turn, as the wrk script does.
func BenchmarkHandlers(b *testing.B) {
	h, keys, link := benchServer(b)
	rpmPrimaryPath := benchRPMPrimary(b, h, keys[0])
	const p = "app"
	baseline := gin.New()
	baseline.GET("/", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok", "version": "1.0.0"}) })

	cases := []struct {
		name    string
		h       http.Handler
		target  string
		license bool
		want    int
		// basic sends the license as apt does (HTTP Basic).
		basic bool
	}{
		{"gin-baseline", baseline, "/", false, 200, false},
		{"upgrade", h, "/v1/products/" + p + "/upgrade?current=1.0.0&platform=linux&arch=amd64", true, 200, false},
		{"grant-json", h, "/v1/products/" + p + "/releases/latest/download?platform=linux&arch=amd64", true, 200, false},
		{"share-link", h, link, false, 303, false},
		// apt-get update: every license sees the whole repository, so all
		// share one rendered, signed suite.
		{"apt-inrelease", h, "/apt/" + p + "/dists/stable/InRelease", true, 200, true},
		{"apt-packages", h, "/apt/" + p + "/dists/stable/main/binary-amd64/Packages.xz", true, 200, true},
		// dnf makecache: the same for the YUM repository.
		{"rpm-repomd", h, "/rpm/" + p + "/stable/x86_64/repodata/repomd.xml", true, 200, true},
		{"rpm-primary", h, rpmPrimaryPath, true, 200, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var n atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", c.target, nil)
					switch {
					case c.basic:
						req.SetBasicAuth("license", keys[n.Add(1)%uint64(len(keys))])
					case c.license:
						req.Header.Set("Accept", "application/json")
						req.Header.Set("Authorization", "License "+keys[n.Add(1)%uint64(len(keys))])
					}
					w := httptest.NewRecorder()
					c.h.ServeHTTP(w, req)
					if w.Code != c.want {
						b.Fatalf("%s: status %d: %s", c.target, w.Code, w.Body)
					}
				}
			})
		})
	}
}

// benchServer opens a portal with app.Open as `portal serve` does with the
// default configuration (local store, ledger with the default queue and
// flush interval), on a NoSync bbolt file, with product "app", releases
// 1.0.0 .. 1.0.9 published through the services with one real linux/amd64
// object each (and a .deb of the same version, for the APT repository, made
// with dpkg-deb), and 10,000 licenses. It returns the handler, the license
// keys and the path of a share link.
func benchServer(b *testing.B) (http.Handler, []string, string) {
	b.Helper()
	ctx := cliCtx
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{"data_dir": b.TempDir(), "log.access": "false"}})
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, app.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := a.Close(context.Background()); err != nil {
			b.Error(err)
		}
	})
	base := cfg.PublicURL()
	catalog, keys := a.Catalog, a.Keys
	sealed, err := keys.New("app")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := catalog.CreateProduct(ctx, releases.Product{Slug: "app", Distribution: releases.Licensed, SigningKey: sealed}); err != nil {
		b.Fatal(err)
	}
	debDir := b.TempDir()
	for i := range 10 {
		ver := fmt.Sprintf("1.0.%d", i)
		if _, err := catalog.CreateRelease(ctx, "app", releases.NewRelease{Version: ver, Notes: "Release " + ver}); err != nil {
			b.Fatal(err)
		}
		data := make([]byte, 1024)
		rand.Read(data)
		benchUpload(b, ctx, a, ver, "app-"+ver+"-linux-amd64.tar.gz", "amd64", data)
		debPath := debtest.Build(b, debDir, debtest.Package{Name: "app", Version: ver + "-1", Arch: "amd64"})
		deb, err := os.ReadFile(debPath)
		if err != nil {
			b.Fatal(err)
		}
		benchUpload(b, ctx, a, ver, filepath.Base(debPath), "amd64", deb)
		benchAddPackage(b, a, ver, "amd64", rpmtest.Build(b, rpmtest.Spec{Name: "app", Version: ver, Target: "x86_64"}))
		if _, err := catalog.Publish(ctx, "app", ver); err != nil {
			b.Fatal(err)
		}
	}

	lics := a.Licenses
	now := time.Now().UTC().Truncate(time.Second)
	var licKeys []string
	ls := make([]licenses.License, 0, 10000)
	for i := range 10000 {
		k := secret.New(licenses.KeyPrefix)
		licKeys = append(licKeys, k)
		id := make([]byte, 8)
		rand.Read(id)
		ls = append(ls, licenses.License{
			ID: hex.EncodeToString(id), Customer: fmt.Sprintf("customer %d", i), Product: "app",
			OnExpiry: licenses.OnExpiryRevoke, Status: licenses.Active, CreatedAt: now, UpdatedAt: now,
			KeyHint: secret.Hint(k), KeyDigest: secret.Digest(k),
		})
	}
	if err := lics.Put(ctx, ls); err != nil {
		b.Fatal(err)
	}

	// Make every change above visible before measuring, not whenever the
	// index's watch gets to it.
	if err := a.Index.Load(ctx); err != nil {
		b.Fatal(err)
	}
	srv := a.Server

	body, _ := json.Marshal(map[string]any{"product": "app", "version": "1.0.9", "filename": "app-1.0.9-linux-amd64.tar.gz", "ttl": 3600})
	req := httptest.NewRequest("POST", "/v1/links", bytes.NewReader(body))
	req.Header.Set("Authorization", "License "+licKeys[0])
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, req)
	var out struct{ URL string }
	if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &out) != nil || len(out.URL) <= len(base) {
		b.Fatalf("create link: %d %s", w.Code, w.Body)
	}
	return srv, licKeys, out.URL[len(base):]
}

// benchUpload declares data as filename (linux/arch) on the draft release
// ver of product app, uploads it through a's /blobs/ handler and completes
// it.
func benchUpload(b *testing.B, ctx context.Context, a *app.App, ver, filename, arch string, data []byte) {
	b.Helper()
	sum := sha256.Sum256(data)
	art, up, err := a.Publishing.AddArtifact(ctx, "app", ver, releases.NewArtifact{
		Filename: filename, Platform: "linux", Arch: arch, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
	}, "")
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(up.Method, up.URL, bytes.NewReader(data))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	a.Blobs.ServeHTTP(w, req)
	if w.Code/100 != 2 {
		b.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	if _, err := a.Publishing.Complete(ctx, "app", ver, art.Filename); err != nil {
		b.Fatal(err)
	}
}
