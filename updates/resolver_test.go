package updates

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portaldist/portal/access"
	"github.com/portaldist/portal/tokens"
)

// A product the catalog has but the index has not loaded yet (created after
// Load, before the watch caught up) has nothing published: the resolver
// answers "nothing", never "no product".
func TestResolverProductNotYetIndexed(t *testing.T) {
	f := newFixture(t)
	x := f.index()
	f.product("late")
	rs := NewResolver(x, f.cat, true, func() time.Time { return f.now })
	// An admin: the product is licensed, and Available is no update check.
	ctx := access.NewContext(context.Background(), access.ForToken(tokens.Token{ID: "t", Role: tokens.Admin}))
	_, ok, err := rs.Update(ctx, Request{Product: "late", Platform: "linux", Arch: "amd64", UpdateCheck: true})
	if err != nil || ok {
		t.Fatalf("Update = %v, %v; want nothing", ok, err)
	}
	var na *NotAvailable
	if _, err := rs.Resolve(ctx, Request{Product: "late", Platform: "linux", Arch: "amd64", UpdateCheck: true}); !errors.As(err, &na) {
		t.Fatalf("Resolve = %v, want NotAvailable", err)
	}
	if rs, err := rs.Available(ctx, "late", 20); err != nil || len(rs) != 0 {
		t.Fatalf("Available = %v, %v", rs, err)
	}
	// The index itself still says not_found for a product it never heard of.
	if _, _, _, err := x.Latest(Query{Product: "late", Platform: "linux", Arch: "amd64"}); err == nil {
		t.Fatal("Latest on an unindexed product: no error")
	}
}
