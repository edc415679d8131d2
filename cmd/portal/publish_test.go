package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"

	"github.com/portaldist/portal/client"
	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/objects/s3store/s3test"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
)

func hexSHA(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// checkUploaded fails unless the release holds exactly files (name ->
// bytes), each uploaded with the right hash and stored bytes.
func checkUploaded(t *testing.T, p *testPortal, r releases.Release, files map[string][]byte) {
	t.Helper()
	if len(r.Artifacts) != len(files) {
		t.Fatalf("release has %d artifacts, want %d: %+v", len(r.Artifacts), len(files), r.Artifacts)
	}
	for name, body := range files {
		a, ok := r.Artifact(name)
		if !ok {
			t.Fatalf("no artifact %s", name)
		}
		if a.Status != releases.Uploaded || a.SHA256 != hexSHA(body) || a.Size != int64(len(body)) {
			t.Fatalf("%s: %s %s %d", name, a.Status, a.SHA256, a.Size)
		}
		if !bytes.Equal(p.stored(*a), body) {
			t.Fatalf("%s: stored bytes differ", name)
		}
	}
}

func TestPublishEndToEnd(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	p.product("acme", "licensed")
	dir := t.TempDir()
	files := map[string][]byte{}
	var paths []string
	for i, name := range []string{"acme_1.0.0_linux_amd64.tar.gz", "Acme-1.0.0-arm64.dmg", "Acme Setup 1.0.0.exe"} {
		path, body := writeFile(t, dir, name, 100_000+i*7919, uint64(i))
		files[name], paths = body, append(paths, path)
	}
	notes := filepath.Join(dir, "NOTES.md")
	os.WriteFile(notes, []byte("First release.\n"), 0o644)

	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	// Files before, between and after the flags.
	args := append([]string{paths[0], "--product", "acme", paths[1], "--version", "1.0.0", "--channel", "beta"}, paths[2])
	args = append(args, "--notes", notes, "--publish")
	tc := newTestCLI(env)
	tc.bars = true // the terminal path, drawing on the captured stderr
	if err := tc.publish(context.Background(), args); err != nil {
		t.Fatalf("publish: %v\n%s", err, tc.output())
	}
	r := p.release("acme", "1.0.0")
	if r.Status != releases.Published || r.Channel != "beta" || r.Notes != "First release.\n" {
		t.Fatalf("release: %s %s %q", r.Status, r.Channel, r.Notes)
	}
	checkUploaded(t, p, r, files)
	for name, want := range map[string][2]string{
		"acme_1.0.0_linux_amd64.tar.gz": {"linux", "amd64"},
		"Acme-1.0.0-arm64.dmg":          {"darwin", "arm64"},
		"Acme Setup 1.0.0.exe":          {"windows", "amd64"},
	} {
		a, _ := r.Artifact(name)
		if got := [2]string{a.Platform, a.Arch}; got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if !strings.Contains(tc.output(), "published acme 1.0.0 on beta") {
		t.Fatalf("output:\n%s", tc.output())
	}

	// Running it again changes nothing and says so.
	tc = newTestCLI(env)
	if err := tc.publish(context.Background(), args); err != nil {
		t.Fatalf("publish again: %v\n%s", err, tc.output())
	}
	if !strings.Contains(tc.output(), "nothing to do") {
		t.Fatalf("re-run output:\n%s", tc.output())
	}
	if again := p.release("acme", "1.0.0"); !reflect.DeepEqual(again, r) {
		t.Fatalf("re-run changed the release:\n%+v\n%+v", again, r)
	}

	// The published release refuses other files.
	other, _ := writeFile(t, dir, "acme_1.0.0_linux_arm64.tar.gz", 1000, 99)
	err := newTestCLI(env).publish(context.Background(), []string{other, "--product", "acme", "--version", "1.0.0"})
	wantErr(t, err, "already published", "bump the version")
}

func TestPublishResume(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	p.product("acme", "licensed")
	dir := t.TempDir()
	files := map[string][]byte{}
	var paths []string
	for i, name := range []string{"acme-2.0.0-linux-x86_64.tar.gz", "acme-2.0.0-darwin-arm64.tar.gz", "acme-2.0.0-windows-386.zip"} {
		path, body := writeFile(t, dir, name, 50_000+i, uint64(10+i))
		files[name], paths = body, append(paths, path)
	}
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	ctx := context.Background()

	// A first run uploaded one file.
	tc := newTestCLI(env)
	if err := tc.publish(ctx, []string{paths[0], "--product", "acme", "--version", "2.0.0"}); err != nil {
		t.Fatalf("%v\n%s", err, tc.output())
	}
	if r := p.release("acme", "2.0.0"); r.Status != releases.Draft {
		t.Fatalf("without --publish the release is %s", r.Status)
	}
	// A second was interrupted after declaring the next file, before its
	// upload: the artifact is waiting.
	api := client.New(p.url, client.Bearer(env["PORTAL_TOKEN"]))
	if _, _, err := api.DeclareArtifact(ctx, "acme", "2.0.0", client.NewArtifact{
		Filename: filepath.Base(paths[1]), Platform: "darwin", Arch: "arm64",
		Size: int64(len(files[filepath.Base(paths[1])])), SHA256: hexSHA(files[filepath.Base(paths[1])]),
	}); err != nil {
		t.Fatal(err)
	}
	// A third was interrupted mid-upload: the context ends while the bytes
	// are being sent.
	cancelled, cancel := context.WithCancel(ctx)
	tc = newTestCLI(env)
	tc.http = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPut {
			cancel()
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	err := tc.publish(cancelled, []string{paths[2], "--product", "acme", "--version", "2.0.0"})
	wantErr(t, err, "interrupted", "again")

	tc = newTestCLI(env)
	if err := tc.publish(ctx, append(paths, "--product", "acme", "--version", "2.0.0", "--publish")); err != nil {
		t.Fatalf("resume: %v\n%s", err, tc.output())
	}
	if got := strings.Count(tc.output(), "already uploaded"); got != 1 {
		t.Fatalf("%d files skipped, want 1:\n%s", got, tc.output())
	}
	r := p.release("acme", "2.0.0")
	if r.Status != releases.Published {
		t.Fatalf("release %s", r.Status)
	}
	checkUploaded(t, p, r, files)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestPublishRefusals(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	p.product("acme", "licensed")
	p.product("other", "licensed")
	dir := t.TempDir()
	path, _ := writeFile(t, dir, "acme_3.0.0_linux_amd64.tar.gz", 4096, 1)
	pub := p.publisher("acme")
	ctx := context.Background()
	run := func(env map[string]string, args ...string) (error, string) {
		tc := newTestCLI(env)
		err := tc.publish(ctx, args)
		return err, tc.output()
	}
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": pub}

	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want []string
	}{
		{"no file", env, []string{"--product", "acme", "--version", "3.0.0"}, []string{"at least one file"}},
		{"no product", env, []string{path, "--version", "3.0.0"}, []string{"--product"}},
		{"no version", env, []string{path, "--product", "acme"}, []string{"--version"}},
		{"no token", map[string]string{"PORTAL_URL": p.url}, []string{path, "--product", "acme", "--version", "3.0.0"}, []string{"PORTAL_TOKEN"}},
		{"bad token", map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": "ptk_nonsense"}, []string{path, "--product", "acme", "--version", "3.0.0"}, []string{"check PORTAL_TOKEN"}},
		{"other product", env, []string{path, "--product", "other", "--version", "3.0.0"}, []string{"may not publish other"}},
		{"unknown name", env, []string{filepath.Join(dir, "acme.tar.gz"), "--product", "acme", "--version", "3.0.0"}, []string{"--platform and --arch"}},
		{"bad platform", env, []string{path, "--product", "acme", "--version", "3.0.0", "--platform", "amiga"}, []string{"--platform", "amiga"}},
		{"missing file", env, []string{filepath.Join(dir, "acme_linux_arm64.zip"), "--product", "acme", "--version", "3.0.0"}, []string{"no such file"}},
		{"same name twice", env, []string{path, path, "--product", "acme", "--version", "3.0.0"}, []string{"same file name"}},
		{"nobody there", map[string]string{"PORTAL_URL": "http://127.0.0.1:1", "PORTAL_TOKEN": pub}, []string{path, "--product", "acme", "--version", "3.0.0"}, []string{"PORTAL_URL"}},
	} {
		err, out := run(c.env, c.args...)
		if err == nil {
			t.Errorf("%s: no error\n%s", c.name, out)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not say %q", c.name, err, w)
			}
		}
	}
	if _, err := p.catalog.Release(ctx, "acme", "3.0.0"); err == nil {
		t.Fatal("a refused run created the release")
	}
	// Flags and the name disagreeing: the flags win.
	if err, out := run(env, path, "--product", "acme", "--version", "3.0.0", "--arch", "arm64"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if a := p.release("acme", "3.0.0").Artifacts[0]; a.Platform != "linux" || a.Arch != "arm64" {
		t.Fatalf("artifact %s/%s, want linux/arm64 from --arch", a.Platform, a.Arch)
	}

	// The same name with other bytes: refused before anything is sent.
	os.WriteFile(path, []byte("a rebuilt file"), 0o644)
	next, _ := writeFile(t, dir, "acme_3.0.0_darwin_arm64.tar.gz", 4096, 2)
	err, _ := run(env, path, next, "--product", "acme", "--version", "3.0.0")
	wantErr(t, err, "uploaded with other bytes", "delete it", "bump the version")
	if r := p.release("acme", "3.0.0"); len(r.Artifacts) != 1 {
		t.Fatalf("a refused run declared files: %+v", r.Artifacts)
	}
	// An unknown channel is the server's refusal, passed on.
	err, _ = run(env, next, "--product", "acme", "--version", "4.0.0", "--channel", "nightly")
	wantErr(t, err, "invalid")
}

// TestPublishMismatchOnComplete: the portal's 422 on complete is shown as
// expected versus actual, and the command fails.
func TestPublishMismatchOnComplete(t *testing.T) {
	dir := t.TempDir()
	path, body := writeFile(t, dir, "acme_1.0.0_linux_amd64.tar.gz", 1000, 3)
	var put atomic.Int32
	mux := http.NewServeMux()
	var ts *httptest.Server
	mux.HandleFunc("GET /v1/products/acme/releases/1.0.0", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no release"}}`))
	})
	mux.HandleFunc("POST /v1/products/acme/releases", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		w.Write([]byte(`{"product":"acme","version":"1.0.0","channel":"stable","status":"draft","artifacts":[]}`))
	})
	mux.HandleFunc("POST /v1/products/acme/releases/1.0.0/artifacts", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(map[string]any{"artifact": map[string]any{"status": "waiting"},
			"upload": map[string]any{"method": "PUT", "url": ts.URL + "/blob?sig=x", "headers": map[string]string{"Content-Length": "1000"}}})
	})
	mux.HandleFunc("PUT /blob", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" || r.ContentLength != 1000 {
			t.Errorf("PUT with Authorization %q, length %d", r.Header.Get("Authorization"), r.ContentLength)
		}
		put.Add(1)
	})
	mux.HandleFunc("POST /v1/products/acme/releases/1.0.0/artifacts/{name}/complete", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(422)
		w.Write([]byte(`{"error":{"code":"unprocessable","message":"does not match","expected":{"size":1000,"sha256":"` +
			hexSHA(body) + `"},"actual":{"size":999,"sha256":"` + strings.Repeat("e", 64) + `"}}}`))
	})
	ts = httptest.NewServer(mux)
	defer ts.Close()
	tc := newTestCLI(map[string]string{"PORTAL_URL": ts.URL, "PORTAL_TOKEN": "t"})
	err := tc.publish(context.Background(), []string{path, "--product", "acme", "--version", "1.0.0", "--publish"})
	wantErr(t, err, "expected: 1000 bytes, sha256 "+hexSHA(body), "actual:   999 bytes, sha256 "+strings.Repeat("e", 64))
	if put.Load() != 1 {
		t.Fatalf("%d PUTs", put.Load())
	}
}

