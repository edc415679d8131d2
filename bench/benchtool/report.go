package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The report reads, from DIR:
//
//	machine.env        KEY=VALUE lines: DATE, CORES, MEM, CPU, GO, WRK, WRK_ARGS,
//	                   BLOB_WRK_ARGS, BLOB_SIZE, COMMAND, SECONDS (optional)
//	<scenario>.wrk     wrk --latency output, one per scenario below
//	gobench.txt        `go test -bench` output
//	seed.json          what bench/seed wrote
//	findings.md        optional, included verbatim (profile findings)
//
// and writes OUT (markdown), also printed on stdout.

type scenario struct {
	file, name, what string
	ref              string // file of the reference run ("" = none)
	blob             bool
}

var scenarios = []scenario{
	{"baseline", "baseline", "minimal Gin server, fixed JSON (bench/baseline)", "", false},
	{"upgrade", "upgrade check", "GET /v1/products/app/upgrade?current=1.0.0&platform=linux&arch=amd64, Authorization: License <key> (1,000 keys in turn)", "baseline", false},
	{"grant-local", "download grant, local store", "GET /v1/products/app/releases/latest/download?platform=linux&arch=amd64, Accept: application/json, license", "baseline", false},
	{"grant-s3", "download grant, S3 (versitygw)", "the same on PORTAL_OBJECTS_BACKEND=s3 (presign only)", "baseline", false},
	{"share", "share link /d/{token}", "GET /d/<token> of a link made with POST /v1/links (303 to a fresh URL)", "baseline", false},
	{"blob-portal", "blob GET, portal /blobs/", "GET of the minted 256 MiB /blobs/ URL", "blob-nginx", true},
	{"blob-nginx", "blob GET, nginx", "the same file from nginx, sendfile on", "", true},
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

type target struct {
	what, need, got string
	met             bool
	known           bool // false: the inputs were missing
}

func report(dir, out string) error {
	env := readEnv(filepath.Join(dir, "machine.env"))
	res := map[string]wrkResult{}
	for _, s := range scenarios {
		res[s.file] = parseWrk(filepath.Join(dir, s.file+".wrk"))
		if s.ref == "baseline" {
			res["baseline-"+s.file] = parseWrk(filepath.Join(dir, "baseline-"+s.file+".wrk"))
		}
	}
	benches, byName := parseGoBench(filepath.Join(dir, "gobench.txt"))

	var w bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }

	p("# Benchmarks\n\n")
	p("Written by `scripts/bench.sh`; do not edit by hand (the profile findings come from `bench/findings.md`).\n\n")
	p("- Date: %s\n", env["DATE"])
	p("- Machine: %s cores (`nproc`), %s memory (`free`), %s\n", env["CORES"], env["MEM"], env["CPU"])
	p("- Software: %s; %s\n", env["GO"], env["WRK"])
	p("- Command: `%s`", env["COMMAND"])
	if env["SECONDS"] != "" {
		p(" (%s s in all)", env["SECONDS"])
	}
	p("\n")
	p("- Load: wrk `%s` for the API scenarios, `%s` for the %s blob; wrk and the server share the cores, so absolute numbers are low and only the ratios of one run mean much.\n\n", env["WRK_ARGS"], env["BLOB_WRK_ARGS"], env["BLOB_SIZE"])

	if b, err := os.ReadFile(filepath.Join(dir, "seed.json")); err == nil {
		var sd struct {
			Product          string  `json:"product"`
			Releases         int     `json:"releases"`
			Licenses         int     `json:"licenses"`
			ServiceReleases  int     `json:"service_releases"`
			ServicePerRel    float64 `json:"service_seconds_per_release"`
			ServiceProjected float64 `json:"service_seconds_projected_for_all"`
			DirectSeconds    float64 `json:"direct_seconds"`
			LicenseSeconds   float64 `json:"license_seconds"`
			TotalSeconds     float64 `json:"total_seconds"`
		}
		if json.Unmarshal(b, &sd) == nil {
			p("Catalog (bench/seed, straight into the bbolt file): product `%s`, %d releases of 4 platforms each, %d licenses (unlimited downloads), in %.1f s. "+
				"%d releases went through the services (create, declare, upload, complete, publish) at %.1f ms each, which would be %.0f s for all of them; "+
				"the other %d were written as the same records in %.1f s; the licenses through `licenses.Service.Put` in %.1f s.\n\n",
				sd.Product, sd.Releases, sd.Licenses, sd.TotalSeconds, sd.ServiceReleases, sd.ServicePerRel*1000, sd.ServiceProjected,
				sd.Releases-sd.ServiceReleases, sd.DirectSeconds, sd.LicenseSeconds)
		}
	}

	p("## HTTP\n\n")
	p("| scenario | requests/s | MB/s | p50 | p99 | ratio | errors |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, s := range scenarios {
		r := res[s.file]
		if !r.ok {
			p("| %s | not run | | | | | |\n", s.name)
			continue
		}
		mbs := "-"
		if s.blob {
			mbs = fmt.Sprintf("%.0f", r.transfer/(1<<20))
		}
		ratio := "-"
		if ref := pairedRef(res, s.file, s.ref); s.ref != "" && ref.ok {
			if s.blob {
				ratio = fmt.Sprintf("%.2f of nginx", r.transfer/ref.transfer)
			} else {
				ratio = fmt.Sprintf("%.2f of baseline", r.rps/ref.rps)
			}
		}
		errs := "none"
		if r.non2xx > 0 || r.sockErrs > 0 {
			errs = fmt.Sprintf("%d non-2xx/3xx, %d socket", r.non2xx, r.sockErrs)
		}
		p("| %s | %.0f | %s | %s | %s | %s | %s |\n", s.name, r.rps, mbs, dur(r.p50), dur(r.p99), ratio, errs)
	}
	var paired []string
	for _, s := range scenarios {
		if r := res["baseline-"+s.file]; s.ref == "baseline" && r.ok {
			paired = append(paired, fmt.Sprintf("before %s %.0f rps", s.name, r.rps))
		}
	}
	if len(paired) > 0 {
		p("\nEach API scenario's ratio is to a baseline run made right before it, since the machine's speed drifts over minutes (%s).\n", strings.Join(paired, "; "))
	}
	p("\nMB/s is wrk's Transfer/sec (1 MB = 2^20 bytes). Scenarios:\n\n")
	for _, s := range scenarios {
		p("- %s: %s\n", s.name, s.what)
	}

	// Targets.
	var ts []target
	ratioTarget := func(what, file, ref string, min float64, blob bool) {
		a, b := res[file], pairedRef(res, file, ref)
		t := target{what: what, need: fmt.Sprintf(">= %.1f", min)}
		if a.ok && b.ok && a.non2xx == 0 && a.sockErrs == 0 {
			var r float64
			if blob {
				r = a.transfer / b.transfer
			} else {
				r = a.rps / b.rps
			}
			t.known, t.met, t.got = true, r >= min, fmt.Sprintf("%.2f", r)
		} else if a.ok {
			t.known, t.got = true, "errors in the run"
		} else {
			t.got = "not run"
		}
		ts = append(ts, t)
	}
	ratioTarget("upgrade check rps / baseline rps", "upgrade", "baseline", 0.8, false)
	ratioTarget("grant (local) rps / baseline rps", "grant-local", "baseline", 0.5, false)
	ratioTarget("grant (S3) rps / baseline rps", "grant-s3", "baseline", 0.5, false)
	ratioTarget("blob GET MB/s / nginx MB/s", "blob-portal", "blob-nginx", 0.9, true)
	for _, c := range []struct{ what, file string }{
		{"upgrade check p99 at 64 connections", "upgrade"},
		{"grant (local) p99 at 64 connections", "grant-local"},
		{"grant (S3) p99 at 64 connections", "grant-s3"},
	} {
		r := res[c.file]
		t := target{what: c.what, need: "< 10 ms", got: "not run"}
		if r.ok {
			t.known, t.met, t.got = true, r.p99 < 0.010, dur(r.p99)
		}
		ts = append(ts, t)
	}
	flat := func(what, small, large string) target {
		a, b := byName[small], byName[large]
		t := target{what: what, need: "<= 1.5x"}
		if a.seen && b.seen {
			r := b.ns / a.ns
			t.known, t.met, t.got = true, r <= 1.5, fmt.Sprintf("%.2fx (%.0f -> %.0f ns/op)", r, a.ns, b.ns)
		} else {
			t.got = "not run"
		}
		return t
	}
	for _, c := range []string{"upgrade", "upgrade-licensed", "current", "no-artifact-10-back"} {
		ts = append(ts, flat("latest-version lookup "+c+", 10 -> 100,000 releases",
			"BenchmarkLatest/releases=10/"+c, "BenchmarkLatest/releases=100000/"+c))
	}
	for _, c := range []string{"store", "cached"} {
		ts = append(ts, flat("license lookup ("+c+"), 10,000 -> 1,000,000 licenses",
			"BenchmarkByKey/licenses=10000/"+c, "BenchmarkByKey/licenses=1000000/"+c))
	}

	p("\n## Targets\n\n| target | needed | measured | |\n|---|---|---|---|\n")
	met, missed := 0, 0
	for _, t := range ts {
		verdict := "met"
		switch {
		case !t.known:
			verdict = "not measured"
			missed++
		case !t.met:
			verdict = "**missed**"
			missed++
		default:
			met++
		}
		p("| %s | %s | %s | %s |\n", t.what, t.need, t.got, verdict)
	}
	p("\n%d met, %d missed or not measured.\n", met, missed)

	p("\n## Go benchmarks\n\n`go test -run '^$' -bench ...` of the parts (see gobench.txt in the script's output for the raw lines).\n\n")
	p("| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n")
	for _, g := range benches {
		if g.hasMem {
			p("| %s | %.1f | %.0f | %.0f |\n", g.name, g.ns, g.bytes, g.allocs)
		} else {
			p("| %s | %.1f | - | - |\n", g.name, g.ns)
		}
	}

	if b, err := os.ReadFile(filepath.Join(dir, "findings.md")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		p("\n## Profile findings\n\n%s\n", bytes.TrimSpace(b))
	}

	if err := os.WriteFile(out, w.Bytes(), 0o644); err != nil {
		return err
	}
	_, err := os.Stdout.Write(w.Bytes())
	return err
}

// pairedRef is the reference run for scenario file: the baseline run made
// right before it ("baseline-<file>") when there is one, else ref.
func pairedRef(res map[string]wrkResult, file, ref string) wrkResult {
	if ref == "baseline" {
		if r, ok := res["baseline-"+file]; ok && r.ok {
			return r
		}
	}
	return res[ref]
}
