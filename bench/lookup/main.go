// Command lookup measures license lookups (licenses.Service.ByKey) on a
// seeded data directory, with the license cache off ("store": every lookup
// reads the store) and on ("cached"), and prints each measurement as a
// `go test -bench` line, so that scripts/bench.sh can compare the seeded
// catalog of 1,000,000 licenses with one of 10,000 without seeding a store
// inside a benchmark:
//
//	lookup -data-dir DIR -keys FILE -licenses N [-count 3] [-benchtime 1s]
//	BenchmarkByKey/licenses=N/store-2   	  100000	     11000 ns/op	    2600 B/op	      41 allocs/op
//
// The keys (bench/seed's keys file) are looked up in random order. The data
// directory is opened as `portal serve` opens its store (app.OpenStore), so
// no server may hold it.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/app"
	"github.com/portaldist/portal/configs"
	"github.com/portaldist/portal/licenses"
)

func main() {
	testing.Init()
	dataDir := flag.String("data-dir", "", "seeded data directory")
	keysFile := flag.String("keys", "", "license keys, one a line")
	n := flag.Int("licenses", 0, "how many licenses the data directory holds (names the benchmark)")
	count := flag.Int("count", 3, "runs of each measurement")
	benchtime := flag.String("benchtime", "1s", "time of each run")
	flag.Parse()
	if *dataDir == "" || *keysFile == "" || *n <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := flag.Set("test.benchtime", *benchtime); err != nil {
		log.Fatal(err)
	}
	keys, err := readKeys(*keysFile)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := configs.Load(configs.LoadOptions{Flags: map[string]string{"data_dir": *dataDir}})
	if err != nil {
		log.Fatal(err)
	}
	a, err := app.OpenStore(ctx, cfg, app.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close(ctx)
	for range *count {
		for _, mode := range []struct {
			name string
			ttl  time.Duration
		}{{"store", 0}, {"cached", licenses.CacheTTL}} {
			a.Licenses.SetCacheTTL(mode.ttl)
			var failed error
			r := testing.Benchmark(func(b *testing.B) {
				rng := rand.New(rand.NewPCG(1, 2))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := a.Licenses.ByKey(ctx, keys[rng.IntN(len(keys))]); err != nil {
						failed = err
						b.FailNow()
					}
				}
			})
			if failed != nil {
				log.Fatalf("ByKey: %v", failed)
			}
			fmt.Printf("BenchmarkByKey/licenses=%d/%s-%d\t%s\t%s\n", *n, mode.name, runtime.GOMAXPROCS(0), r.String(), r.MemString())
		}
	}
}

func readKeys(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k := strings.TrimSpace(sc.Text()); k != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no keys in %s", path)
	}
	return keys, sc.Err()
}
