// Package hmacpool keeps keyed HMAC-SHA256 states for reuse. hmac.New
// hashes the key into the inner and outer pads on every call, which for
// the short messages the portal signs per request (download links, share
// link tags) is about half the cost of the MAC and most of its garbage; a
// state from a Pool is reset to its keyed pads instead.
package hmacpool

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"slices"
	"sync"
)

// Pool hands out HMAC-SHA256 states keyed with one secret. It is safe for
// concurrent use.
type Pool struct{ p sync.Pool }

// New returns a pool of states keyed with secret, which it copies.
func New(secret []byte) *Pool {
	key := slices.Clone(secret)
	return &Pool{p: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

// Get returns a keyed state with nothing written. Give it back with Put
// after taking its Sum, and do not use it afterwards.
func (p *Pool) Get() hash.Hash { return p.p.Get().(hash.Hash) }

// Put resets h to the keyed pads and keeps it for the next Get.
func (p *Pool) Put(h hash.Hash) {
	h.Reset()
	p.p.Put(h)
}

// Sum returns the MAC of the concatenated parts.
func (p *Pool) Sum(parts ...[]byte) []byte {
	h := p.Get()
	for _, b := range parts {
		h.Write(b)
	}
	sum := h.Sum(nil)
	p.Put(h)
	return sum
}
