package signing

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGenerateKey(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	if a.PublicKey().Equal(b.PublicKey()) || a.KeyID() == b.KeyID() {
		t.Fatal("two generated keys share a public key or key id")
	}
	if len(a.PublicKey()) != 32 {
		t.Fatalf("public key has %d bytes", len(a.PublicKey()))
	}
}

func TestMinisignPublicKeyLayout(t *testing.T) {
	k := newKey([8]byte{0x30, 0x2d, 0xfd, 0x89, 0xdd, 0x7d, 0x84, 0x0e}, bytes.Repeat([]byte{7}, 32))
	if got, want := k.KeyID(), uint64(0x0e847ddd89fd2d30); got != want {
		t.Fatalf("KeyID = %X, want %X", got, want)
	}
	// minisign prints the id with %PRIX64: upper case, no zero padding.
	if got := k.KeyIDHex(); got != "E847DDD89FD2D30" {
		t.Fatalf("KeyIDHex = %q", got)
	}
	raw, err := base64.StdEncoding.DecodeString(k.MinisignPublicKey())
	if err != nil || len(raw) != 42 || string(raw[:2]) != "Ed" ||
		binary.LittleEndian.Uint64(raw[2:10]) != k.KeyID() || !bytes.Equal(raw[10:], k.PublicKey()) {
		t.Fatalf("MinisignPublicKey %q is not base64(\"Ed\" || key id LE || public key)", k.MinisignPublicKey())
	}
	want := "untrusted comment: minisign public key E847DDD89FD2D30\n" + k.MinisignPublicKey() + "\n"
	if got := k.MinisignPublicKeyFile(); got != want {
		t.Fatalf("MinisignPublicKeyFile = %q, want %q", got, want)
	}
}

// TestSameAsMinisignTool loads a key pair made by `minisign -G -W`
// (unencrypted secret key) into a Key and checks that the portal writes the
// same .pub file and, Ed25519 being deterministic, the same signature lines
// as `minisign -S` for the same file and trusted comment.
func TestSameAsMinisignTool(t *testing.T) {
	bin := requireTool(t, "minisign")
	dir := t.TempDir()
	pubPath, secPath := filepath.Join(dir, "k.pub"), filepath.Join(dir, "k.key")
	if out, err := exec.Command(bin, "-G", "-W", "-p", pubPath, "-s", secPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	k := loadMinisignSecretKey(t, secPath)

	pubFile, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.MinisignPublicKeyFile(); got != string(pubFile) {
		t.Fatalf("MinisignPublicKeyFile:\n%q\nminisign -G wrote:\n%q", got, pubFile)
	}

	data := testData(100_000, 3)
	file := writeFile(t, dir, "app.bin", data)
	comment := TrustedComment(time.Unix(1700000000, 0), "app.bin")
	if out, err := exec.Command(bin, "-S", "-s", secPath, "-m", file, "-t", comment).CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	theirs, err := os.ReadFile(file + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	ours := signFile(t, k, data, comment)
	tl, ol := strings.Split(string(theirs), "\n"), strings.Split(string(ours), "\n")
	if len(tl) != len(ol) {
		t.Fatalf("line counts differ:\nminisign: %q\nportal:   %q", theirs, ours)
	}
	for i := 1; i < len(tl); i++ { // line 1 is the untrusted comment
		if tl[i] != ol[i] {
			t.Errorf("line %d differs:\nminisign: %q\nportal:   %q", i+1, tl[i], ol[i])
		}
	}
}

// loadMinisignSecretKey reads an unencrypted minisign secret key file:
// base64 of "Ed" | kdf alg | "B2" | salt (32) | opslimit (8) | memlimit (8) |
// key id (8) | Ed25519 secret key (64: seed || public key) | checksum (32).
func loadMinisignSecretKey(t *testing.T, path string) *Key {
	t.Helper()
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	raw, err := base64.StdEncoding.DecodeString(lines[len(lines)-1])
	if err != nil || len(raw) != 158 || string(raw[:2]) != "Ed" || !bytes.Equal(raw[2:4], []byte{0, 0}) {
		t.Fatalf("not an unencrypted minisign secret key: %q", text)
	}
	var id [8]byte
	copy(id[:], raw[54:62])
	k := newKey(id, raw[62:94])
	if !bytes.Equal(k.PublicKey(), raw[94:126]) {
		t.Fatal("secret key layout misread: seed does not derive the stored public key")
	}
	return k
}

// TestKeyFormatHidesSecret: a Key that ends up in a log line shows its id,
// never private key bytes, whatever the verb.
func TestKeyFormatHidesSecret(t *testing.T) {
	k := mustKey(t)
	seed := k.priv.Seed()
	secretForms := []string{
		fmt.Sprintf("%x", seed), fmt.Sprintf("%X", seed), fmt.Sprintf("%v", []byte(seed)),
		base64.StdEncoding.EncodeToString(seed), fmt.Sprintf("%v", []byte(k.priv)), fmt.Sprintf("%x", []byte(k.priv)),
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		for _, arg := range []any{k, *k} {
			out := fmt.Sprintf(verb, arg)
			for _, s := range secretForms {
				if strings.Contains(out, s) || strings.Contains(out, s[:16]) {
					t.Fatalf("fmt %s of a Key prints private key bytes: %s", verb, out)
				}
			}
			if arg == any(k) && !strings.Contains(out, k.KeyIDHex()) {
				t.Errorf("fmt %s of a Key = %q, want its key id", verb, out)
			}
		}
	}
}
