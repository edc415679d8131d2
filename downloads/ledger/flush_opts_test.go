package ledger_test

import (
	"time"

	"github.com/portaldist/portal/downloads/ledger"
)

// flushBenchOptions are BenchmarkFlush's options: no timed flushes, room
// for the whole history, and a rollup every 10,000 grants (the default is
// 50,000), so that the measured loop pays for its rollups.
func flushBenchOptions() ledger.Options {
	return ledger.Options{FlushInterval: time.Hour, Queue: 200000, RollupGrants: 10000}
}
