package etcdtest

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestStopAndRestartMember writes through a 3-member cluster while one
// member is stopped and restarted, and reads every acknowledged write back
// from the restarted member alone.
func TestStopAndRestartMember(t *testing.T) {
	start := time.Now()
	c := New(t, Options{})
	t.Logf("cluster up in %v", time.Since(start))
	if c.Size() != 3 || len(c.Endpoints()) != 3 {
		t.Fatalf("size %d endpoints %v", c.Size(), c.Endpoints())
	}
	cli := c.NewClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pfx := Prefix(t)
	// A put may time out while the cluster elects a new leader; putting
	// the same value again is harmless.
	put := func(i int) {
		t.Helper()
		var err error
		for range 5 {
			if _, err = cli.Put(ctx, fmt.Sprintf("%sk%03d", pfx, i), "v"); err == nil {
				return
			}
		}
		t.Fatalf("put %d: %v", i, err)
	}
	for i := 0; i < 10; i++ {
		put(i)
	}
	victim := c.Leader()
	if victim < 0 {
		t.Fatal("no leader")
	}
	c.StopMember(victim)
	if c.Running(victim) {
		t.Fatal("stopped member still running")
	}
	for i := 10; i < 20; i++ {
		put(i)
	}
	if err := c.RestartMember(victim); err != nil {
		t.Fatal(err)
	}
	// Read from the restarted member only, linearizably.
	one, err := clientv3.New(clientv3.Config{Endpoints: []string{c.Endpoints()[victim]}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if err := WaitHealthy(ctx, one); err != nil {
		t.Fatal(err)
	}
	resp, err := one.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 20 {
		t.Fatalf("restarted member sees %d keys, want 20", resp.Count)
	}
}

func TestPrefixesDiffer(t *testing.T) {
	a, b := Prefix(t), Prefix(t)
	if a == b {
		t.Fatalf("same prefix %q twice", a)
	}
}
