package signing

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/portaldist/portal"
)

func mustMasterKey(t testing.TB) []byte {
	t.Helper()
	s, err := NewMasterKey()
	if err != nil {
		t.Fatal(err)
	}
	mk, err := ParseMasterKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func mustSealer(t testing.TB, masterKey []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameKey(a, b *Key) bool {
	return a.KeyID() == b.KeyID() && a.PublicKey().Equal(b.PublicKey()) && a.priv.Equal(b.priv)
}

func TestSealerRoundTrip(t *testing.T) {
	k := mustKey(t)
	cases := []struct {
		name    string
		sealer  *Sealer
		wantLen int
		encrypt bool
	}{
		{"plaintext", mustSealer(t, nil), plainLen, false},
		{"plaintext, associated data ignored", mustSealer(t, nil).For("acme"), plainLen, false},
		{"master key", mustSealer(t, mustMasterKey(t)).For("acme"), gcmLen, true},
		{"master key, empty associated data", mustSealer(t, mustMasterKey(t)), gcmLen, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := c.sealer.Seal(k)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != c.wantLen || c.sealer.Encrypts() != c.encrypt {
				t.Fatalf("sealed %d bytes (Encrypts %v), want %d (%v)", len(b), c.sealer.Encrypts(), c.wantLen, c.encrypt)
			}
			seed := k.priv.Seed()
			if c.encrypt && bytes.Contains(b, seed) {
				t.Fatal("sealed bytes contain the private key")
			}
			if !c.encrypt && !bytes.Contains(b, seed) {
				t.Fatal("plaintext form does not hold the seed: layout changed?")
			}
			got, err := c.sealer.Open(b)
			if err != nil {
				t.Fatal(err)
			}
			if !sameKey(got, k) {
				t.Fatal("opened key differs from the sealed one")
			}
			if c.sealer.NeedsReseal(b) {
				t.Fatal("NeedsReseal on what Seal just produced")
			}
			if c.encrypt {
				again, _ := c.sealer.Seal(k)
				if bytes.Equal(again, b) {
					t.Fatal("sealing twice gave the same bytes: nonce reused")
				}
			}
		})
	}
}

func TestSealerOpenFailures(t *testing.T) {
	k := mustKey(t)
	mk := mustMasterKey(t)
	acme := mustSealer(t, mk).For("acme")
	sealed, err := acme.Seal(k)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := mustSealer(t, nil).Seal(k)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		sealer *Sealer
		b      []byte
		want   error
	}{
		{"wrong master key", mustSealer(t, mustMasterKey(t)).For("acme"), sealed, ErrWrongMasterKey},
		{"no master key", mustSealer(t, nil).For("acme"), sealed, ErrMasterKeyRequired},
		{"wrong associated data", acme.For("globex"), sealed, ErrUnseal},
		{"associated data prefix", acme.For("acm"), sealed, ErrUnseal},
		{"empty associated data", acme.For(""), sealed, ErrUnseal},
		{"nil", acme, nil, ErrMalformedKey},
		{"empty", acme, []byte{}, ErrMalformedKey},
		{"not a key", acme, []byte(strings.Repeat("x", gcmLen)), ErrMalformedKey},
		{"unknown version", acme, append([]byte("PSK\x03"), sealed[4:]...), ErrMalformedKey},
		// The version is authenticated: a shared key cannot pass for a split set.
		{"version changed", acme, append([]byte("PSK\x02"), sealed[4:]...), ErrUnseal},
		{"unknown mode", acme, append([]byte("PSK\x01X"), sealed[5:]...), ErrMalformedKey},
		{"sealed, extra byte", acme, append(bytes.Clone(sealed), 0), ErrMalformedKey},
		{"plaintext, extra byte", acme, append(bytes.Clone(plain), 0), ErrMalformedKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.sealer.Open(c.b)
			if !errors.Is(err, c.want) || got != nil {
				t.Fatalf("Open = %v, %v; want nil, %v", got, err, c.want)
			}
		})
	}

	// Every truncation and every single-bit change fails cleanly. For the
	// encrypted form each byte is authenticated (header and master key id as
	// additional data, the rest by GCM); the plaintext form is checksummed.
	for _, form := range []struct {
		name string
		b    []byte
	}{{"sealed", sealed}, {"plaintext", plain}} {
		for n := range len(form.b) {
			if got, err := acme.Open(form.b[:n]); err == nil || got != nil {
				t.Fatalf("%s truncated to %d bytes opened", form.name, n)
			}
		}
		for i := range len(form.b) {
			for _, bit := range []byte{0x01, 0x80} {
				b := bytes.Clone(form.b)
				b[i] ^= bit
				if got, err := acme.Open(b); err == nil || got != nil {
					t.Fatalf("%s with byte %d changed (^%#x) opened", form.name, i, bit)
				}
			}
		}
	}
}

