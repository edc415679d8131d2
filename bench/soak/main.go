// Command soak drives mixed load against a running `portal serve` for a
// fixed time and reports whether the server stayed healthy: no 5xx answer,
// and no clear growth of heap, goroutines, open files or RSS between the
// start and the end. scripts/soak.sh builds and starts the server and runs
// it; see README ("Soak test").
//
// Every worker loop is bounded by the duration and by -max-requests.
// Samples come from /metrics (with the admin token) and from /proc/PID.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

type driver struct {
	base   string
	admin  string
	pid    int
	client *http.Client

	mu     sync.Mutex
	counts map[string]*opCount // by operation
}

type opCount struct{ ok, c4xx, c5xx, failed int64 }

func run() error {
	base := flag.String("url", "http://127.0.0.1:8080", "portal base URL (loopback only)")
	admin := flag.String("token", os.Getenv("PORTAL_TOKEN"), "admin token")
	pid := flag.Int("pid", 0, "server process ID, for /proc figures")
	duration := flag.Duration("duration", 10*time.Minute, "how long to drive load")
	maxReq := flag.Int64("max-requests", 50_000_000, "stop after this many requests in all")
	workers := flag.Int("workers", 8, "concurrent request loops (update checks, grants, share links)")
	flag.Parse()
	if !strings.HasPrefix(*base, "http://127.0.0.1:") && !strings.HasPrefix(*base, "http://localhost:") && !strings.HasPrefix(*base, "http://[::1]:") {
		return fmt.Errorf("-url %s: soak only drives a server on loopback", *base)
	}
	if *admin == "" {
		return errors.New("-token (or PORTAL_TOKEN) is required")
	}
	d := &driver{base: *base, admin: *admin, pid: *pid, counts: map[string]*opCount{},
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}

	fx, err := d.setup()
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	// A short warm-up, so the start sample sees a server that has served
	// every kind of request (pools, caches and lazily built state exist).
	d.load(fx, 5*time.Second, *workers, *maxReq)
	d.client.CloseIdleConnections()
	time.Sleep(2 * time.Second)
	start, err := d.sample()
	if err != nil {
		return err
	}
	fmt.Printf("start   %s\n", start)

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var every = max(*duration/10, 5*time.Second)
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if s, err := d.sample(); err == nil {
					fmt.Printf("%-7s %s  requests %d, 5xx %d\n", time.Since(start.at).Round(time.Second), s, d.total(), d.total5xx())
				}
			}
		}
	}()
	d.load(fx, *duration, *workers, *maxReq)
	cancel()
	d.client.CloseIdleConnections()
	time.Sleep(3 * time.Second) // let the server close the connections and their goroutines
	end, err := d.sample()
	if err != nil {
		return err
	}
	fmt.Printf("end     %s\n", end)

	fmt.Println("requests by operation (2xx/3xx, 4xx, 5xx, no answer):")
	d.mu.Lock()
	for _, op := range slices.Sorted(maps.Keys(d.counts)) {
		c := d.counts[op]
		fmt.Printf("  %-14s %8d %6d %4d %4d\n", op, c.ok, c.c4xx, c.c5xx, c.failed)
	}
	d.mu.Unlock()

	var problems []string
	if n := d.total5xx(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d answers were 5xx", n))
	}
	for _, g := range []struct {
		name       string
		start, end float64
		ratio      float64
		slack      float64
	}{
		{"heap", start.heap, end.heap, 2, 32 << 20},
		{"RSS", start.rss, end.rss, 2, 64 << 20},
		{"goroutines", start.goroutines, end.goroutines, 1.5, 20},
		{"open files", start.fds, end.fds, 1.5, 20},
	} {
		if g.start < 0 || g.end < 0 {
			continue // not measured
		}
		if g.end > g.start*g.ratio+g.slack {
			problems = append(problems, fmt.Sprintf("%s grew from %.0f to %.0f", g.name, g.start, g.end))
		}
	}
	if d.total() == 0 {
		problems = append(problems, "no request was answered")
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	fmt.Printf("soak: ok: %d requests, 0 5xx, no growth\n", d.total())
	return nil
}

// fixture is what setup made.
type fixture struct {
	product, version, file string
	keys                   []string // licenses the request loops use
	edited                 string   // license ID the admin loop suspends and reinstates
}

