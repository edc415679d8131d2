package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"
)

// forgeMinisign plays the attacker against a key that makes Sparkle
// signatures of uploaded files: it has the raw signer sign BLAKE2b-512(m) and
// then signature || trusted comment, and assembles a .minisig for m, a file
// the signer never saw.
func forgeMinisign(sparkleSign func([]byte) []byte, keyID [8]byte, m []byte, comment string) []byte {
	d := blake2b.Sum512(m)
	sig := sparkleSign(d[:])
	global := sparkleSign(append(append([]byte(nil), sig...), comment...))
	line := append(append([]byte(minisignAlgED), keyID[:]...), sig...)
	return []byte("untrusted comment: forged\n" + base64.StdEncoding.EncodeToString(line) + "\n" +
		minisignTrustedPrefix + comment + "\n" + base64.StdEncoding.EncodeToString(global) + "\n")
}

func sparkleOf(k *Key) func([]byte) []byte {
	return func(b []byte) []byte { return ed25519.Sign(k.priv, b) }
}

// TestKeySetSeparation: with a shared key the collision trick gives a .minisig
// that minisign -V accepts (which is why a shared set refuses to Sparkle-sign
// such small files); with a split set the same trick gives nothing minisign
// accepts, and the set's genuine signatures pass minisign -V and OpenSSL.
func TestKeySetSeparation(t *testing.T) {
	bin := requireTool(t, "minisign")
	dir := t.TempDir()
	evil := testData(5000, 42)
	file := writeFile(t, dir, "evil.bin", evil)
	comment := TrustedComment(time.Unix(1700000000, 0), "evil.bin")
	minisignV := func(pub string, sig []byte) error {
		p := writeFile(t, dir, "evil.bin.minisig", sig)
		return exec.Command(bin, "-V", "-P", pub, "-m", file, "-x", p).Run()
	}

	shared := SharedKeySet(mustKey(t))
	forged := forgeMinisign(sparkleOf(shared.Sparkle), shared.Minisign.id, evil, comment)
	if err := minisignV(shared.Minisign.MinisignPublicKey(), forged); err != nil {
		t.Fatalf("the trick no longer works on a shared key (%v): this test no longer shows what it should", err)
	}
	for _, n := range []int64{0, 64, 64 + int64(len(comment)), int64(SharedKeyMaxMessage)} {
		if shared.SparkleSigns(n) {
			t.Errorf("a shared set Sparkle-signs a %d-byte file, which can be a minisign message", n)
		}
	}
	if !shared.SparkleSigns(int64(SharedKeyMaxMessage) + 1) {
		t.Error("a shared set refuses a file larger than any minisign message")
	}

	split, err := GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	if !split.Separate() || bytes.Equal(split.Sparkle.PublicKey(), split.Minisign.PublicKey()) {
		t.Fatal("a generated set uses one key for both schemes")
	}
	if !split.SparkleSigns(64) {
		t.Fatal("a split set refuses to Sparkle-sign a 64-byte file")
	}
	forged = forgeMinisign(sparkleOf(split.Sparkle), split.Minisign.id, evil, comment)
	if err := minisignV(split.Minisign.MinisignPublicKey(), forged); err == nil {
		t.Fatal("minisign -V accepts a signature forged from the Sparkle key of a split set")
	}
	if _, err := VerifyMinisign(split.Minisign.MinisignPublicKey(), blake2bOf(evil), forged); err == nil {
		t.Fatal("VerifyMinisign accepts a signature forged from the Sparkle key of a split set")
	}

	// The genuine signatures of a split set.
	if err := minisignV(split.Minisign.MinisignPublicKey(), signFile(t, split.Minisign, evil, comment)); err != nil {
		t.Fatalf("minisign -V rejects the split set's minisign signature: %v", err)
	}
	s, err := split.Sparkle.SparkleStream()
	if err != nil {
		t.Fatal(err)
	}
	s.Pass1().Write(evil)
	s.Pass2().Write(evil)
	sig, err := s.Sum()
	if err != nil {
		t.Fatal(err)
	}
	opensslVerify(t, split.Sparkle.PublicKey(), file, sig)
}

func blake2bOf(b []byte) []byte { d := blake2b.Sum512(b); return d[:] }

func opensslVerify(t *testing.T, pub ed25519.PublicKey, file string, sig []byte) {
	t.Helper()
	bin := requireTool(t, "openssl")
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pemPath := writeFile(t, dir, "pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	sigPath := writeFile(t, dir, "sig", sig)
	if out, err := exec.Command(bin, "pkeyutl", "-verify", "-pubin", "-inkey", pemPath, "-rawin", "-in", file, "-sigfile", sigPath).CombinedOutput(); err != nil {
		t.Fatalf("openssl rejects the Sparkle signature: %v\n%s", err, out)
	}
}

// TestKeySetSeal: both kinds of set round-trip through a Sealer with their
// public keys, and a shared set is stored in the first format, so stores
// written before split sets read the same.
func TestKeySetSeal(t *testing.T) {
	for _, mk := range [][]byte{nil, mustMasterKey(t)} {
		sl := mustSealer(t, mk).For("acme")
		k := mustKey(t)
		old, err := sl.Seal(k)
		if err != nil {
			t.Fatal(err)
		}
		ks, err := sl.OpenSet(old)
		if err != nil || ks.Separate() || !sameKey(ks.Sparkle, k) {
			t.Fatalf("OpenSet of a key stored by Seal: %v, separate %v", err, ks.Separate())
		}
		split, err := GenerateKeySet()
		if err != nil {
			t.Fatal(err)
		}
		b, err := sl.SealSet(split)
		if err != nil {
			t.Fatal(err)
		}
		got, err := sl.OpenSet(b)
		if err != nil || got.Public() != split.Public() {
			t.Fatalf("split set round trip: %v", err)
		}
		if _, err := sl.Open(b); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("Open of a split set: %v, want ErrMalformedKey", err)
		}
		if _, err := sl.SealSet(&KeySet{Sparkle: split.Sparkle, Minisign: mustKey(t)}); err == nil {
			t.Fatal("SealSet stores a set whose minisign key is not derived")
		}
	}
}

