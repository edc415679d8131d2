package licenses_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/portaldist/portal/audit"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/secret"
	"github.com/portaldist/portal/store/bolt"
)

// BenchmarkDecide measures the entitlement decision on the shapes a
// download meets: a plain license, one with a version constraint (parsed
// once and cached on the license), a perpetual-fallback license past its
// expiry, and a refusal (which builds an error).
func BenchmarkDecide(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	pub := now.Add(-30 * 24 * time.Hour)
	expired := now.Add(-24 * time.Hour)
	target := licenses.Target{Product: "app", Version: "2.3.4", Channel: "stable", Status: releases.Published, PublishedAt: &pub, Platform: "linux"}
	cases := []struct {
		name string
		lic  licenses.License
		ok   bool
	}{
		{"plain", licenses.License{Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke}, true},
		{"constraint+channels+platforms", licenses.License{Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke,
			Constraint: ">= 2.0, < 3.0", Channels: []string{"stable", "rc"}, Platforms: []string{"linux", "darwin"}}, true},
		{"maintain-after-expiry", licenses.License{Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryMaintain, ExpiresAt: &expired}, true},
		{"refused-constraint", licenses.License{Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke, Constraint: ">= 3.0"}, false},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			l := c.lic
			l.Customer = "bench"
			if err := l.Validate(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := l.Decide(target, now); (err == nil) != c.ok {
					b.Fatalf("Decide = %v, want ok=%v", err, c.ok)
				}
			}
		})
	}
}

// BenchmarkByKey measures the license lookup every licensed request makes
// (digest, two point reads in one bbolt read transaction, JSON decode) at
// 10,000 and 1,000,000 stored licenses. The licenses are written through
// Service.Put in batches on a NoSync bbolt file; the 1,000,000 case takes
// some 30 s to seed and, like every benchmark, runs only under -bench.
func BenchmarkByKey(b *testing.B) {
	for _, n := range []int{10_000, 1_000_000} {
		b.Run(fmt.Sprintf("licenses=%d", n), func(b *testing.B) {
			svc, keys := seedLicenses(b, n)
			ctx := context.Background()
			// store: every lookup reads bbolt (a cold cache, or another
			// replica's write); cached: the request path once warm.
			for _, mode := range []struct {
				name string
				ttl  time.Duration
			}{{"store", 0}, {"cached", licenses.CacheTTL}} {
				b.Run(mode.name, func(b *testing.B) {
					svc.SetCacheTTL(mode.ttl)
					rng := rand.New(rand.NewPCG(1, 2))
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						k := keys[rng.IntN(len(keys))]
						l, err := svc.ByKey(ctx, k)
						if err != nil || !l.Covers("app") {
							b.Fatalf("ByKey = %+v, %v", l, err)
						}
					}
				})
			}
		})
	}
}

// seedLicenses stores n licenses for product "app" and returns the service
// and the keys of 10,000 of them, spread over the whole set.
func seedLicenses(b *testing.B, n int) (*licenses.Service, []string) {
	b.Helper()
	db, err := bolt.Open(filepath.Join(b.TempDir(), "portal.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	ctx := audit.WithActor(context.Background(), audit.Actor{Kind: audit.KindCLI})
	cat := releases.New(db, nil)
	if _, err := cat.CreateProduct(ctx, releases.Product{Slug: "app"}); err != nil {
		b.Fatal(err)
	}
	svc := licenses.New(db, cat, nil)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	every := max(1, n/10_000)
	var keys []string
	const batch = 20_000
	id := make([]byte, 8)
	rng := rand.New(rand.NewPCG(3, 4))
	for lo := 0; lo < n; lo += batch {
		ls := make([]licenses.License, 0, min(batch, n-lo))
		for i := lo; i < min(lo+batch, n); i++ {
			k := secret.New(licenses.KeyPrefix)
			if i%every == 0 {
				keys = append(keys, k)
			}
			for j := range id {
				id[j] = byte(rng.Uint32())
			}
			ls = append(ls, licenses.License{
				ID: hex.EncodeToString(id), Customer: fmt.Sprintf("customer %d", i), Product: "app",
				OnExpiry: licenses.OnExpiryRevoke, Status: licenses.Active,
				CreatedAt: now, UpdatedAt: now, KeyHint: secret.Hint(k), KeyDigest: secret.Digest(k),
			})
		}
		if err := svc.Put(ctx, ls); err != nil {
			b.Fatal(err)
		}
	}
	return svc, keys
}
