package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The report reads, from DIR (the raw outputs, kept next to the report):
//
//	machine.env        KEY=VALUE lines written by scripts/bench.sh: DATE, CORES,
//	                   MEM, CPU, GO, WRK, NGINX, WRK_ARGS, BLOB_WRK_ARGS, PAIRS,
//	                   GOGC, PORTAL_ENV, LOAD_BEFORE, LOAD_AFTER, COMMAND, SECONDS...
//	wrk/<name>.<attempt>.<pair>.ref.wrk and .run.wrk
//	                   wrk --latency outputs of each interleaved pair: the
//	                   reference (baseline, nginx, presign-only) and the scenario
//	gobench.txt        `go test -bench` output of the parts
//	ledger-old.txt, ledger-new.txt
//	                   BenchmarkFlush on the ledger before and after its log layout
//	memory.env         READY_MS, RSS_START_KB, RSS_LOAD_KB, LOAD_SECONDS, LOAD_RPS, DB_BYTES
//	heap.txt           `go tool pprof -top -inuse_space` of the seeded catalog
//	seed.json          what bench/seed wrote
//	findings.md        optional, included verbatim (profile findings)
//
// and writes OUT (markdown), also printed on stdout.

// comparison is one interleaved scenario: pairs of a reference run and a
// scenario run with the same wrk settings.
type comparison struct {
	name, scenario, ref, what string
	// target is the least median ratio of the scenario's throughput to the
	// reference's (0: none); p99 the most median ratio of their p99s (0:
	// none).
	target, p99 float64
	blob        bool // compare MB/s rather than requests/s
}

var comparisons = []comparison{
	{"upgrade", "licensed upgrade check", "Gin baseline", "GET /v1/products/app/upgrade?current=<oldest>&platform=linux&arch=amd64 with Authorization: License <key> (1,000 keys in turn) / bench/baseline (minimal Gin, fixed JSON)", 0.9, 1.5, false},
	{"upgrade-nginx", "licensed upgrade check", "nginx static file", "the same upgrade check / nginx serving the exact bytes of its answer as a file (a static feed, no license)", 0.6, 0, false},
	{"feed-nginx", "electron feed latest-linux.yml", "nginx static file", "GET /feeds/app/electron/latest-linux.yml with a license / nginx serving the exact bytes of that answer", 0, 0, false},
	{"grant-local", "grant, local store", "Gin baseline", "GET /v1/products/app/releases/latest/download?platform=linux&arch=amd64, Accept: application/json, license; local object store", 0.7, 1.5, false},
	{"grant-s3", "grant, S3", "Gin baseline", "the same grant with PORTAL_OBJECTS_BACKEND=s3 (versitygw; the grant only presigns)", 0.7, 1.5, false},
	{"grant-s3-presign", "grant, S3", "presign-only Go service", "the S3 grant / bench/presignonly (net/http + aws-sdk-go-v2 s3.PresignClient on every request, no catalog, no license)", 2.5, 0, false},
	{"share", "share link /d/{token}", "Gin baseline", "GET /d/<token> of a link made with POST /v1/links (303 to a fresh URL)", 0.5, 1.5, false},
	{"blob", "blob GET, portal /blobs/", "nginx", "GET of the minted 256 MiB /blobs/ URL / the same file from nginx (sendfile on), MB/s", 0.9, 0, true},
	{"etcd-upgrade", "licensed upgrade check, etcd store", "Gin baseline", "the upgrade check with store.backend=etcd (3-member cluster on 127.0.0.1)", 0, 0, false},
	{"etcd-grant", "grant, etcd store", "Gin baseline", "the local-store grant with store.backend=etcd (3-member cluster on 127.0.0.1)", 0, 0, false},
}

