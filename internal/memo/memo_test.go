package memo

import (
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/store"
)

func TestCache(t *testing.T) {
	c := New[string, int](50*time.Millisecond, 3)
	g := c.Gen()
	c.PutIf("a", 1, g)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("get a = %d, %v", v, ok)
	}
	// A delete between load and put keeps the stale copy out.
	g = c.Gen()
	c.Delete("b")
	c.PutIf("b", 2, g)
	if _, ok := c.Get("b"); ok {
		t.Fatal("a copy loaded before a delete was cached")
	}
	// Bounded: the fourth entry starts over.
	g = c.Gen()
	c.PutIf("x", 1, g)
	c.PutIf("y", 1, g)
	c.PutIf("z", 1, g)
	if _, ok := c.Get("a"); ok {
		t.Fatal("cache grew past its bound")
	}
	if _, ok := c.Get("z"); !ok {
		t.Fatal("newest entry missing")
	}
	// Expiry.
	time.Sleep(60 * time.Millisecond)
	if _, ok := c.Get("z"); ok {
		t.Fatal("entry outlived its TTL")
	}
	c.Clear()
	if _, ok := c.Get("y"); ok {
		t.Fatal("clear kept an entry")
	}
}

func TestFollow(t *testing.T) {
	c := New[string, int](time.Hour, 100)
	for _, k := range []string{"a", "b", "c"} {
		c.PutIf(k, 1, c.Gen())
	}
	events := make(chan store.Event)
	done := make(chan struct{})
	go func() {
		c.Follow(events, func(key []byte) (string, bool) {
			k, ok := strings.CutPrefix(string(key), "x/")
			return k, ok
		})
		close(done)
	}()
	events <- store.Event{Type: store.EventPut, Key: []byte("x/a")}
	events <- store.Event{Type: store.EventDelete, Key: []byte("x/b")}
	events <- store.Event{Type: store.EventPut, Key: []byte("y/c")} // not a key of this cache
	close(events)
	<-done
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok := c.Get(k); ok != want {
			t.Errorf("after events, %s cached = %v, want %v", k, ok, want)
		}
	}

	events = make(chan store.Event, 1)
	events <- store.Event{Type: store.EventReset}
	close(events)
	c.Follow(events, func([]byte) (string, bool) { return "", false })
	if _, ok := c.Get("c"); ok {
		t.Error("a reset kept an entry")
	}
}

func TestSetTTL(t *testing.T) {
	c := New[string, int](time.Hour, 10)
	c.PutIf("a", 1, c.Gen())
	c.SetTTL(0)
	if _, ok := c.Get("a"); ok {
		t.Error("SetTTL kept an entry")
	}
	c.PutIf("a", 1, c.Gen())
	if _, ok := c.Get("a"); ok {
		t.Error("a cache with TTL 0 stored an entry")
	}
}
