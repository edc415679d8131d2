package signing

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"io"
	"runtime"
	"sync"

	"golang.org/x/crypto/blake2b"
)

// Digester computes, in one pass over an artifact, every digest the portal
// publishes or signs: SHA-256 (the catalog's integrity hash), SHA-512
// (electron-updater), BLAKE2b-512 (the message of a prehashed minisign
// signature), and feeds a fourth writer if asked (Also: the first pass of a
// SparkleStream). It can also keep the bytes in memory while their total
// stays within a buffer limit, for callers that want the whole small file.
//
// On a machine with more than one CPU, BLAKE2b runs on a second goroutine
// while SHA-256 and SHA-512 run on the caller's, which nearly doubles the
// throughput. Waking a goroutine costs tens of microseconds, as much as
// hashing a 32 KiB io.Copy chunk, so small writes are first copied to a
// staging buffer (up to 512 KiB per Digester) and hashed together. No
// goroutine outlives a call, and p is never used after Write returns.
//
// Write never fails. A Digester is not safe for concurrent use.
type Digester struct {
	sha256   hash.Hash
	sha512   hash.Hash
	blake2b  hash.Hash
	size     int64
	limit    int64
	buf      []byte
	over     bool // the total went past limit; buf has been released
	parallel bool
	stage    []byte // written but not yet hashed; parallel mode only
	also     io.Writer
	wg       sync.WaitGroup
}

const (
	// stageSize is how many bytes are hashed per parallel round; at 512 KiB
	// the goroutine hand-off costs a few percent of the hashing.
	stageSize = 512 << 10
	// parallelMin is the smallest input worth a goroutine at all.
	parallelMin = 64 << 10
)

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
		// Read once: GOMAXPROCS is a process-wide setting that rarely changes.
		parallel: runtime.GOMAXPROCS(0) > 1,
	}
	if !d.over {
		d.buf = []byte{}
	}
	return d
}

// Grow tells the Digester that about n more bytes will be written (for
// example an artifact's declared size), so that, if they will be kept, the
// buffer is allocated once instead of growing by copies. It has no effect
// when the total would exceed the buffer limit.
func (d *Digester) Grow(n int64) {
	// d.limit-d.size cannot overflow: while !d.over, 0 <= d.size <= d.limit.
	if d.over || n <= 0 || n > d.limit-d.size || n <= int64(cap(d.buf)-len(d.buf)) {
		return
	}
	d.buf = append(make([]byte, 0, int64(len(d.buf))+n), d.buf...)
}

// Also makes w receive every byte hashed from now on, as a fourth hash (for
// example SparkleStream.Pass1), on the goroutine that runs BLAKE2b. w's
// Write must not fail and must not keep p. Call it before the first Write.
func (d *Digester) Also(w io.Writer) { d.also = w }

// Write hashes p and, while the total stays within the buffer limit, copies
// it. It always returns len(p), nil.
func (d *Digester) Write(p []byte) (int, error) {
	n := len(p)
	d.size += int64(n)
	if !d.over {
		if d.size > d.limit {
			d.over = true
			d.buf = nil // release the memory as soon as it is known to be useless
		} else {
			d.buf = append(d.buf, p...)
		}
	}

	if !d.parallel {
		d.hash(p)
		return n, nil
	}
	if len(d.stage) > 0 || len(p) < stageSize {
		k := min(len(p), stageSize-len(d.stage))
		d.stage = append(d.stage, p[:k]...)
		p = p[k:]
		if len(d.stage) < stageSize {
			return n, nil
		}
		d.hash(d.stage)
		d.stage = d.stage[:0]
	}
	// The stage is empty: hash whole stages straight from p, keep the rest.
	whole := len(p) - len(p)%stageSize
	d.hash(p[:whole])
	d.stage = append(d.stage, p[whole:]...)
	return n, nil
}

// hash feeds p to the three hashes, BLAKE2b on its own goroutine when p is
// large enough and there is a second CPU.
func (d *Digester) hash(p []byte) {
	if d.parallel && len(p) >= parallelMin {
		d.wg.Go(func() {
			d.blake2b.Write(p)
			if d.also != nil {
				d.also.Write(p)
			}
		})
		d.sha256.Write(p)
		d.sha512.Write(p)
		d.wg.Wait()
		return
	}
	d.sha256.Write(p)
	d.sha512.Write(p)
	d.blake2b.Write(p)
	if d.also != nil {
		d.also.Write(p)
	}
}

// Size returns the number of bytes written so far.
func (d *Digester) Size() int64 { return d.size }

// Sum returns the digests of everything written so far; writing may go on
// afterwards. Digests.Data shares the Digester's buffer: it stays valid, but
// must not be modified while the Digester is still written to.
func (d *Digester) Sum() Digests {
	d.hash(d.stage)
	d.stage = d.stage[:0]
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