type wrkResult struct {
	ok               bool
	rps              float64
	p50, p99         float64 // seconds
	transfer         float64 // bytes/s
	requests         int
	non2xx, sockErrs int
	raw              string
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reTransfer = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMGT]?B)`)
	reLat      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	reReqs     = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func parseWrk(path string) wrkResult {
	b, err := os.ReadFile(path)
	if err != nil {
		return wrkResult{}
	}
	s := string(b)
	r := wrkResult{raw: s}
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		return r
	}
	r.ok = true
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reTransfer.FindStringSubmatch(s); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		mult := map[string]float64{"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}[m[2]]
		r.transfer = v * mult
	}
	for _, m := range reLat.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[m[3]]
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if m := reReqs.FindStringSubmatch(s); m != nil {
		r.requests, _ = strconv.Atoi(m[1])
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		r.non2xx, _ = strconv.Atoi(m[1])
	}
	if m := reSockErr.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.Atoi(x)
			r.sockErrs += n
		}
	}
	return r
}

func dur(s float64) string {
	switch {
	case s == 0:
		return "-"
	case s < 1e-3:
		return fmt.Sprintf("%.0f µs", s*1e6)
	case s < 1:
		return fmt.Sprintf("%.2f ms", s*1e3)
	}
	return fmt.Sprintf("%.2f s", s)
}

type goBench struct {
	name         string
	ns, bytes    float64
	allocs       float64
	hasMem, seen bool
}

var reBench = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op(?:\s+([0-9.]+) B/op\s+([0-9.]+) allocs/op)?`)

func parseGoBench(path string) ([]goBench, map[string]goBench) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil
	}
	defer f.Close()
	var list []goBench
	byName := map[string]goBench{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := reBench.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		g := goBench{name: m[1], seen: true}
		g.ns, _ = strconv.ParseFloat(m[2], 64)
		if m[3] != "" {
			g.hasMem = true
			g.bytes, _ = strconv.ParseFloat(m[3], 64)
			g.allocs, _ = strconv.ParseFloat(m[4], 64)
		}
		// Benchmarks that run several times (-count) keep their fastest
		// run: on a shared machine noise only ever adds time.
		if old, ok := byName[g.name]; ok {
			if g.ns < old.ns {
				byName[g.name] = g
				for i := range list {
					if list[i].name == g.name {
						list[i] = g
					}
				}
			}
			continue
		}
		list = append(list, g)
		byName[g.name] = g
	}
	return list, byName
}

func readEnv(path string) map[string]string {
	env := map[string]string{}
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// pair is one interleaved pair of runs.
type pair struct {
	attempt, n int
	ref, run   wrkResult
}

var reWrkFile = regexp.MustCompile(`^(.+)\.(\d+)\.(\d+)\.(ref|run)\.wrk$`)

// loadPairs reads the pairs of every comparison from DIR/wrk.
func loadPairs(dir string) map[string][]pair {
	out := map[string][]pair{}
	ents, _ := os.ReadDir(filepath.Join(dir, "wrk"))
	idx := map[string]int{}
	for _, e := range ents {
		m := reWrkFile.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		a, _ := strconv.Atoi(m[2])
		n, _ := strconv.Atoi(m[3])
		key := m[1] + "." + m[2] + "." + m[3]
		i, ok := idx[key]
		if !ok {
			out[m[1]] = append(out[m[1]], pair{attempt: a, n: n})
			i = len(out[m[1]]) - 1
			idx[key] = i
		}
		r := parseWrk(filepath.Join(dir, "wrk", e.Name()))
		if m[4] == "ref" {
			out[m[1]][i].ref = r
		} else {
			out[m[1]][i].run = r
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].attempt != ps[j].attempt {
				return ps[i].attempt < ps[j].attempt
			}
			return ps[i].n < ps[j].n
		})
	}
	return out
}

// stats summarizes per-pair ratios.
type stats struct {
	n                int
	median, min, max float64
	vals             []float64
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{n: len(s), median: med, min: s[0], max: s[len(s)-1], vals: v}
}

