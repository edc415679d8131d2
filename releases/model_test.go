package releases_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

func TestVisible(t *testing.T) {
	// want[asked] lists the release channels visible to a caller asking for
	// asked, most stable first.
	want := map[string][]string{
		"stable":  {"stable"},
		"rc":      {"stable", "rc"},
		"beta":    {"stable", "rc", "beta"},
		"alpha":   {"stable", "rc", "beta", "alpha"},
		"dev":     {"stable", "rc", "beta", "alpha", "dev"},
		"":        {},
		"nightly": {},
		"STABLE":  {},
	}
	all := append(append([]string(nil), releases.Channels...), "", "nightly", "Stable")
	for asked, visible := range want {
		for _, rel := range all {
			w := false
			for _, v := range visible {
				w = w || v == rel
			}
			if got := releases.Visible(asked, rel); got != w {
				t.Errorf("Visible(asked %q, release %q) = %v, want %v", asked, rel, got, w)
			}
		}
	}
}

func TestParseChannel(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "stable", true},
		{"stable", "stable", true},
		{"rc", "rc", true},
		{"beta", "beta", true},
		{"alpha", "alpha", true},
		{"dev", "dev", true},
		{"Stable", "", false},
		{"nightly", "", false},
		{" stable", "", false},
		{"stable\x00", "", false},
		{strings.Repeat("x", 1000), "", false},
	}
	for _, tt := range tests {
		got, err := releases.ParseChannel(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseChannel(%.20q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("ParseChannel(%.20q): code %q", tt.in, portal.ErrorCode(err))
		}
	}
	for i, ch := range releases.Channels {
		if releases.ChannelRank(ch) != i {
			t.Errorf("ChannelRank(%s) = %d, want %d", ch, releases.ChannelRank(ch), i)
		}
	}
	if releases.ChannelRank("nope") != -1 {
		t.Error("ChannelRank of an unknown channel is not -1")
	}
}

