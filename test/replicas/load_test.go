package replicas

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/portaldist/portal/client"
)

// etcdLoad is what the cluster did: write transactions (revisions), keys
// written (puts and deletes, per member), and reads (ranges, counted by the
// member that served them).
type etcdLoad struct {
	revs, puts, deletes, ranges float64
}

// load reads the cluster's counters. The members run in this process, so
// their metrics are in the default registry (summed over the members); the
// revision is read from the cluster.
func load(t *testing.T, cli *clientv3.Client, members int) etcdLoad {
	t.Helper()
	var l etcdLoad
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, mf := range mfs {
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue()
		}
		switch mf.GetName() {
		case "etcd_mvcc_range_total":
			l.ranges, found = v, found+1
		case "etcd_mvcc_put_total":
			l.puts, found = v/float64(members), found+1
		case "etcd_mvcc_delete_total":
			l.deletes, found = v/float64(members), found+1
		}
	}
	if found != 3 {
		t.Fatalf("found %d of etcd's mvcc counters in the default registry", found)
	}
	resp, err := cli.Get(context.Background(), "revision probe")
	if err != nil {
		t.Fatal(err)
	}
	l.revs = float64(resp.Header.Revision)
	return l
}

func (l etcdLoad) minus(o etcdLoad) etcdLoad {
	return etcdLoad{revs: l.revs - o.revs, puts: l.puts - o.puts, deletes: l.deletes - o.deletes, ranges: l.ranges - o.ranges}
}

// TestEtcdLoadPerOperation measures what each kind of request costs the
// etcd cluster, with two replicas on it (the numbers docs/SCALING.md
// quotes), and checks the rule that matters most for scaling: update
// checks and feeds, the bulk of a portal's traffic, are answered from
// memory (the watch-fed index and caches), not by reading etcd per
// request.
func TestEtcdLoadPerOperation(t *testing.T) {
	e := newEnv(t)
	a := e.start("A")
	b := e.start("B")
	cli := e.cluster.NewClient(t)
	auth := admin(t, a)
	const product = "measured"
	must(t, 201, "POST", a.url+"/v1/products", auth, map[string]any{"slug": product, "name": "Measured"}, nil)
	licID, key := newLicense(t, a, auth, product)
	lic := client.License(key)
	v1 := publish(t, a, auth, product, "1.0.0")
	// Warm B's caches, and let the index and the ledger settle.
	upgradeTo(t, b, lic, product, "0.1.0")
	electronVersion(t, b, lic, product)
	time.Sleep(300 * time.Millisecond)

	var lines []string
	measure := func(what string, n int, settle time.Duration, fn func(i int)) etcdLoad {
		t.Helper()
		before := load(t, cli, e.cluster.Size())
		for i := range n {
			fn(i)
		}
		time.Sleep(settle) // queued work (the ledger's flush, index reloads) lands
		d := load(t, cli, e.cluster.Size()).minus(before)
		per := func(v float64) float64 { return v / float64(n) }
		lines = append(lines, fmt.Sprintf("%-34s n=%-4d txns/op=%-6.2f keys written/op=%-6.2f reads/op=%.2f",
			what, n, per(d.revs), per(d.puts+d.deletes), per(d.ranges)))
		return d
	}

	up := measure("upgrade check (B)", 300, 0, func(int) {
		if v := upgradeTo(t, b, lic, product, "0.1.0"); v != "1.0.0" {
			t.Fatalf("upgrade offers %q", v)
		}
	})
	feed := measure("electron feed (B)", 300, 0, func(int) {
		if v := electronVersion(t, b, lic, product); v != "1.0.0" {
			t.Fatalf("feed has %q", v)
		}
	})
	measure("download grant (B)", 50, 300*time.Millisecond, func(int) {
		if status, code, _ := downloadNoFetch(t, b, lic, product, "1.0.0"); status != 200 {
			t.Fatalf("grant: %d %s", status, code)
		}
	})
	var tokens []string
	measure("share link create (B)", 20, 0, func(int) {
		var link struct{ URL string }
		must(t, 201, "POST", b.url+"/v1/links", lic, map[string]any{"product": product, "version": "1.0.0", "filename": v1.filename, "ttl": "1h"}, &link)
		_, tok, _ := strings.Cut(link.URL, "/d/")
		tokens = append(tokens, tok)
	})
	measure("share link open (A)", 20, 300*time.Millisecond, func(i int) {
		if status, body := call(t, "GET", a.url+"/d/"+tokens[i], "", nil); status != 303 {
			t.Fatalf("link: %d %s", status, body)
		}
	})
	// Opened again: the records are in A's watch-fed memory now.
	measure("share link reopen (A)", 100, 300*time.Millisecond, func(i int) {
		if status, body := call(t, "GET", a.url+"/d/"+tokens[i%len(tokens)], "", nil); status != 303 {
			t.Fatalf("link: %d %s", status, body)
		}
	})
	measure("license suspend+reinstate (A)", 10, 0, func(int) {
		must(t, 200, "POST", a.url+"/v1/licenses/"+licID+"/suspend", auth, nil, nil)
		must(t, 200, "POST", a.url+"/v1/licenses/"+licID+"/reinstate", auth, nil, nil)
	})
	measure("publish, 1 artifact (A)", 5, 300*time.Millisecond, func(i int) {
		publish(t, a, auth, product, fmt.Sprintf("2.0.%d", i))
	})
	for _, l := range lines {
		t.Log(l)
	}

	// A request that read etcd would cost at least one range each; the
	// caches' expiry (licenses.CacheTTL, releases.ProductCacheTTL) allows a
	// few reads per product and license per TTL, whatever the traffic, and
	// a change of leader on a loaded machine a few reads and two writes
	// (its election keys).
	for _, c := range []struct {
		what string
		d    etcdLoad
	}{{"upgrade checks", up}, {"feed requests", feed}} {
		if c.d.ranges > 10 || c.d.revs > 2 {
			t.Errorf("300 %s cost etcd %.0f reads and %.0f writes; want them answered from memory", c.what, c.d.ranges, c.d.revs)
		}
	}
}

// downloadNoFetch asks for a grant without fetching the object.
func downloadNoFetch(t *testing.T, r *replica, lic, product, version string) (int, string, []byte) {
	t.Helper()
	status, b := call(t, "GET", r.url+"/v1/products/"+product+"/releases/"+version+"/download?platform=linux&arch=amd64", lic, nil)
	if status == 303 {
		return 200, "", nil
	}
	return status, errorCode(b), b
}