// verdict says whether a median meets its target and whether the pairs
// agree enough to say so: at least 4 in 5 of them on the median's side of
// the target. atLeast is true for ">= target", false for "<= target".
func verdict(st stats, target float64, atLeast bool) (met, decided bool) {
	if st.n == 0 || target == 0 {
		return false, true
	}
	side := func(x float64) bool {
		if atLeast {
			return x >= target
		}
		return x <= target
	}
	met = side(st.median)
	agree := 0
	for _, x := range st.vals {
		if side(x) == met {
			agree++
		}
	}
	return met, 5*agree >= 4*st.n
}

// result is one comparison's figures over the given pairs.
type result struct {
	c                 comparison
	pairs             int
	attempts          int
	ratio, p99        stats
	refRate, runRate  float64 // medians, rps or bytes/s
	refP99, runP99    float64 // medians, seconds
	met, decided      bool
	p99Met, p99Decide bool
	errors            string
}

func evaluate(c comparison, ps []pair) result {
	r := result{c: c}
	var ratios, p99s, refs, runs, refP, runP []float64
	atts := map[int]bool{}
	var non2xx, sock int
	for _, p := range ps {
		if !p.ref.ok || !p.run.ok {
			continue
		}
		atts[p.attempt] = true
		a, b := p.run.rps, p.ref.rps
		if c.blob {
			a, b = p.run.transfer, p.ref.transfer
		}
		if b > 0 {
			ratios = append(ratios, a/b)
		}
		if p.ref.p99 > 0 {
			p99s = append(p99s, p.run.p99/p.ref.p99)
		}
		refs, runs = append(refs, b), append(runs, a)
		refP, runP = append(refP, p.ref.p99), append(runP, p.run.p99)
		non2xx += p.run.non2xx + p.ref.non2xx
		sock += p.run.sockErrs + p.ref.sockErrs
	}
	r.pairs, r.attempts = len(ratios), len(atts)
	r.ratio, r.p99 = summarize(ratios), summarize(p99s)
	r.refRate, r.runRate = summarize(refs).median, summarize(runs).median
	r.refP99, r.runP99 = summarize(refP).median, summarize(runP).median
	r.met, r.decided = verdict(r.ratio, c.target, true)
	r.p99Met, r.p99Decide = verdict(r.p99, c.p99, false)
	if non2xx > 0 || sock > 0 {
		r.errors = fmt.Sprintf("%d non-2xx/3xx, %d socket errors", non2xx, sock)
	}
	return r
}

// pairsCmd prints one comparison's verdict over its pairs so far and exits
// 3 when the pairs are too spread to decide a target (scripts/bench.sh then
// runs the scenario once more).
func pairsCmd(dir, name string) error {
	for _, c := range comparisons {
		if c.name != name {
			continue
		}
		r := evaluate(c, loadPairs(dir)[name])
		fmt.Printf("%s: %d pairs, ratio median %.2f (%.2f-%.2f), p99 ratio median %.2f (%.2f-%.2f)\n",
			name, r.pairs, r.ratio.median, r.ratio.min, r.ratio.max, r.p99.median, r.p99.min, r.p99.max)
		if r.pairs == 0 {
			return fmt.Errorf("%s: no complete pair", name)
		}
		if !r.decided || !r.p99Decide {
			fmt.Printf("%s: too spread to decide\n", name)
			os.Exit(3)
		}
		return nil
	}
	return fmt.Errorf("unknown comparison %q", name)
}

func rate(c comparison, v float64) string {
	if c.blob {
		return fmt.Sprintf("%.0f MB/s", v/(1<<20))
	}
	return fmt.Sprintf("%.0f rps", v)
}

func verdictText(met, decided bool, target float64) string {
	switch {
	case target == 0:
		return "-"
	case !decided && met:
		return "met (spread too wide to decide)"
	case !decided:
		return "**missed** (spread too wide to decide)"
	case met:
		return "met"
	}
	return "**missed**"
}

