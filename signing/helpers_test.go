package signing

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal"
)

// requireTool returns the path of a Debian tool the tests verify against.
// A missing tool fails the test: skipping would let a broken signature pass.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: run scripts/test.sh, which installs it (or apt-get install %s)", name, name)
	}
	return p
}

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x706f7274616c))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustKey(t testing.TB) *Key {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signFile hashes data the way the portal does (a Digester) and returns the
// .minisig text.
func signFile(t testing.TB, k *Key, data []byte, comment string) []byte {
	t.Helper()
	d := NewDigester(0)
	d.Write(data)
	sig, err := k.MinisignSign(d.Sum().BLAKE2b512, comment)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tamper returns a copy of b with one bit of byte i flipped.
func tamper(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want code %q", code)
	}
	if got := portal.ErrorCode(err); got != code {
		t.Fatalf("error %q has code %q, want %q", err, got, code)
	}
}