// TestRotation: staging publishes the next keys without changing the
// signing ones; activating swaps them and lists the old ones as previous.
func TestRotation(t *testing.T) {
	sl := mustSealer(t, mustMasterKey(t)).For("acme")
	orig := SharedKeySet(mustKey(t))
	stored, err := sl.SealSet(orig)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sl.Activate(stored, time.Now()); !errors.Is(err, ErrNothingStaged) {
		t.Fatalf("Activate without a staged set: %v", err)
	}
	staged, next, created, err := sl.Stage(stored)
	if err != nil || !created || !next.Separate {
		t.Fatalf("Stage: %v created %v separate %v", err, created, next.Separate)
	}
	again, next2, created, err := sl.Stage(staged)
	if err != nil || created || next2 != next || !bytes.Equal(again, staged) {
		t.Fatalf("Stage again: %v created %v", err, created)
	}
	cur, err := sl.Current(staged)
	if err != nil || cur.Public() != orig.Public() {
		t.Fatalf("staging changed the signing keys: %v", err)
	}
	d, err := sl.Describe(staged)
	if err != nil || d.Next == nil || *d.Next != next || d.Current != orig.Public() {
		t.Fatalf("Describe after staging: %+v, %v", d, err)
	}
	// The staged set is bound to its role.
	if r, _ := parseRing(staged); r.Next != nil {
		if _, err := sl.OpenSet(r.Next); !errors.Is(err, ErrUnseal) {
			t.Fatalf("the staged set opens as the current one: %v", err)
		}
	}

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	active, now, err := sl.Activate(staged, at)
	if err != nil || now != next {
		t.Fatalf("Activate: %v", err)
	}
	cur, err = sl.Current(active)
	if err != nil || cur.Public() != next || !cur.Separate() {
		t.Fatalf("after Activate the signing keys are not the staged ones: %v", err)
	}
	d, err = sl.Describe(active)
	if err != nil || d.Next != nil || len(d.Previous) != 1 || d.Previous[0].Sparkle != orig.Public().Sparkle ||
		d.Previous[0].Minisign != orig.Public().Minisign || d.Previous[0].RetiredAt == nil || !d.Previous[0].RetiredAt.Equal(at) {
		t.Fatalf("Describe after Activate: %+v, %v", d, err)
	}
	// Rotations remember at most MaxPreviousKeys sets.
	for range MaxPreviousKeys + 2 {
		if active, _, _, err = sl.Stage(active); err != nil {
			t.Fatal(err)
		}
		if active, _, err = sl.Activate(active, at); err != nil {
			t.Fatal(err)
		}
	}
	if d, err = sl.Describe(active); err != nil || len(d.Previous) != MaxPreviousKeys {
		t.Fatalf("previous sets: %d, %v", len(d.Previous), err)
	}
}

// TestResealStored: a master key enabled on a store of plaintext keys, with
// a ring that has a staged set too; public keys do not change.
func TestResealStored(t *testing.T) {
	plain := mustSealer(t, nil).For("acme")
	stored, err := plain.SealSet(SharedKeySet(mustKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	stored, _, _, err = plain.Stage(stored)
	if err != nil {
		t.Fatal(err)
	}
	before, err := plain.Describe(stored)
	if err != nil {
		t.Fatal(err)
	}
	sealed := mustSealer(t, mustMasterKey(t)).For("acme")
	if _, err := sealed.Current(stored); !errors.Is(err, ErrPlaintextKey) {
		t.Fatalf("a plaintext key under a master key: %v, want ErrPlaintextKey", err)
	}
	if !sealed.NeedsResealStored(stored) {
		t.Fatal("NeedsResealStored is false for plaintext keys")
	}
	out, changed, err := sealed.ResealStored(stored)
	if err != nil || !changed {
		t.Fatalf("ResealStored: %v, changed %v", err, changed)
	}
	if sealed.NeedsResealStored(out) {
		t.Fatal("plaintext left after ResealStored")
	}
	after, err := sealed.Describe(out)
	if err != nil || after.Current != before.Current || *after.Next != *before.Next {
		t.Fatalf("sealing changed the public keys: %v", err)
	}
	if _, changed, err := sealed.ResealStored(out); err != nil || changed {
		t.Fatalf("ResealStored of sealed keys: changed %v, %v", changed, err)
	}
	if _, err := plain.Current(out); !errors.Is(err, ErrMasterKeyRequired) {
		t.Fatalf("sealed keys without the master key: %v", err)
	}
}
