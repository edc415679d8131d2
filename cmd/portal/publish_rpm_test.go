package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/publishing"
	"github.com/portaldist/portal/releases"
)

// `portal publish` of .rpm files: the platform and arch come from each
// package, and a package of another version is refused with the portal's
// reason (both versions), not taken for a corrupted upload.
func TestPublishRPM(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	p.product("acme", "licensed")
	x86 := rpmtest.Build(t, rpmtest.Spec{Target: "x86_64", Version: "1.2.0"})
	noarch := rpmtest.Build(t, rpmtest.Spec{Name: "acme-doc", Version: "1.2.0"})
	env := map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.publisher("acme")}
	tc := newTestCLI(env)
	if err := tc.publish(context.Background(), []string{x86, noarch, "--product", "acme", "--version", "1.2.0", "--publish"}); err != nil {
		t.Fatalf("publish: %v\n%s", err, tc.output())
	}
	r := p.release("acme", "1.2.0")
	files := map[string][]byte{}
	for _, path := range []string{x86, noarch} {
		b, _ := os.ReadFile(path)
		files[filepath.Base(path)] = b
	}
	checkUploaded(t, p, r, files)
	for name, want := range map[string][2]string{filepath.Base(x86): {"linux", "amd64"}, filepath.Base(noarch): {"linux", "any"}} {
		a, _ := r.Artifact(name)
		if got := [2]string{a.Platform, a.Arch}; got != want || a.Package == nil || a.Package.Format != "rpm" {
			t.Errorf("%s: %v %+v, want %v", name, got, a.Package, want)
		}
	}
	if r.Status != releases.Published {
		t.Fatalf("release %s", r.Status)
	}

	err := newTestCLI(env).publish(context.Background(), []string{x86, "--product", "acme", "--version", "1.3.0"})
	wantErr(t, err, "the portal refused the file", "the package's version 1.2.0-1 is not the release's version 1.3.0")
}
