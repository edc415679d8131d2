package signing

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os/exec"
	"strings"
	"testing"

	"github.com/portaldist/portal"
)

// TestSparkleOpenSSL checks the Sparkle signature with OpenSSL's Ed25519
// (pure EdDSA over the raw file, what Sparkle's verifier computes) and that
// OpenSSL rejects a tampered file and another key.
func TestSparkleOpenSSL(t *testing.T) {
	bin := requireTool(t, "openssl")
	k := mustKey(t)
	other := mustKey(t)
	dir := t.TempDir()

	writePEM := func(name string, pub ed25519.PublicKey) string {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	pubPEM := writePEM("pub.pem", k.PublicKey())
	otherPEM := writePEM("other.pem", other.PublicKey())

	verify := func(pemPath, file, sigPath string) (string, error) {
		out, err := exec.Command(bin, "pkeyutl", "-verify", "-pubin", "-inkey", pemPath, "-rawin", "-in", file, "-sigfile", sigPath).CombinedOutput()
		return string(out), err
	}

	// No empty file here: OpenSSL 3.0's pkeyutl -rawin cannot read one
	// ("Could not allocate 0 bytes"); TestVerifySparkle covers it.
	for _, n := range []int{1, 4096, 1 << 20} {
		data := testData(n, uint64(n)+100)
		sigB64 := k.SparkleSign(data)
		sig, err := base64.StdEncoding.DecodeString(sigB64)
		if err != nil || len(sig) != ed25519.SignatureSize {
			t.Fatalf("size %d: SparkleSign returned %q, not base64 of 64 bytes", n, sigB64)
		}
		file := writeFile(t, dir, "app.zip", data)
		sigPath := writeFile(t, dir, "app.zip.sig", sig)

		if out, err := verify(pubPEM, file, sigPath); err != nil {
			t.Fatalf("size %d: openssl rejected the signature: %v\n%s", n, err, out)
		}
		writeFile(t, dir, "app.zip", tamper(data, n-1))
		if out, err := verify(pubPEM, file, sigPath); err == nil {
			t.Fatalf("size %d: openssl accepted a tampered file:\n%s", n, out)
		}
		writeFile(t, dir, "app.zip", data)
		if out, err := verify(otherPEM, file, sigPath); err == nil {
			t.Fatalf("size %d: openssl accepted the signature with another key:\n%s", n, out)
		}

		if err := VerifySparkle(k.PublicKey(), data, sigB64); err != nil {
			t.Fatalf("size %d: VerifySparkle: %v", n, err)
		}
	}
}

func TestSparklePublicKey(t *testing.T) {
	k := mustKey(t)
	b, err := base64.StdEncoding.DecodeString(k.SparklePublicKey())
	if err != nil || !ed25519.PublicKey(b).Equal(k.PublicKey()) {
		t.Fatalf("SparklePublicKey %q is not base64 of the 32-byte public key", k.SparklePublicKey())
	}
}

func TestVerifySparkle(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	data := []byte("an update")
	sig := k.SparkleSign(data)
	cases := []struct {
		name string
		pub  ed25519.PublicKey
		data []byte
		sig  string
		code string
	}{
		{"valid", k.PublicKey(), data, sig, ""},
		{"empty file", k.PublicKey(), nil, k.SparkleSign(nil), ""},
		{"empty file, other data", k.PublicKey(), nil, sig, portal.ESignatureInvalid},
		{"surrounding space", k.PublicKey(), data, " " + sig + "\n", ""},
		{"tampered data", k.PublicKey(), []byte("an updatE"), sig, portal.ESignatureInvalid},
		{"other key", other.PublicKey(), data, sig, portal.ESignatureInvalid},
		{"short public key", k.PublicKey()[:31], data, sig, portal.EInvalid},
		{"nil public key", nil, data, sig, portal.EInvalid},
		{"bad base64", k.PublicKey(), data, "!!!", portal.EInvalid},
		{"short signature", k.PublicKey(), data, sig[:40], portal.EInvalid},
		{"empty signature", k.PublicKey(), data, "", portal.EInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifySparkle(c.pub, c.data, c.sig)
			if c.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, c.code)
		})
	}
}

func TestParseSparkleSignature(t *testing.T) {
	k := mustKey(t)
	good := k.SparkleSign([]byte("x"))
	raw, _ := base64.StdEncoding.DecodeString(good)

	// S = ℓ exactly, and S with the top bit set: never valid.
	atOrder := append(append([]byte(nil), raw[:32]...), groupOrder[:]...)
	highS := append([]byte(nil), raw...)
	highS[63] |= 0x80
	// S = ℓ-1: the largest canonical scalar.
	belowOrder := append([]byte(nil), atOrder...)
	belowOrder[32]--

	enc := base64.StdEncoding.EncodeToString
	cases := []struct {
		name string
		in   string
		ok   bool
	}{
		{"real signature", good, true},
		{"largest canonical scalar", enc(belowOrder), true},
		{"scalar equal to group order", enc(atOrder), false},
		{"scalar high bit", enc(highS), false},
		{"63 bytes", enc(raw[:63]), false},
		{"65 bytes", enc(append(raw, 0)), false},
		{"unpadded", strings.TrimRight(good, "="), false},
		{"URL alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(good) + "-", false},
		{"embedded newline", good[:40] + "\n" + good[40:], false},
		{"empty", "", false},
		{"garbage", "not a signature", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := ParseSparkleSignature(c.in)
			if c.ok {
				if err != nil || len(sig) != ed25519.SignatureSize {
					t.Fatalf("got %d bytes, %v", len(sig), err)
				}
				return
			}
			wantCode(t, err, portal.EInvalid)
		})
	}
}

func TestZeroKeyIsHarmless(t *testing.T) {
	for _, k := range []*Key{nil, {}} {
		if k.PublicKey() != nil || k.SparklePublicKey() != "" || k.MinisignPublicKey() != "" ||
			k.MinisignPublicKeyFile() != "" || k.SparkleSign([]byte("x")) != "" {
			t.Fatalf("%v: an unusable key produced key material or a signature", k)
		}
	}
}
