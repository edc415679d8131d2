package updates

import (
	"fmt"
	"testing"

	"github.com/portaldist/portal/licenses"
)

// BenchmarkLatest measures the update check at three catalog sizes. The
// 100,000 releases are written straight through the store (see seed); the
// index is then loaded the way the server loads it.
func BenchmarkLatest(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		f := newFixture(b)
		f.product("app")
		vers := f.seed("app", n)
		x := f.index()
		lic := &licenses.License{ID: "lic_bench", Product: "app", Status: licenses.Active, OnExpiry: licenses.OnExpiryRevoke}
		cases := []struct {
			name string
			q    Query
		}{
			// An old client: the newest release fits at once.
			{"upgrade", Query{Product: "app", Current: vers[0], Platform: "linux", Arch: "amd64"}},
			{"upgrade-licensed", Query{Product: "app", Current: vers[0], Platform: "linux", Arch: "amd64", License: lic}},
			// An up-to-date client: the answer is 204.
			{"current", Query{Product: "app", Current: vers[n-1], Platform: "linux", Arch: "amd64"}},
			// A platform nothing is built for: the walk goes down to Current.
			{"no-artifact-10-back", Query{Product: "app", Current: vers[max(0, n-11)], Platform: "windows", Arch: "amd64"}},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("releases=%d/%s", n, c.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, _, err := x.Latest(c.q); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRefresh measures a reload of one product.
func BenchmarkRefresh(b *testing.B) {
	f := newFixture(b)
	f.product("app")
	f.seed("app", 10000)
	x := f.index()
	b.ReportAllocs()
	for b.Loop() {
		if err := x.Refresh(f.ctx, "app"); err != nil {
			b.Fatal(err)
		}
	}
}
