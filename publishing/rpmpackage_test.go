package publishing

import (
	"bytes"
	"os"
	"testing"

	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/objects"
	"github.com/portaldist/portal/pkgmeta"
)

// Completing an .rpm reads its header onto the artifact, and refuses (422,
// artifact failed, object deleted) a package of another version or arch
// and a file that is no rpm, naming both values.
func TestCompleteRPM(t *testing.T) {
	build := func(s rpmtest.Spec) []byte {
		b, err := os.ReadFile(rpmtest.Build(t, s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	noarch := build(rpmtest.Spec{Version: version})
	epoch := build(rpmtest.Spec{Version: version, Epoch: 3, Release: "2.el9", Target: "x86_64"})
	other := build(rpmtest.Spec{Version: "1.0.1", Target: "x86_64"})
	forEachBackend(t, func(t *testing.T, objs objects.ObjectStore) {
		for _, tc := range []struct {
			name, filename string
			data           []byte
			arch           string
			detail         string // a Details key of the refusal; "" = accepted
			want           string // the stored package version
		}{
			{"noarch", "acme-server-1.0.0-1.noarch.rpm", noarch, "any", "", version + "-1"},
			{"epoch and dist release", "acme-server-1.0.0-2.el9.x86_64.rpm", epoch, "amd64", "", "3:" + version + "-2.el9"},
			{"other version", "acme-server-1.0.1-1.x86_64.rpm", other, "amd64", "package_version", ""},
			{"other arch", "acme-server-1.0.0-1.noarch.rpm", noarch, "amd64", "package", ""},
			{"garbage", "garbage.rpm", bytes.Repeat([]byte("not an rpm "), 100), "amd64", "artifact", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := newEnv(t, objs, Options{})
				a, _, err := e.uploadPackage(tc.filename, tc.arch, tc.data)
				if tc.detail == "" {
					if err != nil {
						t.Fatal(err)
					}
					p := e.artifact(tc.filename).Package
					if p == nil || p.Format != "rpm" || p.Name != "acme-server" || p.Version != tc.want || len(p.SHA1) != 40 {
						t.Fatalf("stored package %+v", p)
					}
					m, err := pkgmeta.DecodeRPM(p.Meta)
					if err != nil || len(m.Files) != 6 || m.HeaderEnd <= m.HeaderStart {
						t.Fatalf("stored rpm meta %+v: %v", m, err)
					}
					return
				}
				e.expectRefusedPackage(err, a, tc.detail)
			})
		}
	})
}
