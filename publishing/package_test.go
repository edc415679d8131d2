package publishing

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/store"
)

// Completing a .deb reads its control fields onto the artifact, and refuses
// (422, artifact failed, object deleted) a package of another version or
// architecture and a file that is no package.
func TestCompletePackage(t *testing.T) {
	dir := t.TempDir()
	build := func(v, arch string) []byte {
		b, err := os.ReadFile(debtest.Build(t, dir, debtest.Package{Name: "app", Version: v, Arch: arch, Payload: v + arch}))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	noise := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{1}).Read(noise)
	bigPath := debtest.Build(t, dir, debtest.Package{Name: "app", Version: "1.0.0", Arch: "amd64", Compression: "gzip", Payload: string(noise)})
	big, err := os.ReadFile(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		for _, tc := range []struct {
			name, filename string
			data           []byte
			arch           string
			detail         string // a Details key of the refusal; "" = accepted
		}{
			{"matching", "app_1.0.0-1_amd64.deb", build("1:1.0.0-1", "amd64"), "amd64", ""},
			{"arch all", "app_1.0.0_all.deb", build("1.0.0", "all"), "any", ""},
			{"other version", "app_1.0.1_amd64.deb", build("1.0.1-1", "amd64"), "amd64", "package_version"},
			{"other arch", "app_1.0.0_arm64.deb", build("1.0.0", "arm64"), "amd64", "package"},
			{"garbage", "garbage.deb", bytes.Repeat([]byte("not a deb "), 100), "amd64", "artifact"},
			// Larger than the part of the file that is kept: the control
			// archive comes first, the rest is only hashed.
			{"big", "app_1.0.0_big_amd64.deb", big, "amd64", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, objs, Options{})
				a, got, err := e.uploadPackage(tc.filename, tc.arch, tc.data)
				if tc.detail == "" {
					if err != nil {
						t.Fatal(err)
					}
					p := e.artifact(tc.filename).Package
					if p == nil || p.Format != "deb" || p.Name != "app" || p.Control == "" || len(p.MD5) != 32 || len(p.SHA1) != 40 {
						t.Fatalf("stored package %+v", p)
					}
					if got.Package == nil || got.Public().Package.Control != "" {
						t.Fatalf("returned package %+v; the public form must not carry the control text", got.Package)
					}
					return
				}
				e.expectRefusedPackage(err, a, tc.detail)
				// Completing again is the usual conflict: declare it again.
				if _, err := e.svc.Complete(e.ctx, product, version, tc.filename); !portal.IsCode(err, portal.EConflict) {
					t.Fatalf("complete again: %v", err)
				}
			})
		}
	})
}

// A release keeps at most MaxReleasePackageMetadata bytes of package
// metadata, so its record stays within the store's value limit.
func TestPackageBudget(t *testing.T) {
	big := func(n int) *releases.Package {
		return &releases.Package{Format: "deb", Name: "app", Version: "1.0.0", Arch: "amd64", Control: strings.Repeat("x", n)}
	}
	r := &releases.Release{Product: "app", Version: "1.0.0"}
	for i := range 9 {
		r.Artifacts = append(r.Artifacts, releases.Artifact{Filename: fmt.Sprintf("a%d.deb", i), Package: big(64 << 10)})
	}
	r.Artifacts = append(r.Artifacts, releases.Artifact{Filename: "next.deb"})
	if err := packageBudget(r, "next.deb", big(10<<10)); err != nil {
		t.Fatalf("within the budget: %v", err)
	}
	err := packageBudget(r, "next.deb", big(64<<10))
	if !portal.IsCode(err, portal.EUnprocessable) || !strings.Contains(err.Error(), "another release") {
		t.Fatalf("over the budget: %v", err)
	}
	// The artifact's own previous metadata does not count twice.
	if err := packageBudget(r, "a0.deb", big(64<<10)); err != nil {
		t.Fatalf("replacing an artifact's metadata: %v", err)
	}
	if MaxReleasePackageMetadata+MaxArtifactsOverhead > store.MaxValueSize {
		t.Fatal("the budget leaves no room in the release record")
	}
}

// MaxArtifactsOverhead is a generous bound of what a release record holds
// besides package metadata (64 artifacts with signatures, notes, metadata).
const MaxArtifactsOverhead = 64*2048 + releases.MaxNotes + 64<<10