func TestParsePlatformAndArch(t *testing.T) {
	platforms := map[string]string{
		"linux": "linux", "darwin": "darwin", "windows": "windows", "freebsd": "freebsd", "any": "any",
		"macos": "darwin", "mac": "darwin", "osx": "darwin", "MacOS": "darwin", "Darwin": "darwin",
		"win": "windows", "win32": "windows", "win64": "windows", "WINDOWS": "windows", "Linux": "linux",
		"": "", "android": "", "linux ": "", "../linux": "", "darwin\x00": "", "universal": "",
	}
	for in, want := range platforms {
		got, err := releases.ParsePlatform(in)
		if want == "" {
			if err == nil || portal.ErrorCode(err) != portal.EInvalid {
				t.Errorf("ParsePlatform(%q) = %q, %v; want an invalid error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParsePlatform(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	arches := map[string]string{
		"amd64": "amd64", "arm64": "arm64", "386": "386", "arm": "arm", "universal": "universal", "any": "any",
		"x86_64": "amd64", "x64": "amd64", "X86_64": "amd64", "aarch64": "arm64", "AArch64": "arm64",
		"i686": "386", "i386": "386", "x86": "386", "ia32": "386", "armv7": "arm", "armv7l": "arm", "armhf": "arm",
		"": "", "riscv64": "", "amd64 ": "", "x86-64": "", "arm64\n": "",
	}
	for in, want := range arches {
		got, err := releases.ParseArch(in)
		if want == "" {
			if err == nil || portal.ErrorCode(err) != portal.EInvalid {
				t.Errorf("ParseArch(%q) = %q, %v; want an invalid error", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseArch(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestServes(t *testing.T) {
	tests := []struct {
		plat, arch, wantPlat, wantArch string
		want                           bool
	}{
		{"linux", "amd64", "linux", "amd64", true},
		{"linux", "amd64", "linux", "arm64", false},
		{"linux", "amd64", "darwin", "amd64", false},
		{"linux", "any", "linux", "arm64", true},
		{"any", "any", "windows", "386", true},
		{"any", "amd64", "freebsd", "amd64", true},
		{"any", "amd64", "freebsd", "arm64", false},
		{"darwin", "universal", "darwin", "amd64", true},
		{"darwin", "universal", "darwin", "arm64", true},
		{"darwin", "universal", "darwin", "386", false},
		{"darwin", "universal", "linux", "amd64", false},
		{"linux", "universal", "linux", "amd64", false}, // universal means macOS universal only
		{"any", "universal", "linux", "amd64", false},
		{"darwin", "arm64", "darwin", "universal", false},
		{"darwin", "universal", "darwin", "universal", true},
		{"windows", "arm64", "windows", "any", false}, // a client does not ask for "any"
	}
	for _, tt := range tests {
		if got := releases.Serves(tt.plat, tt.arch, tt.wantPlat, tt.wantArch); got != tt.want {
			t.Errorf("Serves(%s/%s for %s/%s) = %v, want %v", tt.plat, tt.arch, tt.wantPlat, tt.wantArch, got, tt.want)
		}
	}
}

func TestArtifactFor(t *testing.T) {
	r := releases.Release{Artifacts: []releases.Artifact{
		{Filename: "app-any.tar.gz", Platform: "any", Arch: "any", Status: releases.Uploaded},
		{Filename: "app-mac.zip", Platform: "darwin", Arch: "universal", Status: releases.Uploaded},
		{Filename: "app-mac-arm64.zip", Platform: "darwin", Arch: "arm64", Status: releases.Uploaded},
		{Filename: "app-linux-amd64.tar.gz", Platform: "linux", Arch: "amd64", Status: releases.Waiting},
		{Filename: "app-win.exe", Platform: "windows", Arch: "amd64", Status: releases.Failed},
	}}
	tests := []struct{ plat, arch, want string }{
		{"darwin", "arm64", "app-mac-arm64.zip"}, // exact beats universal and any
		{"darwin", "amd64", "app-any.tar.gz"},    // first serving artifact in order
		{"linux", "amd64", "app-any.tar.gz"},     // the waiting one is never offered
		{"windows", "amd64", "app-any.tar.gz"},   // nor the failed one
	}
	for _, tt := range tests {
		a, ok := r.ArtifactFor(tt.plat, tt.arch)
		if !ok || a.Filename != tt.want {
			t.Errorf("ArtifactFor(%s, %s) = %v, %v; want %s", tt.plat, tt.arch, a, ok, tt.want)
		}
	}
	r.Artifacts = r.Artifacts[3:]
	if a, ok := r.ArtifactFor("linux", "amd64"); ok {
		t.Errorf("ArtifactFor offered %s, which is not uploaded", a.Filename)
	}
}

func TestValidateFilename(t *testing.T) {
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"dot", "."},
		{"dotdot", ".."},
		{"parent", "../x"},
		{"parent deep", "../../etc/passwd"},
		{"slash", "a/b"},
		{"absolute", "/etc/passwd"},
		{"trailing slash", "a/"},
		{"backslash", `a\b`},
		{"windows parent", `..\x`},
		{"NUL", "a\x00b"},
		{"newline", "a\nb"},
		{"CR", "a\rb"},
		{"tab", "a\tb"},
		{"escape", "a\x1b[31mred"},
		{"DEL", "a\x7fb"},
		{"C1 control", "a\u0085b"},
		{"1000 chars", strings.Repeat("a", 1000)},
		{"256 bytes", strings.Repeat("a", 256)},
		{"leading space", " app.zip"},
		{"trailing space", "app.zip "},
		{"only spaces", "   "},
		{"leading newline", "\napp.zip"},
		{"invalid UTF-8", "app\xff.zip"},
		{"truncated UTF-8", "app\xc3"},
		{"encoded replacement char", "app\uFFFD.zip"},
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			err := releases.ValidateFilename(tt.in)
			if err == nil {
				t.Fatalf("ValidateFilename(%.40q) accepted", tt.in)
			}
			if portal.ErrorCode(err) != portal.EInvalid {
				t.Fatalf("code %q, want invalid", portal.ErrorCode(err))
			}
			if len(portal.ErrorMessage(err)) > 200 {
				t.Errorf("message echoes the whole name: %d bytes", len(portal.ErrorMessage(err)))
			}
		})
	}
	// Bidirectional overrides and invisible (format, line and paragraph
	// separator) characters make a name display as another
	// ("invoice\u202Eexe.pdf" shows as "invoicefdp.exe"): refused, and
	// the message names the code point, never the raw character.
	invisible := []rune{
		0x202A, 0x202B, 0x202C, 0x202D, 0x202E, // embeddings and overrides
		0x2066, 0x2067, 0x2068, 0x2069, // isolates
		0x200B, 0x200C, 0x200D, 0x200E, 0x200F, // zero width, LRM, RLM
		0x2028, 0x2029, 0xFEFF, // separators, BOM
		0x00AD, 0x061C, 0x180E, 0x2060, 0x2062, 0xFFF9, 0x110BD, 0xE0001, 0xE007F, // other Cf
	}
	for _, r := range invisible {
		in := "invoice" + string(r) + "exe.pdf"
		err := releases.ValidateFilename(in)
		if err == nil {
			t.Errorf("ValidateFilename accepted U+%04X", r)
			continue
		}
		msg := portal.ErrorMessage(err)
		if portal.ErrorCode(err) != portal.EInvalid || !strings.Contains(msg, fmt.Sprintf("U+%04X", r)) {
			t.Errorf("U+%04X: %s %q, want invalid naming U+%04X", r, portal.ErrorCode(err), msg, r)
		}
		if strings.ContainsRune(msg, r) {
			t.Errorf("U+%04X: the message carries the raw character: %q", r, msg)
		}
	}
	good := []string{
		"app.zip",
		"App-1.2.3-x86_64.AppImage",
		"my app 1.0.dmg",
		"Übersetzer 2.0 – Setup.exe",
		"应用程序.tar.gz",
		"emoji-🚀.zip",
		".hidden",
		"...",
		"a..b",
		"a:b",
		strings.Repeat("a", 255),
		strings.Repeat("é", 127), // 254 bytes
	}
	for _, s := range good {
		if err := releases.ValidateFilename(s); err != nil {
			t.Errorf("ValidateFilename(%.40q): %v", s, err)
		}
	}
}

func TestValidateSlug(t *testing.T) {
	good := []string{"a", "0", "app", "my-app", "app2", "a-b-c", "9lives", strings.Repeat("a", 64), "a" + strings.Repeat("-", 62) + "b"}
	for _, s := range good {
		if err := releases.ValidateSlug(s); err != nil {
			t.Errorf("ValidateSlug(%q): %v", s, err)
		}
	}
	bad := []string{
		"", "-", "-app", "app-", "App", "my_app", "my app", "my.app", "a/b", "../a", "a\x00", "ä",
		strings.Repeat("a", 65), "app\n", " app", "app%2f",
	}
	for _, s := range bad {
		err := releases.ValidateSlug(s)
		if err == nil {
			t.Errorf("ValidateSlug(%q) accepted", s)
		} else if portal.ErrorCode(err) != portal.EInvalid {
			t.Errorf("ValidateSlug(%q): code %q", s, portal.ErrorCode(err))
		}
	}
}

func TestPublicDropsServerFields(t *testing.T) {
	p := releases.Product{Slug: "a", SigningKey: []byte("sealed")}.Public()
	if p.SigningKey != nil {
		t.Error("Product.Public kept the signing key")
	}
	r := releases.Release{Artifacts: []releases.Artifact{{Filename: "f", ObjectKey: "p/a/k", UploadID: "u"}}}
	pub := r.Public()
	if pub.Artifacts[0].ObjectKey != "" || pub.Artifacts[0].UploadID != "" {
		t.Error("Release.Public kept object key or upload id")
	}
	if r.Artifacts[0].ObjectKey != "p/a/k" {
		t.Error("Release.Public modified the original's artifacts")
	}
}
