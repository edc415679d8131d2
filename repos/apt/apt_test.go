package apt

import (
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/repos"
	"github.com/portaldist/portal/signing"
)

func TestPoolRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, version, file string }{
		{"acme-server", "1.2.0", "acme-server_1.2.0-1_amd64.deb"},
		{"libacme", "2.0.0-rc.1", "libacme_2.0.0~rc.1_arm64.deb"},
		{"acme", "1.0.0+build.5", "acme 1.0.0.deb"},
	} {
		path := PoolPath(tc.version, releases.Package{Name: tc.name}, tc.file)
		if !strings.HasPrefix(path, "pool/main/") {
			t.Fatalf("pool path %q", path)
		}
		v, f, err := Pool(unescape(t, strings.TrimPrefix(path, "pool/")))
		if err != nil || v != tc.version || f != tc.file {
			t.Fatalf("Pool(%q) = %q %q %v", path, v, f, err)
		}
	}
	for _, bad := range []string{"", "/", "main", "main/a/acme/1.0.0", "main/a/acme/1.0.0/x.deb/y", "other/a/acme/1.0.0/x.deb",
		"main/a/acme/../x.deb", "main/a/acme/1.0.0/..", "main/b/acme/1.0.0/x.deb", "main/a/acme/1.0.0/x.txt", "main/a//1.0.0/x.deb",
		"main/a/acme/1.0.0/\x00.deb", "main/a/acme/" + strings.Repeat("1", 200) + "/x.deb"} {
		if _, _, err := Pool(bad); !portal.IsCode(err, portal.ENotFound) {
			t.Errorf("Pool(%q): %v, want not found", bad, err)
		}
	}
}

func unescape(t *testing.T, s string) string {
	t.Helper()
	r := strings.NewReplacer("%20", " ", "%7E", "~", "%2B", "+")
	return r.Replace(s)
}

func TestRender(t *testing.T) {
	key, err := signing.GenerateOpenPGPKey("", "acme", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	pkg := func(name, arch string) *releases.Artifact {
		return &releases.Artifact{Filename: name + "_" + arch + ".deb", Size: 1234, SHA256: strings.Repeat("a", 64), Status: releases.Uploaded, Platform: "linux",
			Package: &releases.Package{Format: "deb", Name: name, Version: "1.0.0-1", Arch: arch, MD5: strings.Repeat("b", 32), SHA1: strings.Repeat("c", 40),
				Control: "Package: " + name + "\nVersion: 1.0.0-1\nArchitecture: " + arch + "\nDescription: x\n y\n"}}
	}
	rel := &releases.Release{Product: "acme", Version: "1.0.0"}
	set := repos.Set{Product: releases.Product{Slug: "acme", Name: "Acme Corp"}, Channel: "beta", Digest: strings.Repeat("d", 64),
		Entries: []repos.Entry{{Release: rel, Artifact: pkg("acme-server", "amd64")}, {Release: rel, Artifact: pkg("acme-doc", "all")}, {Release: rel, Artifact: pkg("acme-arm", "armhf")}}}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r, err := Render(set, Options{Keys: []*signing.OpenPGPKey{key}, Now: now, ValidFor: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	amd := string(r.Files["main/binary-amd64/Packages"])
	if !strings.Contains(amd, "Package: acme-server") || !strings.Contains(amd, "Package: acme-doc") || strings.Contains(amd, "acme-arm") {
		t.Fatalf("amd64 Packages:\n%s", amd)
	}
	if arm := string(r.Files["main/binary-armhf/Packages"]); !strings.Contains(arm, "acme-arm") || !strings.Contains(arm, "acme-doc") {
		t.Fatalf("armhf Packages:\n%s", arm)
	}
	if len(r.Files["main/binary-i386/Packages"]) == 0 || !strings.Contains(string(r.Files["main/binary-arm64/Packages"]), "acme-doc") {
		t.Fatal("every architecture's index lists the arch-all packages")
	}
	for _, want := range []string{"Origin: Acme Corp\n", "Label: acme\n", "Suite: beta\n", "Codename: beta\n",
		"Date: Wed, 04 Mar 2026 05:06:07 UTC\n", "Valid-Until: Thu, 05 Mar 2026 05:06:07 UTC\n",
		"Filename: pool/main/a/acme-server/1.0.0/acme-server_amd64.deb"} {
		if !strings.Contains(string(r.Release)+amd, want) {
			t.Fatalf("missing %q in\n%s%s", want, r.Release, amd)
		}
	}
	got, err := signing.VerifyOpenPGPClearSigned(key.PublicBinary(), r.InRelease)
	if err != nil || strings.TrimSpace(string(got)) != strings.TrimSpace(string(r.Release)) {
		t.Fatalf("InRelease does not verify or differs from Release: %v", err)
	}
	if err := signing.VerifyOpenPGPDetached(key.PublicBinary(), r.Release, r.ReleaseGPG); err != nil {
		t.Fatal(err)
	}
	// Deterministic for the same input (except the signatures' salt).
	r2, _ := Render(set, Options{Keys: []*signing.OpenPGPKey{key}, Now: now, ValidFor: 24 * time.Hour})
	if string(r2.Release) != string(r.Release) {
		t.Fatal("rendering the same set twice gives different Release files")
	}
	// A package without control fields cannot be rendered (never a panic).
	bad := set
	a := pkg("x", "amd64")
	a.Package.Control = ""
	bad.Entries = []repos.Entry{{Release: rel, Artifact: a}}
	if _, err := Render(bad, Options{Keys: []*signing.OpenPGPKey{key}, Now: now}); err == nil {
		t.Fatal("rendered a package without control fields")
	}
	if _, err := Render(set, Options{Now: now}); err == nil {
		t.Fatal("rendered without a key")
	}
}
