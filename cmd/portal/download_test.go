package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/signing"
)

// fakePortal serves a download grant, the file, and optionally the
// product's key and the file's .minisig, as the portal does.
type fakePortal struct {
	t       *testing.T
	srv     *httptest.Server
	grant   map[string]any // without url, which is filled in
	file    []byte         // what storage serves
	refusal string         // an error envelope to answer the grant with
	key     string         // minisign public key; "" answers 404
	minisig []byte         // nil answers 404
	length  bool           // send Content-Length with the file
}

func newFakePortal(t *testing.T, filename string, body []byte) *fakePortal {
	f := &fakePortal{t: t, file: body, grant: map[string]any{
		"filename": filename, "size": len(body), "sha256": hexSHA(body), "version": "1.2.0",
		"expires_at": time.Now().Add(time.Minute).UTC().Format(time.RFC3339),
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/products/acme/releases/{version}/download", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "application/json" || r.Header.Get("Authorization") != "License lic-key" {
			t.Errorf("grant request: Accept %q, Authorization %q", r.Header.Get("Accept"), r.Header.Get("Authorization"))
		}
		if q := r.URL.Query(); q.Get("platform") != "darwin" || q.Get("arch") != "arm64" || r.PathValue("version") != "latest" {
			t.Errorf("grant request: %s", r.URL)
		}
		if f.refusal != "" {
			w.WriteHeader(403)
			w.Write([]byte(f.refusal))
			return
		}
		g := map[string]any{"url": f.srv.URL + "/blob/x?sig=abc"}
		for k, v := range f.grant {
			g[k] = v
		}
		json.NewEncoder(w).Encode(g)
	})
	mux.HandleFunc("GET /blob/x", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("storage GET carries Authorization %q", r.Header.Get("Authorization"))
		}
		if f.length {
			w.Header().Set("Content-Length", strconv.Itoa(len(f.file)))
		}
		w.Write(f.file)
	})
	mux.HandleFunc("GET /v1/products/acme/keys", func(w http.ResponseWriter, r *http.Request) {
		if f.key == "" {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no such endpoint"}}`))
			return
		}
		json.NewEncoder(w).Encode(map[string]string{"minisign": f.key})
	})
	mux.HandleFunc("GET /v1/products/acme/releases/1.2.0/artifacts/{name}", func(w http.ResponseWriter, r *http.Request) {
		if f.minisig == nil || r.PathValue("name") != filename+".minisig" {
			w.WriteHeader(404)
			w.Write([]byte(`{"error":{"code":"not_found","message":"no signature"}}`))
			return
		}
		w.Write(f.minisig)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakePortal) run(args ...string) (*testCLI, error) {
	tc := newTestCLI(map[string]string{"PORTAL_URL": f.srv.URL, "PORTAL_LICENSE": "lic-key"})
	err := tc.download(context.Background(), append([]string{"--product", "acme", "--platform", "macos", "--arch", "aarch64"}, args...))
	return tc, err
}

// entries lists a directory, to show nothing (no temporary file) is left.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func sign(t *testing.T, k *signing.Key, body []byte, filename string) []byte {
	t.Helper()
	h := blake2b.Sum512(body)
	sig, err := k.MinisignSign(h[:], signing.TrustedComment(time.Now(), filename))
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestDownloadVerifiesAndWritesAtomically(t *testing.T) {
	body := bytes.Repeat([]byte("portal build "), 10_000)
	const name = "Acme-1.2.0-arm64.dmg"
	key, err := signing.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := signing.GenerateKey()

	t.Run("default name in the current directory, no signature offered", func(t *testing.T) {
		dir := t.TempDir()
		t.Chdir(dir)
		f := newFakePortal(t, name, body)
		tc, err := f.run()
		if err != nil {
			t.Fatalf("%v\n%s", err, tc.output())
		}
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, body) {
			t.Fatal("saved bytes differ")
		}
		if es := entries(t, dir); len(es) != 1 {
			t.Fatalf("directory holds %q", es)
		}
		if strings.Contains(tc.output(), "signature") {
			t.Fatalf("a portal without keys still mentions a signature:\n%s", tc.output())
		}
	})

	t.Run("signature verified, -o into a directory", func(t *testing.T) {
		dir := t.TempDir()
		f := newFakePortal(t, name, body)
		f.key, f.minisig = key.MinisignPublicKey(), sign(t, key, body, name)
		tc, err := f.run("-o", dir)
		if err != nil {
			t.Fatalf("%v\n%s", err, tc.output())
		}
		if !strings.Contains(tc.output(), name+": signature verified") {
			t.Fatalf("output:\n%s", tc.output())
		}
		if got, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(got, body) {
			t.Fatal("saved bytes differ")
		}
	})

	for _, c := range []struct {
		name  string
		setup func(f *fakePortal)
		want  []string
	}{
		{"wrong bytes", func(f *fakePortal) { f.file = bytes.ToUpper(body) }, []string{"does not match", "expected"}},
		{"short", func(f *fakePortal) { f.file = body[:len(body)-1] }, []string{"got 129999 bytes", "nothing was saved"}},
		{"long", func(f *fakePortal) { f.file = append(append([]byte{}, body...), 'x') }, []string{"got 130001 bytes", "nothing was saved"}},
		{"long, with Content-Length", func(f *fakePortal) { f.file, f.length = append(append([]byte{}, body...), 'x'), true }, []string{"storage sends 130001 bytes"}},
		{"wrong sha256 in the grant", func(f *fakePortal) { f.grant["sha256"] = strings.Repeat("0", 64) }, []string{"does not match"}},
		{"signature by another key", func(f *fakePortal) {
			f.key, f.minisig = key.MinisignPublicKey(), sign(t, other, body, name)
		}, []string{"signature check failed"}},
		{"signature of other bytes", func(f *fakePortal) {
			f.key, f.minisig = key.MinisignPublicKey(), sign(t, key, []byte("other"), name)
		}, []string{"signature check failed"}},
		{"signature of another file", func(f *fakePortal) {
			f.key, f.minisig = key.MinisignPublicKey(), sign(t, key, body, "Acme-1.1.0-arm64.dmg")
		}, []string{"signature is for another file"}},
		{"garbage signature", func(f *fakePortal) { f.key, f.minisig = key.MinisignPublicKey(), []byte("nonsense") }, []string{"signature check failed"}},
		{"refused", func(f *fakePortal) {
			f.refusal = `{"error":{"code":"license_expired","message":"the license expired on 2025-01-01"}}`
		}, []string{"refused: license_expired: the license expired on 2025-01-01"}},
		{"hostile file name", func(f *fakePortal) { f.grant["filename"] = "../evil.dmg" }, []string{"unusable file name"}},
		{"hostile file name, absolute", func(f *fakePortal) { f.grant["filename"] = "/tmp/evil.dmg" }, []string{"unusable file name"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "out.dmg")
			// A file already at the target is left alone by a failed run.
			os.WriteFile(target, []byte("previous"), 0o644)
			f := newFakePortal(t, name, body)
			c.setup(f)
			tc, err := f.run("-o", target)
			wantErr(t, err, c.want...)
			if got, _ := os.ReadFile(target); string(got) != "previous" {
				t.Fatalf("target changed to %d bytes\n%s", len(got), tc.output())
			}
			if es := entries(t, dir); len(es) != 1 {
				t.Fatalf("directory holds %q", es)
			}
		})
	}
}

func TestDownloadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--platform", "linux", "--arch", "amd64"}, "--product"},
		{[]string{"--product", "acme", "--arch", "amd64"}, "--platform and --arch"},
		{[]string{"--product", "acme", "--platform", "amiga", "--arch", "amd64"}, "amiga"},
		{[]string{"--product", "acme", "--platform", "linux", "--arch", "z80"}, "z80"},
		{[]string{"--product", "acme", "--platform", "linux", "--arch", "amd64", "stray"}, "unexpected argument"},
		{[]string{"--product", "acme", "--platform", "linux", "--arch", "amd64", "--url", "http://127.0.0.1:1"}, "PORTAL_URL"},
	} {
		err := newTestCLI(nil).download(context.Background(), c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error saying %q", c.args, err, c.want)
		}
	}
}

// TestDownloadEndToEnd publishes with portal publish and downloads with
// portal download from a real portal: license checks, latest, signature.
func TestDownloadEndToEnd(t *testing.T) {
	testDownloadEndToEnd(t, newTestPortal(t, nil, publishing.Options{}), 200_000)
}

// TestDownloadEndToEndS3: the same through S3 presigned URLs, which refuse
// a request carrying an Authorization header, with a multipart upload.
func TestDownloadEndToEndS3(t *testing.T) {
	objs := s3test.Store(t)
	testDownloadEndToEnd(t, newTestPortal(t, objs, publishing.Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20}), 11<<20)
}

