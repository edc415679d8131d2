package tokens_test

import (
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/store/bolt"
	"github.com/portaldist/portal/tokens"
)

// BenchmarkAuthenticate measures the hot path of every API request made
// with a token: one read transaction, two gets and a decode.
func BenchmarkAuthenticate(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "portal.db"), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc := tokens.New(db, nil)
	ctx := bg
	var raws []string
	for range 20 {
		_, raw, err := svc.Create(ctx, "bot", tokens.Publisher, []string{"app", "tool"})
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, raw)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := svc.Authenticate(ctx, raws[i%len(raws)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := svc.Authenticate(ctx, raws[i%len(raws)]); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}