// TestPublishS3Multipart publishes through S3 presigned multipart uploads
// (three parts of 5 MiB, the last shorter), with part PUTs failing at
// first and retried, and resumes an interrupted multipart upload.
func TestPublishS3Multipart(t *testing.T) {
	objs := s3test.Store(t)
	p := newTestPortal(t, objs, publishing.Options{MultipartThreshold: 5 << 20, PartSize: 5 << 20})
	p.product("acme", "licensed")
	dir := t.TempDir()
	big, bigBody := writeFile(t, dir, "acme-5.0.0-linux-amd64.tar.gz", 12<<20+12345, 5)
	small, smallBody := writeFile(t, dir, "acme-5.0.0-darwin-universal.dmg", 100_000, 6)
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	ctx := context.Background()

	// An interrupted run: the big file declared (a multipart upload
	// started) and only its first part sent.
	api := client.New(p.url, client.Bearer(env["PORTAL_TOKEN"]))
	if _, err := api.CreateRelease(ctx, "acme", client.NewRelease{Version: "5.0.0"}); err != nil {
		t.Fatal(err)
	}
	_, up, err := api.DeclareArtifact(ctx, "acme", "5.0.0", client.NewArtifact{
		Filename: filepath.Base(big), Platform: "linux", Arch: "amd64", Size: int64(len(bigBody)), SHA256: hexSHA(bigBody)})
	if err != nil {
		t.Fatal(err)
	}
	if !up.Multipart || len(up.Parts) != 3 {
		t.Fatalf("upload: multipart %v, %d parts", up.Multipart, len(up.Parts))
	}
	up.Parts = up.Parts[:1]
	if err := api.UploadFile(ctx, up, bytes.NewReader(bigBody[:5<<20]), 5<<20, client.UploadOptions{}); err != nil {
		t.Fatal(err)
	}

	// The run again, through a network that drops the first request for
	// each part and fails one part twice with a 503.
	tc := newTestCLI(env)
	var mu sync.Mutex
	seen := map[string]int{}
	var puts atomic.Int32
	tc.http = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodPut {
			return http.DefaultTransport.RoundTrip(req)
		}
		puts.Add(1)
		part := req.URL.Query().Get("partNumber")
		mu.Lock()
		seen[part]++
		n := seen[part]
		mu.Unlock()
		switch {
		case part != "" && n == 1:
			// Read some of the body, then fail, as a dropped connection does.
			req.Body.Read(make([]byte, 1000))
			return nil, errors.New("connection reset by test")
		case part == "2" && n == 2:
			return &http.Response{StatusCode: 503, Body: http.NoBody, Request: req}, nil
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	if err := tc.publish(ctx, []string{big, small, "--product", "acme", "--version", "5.0.0", "--publish"}); err != nil {
		t.Fatalf("%v\n%s", err, tc.output())
	}
	if !strings.Contains(tc.output(), "in 3 parts") || !strings.Contains(tc.output(), "in one request") {
		t.Fatalf("output:\n%s", tc.output())
	}
	// 3 parts: 2 tries each, part 2 a third; plus the small file's PUT.
	if got := puts.Load(); got != 8 {
		t.Fatalf("%d PUTs, want 8 (%v)", got, seen)
	}
	r := p.release("acme", "5.0.0")
	if r.Status != releases.Published {
		t.Fatalf("release %s", r.Status)
	}
	checkUploaded(t, p, r, map[string][]byte{filepath.Base(big): bigBody, filepath.Base(small): smallBody})

	// A part that keeps failing fails the run after three attempts.
	tc = newTestCLI(env)
	tc.http = &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPut && req.URL.Query().Get("partNumber") == "3" {
			return &http.Response{StatusCode: 500, Body: http.NoBody, Request: req}, nil
		}
		return http.DefaultTransport.RoundTrip(req)
	})}
	err = tc.publish(ctx, []string{big, "--product", "acme", "--version", "5.0.1"})
	wantErr(t, err, "part 3 of 3", "HTTP 500", "after 3 attempts")
	if r := p.release("acme", "5.0.1"); r.Artifacts[0].Status != releases.Waiting {
		t.Fatalf("artifact after a failed upload: %s", r.Artifacts[0].Status)
	}
}

