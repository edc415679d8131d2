package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/minio/selfupdate"
)

// buildHello compiles a program printing msg into dir/name and returns
// its path. The program is its own module with no dependencies, so the
// build needs no network.
func buildHello(t *testing.T, dir, name, msg string) string {
	t.Helper()
	src := filepath.Join(dir, "src-"+name)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":  "module hello\n\ngo 1.26\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(" + `"` + msg + `"` + ") }\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(src, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOTOOLCHAIN=local", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	return out
}

func runHello(t *testing.T, path string) string {
	t.Helper()
	b, err := exec.Command(path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, b)
	}
	return strings.TrimSpace(string(b))
}

// A Go program updating itself with minio/selfupdate, as a customer's
// tool would: ask the upgrade API, fetch the .minisig and verify with the
// product's minisign key from /keys, download through the portal's 303,
// and replace its binary. A tampered download must leave the old binary
// in place.
func TestGoSelfUpdate(t *testing.T) {
	dir := t.TempDir()
	v1 := buildHello(t, dir, "hello", "v1")
	v2 := buildHello(t, dir, "hello-v2", "v2")
	if runHello(t, v1) != "v1" || runHello(t, v2) != "v2" {
		t.Fatal("test programs print the wrong thing")
	}
	v2bytes, err := os.ReadFile(v2)
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t)
	e.product("hello", "open")
	admin := bearer(e.admin)
	e.must(201, e.do("POST", "/v1/products/hello/releases", admin, map[string]any{"version": "2.0.0"}))
	name := "hello_2.0.0_" + runtime.GOOS + "_" + runtime.GOARCH
	e.upload(admin, "hello", "2.0.0", name, runtime.GOOS, runtime.GOARCH, v2bytes)
	e.must(200, e.do("POST", "/v1/products/hello/releases/2.0.0/publish", admin, nil))

	// What the updater knows: the portal's URL, the product, its own
	// version and platform, and the public key shipped inside it.
	pub := e.must(200, e.get("/v1/products/hello/keys", "")).json(t)["minisign"].(string)
	var up struct {
		Version     string
		DownloadURL string `json:"download_url"`
		Artifact    struct{ Filename string }
	}
	r := e.must(200, e.get("/v1/products/hello/upgrade?current=1.0.0&platform="+runtime.GOOS+"&arch="+runtime.GOARCH, ""))
	if err := json.Unmarshal(r.body, &up); err != nil || up.Version != "2.0.0" || up.Artifact.Filename != name {
		t.Fatalf("upgrade: %s", r.body)
	}
	// The download URL ends with the file name; the signature is beside it.
	if !strings.HasSuffix(up.DownloadURL, "/"+name) {
		t.Fatalf("download_url %q does not end with the file name %s", up.DownloadURL, name)
	}
	sigURL := up.DownloadURL + ".minisig"
	// http.Get follows the portal's 303 to the signed storage URL.
	res, err := http.Get(up.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 || !bytes.Equal(body, v2bytes) {
		t.Fatalf("download: %d, %d bytes, %v", res.StatusCode, len(body), err)
	}

	apply := func(update []byte) error {
		v := selfupdate.NewVerifier()
		if err := v.LoadFromURL(sigURL, pub, http.DefaultTransport); err != nil {
			t.Fatalf("loading the signature: %v", err)
		}
		return selfupdate.Apply(bytes.NewReader(update), selfupdate.Options{TargetPath: v1, Verifier: v})
	}

	t.Run("tampered", func(t *testing.T) {
		bad := bytes.Clone(body)
		bad[len(bad)/2] ^= 0xff
		err := apply(bad)
		if err == nil {
			t.Fatal("selfupdate applied a tampered binary")
		}
		if !strings.Contains(err.Error(), "signature") {
			t.Fatalf("refused for another reason than the signature: %v", err)
		}
		if got := runHello(t, v1); got != "v1" {
			t.Fatalf("after a refused update the binary prints %q", got)
		}
	})
	t.Run("signed", func(t *testing.T) {
		if err := apply(body); err != nil {
			t.Fatalf("selfupdate refused the portal's signature: %v", err)
		}
		if got := runHello(t, v1); got != "v2" {
			t.Fatalf("after the update the binary prints %q", got)
		}
	})
}
