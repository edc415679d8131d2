package signing

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"testing"

	"golang.org/x/crypto/blake2b"
)

func TestDigester(t *testing.T) {
	const limit = 4096
	cases := []struct {
		name  string
		size  int
		limit int64
		chunk int // write size; 0 writes everything at once
	}{
		{"empty", 0, limit, 0},
		{"one byte", 1, limit, 0},
		{"at limit", limit, limit, 0},
		{"limit+1", limit + 1, limit, 0},
		{"at limit, odd chunks", limit, limit, 7},
		{"limit+1, byte by byte", limit + 1, limit, 1},
		{"crosses limit inside a write", 3 * limit, limit, 3000},
		{"large", 1<<20 + 3, limit, 32 << 10},
		{"large, buffered", 1<<20 + 3, 2 << 20, 32 << 10},
		{"zero limit, empty", 0, 0, 0},
		{"zero limit, one byte", 1, 0, 0},
		{"negative limit, empty", 0, -1, 0},
		// Around the parallel staging buffer.
		{"one stage", stageSize, -1, 0},
		{"one stage, 32 KiB chunks", stageSize, -1, 32 << 10},
		{"stages, odd chunks", 3*stageSize + 5, -1, 100_000},
		{"stages, chunks of a stage+1", 3*stageSize + 5, -1, stageSize + 1},
		{"stages, one write", 3*stageSize + 5, 4 * stageSize, 0},
		{"just under parallelMin", parallelMin - 1, -1, 0},
	}
	for _, c := range cases {
		for _, parallel := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/parallel=%v", c.name, parallel), func(t *testing.T) {
				testDigester(t, c.size, c.limit, c.chunk, parallel)
			})
		}
	}
}

// testDigester writes size bytes in chunks of chunk bytes (all at once for
// 0) to a Digester with the given limit, with the parallel path forced on or
// off whatever the machine, and compares with the one-shot functions.
func testDigester(t *testing.T, size int, limit int64, chunk int, parallel bool) {
	data := testData(size, uint64(size))
	d := NewDigester(limit)
	d.parallel = parallel
	if chunk == 0 {
		chunk = max(len(data), 1)
	}
	for rest := data; len(rest) > 0; {
		n := min(chunk, len(rest))
		if w, err := d.Write(rest[:n]); w != n || err != nil {
			t.Fatalf("Write = %d, %v", w, err)
		}
		rest = rest[n:]
	}
	if size == 0 {
		d.Write(nil)
	}
	s := d.Sum()

	want256 := sha256.Sum256(data)
	want512 := sha512.Sum512(data)
	wantB2 := blake2b.Sum512(data)
	if s.Size != int64(size) || d.Size() != int64(size) {
		t.Errorf("Size = %d (Digester %d), want %d", s.Size, d.Size(), size)
	}
	if !bytes.Equal(s.SHA256, want256[:]) {
		t.Error("SHA-256 differs from sha256.Sum256")
	}
	if !bytes.Equal(s.SHA512, want512[:]) {
		t.Error("SHA-512 differs from sha512.Sum512")
	}
	if !bytes.Equal(s.BLAKE2b512, wantB2[:]) {
		t.Error("BLAKE2b-512 differs from blake2b.Sum512")
	}
	if got, want := s.SHA256Hex(), hex.EncodeToString(want256[:]); got != want {
		t.Errorf("SHA256Hex = %s, want %s", got, want)
	}
	if got, want := s.SHA512Base64(), base64.StdEncoding.EncodeToString(want512[:]); got != want {
		t.Errorf("SHA512Base64 = %s, want %s", got, want)
	}
	if got, want := s.SHA512Hex(), hex.EncodeToString(want512[:]); got != want {
		t.Errorf("SHA512Hex = %s, want %s", got, want)
	}
	if got, want := s.BLAKE2b512Hex(), hex.EncodeToString(wantB2[:]); got != want {
		t.Errorf("BLAKE2b512Hex = %s, want %s", got, want)
	}

	if int64(size) <= limit {
		if s.Data == nil || !bytes.Equal(s.Data, data) {
			t.Errorf("Data has %d bytes (nil: %v), want the %d input bytes", len(s.Data), s.Data == nil, size)
		}
	} else if s.Data != nil {
		t.Errorf("Data has %d bytes above the limit, want nil", len(s.Data))
	}
}

// TestDigesterSumIsSnapshot: Sum may be taken mid-stream; the earlier Data
// and digests are unaffected by later writes, and the limit still applies.
func TestDigesterSumIsSnapshot(t *testing.T) {
	d := NewDigester(10)
	d.Write([]byte("hello"))
	first := d.Sum()
	d.Write([]byte("world"))
	second := d.Sum()
	if string(first.Data) != "hello" || string(second.Data) != "helloworld" {
		t.Fatalf("Data = %q then %q", first.Data, second.Data)
	}
	if h := sha256.Sum256([]byte("hello")); !bytes.Equal(first.SHA256, h[:]) {
		t.Fatal("first Sum changed after a later Write")
	}
	d.Write([]byte("!"))
	if third := d.Sum(); third.Data != nil || string(first.Data) != "hello" {
		t.Fatalf("after the limit: Data = %q, first Data = %q", third.Data, first.Data)
	}
}

func TestDigesterGrow(t *testing.T) {
	d := NewDigester(100)
	d.Write([]byte("abc"))
	d.Grow(97)
	if cap(d.buf) < 100 {
		t.Fatalf("Grow(97) within the limit left capacity %d", cap(d.buf))
	}
	buf := d.buf[:1]
	d.Write(bytes.Repeat([]byte("x"), 97))
	if &d.buf[0] != &buf[0] {
		t.Fatal("writing the announced bytes reallocated the buffer")
	}
	if s := d.Sum(); len(s.Data) != 100 || string(s.Data[:4]) != "abcx" {
		t.Fatalf("Data = %q", s.Data)
	}

	for _, n := range []int64{101, 1 << 62, math.MaxInt64, -1, 0} {
		d := NewDigester(100)
		d.Write([]byte("abc"))
		before := cap(d.buf)
		d.Grow(n)
		if n > 0 && n <= 97 {
			continue
		}
		if cap(d.buf) != before {
			t.Errorf("Grow(%d) beyond the limit changed the capacity to %d", n, cap(d.buf))
		}
	}
	over := NewDigester(-1)
	over.Grow(10)
	if over.buf != nil {
		t.Error("Grow allocated for a Digester that keeps nothing")
	}
}

func BenchmarkDigester(b *testing.B) {
	for _, size := range []int{64 << 10, 16 << 20} {
		for _, buffered := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%dKiB/buffered=%v", size>>10, buffered), func(b *testing.B) {
				data := testData(size, 1)
				limit := int64(-1)
				if buffered {
					limit = int64(size)
				}
				const chunk = 32 << 10 // io.Copy's buffer size
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					d := NewDigester(limit)
					d.Grow(int64(size))
					for off := 0; off < size; off += chunk {
						d.Write(data[off:min(off+chunk, size)])
					}
					d.Sum()
				}
			})
		}
	}
}
