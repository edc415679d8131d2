package ledger_test

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/store/bolt"
)

// BenchmarkFlush measures what one download grant costs the ledger from
// Record to commit (Record, then a Flush every 5,000 grants, half the
// default queue, which is when the flusher wakes early under load), on a
// store that already holds 100,000 grants, with the licenses used in turn
// as scripts/bench.sh's wrk script does. ns/op is wall time per grant
// (fsync included); cpu-ns/op is the process's CPU time per grant (user and
// system, every goroutine): what the flush, running in the background in
// the server, takes from the requests. The options (flushBenchOptions) make
// rollups more frequent than the default, so the measured loop includes
// them.
//
//	go test -run '^$' -bench BenchmarkFlush -benchtime 20000x -count 5 ./downloads/ledger
//
// scripts/bench.sh runs the same file on the ledger before its log layout,
// with that version's options.
func BenchmarkFlush(b *testing.B) {
	for _, licenses := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("licenses=%d", licenses), func(b *testing.B) {
			ctx := context.Background()
			db, err := bolt.Open(filepath.Join(b.TempDir(), "portal.db"), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			l := ledger.New(db, flushBenchOptions())
			defer l.Close(ctx)
			const history, batch = 100000, 5000
			now := time.Now()
			for i := range history {
				g := grant(fmt.Sprintf("lic%06d", i%licenses), i)
				g.Time = now
				l.Record(g)
				if (i+1)%batch == 0 {
					if err := l.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			gs := make([]ledger.Grant, licenses)
			for i := range gs {
				gs[i] = grant(fmt.Sprintf("lic%06d", i), i)
				gs[i].Time = now
			}
			b.ReportAllocs()
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				l.Record(gs[i%licenses])
				if (i+1)%batch == 0 {
					if err := l.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if err := l.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