func report(dir, out string) error {
	env := readEnv(filepath.Join(dir, "machine.env"))
	mem := readEnv(filepath.Join(dir, "memory.env"))
	pairs := loadPairs(dir)
	benches, byName := parseGoBench(filepath.Join(dir, "gobench.txt"))

	var w bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }

	p("# Benchmarks\n\n")
	p("Written by `scripts/bench.sh`; do not edit by hand (the profile findings come from `bench/findings.md`). ")
	p("The raw outputs behind every figure (each wrk run, each `go test -bench` line, the heap profile) are in `%s`.\n\n", env["RAW"])
	p("- Date: %s; commit %s\n", env["DATE"], env["COMMIT"])
	p("- Machine: %s cores (`nproc`), %s memory (`free`), %s\n", env["CORES"], env["MEM"], env["CPU"])
	p("- Load average (/proc/loadavg) before: `%s`; after: `%s`\n", env["LOAD_BEFORE"], env["LOAD_AFTER"])
	p("- Software: %s; %s; %s\n", env["GO"], env["WRK"], env["NGINX"])
	p("- Command: `%s`", env["COMMAND"])
	if env["SECONDS"] != "" {
		p(" (%s s in all)", env["SECONDS"])
	}
	p("\n")
	p("- Portal: `portal serve` as the README starts it, with only the data dir and listen address set (%s); serve sets GOGC=400 when GOGC is unset, so the Gin baseline and the presign-only service run with GOGC=%s too. No other flags.\n", env["PORTAL_ENV"], env["GOGC"])
	p("- Method: %s interleaved pairs per scenario (reference run, then scenario run, same wrk settings: `%s`; blob: `%s`; where the scenario sends license keys with wrk's Lua script, one key in turn per request, its reference runs the same script with the same headers, so that wrk's own cost is the same in both runs); each target is judged on the median of the per-pair ratios. ", env["PAIRS"], env["WRK_ARGS"], env["BLOB_WRK_ARGS"])
	p("A verdict is decided when at least 4 in 5 pairs fall on the median's side of the target; otherwise the script runs the scenario once more and the table shows all pairs of both attempts. wrk and the servers share the machine's cores.\n")
	if env["SEED_CACHE"] != "" {
		p("- Catalog: %s\n", env["SEED_CACHE"])
	}
	p("\n")

	if b, err := os.ReadFile(filepath.Join(dir, "seed.json")); err == nil {
		var sd struct {
			Product        string  `json:"product"`
			Releases       int     `json:"releases"`
			Licenses       int     `json:"licenses"`
			DirectSeconds  float64 `json:"direct_seconds"`
			LicenseSeconds float64 `json:"license_seconds"`
			TotalSeconds   float64 `json:"total_seconds"`
		}
		if json.Unmarshal(b, &sd) == nil {
			p("Catalog (bench/seed, straight into the bbolt file): product `%s`, %d releases of 4 platforms each, %d licenses (unlimited downloads), seeded in %.1f s (licenses %.1f s).\n\n",
				sd.Product, sd.Releases, sd.Licenses, sd.TotalSeconds, sd.LicenseSeconds)
		}
	}

	p("## Interleaved comparisons\n\n")
	p("| scenario | reference | pairs | scenario (median) | reference (median) | ratio median (min-max) | target | verdict | p99 ratio median (min-max) | p99 target | p99 verdict | errors |\n")
	p("|---|---|---:|---:|---:|---|---|---|---|---|---|---|\n")
	var results []result
	for _, c := range comparisons {
		ps, ok := pairs[c.name]
		if !ok {
			continue
		}
		r := evaluate(c, ps)
		results = append(results, r)
		if r.pairs == 0 {
			p("| %s | %s | 0 | | | no complete pair | | | | | | |\n", c.scenario, c.ref)
			continue
		}
		tgt, p99t := "-", "-"
		if c.target > 0 {
			tgt = fmt.Sprintf(">= %.1f", c.target)
		}
		if c.p99 > 0 {
			p99t = fmt.Sprintf("<= %.1f", c.p99)
		}
		errs := "none"
		if r.errors != "" {
			errs = r.errors
		}
		n := strconv.Itoa(r.pairs)
		if r.attempts > 1 {
			n += " (2 attempts)"
		}
		p("| %s | %s | %s | %s, p99 %s | %s, p99 %s | **%.2f** (%.2f-%.2f) | %s | %s | %.2f (%.2f-%.2f) | %s | %s | %s |\n",
			c.scenario, c.ref, n, rate(c, r.runRate), dur(r.runP99), rate(c, r.refRate), dur(r.refP99),
			r.ratio.median, r.ratio.min, r.ratio.max, tgt, verdictText(r.met, r.decided, c.target),
			r.p99.median, r.p99.min, r.p99.max, p99t, verdictText(r.p99Met, r.p99Decide, c.p99), errs)
	}
	p("\nPer-pair ratios, in run order:\n\n")
	for _, r := range results {
		var vs []string
		for _, v := range r.ratio.vals {
			vs = append(vs, fmt.Sprintf("%.2f", v))
		}
		var ps []string
		for _, v := range r.p99.vals {
			ps = append(ps, fmt.Sprintf("%.2f", v))
		}
		p("- %s / %s: throughput %s; p99 %s\n", r.c.scenario, r.c.ref, strings.Join(vs, " "), strings.Join(ps, " "))
	}
	p("\nScenarios:\n\n")
	for _, r := range results {
		p("- %s / %s: %s\n", r.c.scenario, r.c.ref, r.c.what)
	}
	if _, ok := pairs["etcd-upgrade"]; !ok {
		p("\nThe etcd store's lines were not run: %s\n", orDefault(env["ETCD"], "no etcd driver in this build."))
	} else if env["ETCD"] != "" {
		p("\netcd: %s\n", env["ETCD"])
	}

	// Targets.
	p("\n## Targets\n\n| target | needed | measured | verdict |\n|---|---|---|---|\n")
	met, missed := 0, 0
	count := func(ok bool) {
		if ok {
			met++
		} else {
			missed++
		}
	}
	for _, r := range results {
		if r.c.target > 0 {
			p("| %s / %s, median ratio | >= %.1f | %.2f (%.2f-%.2f, %d pairs) | %s |\n", r.c.scenario, r.c.ref, r.c.target,
				r.ratio.median, r.ratio.min, r.ratio.max, r.pairs, verdictText(r.met, r.decided, r.c.target))
			count(r.met && r.pairs > 0)
		}
		if r.c.p99 > 0 {
			p("| p99 of %s / p99 of %s, median ratio | <= %.1f | %.2f (%.2f-%.2f) | %s |\n", r.c.scenario, r.c.ref, r.c.p99,
				r.p99.median, r.p99.min, r.p99.max, verdictText(r.p99Met, r.p99Decide, r.c.p99))
			count(r.p99Met && r.pairs > 0)
		}
	}
	flat := func(what, small, large string) {
		a, b := byName[small], byName[large]
		if !a.seen || !b.seen {
			p("| %s | <= 1.5x | not run | not measured |\n", what)
			missed++
			return
		}
		r := b.ns / a.ns
		v := "met"
		if r > 1.5 {
			v = "**missed**"
		}
		count(r <= 1.5)
		p("| %s | <= 1.5x | %.2fx (%.0f -> %.0f ns/op, fastest run of each) | %s |\n", what, r, a.ns, b.ns, v)
	}
	// License lookups (bench/lookup): the smallest and the largest catalog.
	lo, hi := -1, -1
	for name := range byName {
		var n int
		if _, err := fmt.Sscanf(name, "BenchmarkByKey/licenses=%d/", &n); err == nil {
			if lo < 0 || n < lo {
				lo = n
			}
			if n > hi {
				hi = n
			}
		}
	}
	for _, mode := range []string{"store", "cached"} {
		what := "license lookup from the store"
		if mode == "cached" {
			what = "license lookup (cached)"
		}
		flat(fmt.Sprintf("%s, %d -> %d licenses (seeded catalogs, bench/lookup)", what, lo, hi),
			fmt.Sprintf("BenchmarkByKey/licenses=%d/%s", lo, mode), fmt.Sprintf("BenchmarkByKey/licenses=%d/%s", hi, mode))
	}
	for _, c := range []string{"upgrade", "upgrade-licensed", "current", "no-artifact-10-back"} {
		flat("latest-version lookup "+c+", 10 -> 100,000 releases", "BenchmarkLatest/releases=10/"+c, "BenchmarkLatest/releases=100000/"+c)
	}
	if mem["RSS_LOAD_KB"] != "" {
		rss, _ := strconv.ParseFloat(mem["RSS_LOAD_KB"], 64)
		ready, _ := strconv.ParseFloat(mem["READY_MS"], 64)
		okm, okr := rss < 1<<20, ready < 3000
		count(okm)
		count(okr)
		p("| resident memory after the load, seeded catalog | < 1 GiB | %.0f MB | %s |\n", rss/1024, map[bool]string{true: "met", false: "**missed**"}[okm])
		p("| start to ready, seeded catalog | < 3 s | %.2f s | %s |\n", ready/1000, map[bool]string{true: "met", false: "**missed**"}[okr])
	}
	p("\n%d met, %d missed or not measured.\n", met, missed)

	// Memory and start-up.
	if len(mem) > 0 {
		kb := func(k string) string {
			v, err := strconv.ParseFloat(mem[k], 64)
			if err != nil {
				return "-"
			}
			return fmt.Sprintf("%.0f MB", v/1024)
		}
		ready, _ := strconv.ParseFloat(mem["READY_MS"], 64)
		db, _ := strconv.ParseFloat(mem["DB_BYTES"], 64)
		p("\n## Memory and start-up, seeded catalog\n\n")
		p("`portal serve` on the seeded catalog (%s releases x 4 builds, %s licenses), GOGC as serve sets it.\n\n", orDefault(mem["RELEASES"], "?"), orDefault(mem["LICENSES"], "?"))
		p("| figure | value |\n|---|---:|\n")
		p("| time from start to ready (process start to /readyz 200) | %.2f s |\n", ready/1000)
		p("| resident memory (VmRSS) after start | %s (anonymous %s, file-backed %s) |\n", kb("RSS_START_KB"), kb("ANON_START_KB"), kb("FILE_START_KB"))
		p("| resident memory after %s s of licensed upgrade checks (%s rps, wrk `%s`) | %s (anonymous %s, file-backed %s) |\n", mem["LOAD_SECONDS"], mem["LOAD_RPS"], mem["LOAD_ARGS"], kb("RSS_LOAD_KB"), kb("ANON_LOAD_KB"), kb("FILE_LOAD_KB"))
		p("| peak resident memory (VmHWM) | %s |\n", kb("HWM_KB"))
		p("| bbolt file | %.0f MB |\n", db/(1<<20))
		p("\nFile-backed resident memory is mostly the pages of the bbolt file's memory map that were read (and the binary); the kernel drops them under memory pressure and they are shared with the page cache. Anonymous memory is the Go heap (at most about 5x the live heap with GOGC=400), stacks and the runtime.\n")
		if b, err := os.ReadFile(filepath.Join(dir, "heap.txt")); err == nil {
			p("\nWhere the memory goes: %s\n\n```\n%s\n```\n", orDefault(mem["HEAP_WHAT"], "heap profile"), bytes.TrimSpace(b))
		}
	}

	// The ledger, before and after.
	oldL, oldBy := parseGoBenchAll(filepath.Join(dir, "ledger-old.txt"))
	_, newBy := parseGoBenchAll(filepath.Join(dir, "ledger-new.txt"))
	if len(oldL) > 0 {
		p("\n## Download ledger, before and after the log layout\n\n")
		p("`BenchmarkFlush` (downloads/ledger, the same file on both): Record then a flush every 5,000 grants on a store holding 100,000 grants, licenses in turn, fsync on. CPU ns/grant is the process's user+system CPU time per grant (what the background flush takes from the requests); wall ns/grant includes waiting for fsync. Old: the ledger at %s (a key per grant under its license); new: this tree (the time-ordered log, with a rollup every 10,000 grants, five times as often as the default). Three runs of each, alternately; median (min-max).\n\n", orDefault(env["LEDGER_OLD"], "the commit before the log"))
		p("| benchmark | old CPU ns/grant | new CPU ns/grant | new / old (CPU) | old wall ns/grant | new wall ns/grant | old B, allocs | new B, allocs |\n|---|---:|---:|---:|---:|---:|---|---|\n")
		for _, name := range oldL {
			o, n := summarize(oldBy[name].cpu), summarize(newBy[name].cpu)
			ow, nw := summarize(oldBy[name].ns), summarize(newBy[name].ns)
			if nw.n == 0 {
				continue
			}
			ratio := "-"
			if o.n > 0 && n.n > 0 {
				ratio = fmt.Sprintf("%.2f", n.median/o.median)
			}
			p("| %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %s | %.0f (%.0f-%.0f) | %.0f (%.0f-%.0f) | %.0f B, %.0f | %.0f B, %.0f |\n", name,
				o.median, o.min, o.max, n.median, n.min, n.max, ratio, ow.median, ow.min, ow.max, nw.median, nw.min, nw.max,
				oldBy[name].bytes, oldBy[name].allocs, newBy[name].bytes, newBy[name].allocs)
		}
	}

	p("\n## Go benchmarks\n\n`go test -run '^$' -bench ...` of the parts (gobench.txt holds the raw lines; where a benchmark ran several times, the fastest run).\n\n")
	p("| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n")
	for _, g := range benches {
		if g.hasMem {
			p("| %s | %.1f | %.0f | %.0f |\n", g.name, g.ns, g.bytes, g.allocs)
		} else {
			p("| %s | %.1f | - | - |\n", g.name, g.ns)
		}
	}

	if b, err := os.ReadFile(filepath.Join(dir, "findings.md")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		p("\n%s\n", bytes.TrimSpace(b))
	}

	if err := os.WriteFile(out, w.Bytes(), 0o644); err != nil {
		return err
	}
	_, err := os.Stdout.Write(w.Bytes())
	return err
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// benchRuns are all the runs of one benchmark.
type benchRuns struct {
	ns, cpu       []float64
	bytes, allocs float64
}

var (
	reCPU   = regexp.MustCompile(`\s([0-9.]+) cpu-ns/op`)
	reBytes = regexp.MustCompile(`\s([0-9.]+) B/op\s+([0-9.]+) allocs/op`)
)

// parseGoBenchAll reads every run of every benchmark, in first-seen order.
func parseGoBenchAll(path string) ([]string, map[string]*benchRuns) {
	by := map[string]*benchRuns{}
	var order []string
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, by
	}
	for _, line := range strings.Split(string(b), "\n") {
		m := reBench.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := by[m[1]]
		if r == nil {
			r = &benchRuns{}
			by[m[1]] = r
			order = append(order, m[1])
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		r.ns = append(r.ns, ns)
		if c := reCPU.FindStringSubmatch(line); c != nil {
			v, _ := strconv.ParseFloat(c[1], 64)
			r.cpu = append(r.cpu, v)
		}
		if b := reBytes.FindStringSubmatch(line); b != nil {
			r.bytes, _ = strconv.ParseFloat(b[1], 64)
			r.allocs, _ = strconv.ParseFloat(b[2], 64)
		}
	}
	return order, by
}
