package signing

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// gpgvVerify runs Debian's gpgv (what apt runs) with the public key as its
// keyring; sig "" verifies a clear-signed file.
func gpgvVerify(t *testing.T, pub, data, sig []byte) error {
	t.Helper()
	gpgv := requireTool(t, "gpgv")
	dir := t.TempDir()
	ring := writeFile(t, dir, "key.gpg", pub)
	args := []string{"--homedir", dir, "--keyring", ring}
	if sig != nil {
		args = append(args, writeFile(t, dir, "msg.sig", sig), writeFile(t, dir, "msg", data))
	} else {
		args = append(args, writeFile(t, dir, "msg.asc", data))
	}
	out, err := exec.Command(gpgv, args...).CombinedOutput()
	if err != nil {
		return errors.New(string(out))
	}
	return nil
}

func TestOpenPGPSignVerify(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	msg := []byte("Origin: acme\nLabel: acme\nSuite: stable\n-Dash: line\nFrom here\n")
	for _, alg := range []string{OpenPGPEd25519, OpenPGPRSA3072} {
		t.Run(alg, func(t *testing.T) {
			k, err := GenerateOpenPGPKey(alg, "acme repository signing key", now)
			if err != nil {
				t.Fatal(err)
			}
			if k.Algorithm() != alg || len(k.Fingerprint()) != 40 || !strings.HasSuffix(k.Fingerprint(), k.KeyID()) {
				t.Fatalf("algorithm %q fingerprint %q key id %q", k.Algorithm(), k.Fingerprint(), k.KeyID())
			}
			pub := k.Public()
			if !strings.HasPrefix(pub.Armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
				t.Fatalf("armored key %q", pub.Armored)
			}
			other, err := GenerateOpenPGPKey(OpenPGPEd25519, "other", now)
			if err != nil {
				t.Fatal(err)
			}

			clear, err := k.ClearSign(msg, now)
			if err != nil {
				t.Fatal(err)
			}
			got, err := VerifyOpenPGPClearSigned([]byte(pub.Armored), clear)
			if err != nil || !bytes.Equal(bytes.TrimRight(got, "\n"), bytes.TrimRight(msg, "\n")) {
				t.Fatalf("clear-signed text %q, %v", got, err)
			}
			if err := gpgvVerify(t, pub.Binary, clear, nil); err != nil {
				t.Fatalf("gpgv refuses the clear-signed message: %v", err)
			}
			if !bytes.Contains(clear, []byte("Hash: SHA512")) {
				t.Fatalf("clear-signed message without SHA512 header:\n%s", clear)
			}
			tampered := bytes.Replace(clear, []byte("Suite: stable"), []byte("Suite: stabla"), 1)
			if err := gpgvVerify(t, pub.Binary, tampered, nil); err == nil {
				t.Fatal("gpgv accepts a tampered clear-signed message")
			}
			if _, err := VerifyOpenPGPClearSigned(pub.Binary, tampered); err == nil {
				t.Fatal("go-crypto accepts a tampered clear-signed message")
			}
			if err := gpgvVerify(t, other.PublicBinary(), clear, nil); err == nil {
				t.Fatal("gpgv accepts the signature with another key")
			}

			for name, sign := range map[string]func([]byte, time.Time) ([]byte, error){
				"binary": k.DetachSign, "armored": k.DetachSignArmored,
			} {
				sig, err := sign(msg, now)
				if err != nil {
					t.Fatal(err)
				}
				if (name == "armored") != bytes.HasPrefix(sig, []byte("-----BEGIN PGP SIGNATURE-----")) {
					t.Fatalf("%s signature starts %q", name, sig[:min(len(sig), 30)])
				}
				if err := VerifyOpenPGPDetached(pub.Binary, msg, sig); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if err := gpgvVerify(t, pub.Binary, msg, sig); err != nil {
					t.Fatalf("gpgv refuses the %s detached signature: %v", name, err)
				}
				bad := append(bytes.Clone(msg), 'x')
				if err := VerifyOpenPGPDetached(pub.Binary, bad, sig); err == nil {
					t.Fatalf("%s signature verifies another message", name)
				}
				if err := gpgvVerify(t, pub.Binary, bad, sig); err == nil {
					t.Fatalf("gpgv accepts the %s signature of another message", name)
				}
			}
		})
	}
}

