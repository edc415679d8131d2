package hmacpool_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/portaldist/portal/internal/hmacpool"
)

func reference(key []byte, msg ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	for _, b := range msg {
		m.Write(b)
	}
	return m.Sum(nil)
}

// A state from the pool, reused any number of times and from many
// goroutines, gives the MAC hmac.New gives; the pool keeps its own copy of
// the key.
func TestSameAsHMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := hmacpool.New(key)
	want := reference(key, []byte("a"), []byte("b"))
	key[0] = 'X' // the caller's buffer changes after New
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				if got := p.Sum([]byte("a"), []byte("b")); !bytes.Equal(got, want) {
					t.Errorf("goroutine %d, use %d: %x, want %x", g, i, got, want)
					return
				}
				msg := fmt.Appendf(nil, "message %d/%d", g, i)
				h := p.Get()
				h.Write(msg)
				got := h.Sum(nil)
				p.Put(h)
				if ref := reference([]byte("0123456789abcdef0123456789abcdef"), msg); !bytes.Equal(got, ref) {
					t.Errorf("Get/Put: %x, want %x", got, ref)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkMAC(b *testing.B) {
	key := bytes.Repeat([]byte{7}, 32)
	msg := bytes.Repeat([]byte("x"), 200)
	b.Run("hmac.New", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			reference(key, msg)
		}
	})
	p := hmacpool.New(key)
	b.Run("pool", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Sum(msg)
		}
	})
}