// TestPublishArgsInterleaved: files may come before, between and after
// the flags; everything after "--" is a file.
func TestPublishArgsInterleaved(t *testing.T) {
	for _, c := range []struct {
		args []string
		pos  []string
		p    string
		b    bool
	}{
		{[]string{"a", "b", "--product", "x"}, []string{"a", "b"}, "x", false},
		{[]string{"--product", "x", "a", "--publish", "b"}, []string{"a", "b"}, "x", true},
		{[]string{"a", "--product=x", "--", "--publish", "c"}, []string{"a", "--publish", "c"}, "x", false},
	} {
		cmd := newTestCLI(nil).publishCommand()
		var pos []string
		cmd.RunE = func(cmd *cobra.Command, args []string) error { pos = args; return nil }
		cmd.SetArgs(c.args)
		err := cmd.Execute()
		p, _ := cmd.Flags().GetString("product")
		b, _ := cmd.Flags().GetBool("publish")
		if err != nil || !reflect.DeepEqual(pos, c.pos) || p != c.p || b != c.b {
			t.Errorf("%q: %q %q %v %v", c.args, pos, p, b, err)
		}
	}
}

// TestPublishSparkleSignature: a file above the portal's Sparkle signing
// size carries the publisher's own signature, given with
// --sparkle-signature; a signature naming no file is refused up front.
func TestPublishSparkleSignature(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{SparkleMaxSize: 1000})
	p.product("acme", "licensed")
	dir := t.TempDir()
	path, body := writeFile(t, dir, "Acme-2.0.0-universal.zip", 5000, 7)
	pub, priv, _ := ed25519.GenerateKey(nil)
	sig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, body))
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}

	err := newTestCLI(env).publish(context.Background(), []string{path, "--product", "acme", "--version", "2.0.0", "--platform", "darwin", "--arch", "universal",
		"--sparkle-signature", "Other.zip=" + sig})
	wantErr(t, err, "Other.zip", "not among the files")

	tc := newTestCLI(env)
	if err := tc.publish(context.Background(), []string{path, "--product", "acme", "--version", "2.0.0", "--platform", "darwin", "--arch", "universal",
		"--sparkle-signature", "Acme-2.0.0-universal.zip=" + sig, "--publish"}); err != nil {
		t.Fatalf("publish: %v\n%s", err, tc.output())
	}
	r := p.release("acme", "2.0.0")
	a, _ := r.Artifact("Acme-2.0.0-universal.zip")
	got, _ := base64.StdEncoding.DecodeString(a.Signatures["ed25519"])
	if !ed25519.Verify(pub, body, got) {
		t.Fatalf("stored Sparkle signature %q is not the publisher's", a.Signatures["ed25519"])
	}
}

