package signing

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"

	"golang.org/x/crypto/blake2b"
)

// Digester computes, in one pass over an artifact, every digest the portal
// publishes or signs: SHA-256 (the catalog's integrity hash), SHA-512
// (electron-updater), BLAKE2b-512 (the message of a prehashed minisign
// signature). It also keeps the bytes in memory while their total stays
// within the buffer limit, because a Sparkle signature is pure Ed25519 over
// the whole file and cannot be computed from a digest.
//
// Write never fails. A Digester is not safe for concurrent use.
type Digester struct {
	sha256  hash.Hash
	sha512  hash.Hash
	blake2b hash.Hash
	size    int64
	limit   int64
	buf     []byte
	over    bool // the total went past limit; buf has been released
}

// Digests are the results of a Digester. The hashes are raw bytes.
type Digests struct {
	Size       int64
	SHA256     []byte
	SHA512     []byte
	BLAKE2b512 []byte
	// Data is the whole input when Size <= the buffer limit (non-nil, even
	// when empty), nil otherwise.
	Data []byte
}

// NewDigester returns a Digester that keeps the written bytes while their
// total is at most bufferLimit. A negative bufferLimit never keeps them.
func NewDigester(bufferLimit int64) *Digester {
	b, err := blake2b.New512(nil)
	if err != nil {
		// Only a key longer than 64 bytes makes New512 fail; there is none.
		panic(err)
	}
	d := &Digester{
		sha256:  sha256.New(),
		sha512:  sha512.New(),
		blake2b: b,
		limit:   bufferLimit,
		over:    bufferLimit < 0,
	}
	if !d.over {
		d.buf = []byte{}
	}
	return d
}

// Write hashes p and, while the total stays within the buffer limit, copies
// it. It always returns len(p), nil.
func (d *Digester) Write(p []byte) (int, error) {
	d.sha256.Write(p)
	d.sha512.Write(p)
	d.blake2b.Write(p)
	d.size += int64(len(p))
	if !d.over {
		if d.size > d.limit {
			d.over = true
			d.buf = nil // release the memory as soon as it is known to be useless
		} else {
			d.buf = append(d.buf, p...)
		}
	}
	return len(p), nil
}

// Size returns the number of bytes written so far.
func (d *Digester) Size() int64 { return d.size }

// Sum returns the digests of everything written so far; writing may go on
// afterwards. Digests.Data shares the Digester's buffer: it stays valid, but
// must not be modified while the Digester is still written to.
func (d *Digester) Sum() Digests {
	s := Digests{
		Size:       d.size,
		SHA256:     d.sha256.Sum(nil),
		SHA512:     d.sha512.Sum(nil),
		BLAKE2b512: d.blake2b.Sum(nil),
	}
	if !d.over {
		s.Data = d.buf[:len(d.buf):len(d.buf)]
	}
	return s
}

// SHA256Hex returns the SHA-256 in lower-case hex, the portal's API format.
func (s Digests) SHA256Hex() string { return hex.EncodeToString(s.SHA256) }

// SHA512Hex returns the SHA-512 in lower-case hex, the portal's API format.
func (s Digests) SHA512Hex() string { return hex.EncodeToString(s.SHA512) }

// SHA512Base64 returns the SHA-512 in standard base64, the form
// electron-updater's feeds carry in sha512 and verify downloads against.
func (s Digests) SHA512Base64() string { return base64.StdEncoding.EncodeToString(s.SHA512) }

// BLAKE2b512Hex returns the BLAKE2b-512 in lower-case hex.
func (s Digests) BLAKE2b512Hex() string { return hex.EncodeToString(s.BLAKE2b512) }