// TestSealerMigration: enabling a master key on a store of plaintext keys.
// Open refuses the plaintext key (a store writer could otherwise plant a key
// of their own); Reseal is the one way to turn it into a sealed key.
func TestSealerMigration(t *testing.T) {
	k := mustKey(t)
	plain, err := mustSealer(t, nil).Seal(k)
	if err != nil {
		t.Fatal(err)
	}
	withKey := mustSealer(t, mustMasterKey(t)).For("acme")
	if got, err := withKey.Open(plain); !errors.Is(err, ErrPlaintextKey) || got != nil {
		t.Fatalf("plaintext key with a master key configured: %v, %v; want ErrPlaintextKey", got, err)
	}
	if _, err := withKey.OpenSet(plain); !errors.Is(err, ErrPlaintextKey) {
		t.Fatalf("OpenSet of a plaintext key with a master key configured: %v; want ErrPlaintextKey", err)
	}
	if !withKey.NeedsReseal(plain) {
		t.Fatal("NeedsReseal is false for a plaintext key under a master key")
	}
	if mustSealer(t, nil).NeedsReseal(plain) {
		t.Fatal("NeedsReseal is true without a master key")
	}
	resealed, err := withKey.Reseal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if withKey.NeedsReseal(resealed) {
		t.Fatal("NeedsReseal after re-sealing")
	}
	if again, err := withKey.Open(resealed); err != nil || !sameKey(again, k) {
		t.Fatalf("re-sealed key: %v", err)
	}
	// Resealing an already sealed key, or another product's, changes nothing
	// or fails.
	if _, err := withKey.Reseal(resealed); err != nil {
		t.Fatalf("Reseal of a sealed key: %v", err)
	}
	if _, err := withKey.For("other").Reseal(resealed); !errors.Is(err, ErrUnseal) {
		t.Fatalf("Reseal of another product's key: %v, want ErrUnseal", err)
	}
}

func TestSealerRejects(t *testing.T) {
	for _, n := range []int{1, 16, 31, 33, 64} {
		if _, err := NewSealer(make([]byte, n)); portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("NewSealer with a %d-byte master key: %v, want EInvalid", n, err)
		}
	}
	s := mustSealer(t, mustMasterKey(t))
	for _, k := range []*Key{nil, {}} {
		if b, err := s.Seal(k); portal.ErrorCode(err) != portal.EInvalid || b != nil {
			t.Errorf("Seal(%v) = %d bytes, %v; want EInvalid", k, len(b), err)
		}
	}
}

func TestParseMasterKey(t *testing.T) {
	raw := make([]byte, MasterKeySize)
	rand.Read(raw)
	raw[0], raw[1] = 0xfb, 0xff // makes '+' and '/' (or '-' and '_') appear
	cases := []struct {
		name string
		in   string
		want []byte // nil with ok: no master key
		ok   bool
	}{
		{"standard", base64.StdEncoding.EncodeToString(raw), raw, true},
		{"unpadded", base64.RawStdEncoding.EncodeToString(raw), raw, true},
		{"URL alphabet", base64.URLEncoding.EncodeToString(raw), raw, true},
		{"URL unpadded", base64.RawURLEncoding.EncodeToString(raw), raw, true},
		{"surrounding space", "  " + base64.StdEncoding.EncodeToString(raw) + "\n", raw, true},
		{"empty: no master key", "", nil, true},
		{"spaces: no master key", " \t\n", nil, true},
		{"16 bytes", base64.StdEncoding.EncodeToString(raw[:16]), nil, false},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 1)), nil, false},
		{"not base64", "this is not a key!", nil, false},
		{"hex", strings.Repeat("ab", 32), nil, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseMasterKey(c.in)
			if !c.ok {
				wantCode(t, err, portal.EInvalid)
				if strings.Contains(err.Error(), c.in) {
					t.Fatalf("error quotes the configured value: %v", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, c.want) || (c.want == nil) != (got == nil) {
				t.Fatalf("ParseMasterKey = %x, %v; want %x", got, err, c.want)
			}
		})
	}
}

// FuzzSealerOpen: arbitrary stored bytes never panic, and whatever opens is
// a usable key whose public half matches.
func FuzzSealerOpen(f *testing.F) {
	k := mustKey(f)
	mk := make([]byte, MasterKeySize)
	plain, _ := mustSealer(f, nil).Seal(k)
	sealed, _ := mustSealer(f, mk).For("p").Seal(k)
	f.Add(plain)
	f.Add(sealed)
	f.Add([]byte("PSK\x01G"))
	f.Add([]byte{})
	plainS, gcmS := mustSealer(f, nil), mustSealer(f, mk).For("p")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, s := range []*Sealer{plainS, gcmS} {
			got, err := s.Open(b)
			if err == nil && (got == nil || !got.usable()) {
				t.Fatal("Open returned no usable key and no error")
			}
			s.NeedsReseal(b)
		}
	})
}
