package signing

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/minio/selfupdate"
	"github.com/portaldist/portal"
	"golang.org/x/crypto/blake2b"
)

// TestMinisignTool checks the portal's signatures with the minisign tool,
// both with the inline public key (-P) and the .pub file (-p), and that it
// rejects a tampered file, an altered trusted comment and another key.
func TestMinisignTool(t *testing.T) {
	bin := requireTool(t, "minisign")
	k := mustKey(t)
	other := mustKey(t)
	dir := t.TempDir()

	sizes := []int{0, 1, 1000, 1 << 20}
	for _, n := range sizes {
		data := testData(n, uint64(n))
		file := writeFile(t, dir, "app.bin", data)
		comment := TrustedComment(time.Unix(1700000000, 0), "app.bin")
		sig := signFile(t, k, data, comment)
		sigPath := writeFile(t, dir, "app.bin.minisig", sig)
		pubPath := writeFile(t, dir, "portal.pub", []byte(k.MinisignPublicKeyFile()))

		verify := func(args ...string) (string, error) {
			out, err := exec.Command(bin, args...).CombinedOutput()
			return string(out), err
		}

		// Inline key, as documented for users.
		if out, err := verify("-V", "-P", k.MinisignPublicKey(), "-m", file, "-x", sigPath); err != nil {
			t.Fatalf("size %d: minisign -V -P rejected the signature: %v\n%s", n, err, out)
		}
		// Key file; -Q prints only the trusted comment, which must round-trip.
		out, err := verify("-V", "-Q", "-p", pubPath, "-m", file, "-x", sigPath)
		if err != nil {
			t.Fatalf("size %d: minisign -V -p rejected the signature: %v\n%s", n, err, out)
		}
		if got := strings.TrimSpace(out); got != comment {
			t.Fatalf("size %d: minisign printed trusted comment %q, want %q", n, got, comment)
		}

		// Tampered file.
		if n > 0 {
			writeFile(t, dir, "app.bin", tamper(data, n/2))
		} else {
			writeFile(t, dir, "app.bin", []byte{0})
		}
		if out, err := verify("-V", "-P", k.MinisignPublicKey(), "-m", file, "-x", sigPath); err == nil {
			t.Fatalf("size %d: minisign accepted a tampered file:\n%s", n, out)
		}
		writeFile(t, dir, "app.bin", data)

		// Altered trusted comment: the global signature must fail.
		forged := bytes.Replace(sig, []byte("file:app.bin"), []byte("file:evil.bin"), 1)
		writeFile(t, dir, "forged.minisig", forged)
		if out, err := verify("-V", "-P", k.MinisignPublicKey(), "-m", file, "-x", dir+"/forged.minisig"); err == nil {
			t.Fatalf("size %d: minisign accepted an altered trusted comment:\n%s", n, out)
		}

		// Another product's key.
		if out, err := verify("-V", "-P", other.MinisignPublicKey(), "-m", file, "-x", sigPath); err == nil {
			t.Fatalf("size %d: minisign accepted the signature with another key:\n%s", n, out)
		}
	}
}

// TestMinisignToolLongComment pins MaxTrustedCommentLen to what minisign
// actually reads back.
func TestMinisignToolLongComment(t *testing.T) {
	bin := requireTool(t, "minisign")
	k := mustKey(t)
	dir := t.TempDir()
	data := []byte("payload")
	file := writeFile(t, dir, "f", data)
	comment := strings.Repeat("é", MaxTrustedCommentLen/2) + strings.Repeat("x", MaxTrustedCommentLen%2)
	if len(comment) != MaxTrustedCommentLen {
		t.Fatalf("test comment has %d bytes", len(comment))
	}
	sigPath := writeFile(t, dir, "f.minisig", signFile(t, k, data, comment))
	if out, err := exec.Command(bin, "-V", "-P", k.MinisignPublicKey(), "-m", file, "-x", sigPath).CombinedOutput(); err != nil {
		t.Fatalf("minisign rejected a %d-byte trusted comment: %v\n%s", len(comment), err, out)
	}
	d := NewDigester(0)
	d.Write(data)
	if _, err := k.MinisignSign(d.Sum().BLAKE2b512, comment+"x"); err == nil {
		t.Fatal("MinisignSign accepted a trusted comment minisign cannot read back")
	}
}