func (d *driver) setup() (*fixture, error) {
	fx := &fixture{product: "soak", version: "1.0.0"}
	st, b := d.do("setup", "POST", "/v1/products", "", map[string]any{"slug": fx.product, "name": "Soak", "distribution": "licensed"}, nil)
	if st != 201 && st != 409 {
		return nil, fmt.Errorf("create product: %d %s", st, b)
	}
	file, err := d.publish("setup", fx.product, fx.version)
	if err != nil {
		return nil, err
	}
	fx.file = file
	for i := range 9 {
		st, b := d.do("setup", "POST", "/v1/licenses", "", map[string]any{"customer": fmt.Sprintf("soak %d", i), "product": fx.product}, nil)
		var out struct {
			License struct{ ID string }
			Key     string
		}
		if st != 201 || json.Unmarshal(b, &out) != nil {
			return nil, fmt.Errorf("create license: %d %s", st, b)
		}
		if i == 8 {
			fx.edited = out.License.ID
		} else {
			fx.keys = append(fx.keys, out.Key)
		}
	}
	// The update index follows the store a moment later.
	for i := 0; ; i++ {
		st, _ := d.do("setup", "GET", "/v1/products/soak/upgrade?current=0.1.0&platform=linux&arch=amd64", "License "+fx.keys[0], nil, nil)
		if st == 200 {
			break
		}
		if i == 500 {
			return nil, fmt.Errorf("the upgrade API never offered %s", fx.version)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fx, nil
}

// publish creates version with one artifact, uploads it, completes it and
// publishes the release.
func (d *driver) publish(op, product, version string) (string, error) {
	data := []byte(fmt.Sprintf("%s %s\n%s", product, version, strings.Repeat("payload ", 512)))
	sum := sha256.Sum256(data)
	name := product + "-" + version + "-linux-amd64.tar.gz"
	rel := "/v1/products/" + product + "/releases"
	if st, b := d.do(op, "POST", rel, "", map[string]any{"version": version}, nil); st != 201 {
		return "", fmt.Errorf("create release %s: %d %s", version, st, b)
	}
	var up struct {
		Upload struct {
			Method, URL string
			Headers     map[string]string
		}
	}
	st, b := d.do(op, "POST", rel+"/"+version+"/artifacts", "",
		map[string]any{"filename": name, "platform": "linux", "arch": "amd64", "size": len(data), "sha256": hex.EncodeToString(sum[:])}, nil)
	if st != 201 || json.Unmarshal(b, &up) != nil {
		return "", fmt.Errorf("add artifact %s: %d %s", version, st, b)
	}
	if st, b := d.do(op, up.Upload.Method, up.Upload.URL, "none", data, up.Upload.Headers); st != 200 {
		return "", fmt.Errorf("upload %s: %d %s", version, st, b)
	}
	if st, b := d.do(op, "POST", rel+"/"+version+"/artifacts/"+name+"/complete", "", nil, nil); st != 200 {
		return "", fmt.Errorf("complete %s: %d %s", version, st, b)
	}
	if st, b := d.do(op, "POST", rel+"/"+version+"/publish", "", nil, nil); st != 200 {
		return "", fmt.Errorf("publish %s: %d %s", version, st, b)
	}
	return name, nil
}

// load runs the request loops for dur (or until maxReq requests in all).
func (d *driver) load(fx *fixture, dur time.Duration, workers int, maxReq int64) {
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var sent atomic.Int64
	more := func() bool { return ctx.Err() == nil && sent.Add(1) <= maxReq }
	var wg sync.WaitGroup
	for w := range workers {
		key := "License " + fx.keys[w%len(fx.keys)]
		wg.Go(func() {
			for i := 0; more(); i++ {
				switch i % 4 {
				case 0, 1: // update check
					d.do("upgrade", "GET", "/v1/products/"+fx.product+"/upgrade?current=0.9.0&platform=linux&arch=amd64", key, nil, nil)
				case 2: // grant, and every fourth one downloaded
					st, b := d.do("grant", "GET", "/v1/products/"+fx.product+"/releases/"+fx.version+"/artifacts/"+fx.file+"/download",
						key, nil, map[string]string{"Accept": "application/json"})
					var g struct{ URL string }
					if st == 200 && i%16 == 2 && json.Unmarshal(b, &g) == nil {
						d.do("blob", "GET", g.URL, "none", nil, nil)
					}
				case 3: // share link: create, use, delete
					st, b := d.do("link-create", "POST", "/v1/links", key,
						map[string]any{"product": fx.product, "version": fx.version, "filename": fx.file, "ttl": 3600}, nil)
					var l struct{ ID, URL string }
					if st == 201 && json.Unmarshal(b, &l) == nil {
						d.do("link-use", "GET", l.URL, "none", nil, nil)
						d.do("link-delete", "DELETE", "/v1/links/"+l.ID, key, nil, nil)
					}
				}
			}
		})
	}
	// Publishes and admin edits, paced: the catalog is meant to grow by a
	// release every couple of seconds, not without bound.
	wg.Go(func() {
		for i := 0; more(); i++ {
			version := fmt.Sprintf("1.%d.%d", time.Now().Unix(), i)
			if _, err := d.publish("publish", fx.product, version); err == nil && i%2 == 1 {
				d.do("yank", "POST", "/v1/products/"+fx.product+"/releases/"+version+"/yank", "", nil, nil)
			}
			verb := "suspend"
			if i%2 == 1 {
				verb = "reinstate"
			}
			d.do("license-edit", "POST", "/v1/licenses/"+fx.edited+"/"+verb, "", nil, nil)
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	})
	wg.Wait()
}

// do sends one request (auth "" is the admin token, "none" no header) and
// counts its answer under op. It returns 0 when there was no answer.
func (d *driver) do(op, method, path, auth string, body any, hdr map[string]string) (int, []byte) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	url := path
	if strings.HasPrefix(path, "/") {
		url = d.base + path
	}
	status, b := 0, []byte(nil)
	req, err := http.NewRequest(method, url, rd)
	if err == nil {
		switch auth {
		case "":
			req.Header.Set("Authorization", "Bearer "+d.admin)
		case "none":
		default:
			req.Header.Set("Authorization", auth)
		}
		if _, raw := body.([]byte); body != nil && !raw {
			req.Header.Set("Content-Type", "application/json")
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		var res *http.Response
		if res, err = d.client.Do(req); err == nil {
			b, err = io.ReadAll(io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
			if err == nil {
				status = res.StatusCode
			}
		}
	}
	d.mu.Lock()
	c := d.counts[op]
	if c == nil {
		c = &opCount{}
		d.counts[op] = c
	}
	switch {
	case status == 0:
		c.failed++
	case status >= 500:
		c.c5xx++
		fmt.Fprintf(os.Stderr, "soak: %s %s: %d %s\n", method, strings.SplitN(path, "?", 2)[0], status, b)
	case status >= 400:
		c.c4xx++
	default:
		c.ok++
	}
	d.mu.Unlock()
	return status, b
}

func (d *driver) total() (n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.counts {
		n += c.ok + c.c4xx + c.c5xx
	}
	return n
}

func (d *driver) total5xx() (n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.counts {
		n += c.c5xx
	}
	return n
}

// sample is one reading of the server's resources; -1 means not measured.
type sample struct {
	at                         time.Time
	heap, goroutines, fds, rss float64
}

func (s sample) String() string {
	f := func(v float64, unit float64, suffix string) string {
		if v < 0 {
			return "n/a"
		}
		return strconv.FormatFloat(v/unit, 'f', 1, 64) + suffix
	}
	return fmt.Sprintf("heap %s, goroutines %s, open files %s, RSS %s",
		f(s.heap, 1<<20, " MiB"), f(s.goroutines, 1, ""), f(s.fds, 1, ""), f(s.rss, 1<<20, " MiB"))
}

// sample reads the Go runtime's figures from /metrics (admin token) and the
// process's from /proc/PID when -pid is given (preferred for files and
// RSS: they do not depend on the metrics the server exports).
func (d *driver) sample() (sample, error) {
	s := sample{at: time.Now(), heap: -1, goroutines: -1, fds: -1, rss: -1}
	req, _ := http.NewRequest("GET", d.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+d.admin)
	res, err := d.client.Do(req)
	if err != nil {
		return s, fmt.Errorf("/metrics: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode == 200 {
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok {
				continue
			}
			v, err := strconv.ParseFloat(val, 64)
			if err != nil {
				continue
			}
			switch name {
			case "go_memstats_heap_inuse_bytes":
				s.heap = v
			case "go_goroutines":
				s.goroutines = v
			case "process_open_fds":
				s.fds = v
			case "process_resident_memory_bytes":
				s.rss = v
			}
		}
	} else {
		io.Copy(io.Discard, res.Body)
	}
	if d.pid > 0 {
		if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid)); err == nil {
			s.fds = float64(len(entries))
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid)); err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
					if kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64); err == nil {
						s.rss = kb * 1024
					}
				}
			}
		}
	}
	return s, nil
}
