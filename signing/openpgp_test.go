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

// A staged OpenPGP key signs beside the current one, so clients that trust
// either verify; once activated it signs alone.
func TestOpenPGPRotation(t *testing.T) {
	now := time.Now()
	s, _ := NewSealer(nil)
	s = s.For("acme")
	ks, _ := GenerateKeySet()
	stored, _ := s.SealSet(ks)
	if _, _, _, err := s.StageOpenPGP(stored, nil); !errors.Is(err, ErrNoOpenPGPKey) {
		t.Fatalf("staging without a current key: %v", err)
	}
	old, _ := GenerateOpenPGPKey("", "acme", now)
	stored, _ = s.WithOpenPGP(stored, old)
	if _, _, err := s.ActivateOpenPGP(stored); !errors.Is(err, ErrNothingStaged) {
		t.Fatalf("activating with nothing staged: %v", err)
	}
	next, _ := GenerateOpenPGPKey(OpenPGPRSA3072, "acme", now)
	staged, got, created, err := s.StageOpenPGP(stored, next)
	if err != nil || !created || got.Fingerprint() != next.Fingerprint() {
		t.Fatalf("stage: %v %v", created, err)
	}
	other, _ := GenerateOpenPGPKey("", "acme", now)
	if again, got, created, err := s.StageOpenPGP(staged, other); err != nil || created || got.Fingerprint() != next.Fingerprint() || string(again) != string(staged) {
		t.Fatalf("staging again replaced the staged key: %v", err)
	}
	signers, err := s.OpenPGPSigners(staged)
	if err != nil || len(signers) != 2 || signers[0].Fingerprint() != old.Fingerprint() || signers[1].Fingerprint() != next.Fingerprint() {
		t.Fatalf("signers while staged: %v %v", signers, err)
	}
	d, err := s.Describe(staged)
	if err != nil || d.OpenPGP.Fingerprint != old.Fingerprint() || d.OpenPGPNext == nil || d.OpenPGPNext.Fingerprint != next.Fingerprint() {
		t.Fatalf("describe while staged: %+v %v", d, err)
	}
	msg := []byte("Origin: acme\nSuite: stable\n")
	clear, err := ClearSignAll(signers, msg, now)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := DetachSignArmoredAll(signers, msg, now)
	if err != nil {
		t.Fatal(err)
	}
	// gpgv trusting one key finds that key's good signature and cannot
	// check the other (its exit status says so; apt, which reads gpgv's
	// status lines, accepts a file with a good signature by a trusted key
	// and no bad one).
	for _, trust := range []*OpenPGPKey{old, next} {
		for name, err := range map[string]error{
			"clear-signed": gpgvVerify(t, trust.PublicBinary(), clear, nil),
			"detached":     gpgvVerify(t, trust.PublicBinary(), msg, sig),
		} {
			out := fmt.Sprint(err)
			if !strings.Contains(out, "Good signature") || strings.Contains(out, "BAD signature") || !strings.Contains(out, "No public key") {
				t.Fatalf("gpgv trusting %s on the %s message: %s", trust.Algorithm(), name, out)
			}
		}
	}
	ring, armored := PublicKeyring(signers)
	if err := gpgvVerify(t, ring, clear, nil); err != nil {
		t.Fatalf("gpgv with both keys: %v", err)
	}
	if _, err := VerifyOpenPGPClearSigned([]byte(armored), clear); err != nil {
		t.Fatal(err)
	}
	if err := gpgvVerify(t, other.PublicBinary(), clear, nil); err == nil {
		t.Fatal("gpgv accepts the message with an unrelated key")
	}

	active, cur, err := s.ActivateOpenPGP(staged)
	if err != nil || cur.Fingerprint() != next.Fingerprint() {
		t.Fatalf("activate: %v", err)
	}
	signers, err = s.OpenPGPSigners(active)
	if err != nil || len(signers) != 1 || signers[0].Fingerprint() != next.Fingerprint() {
		t.Fatalf("signers after activation: %v", err)
	}
	d, _ = s.Describe(active)
	if d.OpenPGPNext != nil || len(d.OpenPGPPrevious) != 1 || d.OpenPGPPrevious[0] != old.Fingerprint() {
		t.Fatalf("describe after activation: %+v", d)
	}
	clear, _ = ClearSignAll(signers, msg, now)
	if err := gpgvVerify(t, old.PublicBinary(), clear, nil); err == nil {
		t.Fatal("the old key still verifies after activation")
	}
	// The Ed25519 set is untouched.
	if c, err := s.Current(active); err != nil || c.Public() != ks.Public() {
		t.Fatalf("Ed25519 keys after the OpenPGP rotation: %v", err)
	}
}
