package repos

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestCacheRendersOnce(t *testing.T) {
	c := NewCache[string](10, time.Hour, 2)
	var renders atomic.Int32
	release := make(chan struct{})
	render := func(context.Context) (string, error) {
		renders.Add(1)
		<-release
		return "doc", nil
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if v, err := c.Get(context.Background(), "k", render); v != "doc" || err != nil {
				t.Errorf("Get = %q, %v", v, err)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := renders.Load(); n != 1 {
		t.Fatalf("%d renders for 20 concurrent misses, want 1", n)
	}
	if v, _ := c.Get(context.Background(), "k", func(context.Context) (string, error) { return "again", nil }); v != "doc" {
		t.Fatalf("a hit rendered again: %q", v)
	}

	// Errors are not cached; a caller whose context ends stops waiting.
	boom := errors.New("boom")
	if _, err := c.Get(context.Background(), "e", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if v, err := c.Get(context.Background(), "e", func(context.Context) (string, error) { return "ok", nil }); v != "ok" || err != nil {
		t.Fatalf("after an error: %q %v", v, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	slow := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "slow", func(context.Context) (string, error) { <-slow; return "late", nil })
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Get: %v", err)
	}
	close(slow)
	// The render went on for the others and is cached.
	deadline := time.Now().Add(2 * time.Second)
	for {
		v, _ := c.Get(context.Background(), "slow", func(context.Context) (string, error) { return "fresh", nil })
		if v == "late" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the abandoned render was not kept: %q", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCacheLimitBytes(t *testing.T) {
	c := NewCache[string](100, time.Hour, 1).LimitBytes(10, func(v string) int64 { return int64(len(v)) })
	get := func(k, v string) string {
		got, err := c.Get(context.Background(), k, func(context.Context) (string, error) { return v, nil })
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	get("a", "aaaa")
	get("b", "bbbb")
	if get("a", "new") != "aaaa" || get("b", "new") != "bbbb" {
		t.Fatal("entries within the limit were dropped")
	}
	get("c", "cccc") // 12 bytes: the cache starts over with c alone
	if get("a", "again") != "again" {
		t.Fatal("the cache kept more than its byte limit")
	}
	if get("c", "new") != "cccc" {
		t.Fatal("the entry that started the cache over is gone")
	}
}