// A .deb says its own platform and arch: publish reads them from the
// package, whatever its name, and the server accepts the declaration.
func TestPublishDebReadsArchFromPackage(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	p.product("acme", "licensed")
	dir := t.TempDir()
	built := debtest.Build(t, dir, debtest.Package{Name: "acme-server", Version: "1:1.2.0-1", Arch: "arm64"})
	// A name that says nothing, or says something else.
	renamed := filepath.Join(dir, "acme-server-amd64.deb")
	if err := os.Rename(built, renamed); err != nil {
		t.Fatal(err)
	}
	allArch := debtest.Build(t, dir, debtest.Package{Name: "acme-doc", Version: "1.2.0", Arch: "all"})
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	tc := newTestCLI(env)
	if err := tc.publish(context.Background(), []string{renamed, allArch, "--product", "acme", "--version", "1.2.0", "--publish"}); err != nil {
		t.Fatalf("publish: %v\n%s", err, tc.output())
	}
	r := p.release("acme", "1.2.0")
	want := map[string]string{filepath.Base(renamed): "linux/arm64", filepath.Base(allArch): "linux/any"}
	for _, a := range r.Artifacts {
		if got := a.Platform + "/" + a.Arch; got != want[a.Filename] || a.Package == nil || a.Package.Version == "" {
			t.Fatalf("%s: %s (package %+v), want %s", a.Filename, got, a.Package, want[a.Filename])
		}
	}
	// product keys shows the OpenPGP fingerprint; --armor prints the key.
	keys := p.ok(p.env(), "product", "keys", "acme")
	var k struct {
		OpenPGP struct{ Fingerprint, Armored string }
	}
	if err := json.Unmarshal(p.raw("/v1/products/acme/keys"), &k); err != nil || len(k.OpenPGP.Fingerprint) != 40 {
		t.Fatalf("/keys: %v %+v", err, k)
	}
	if !strings.Contains(keys.out, "OpenPGP fingerprint:") || !strings.Contains(keys.out, k.OpenPGP.Fingerprint) {
		t.Fatalf("product keys:\n%s", keys.out)
	}
	if armored := p.ok(p.env(), "product", "keys", "acme", "--armor"); armored.out != k.OpenPGP.Armored {
		t.Fatalf("product keys --armor:\n%s", armored.out)
	}

	// A broken .deb is refused before anything is sent.
	junk := filepath.Join(dir, "junk_1.3.0_amd64.deb")
	os.WriteFile(junk, []byte("not a package"), 0o644)
	tc = newTestCLI(env)
	err := tc.publish(context.Background(), []string{junk, "--product", "acme", "--version", "1.3.0"})
	if err == nil || !strings.Contains(err.Error(), "not a .deb package") {
		t.Fatalf("publish of a broken .deb: %v", err)
	}
	if _, err := p.catalog.Release(context.Background(), "acme", "1.3.0"); err == nil {
		t.Fatal("a release was created for a refused package")
	}
}