// TestMinisignGoVerifiers checks the signatures with aead.dev/minisign (the
// one-shot Verify and the streaming Reader.Verify, which accepts only the
// prehashed form) and with minio/selfupdate's verifier loaded from a file and
// from a URL, with both public key forms.
func TestMinisignGoVerifiers(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	dir := t.TempDir()
	data := testData(300_000, 7)
	sig := signFile(t, k, data, TrustedComment(time.Now(), "app.tar.gz"))
	bad := tamper(data, 12345)

	var pub minisign.PublicKey
	if err := pub.UnmarshalText([]byte(k.MinisignPublicKey())); err != nil {
		t.Fatal(err)
	}
	if pub.ID() != k.KeyID() {
		t.Fatalf("aead.dev/minisign reads key id %X, Key.KeyID is %X", pub.ID(), k.KeyID())
	}
	var pubFromFile minisign.PublicKey
	if err := pubFromFile.UnmarshalText([]byte(k.MinisignPublicKeyFile())); err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(pubFromFile) {
		t.Fatal("the public key line and the .pub file decode to different keys")
	}
	var otherPub minisign.PublicKey
	if err := otherPub.UnmarshalText([]byte(other.MinisignPublicKey())); err != nil {
		t.Fatal(err)
	}

	var parsed minisign.Signature
	if err := parsed.UnmarshalText(sig); err != nil {
		t.Fatal(err)
	}
	if parsed.Algorithm != minisign.HashEdDSA || parsed.KeyID != k.KeyID() {
		t.Fatalf("signature algorithm %#x key id %X, want %#x %X", parsed.Algorithm, parsed.KeyID, minisign.HashEdDSA, k.KeyID())
	}

	streamVerify := func(p minisign.PublicKey, msg []byte) bool {
		r := minisign.NewReader(bytes.NewReader(msg))
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Fatal(err)
		}
		return r.Verify(p, sig)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(sig)
	}))
	defer srv.Close()
	sigPath := writeFile(t, dir, "app.tar.gz.minisig", sig)
	selfupdateFile := func(pubText string, msg []byte) error {
		v := selfupdate.NewVerifier()
		if err := v.LoadFromFile(sigPath, pubText); err != nil {
			t.Fatal(err)
		}
		return v.Verify(msg)
	}
	selfupdateURL := func(pubText string, msg []byte) error {
		v := selfupdate.NewVerifier()
		if err := v.LoadFromURL(srv.URL+"/app.tar.gz.minisig", pubText, http.DefaultTransport); err != nil {
			t.Fatal(err)
		}
		return v.Verify(msg)
	}

	cases := []struct {
		name string
		ok   func(msg []byte) bool
	}{
		{"minisign.Verify", func(m []byte) bool { return minisign.Verify(pub, m, sig) }},
		{"Reader.Verify", func(m []byte) bool { return streamVerify(pub, m) }},
		{"selfupdate file, key line", func(m []byte) bool { return selfupdateFile(k.MinisignPublicKey(), m) == nil }},
		{"selfupdate file, .pub file", func(m []byte) bool { return selfupdateFile(k.MinisignPublicKeyFile(), m) == nil }},
		{"selfupdate URL", func(m []byte) bool { return selfupdateURL(k.MinisignPublicKey(), m) == nil }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !c.ok(data) {
				t.Fatal("rejected the portal's signature")
			}
			if c.ok(bad) {
				t.Fatal("accepted a tampered file")
			}
		})
	}
	if minisign.Verify(otherPub, data, sig) || streamVerify(otherPub, data) {
		t.Fatal("aead.dev/minisign accepted the signature with another key")
	}
	if err := selfupdateFile(other.MinisignPublicKey(), data); err == nil {
		t.Fatal("selfupdate accepted the signature with another key")
	}
}

// TestMinisignFormat pins the exact text layout.
func TestMinisignFormat(t *testing.T) {
	k := mustKey(t)
	digest := blake2b.Sum512([]byte("x"))
	comment := "timestamp:1\tfile:x\thashed"
	sig, err := k.MinisignSign(digest[:], comment)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(sig), "\n")
	if len(lines) != 5 || lines[4] != "" {
		t.Fatalf("want four lines each ending in a newline, got %q", sig)
	}
	if lines[0] != "untrusted comment: signature from portal secret key" {
		t.Errorf("line 1 = %q", lines[0])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil || len(raw) != 74 || string(raw[:2]) != "ED" {
		t.Errorf("line 2 is not base64(\"ED\" || key id || sig): %q", lines[1])
	}
	if lines[2] != "trusted comment: "+comment {
		t.Errorf("line 3 = %q", lines[2])
	}
	if g, err := base64.StdEncoding.DecodeString(lines[3]); err != nil || len(g) != 64 {
		t.Errorf("line 4 is not a base64 64-byte signature: %q", lines[3])
	}
	if got, want := TauriSignature(sig), base64.StdEncoding.EncodeToString(sig); got != want {
		t.Errorf("TauriSignature = %q, want %q", got, want)
	}
	decoded, _ := base64.StdEncoding.DecodeString(TauriSignature(sig))
	if !bytes.Equal(decoded, sig) {
		t.Error("TauriSignature does not decode to the .minisig text")
	}
}