func TestOpenPGPSealAndRing(t *testing.T) {
	now := time.Now()
	k, err := GenerateOpenPGPKey("", "acme", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := (&bytes.Buffer{}); true {
		got.WriteString(fmtKey(k))
		if strings.Contains(got.String(), "PRIVATE") || !strings.Contains(got.String(), k.Fingerprint()) {
			t.Fatalf("a formatted key prints %q", got)
		}
	}
	plain, _ := NewSealer(nil)
	mk, _ := NewMasterKey()
	mb, _ := ParseMasterKey(mk)
	sealed, _ := NewSealer(mb)
	mk2, _ := NewMasterKey()
	mb2, _ := ParseMasterKey(mk2)
	other, _ := NewSealer(mb2)

	ks, err := GenerateKeySet()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    *Sealer
	}{{"plaintext", plain.For("acme")}, {"master key", sealed.For("acme")}} {
		t.Run(tc.name, func(t *testing.T) {
			stored, err := tc.s.SealSet(ks)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tc.s.OpenPGP(stored); !errors.Is(err, ErrNoOpenPGPKey) {
				t.Fatalf("a product without OpenPGP key: %v", err)
			}
			with, err := tc.s.WithOpenPGP(stored, k)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tc.s.OpenPGP(with)
			if err != nil || got.Fingerprint() != k.Fingerprint() || got.Algorithm() != k.Algorithm() {
				t.Fatalf("opened %v, %v; want %s", got, err, k.Fingerprint())
			}
			// The opened key still signs what gpgv accepts.
			sig, err := got.DetachSign([]byte("x"), now)
			if err != nil || gpgvVerify(t, k.PublicBinary(), []byte("x"), sig) != nil {
				t.Fatalf("the opened key's signature does not verify: %v", err)
			}
			// The Ed25519 set is untouched and a rotation keeps the OpenPGP key.
			if cur, err := tc.s.Current(with); err != nil || cur.Public() != ks.Public() {
				t.Fatalf("current set after adding the OpenPGP key: %v", err)
			}
			staged, _, _, err := tc.s.Stage(with)
			if err != nil {
				t.Fatal(err)
			}
			active, _, err := tc.s.Activate(staged, now)
			if err != nil {
				t.Fatal(err)
			}
			d, err := tc.s.Describe(active)
			if err != nil || d.OpenPGP == nil || d.OpenPGP.Fingerprint != k.Fingerprint() {
				t.Fatalf("describe after a rotation: %+v, %v", d.OpenPGP, err)
			}
			if tc.s.Encrypts() {
				if bytes.Contains(with, k.PublicBinary()[:20]) {
					t.Fatal("the sealed key holds the key packets in clear")
				}
				if _, err := sealed.For("other").OpenPGP(with); !errors.Is(err, ErrUnseal) {
					t.Fatalf("opened as another product's key: %v", err)
				}
				if _, err := other.For("acme").OpenPGP(with); !errors.Is(err, ErrWrongMasterKey) {
					t.Fatalf("opened with another master key: %v", err)
				}
				if _, err := plain.For("acme").OpenPGP(with); !errors.Is(err, ErrMasterKeyRequired) {
					t.Fatalf("opened without the master key: %v", err)
				}
			}
		})
	}

	// Enabling a master key: the plaintext OpenPGP key is refused, then
	// sealed by ResealStored, keeping its fingerprint.
	stored, _ := plain.For("acme").SealSet(ks)
	stored, _ = plain.For("acme").WithOpenPGP(stored, k)
	s := sealed.For("acme")
	if !s.NeedsResealStored(stored) {
		t.Fatal("a plaintext OpenPGP key needs no resealing")
	}
	if _, err := s.OpenPGP(stored); !errors.Is(err, ErrPlaintextKey) {
		t.Fatalf("a plaintext OpenPGP key under a master key: %v", err)
	}
	out, changed, err := s.ResealStored(stored)
	if err != nil || !changed || s.NeedsResealStored(out) {
		t.Fatalf("reseal: changed %v, %v", changed, err)
	}
	if got, err := s.OpenPGP(out); err != nil || got.Fingerprint() != k.Fingerprint() {
		t.Fatalf("after resealing: %v", err)
	}

	// Corruption is refused, never a panic.
	for i := range out {
		bad := bytes.Clone(out)
		bad[i] ^= 0x40
		if _, err := s.OpenPGP(bad); err == nil {
			r, _ := parseRing(bad)
			if bytes.Equal(r.OpenPGP, mustRing(t, out).OpenPGP) {
				continue // the flip hit the Ed25519 part or JSON spacing
			}
			t.Fatalf("a key altered at byte %d opens", i)
		}
	}
}

func mustRing(t *testing.T, b []byte) ring {
	r, err := parseRing(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fmtKey(k *OpenPGPKey) string {
	var b bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		b.WriteString(strings.TrimSpace(fmt.Sprintf(verb, *k)))
	}
	return b.String()
}

// A clock behind the key's creation (set back, or a test clock) still
// gives signatures verifiers accept: they are dated at the key's creation.
func TestOpenPGPSignBeforeCreation(t *testing.T) {
	created := time.Now()
	k, err := GenerateOpenPGPKey("", "acme", created)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Suite: stable\n")
	sig, err := k.DetachSign(msg, created.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := gpgvVerify(t, k.PublicBinary(), msg, sig); err != nil {
		t.Fatal(err)
	}
	clear, err := k.ClearSign(msg, created.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := gpgvVerify(t, k.PublicBinary(), clear, nil); err != nil {
		t.Fatal(err)
	}
}
