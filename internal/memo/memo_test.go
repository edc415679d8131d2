package memo

import (
	"testing"
	"time"
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