func TestMinisignSignRejects(t *testing.T) {
	k := mustKey(t)
	digest := blake2b.Sum512([]byte("x"))
	cases := []struct {
		name    string
		key     *Key
		digest  []byte
		comment string
	}{
		{"short digest", k, digest[:32], "c"},
		{"nil digest", k, nil, "c"},
		{"newline", k, digest[:], "a\nb"},
		{"carriage return", k, digest[:], "a\rb"},
		{"NUL", k, digest[:], "a\x00b"},
		{"invalid UTF-8", k, digest[:], "a\xffb"},
		{"too long", k, digest[:], strings.Repeat("a", MaxTrustedCommentLen+1)},
		{"zero key", &Key{}, digest[:], "c"},
		{"nil key", nil, digest[:], "c"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sig, err := c.key.MinisignSign(c.digest, c.comment)
			wantCode(t, err, portal.EInvalid)
			if sig != nil {
				t.Fatal("returned a signature with the error")
			}
		})
	}
}

func TestVerifyMinisign(t *testing.T) {
	k := mustKey(t)
	other := mustKey(t)
	data := []byte("release contents")
	digest := blake2b.Sum512(data)
	badDigest := blake2b.Sum512([]byte("other contents"))
	comment := TrustedComment(time.Unix(42, 0), "r.tar.gz")
	sig := signFile(t, k, data, comment)
	forged := bytes.Replace(sig, []byte("r.tar.gz"), []byte("x.tar.gz"), 1)

	// A legacy "Ed" signature of the same file by the same key.
	var legacy []byte
	{
		lines := strings.Split(string(sig), "\n")
		raw, _ := base64.StdEncoding.DecodeString(lines[1])
		raw[1] = 'd'
		lines[1] = base64.StdEncoding.EncodeToString(raw)
		legacy = []byte(strings.Join(lines, "\n"))
	}

	got, err := VerifyMinisign(k.MinisignPublicKey(), digest[:], sig)
	if err != nil || got != comment {
		t.Fatalf("VerifyMinisign = %q, %v; want %q, nil", got, err, comment)
	}
	if _, err := VerifyMinisign(k.MinisignPublicKeyFile(), digest[:], bytes.ReplaceAll(sig, []byte("\n"), []byte("\r\n"))); err != nil {
		t.Fatalf(".pub file and CRLF signature: %v", err)
	}

	cases := []struct {
		name   string
		pub    string
		digest []byte
		sig    []byte
		code   string
	}{
		{"tampered file", k.MinisignPublicKey(), badDigest[:], sig, portal.ESignatureInvalid},
		{"altered comment", k.MinisignPublicKey(), digest[:], forged, portal.ESignatureInvalid},
		{"other key", other.MinisignPublicKey(), digest[:], sig, portal.ESignatureInvalid},
		{"legacy form", k.MinisignPublicKey(), digest[:], legacy, portal.EInvalid},
		{"three lines", k.MinisignPublicKey(), digest[:], sig[:bytes.LastIndexByte(sig[:len(sig)-1], '\n')], portal.EInvalid},
		{"empty signature", k.MinisignPublicKey(), digest[:], nil, portal.EInvalid},
		{"short digest", k.MinisignPublicKey(), digest[:10], sig, portal.EInvalid},
		{"bad key base64", "not base64!", digest[:], sig, portal.EInvalid},
		{"short key", base64.StdEncoding.EncodeToString([]byte("Edshort")), digest[:], sig, portal.EInvalid},
		{"empty key", "", digest[:], sig, portal.EInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyMinisign(c.pub, c.digest, c.sig)
			wantCode(t, err, c.code)
		})
	}
}

func TestParseMinisignPublicKey(t *testing.T) {
	k := mustKey(t)
	for _, s := range []string{k.MinisignPublicKey(), k.MinisignPublicKeyFile(), strings.ReplaceAll(k.MinisignPublicKeyFile(), "\n", "\r\n")} {
		id, pub, err := ParseMinisignPublicKey(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if id != k.KeyID() || !pub.Equal(k.PublicKey()) {
			t.Fatalf("%q: parsed key id %X and key differ from the Key's", s, id)
		}
	}
	wrongAlg, _ := base64.StdEncoding.DecodeString(k.MinisignPublicKey())
	wrongAlg[1] = 'D'
	for _, s := range []string{"", "x", "a\nb\nc", base64.StdEncoding.EncodeToString(wrongAlg), k.MinisignPublicKey()[:20]} {
		if _, _, err := ParseMinisignPublicKey(s); portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("%q: err = %v, want EInvalid", s, err)
		}
	}
}
