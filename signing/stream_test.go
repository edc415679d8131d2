package signing

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"testing"
)

// TestSparkleStream checks the two-pass signature against crypto/ed25519 for
// sizes around the copy buffer and hash block sizes, including 0 bytes: the
// signature must be the very bytes ed25519.Sign returns (Ed25519 is
// deterministic) and must verify.
func TestSparkleStream(t *testing.T) {
	k := mustKey(t)
	for _, size := range []int{0, 1, 63, 64, 127, 128, 129, 1000, 32<<10 - 1, 32 << 10, 32<<10 + 1, 1<<20 + 7} {
		data := testData(size, uint64(size))
		for _, chunk := range []int{1 << 10, 32 << 10, 3000} {
			s, err := k.SparkleStream()
			if err != nil {
				t.Fatal(err)
			}
			copyChunks(t, s.Pass1(), data, chunk)
			copyChunks(t, s.Pass2(), data, chunk)
			got, err := s.Sum()
			if err != nil {
				t.Fatal(err)
			}
			want := ed25519.Sign(k.priv, data)
			if !bytes.Equal(got, want) {
				t.Fatalf("size %d chunk %d: streamed signature differs from crypto/ed25519.Sign", size, chunk)
			}
			if !ed25519.Verify(k.PublicKey(), data, got) {
				t.Fatalf("size %d: signature does not verify", size)
			}
		}
	}
}

// TestSparkleStreamMixedPasses: different bytes in the two passes give no
// signature at all (its nonce would come from another message, and two such
// signatures give away the key).
func TestSparkleStreamMixedPasses(t *testing.T) {
	k := mustKey(t)
	a, b := testData(5000, 1), testData(5000, 2)
	s, err := k.SparkleStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Pass1().Write(a)
	s.Pass2().Write(b)
	if sig, err := s.Sum(); !errors.Is(err, ErrPassesDiffer) || sig != nil {
		t.Fatalf("mixed passes: %x, %v; want ErrPassesDiffer", sig, err)
	}
}

func TestSparkleStreamUnusableKey(t *testing.T) {
	var k *Key
	if _, err := k.SparkleStream(); err == nil {
		t.Fatal("nil key: no error")
	}
}

func copyChunks(t *testing.T, w io.Writer, data []byte, chunk int) {
	t.Helper()
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			t.Fatal(err)
		}
		data = data[n:]
	}
}