func testDownloadEndToEnd(t *testing.T, p *testPortal, size int) {
	p.product("acme", "licensed")
	dir := t.TempDir()
	pubEnv := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	ctx := context.Background()
	bodies := map[string][]byte{}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		path, body := writeFile(t, dir, "acme_"+v+"_linux_amd64.tar.gz", size+i, uint64(20+i))
		bodies[v] = body
		tc := newTestCLI(pubEnv)
		if err := tc.publish(ctx, []string{path, "--product", "acme", "--version", v, "--publish"}); err != nil {
			t.Fatalf("publish %s: %v\n%s", v, err, tc.output())
		}
	}
	var lic struct {
		License struct{ ID string }
		Key     string
	}
	p.api("POST", "/v1/licenses", map[string]any{"customer": "c", "product": "acme", "on_expiry": "revoke"}, &lic)

	out := t.TempDir()
	get := func(env map[string]string, args ...string) (*testCLI, error) {
		tc := newTestCLI(env)
		return tc, tc.download(ctx, append([]string{"--product", "acme", "--platform", "linux", "--arch", "x86_64"}, args...))
	}
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_LICENSE": lic.Key}

	// latest, into a directory.
	tc, err := get(env, "-o", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, tc.output())
	}
	if got, _ := os.ReadFile(filepath.Join(out, "acme_1.1.0_linux_amd64.tar.gz")); !bytes.Equal(got, bodies["1.1.0"]) {
		t.Fatalf("latest: saved bytes differ\n%s", tc.output())
	}
	if !strings.Contains(tc.output(), "signature verified") {
		t.Fatalf("no signature check:\n%s", tc.output())
	}
	// A given version, to a given file.
	target := filepath.Join(out, "old.tar.gz")
	if tc, err := get(env, "--version", "1.0.0", "-o", target); err != nil {
		t.Fatalf("%v\n%s", err, tc.output())
	}
	if got, _ := os.ReadFile(target); !bytes.Equal(got, bodies["1.0.0"]) {
		t.Fatal("1.0.0: saved bytes differ")
	}
	// No build for the platform.
	_, err = get(env, "--arch", "arm64")
	wantErr(t, err, "refused: not_found")
	// An explicit --token wins over a stale PORTAL_LICENSE in the shell.
	stale := map[string]string{"PORTAL_URL": p.url, "PORTAL_LICENSE": "lic_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
	if tc, err := get(stale, "--token", p.publisher("acme"), "-o", filepath.Join(out, "by-token.tar.gz")); err != nil {
		t.Fatalf("--token with PORTAL_LICENSE set: %v\n%s", err, tc.output())
	}
	os.Remove(filepath.Join(out, "by-token.tar.gz"))
	// No license.
	_, err = get(map[string]string{"PORTAL_URL": p.url})
	wantErr(t, err, "refused: unauthorized", "PORTAL_LICENSE")
	// A suspended license.
	p.api("POST", "/v1/licenses/"+lic.License.ID+"/suspend", nil, nil)
	_, err = get(env, "-o", out)
	wantErr(t, err, "refused: license_suspended")
	if es := entries(t, out); len(es) != 2 {
		t.Fatalf("out holds %q", es)
	}
}
