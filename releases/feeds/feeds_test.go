package feeds

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

const base = BaseURL("https://portal.example.com/")

var (
	pub     = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	hostile = "Fixed <script>alert(1)</script> & more ]]> and \"quotes\"\nline two"
	product = releases.Product{Slug: "app", Name: "App & <Co>", Distribution: releases.Open}
)

func up(name, plat, arch string, sigs ...string) releases.Artifact {
	a := releases.Artifact{Filename: name, Platform: plat, Arch: arch, Size: int64(len(name)) * 1000, SHA256: strings.Repeat("a", 64),
		SHA512: base64.StdEncoding.EncodeToString([]byte("sha512 of " + name)), Status: releases.Uploaded}
	if len(sigs) > 0 {
		a.Signatures = map[string]string{}
		for i := 0; i+1 < len(sigs); i += 2 {
			a.Signatures[sigs[i]] = sigs[i+1]
		}
	}
	return a
}

func rel(ver, ch string, arts ...releases.Artifact) releases.Release {
	p := pub
	return releases.Release{Product: "app", Version: ver, Channel: ch, Status: releases.Published, Notes: "notes " + ver, PublishedAt: &p, Artifacts: arts}
}

func TestBaseURL(t *testing.T) {
	got := base.Download("app", "1.0.0+build.1", "My App 1.0 #1?.zip")
	want := "https://portal.example.com/v1/products/app/releases/1.0.0+build.1/files/My%20App%201.0%20%231%3F.zip"
	if got != want {
		t.Fatalf("Download = %s\nwant %s", got, want)
	}
	// electron-updater names its cached file and finds the .blockmap from
	// the URL's last segment, and MacUpdater picks the URL ending in .zip.
	u, err := url.Parse(got)
	if err != nil || path.Base(u.Path) != "My App 1.0 #1?.zip" {
		t.Fatalf("the URL's path %q (%v) does not end with the file name", u.Path, err)
	}
}

// The appcast parsed back through the Sparkle namespace URI: a wrong or
// missing xmlns:sparkle leaves these fields empty.
type parsedRSS struct {
	XMLName xml.Name `xml:"rss"`
	Version string   `xml:"version,attr"`
	Channel struct {
		Title string       `xml:"title"`
		Items []parsedItem `xml:"item"`
	} `xml:"channel"`
}

type parsedItem struct {
	Title     string `xml:"title"`
	PubDate   string `xml:"pubDate"`
	Version   string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version"`
	Short     string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle shortVersionString"`
	Channel   string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle channel"`
	MinSystem string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle minimumSystemVersion"`
	Phased    string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle phasedRolloutInterval"`
	Critical  *struct {
		Version string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version,attr"`
	} `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle criticalUpdate"`
	Description string `xml:"description"`
	Enclosure   struct {
		URL     string `xml:"url,attr"`
		Length  int64  `xml:"length,attr"`
		Type    string `xml:"type,attr"`
		Version string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version,attr"`
		EdSig   string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle edSignature,attr"`
	} `xml:"enclosure"`
}

func TestAppcast(t *testing.T) {
	r3 := rel("3.0.0", "stable", up("App-3.exe", "windows", "amd64")) // no Mac build: left out
	r2 := rel("2.0.0-beta.1", "beta",
		up("App-2-arm64.zip", "darwin", "arm64", "ed25519", "sig-arm"),
		up("App-2.dmg", "darwin", "universal", "ed25519", "sig-dmg"),
		up("App-2.zip", "darwin", "universal", "ed25519", "sig-zip"))
	r2.Notes = hostile
	r2.Rollout = 20
	r2.Metadata = map[string]string{"minimum_system_version": "11.0", "critical": "true", "critical_below": "1.5.0", "bundle_version": "200"}
	r1 := rel("1.0.0", "stable", up("App-1-x64.zip", "darwin", "amd64"), up("App-1-arm64.zip", "darwin", "arm64", "ed25519", "sig1"))
	r1.Metadata = map[string]string{"phased_rollout_interval": "3600"}
	draft := rel("4.0.0", "stable", up("App-4.zip", "darwin", "universal"))
	draft.Status = releases.Draft

	for _, tc := range []struct {
		arch  string
		files []string
	}{
		{"", []string{"App-2.zip"}}, // 1.0.0 has no build that runs on every Mac
		{"arm64", []string{"App-2-arm64.zip", "App-1-arm64.zip"}},
		{"x86_64", []string{"App-2.zip", "App-1-x64.zip"}},
	} {
		t.Run("arch="+tc.arch, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Appcast(&buf, product, []releases.Release{draft, r3, r2, r1}, tc.arch, base); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), `xmlns:sparkle="`+SparkleNS+`"`) {
				t.Fatalf("no sparkle namespace declaration:\n%s", buf.String())
			}
			var doc parsedRSS
			if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			if doc.Version != "2.0" || doc.Channel.Title != product.Name {
				t.Fatalf("rss %q, title %q", doc.Version, doc.Channel.Title)
			}
			if len(doc.Channel.Items) != len(tc.files) {
				t.Fatalf("%d items, want %d:\n%s", len(doc.Channel.Items), len(tc.files), buf.String())
			}
			for i, it := range doc.Channel.Items {
				if !strings.HasSuffix(it.Enclosure.URL, "/files/"+strings.ReplaceAll(tc.files[i], " ", "%20")) {
					t.Errorf("item %d enclosure %s, want %s", i, it.Enclosure.URL, tc.files[i])
				}
				if it.Enclosure.Type != "application/octet-stream" || it.Enclosure.Length != int64(len(tc.files[i]))*1000 {
					t.Errorf("item %d enclosure %+v", i, it.Enclosure)
				}
				if d, err := time.Parse(time.RFC1123Z, it.PubDate); err != nil || !d.Equal(pub) {
					t.Errorf("pubDate %q: %v", it.PubDate, err)
				}
			}
			beta := doc.Channel.Items[0]
			if beta.Version != "200" || beta.Enclosure.Version != "200" || beta.Short != "2.0.0-beta.1" || beta.Channel != "beta" {
				t.Errorf("beta versions/channel: %+v", beta)
			}
			if beta.Description != hostile {
				t.Errorf("notes came back as %q", beta.Description)
			}
			if beta.MinSystem != "11.0" || beta.Critical == nil || beta.Critical.Version != "1.5.0" {
				t.Errorf("metadata: %+v", beta)
			}
			if beta.Phased != "86400" {
				t.Errorf("rollout 20 without an interval: phasedRolloutInterval %q", beta.Phased)
			}
			wantSig := map[string]string{"App-2.zip": "sig-zip", "App-2-arm64.zip": "sig-arm"}[tc.files[0]]
			if beta.Enclosure.EdSig != wantSig {
				t.Errorf("edSignature %q, want %q", beta.Enclosure.EdSig, wantSig)
			}
			if len(doc.Channel.Items) > 1 {
				one := doc.Channel.Items[1]
				if one.Channel != "" || one.Critical != nil || one.Phased != "3600" || one.Version != "1.0.0" || one.Description != "notes 1.0.0" {
					t.Errorf("stable item: %+v", one)
				}
			}
		})
	}
	// Hostile text never breaks out of its element.
	var buf bytes.Buffer
	if err := Appcast(&buf, product, []releases.Release{r2}, "", base); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") && !strings.Contains(buf.String(), "<![CDATA[Fixed <script>") {
		t.Fatalf("script tag outside CDATA:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), "App & <Co>") {
		t.Fatal("product name not escaped")
	}
	bad := r1
	bad.Metadata = map[string]string{"phased_rollout_interval": "soon"}
	buf.Reset()
	if err := Appcast(&buf, product, []releases.Release{bad}, "arm64", base); !portal.IsCode(err, portal.EInvalid) || buf.Len() != 0 {
		t.Fatalf("bad interval: %v, wrote %d bytes", err, buf.Len())
	}
	if err := Appcast(&buf, product, nil, "sparc", base); !portal.IsCode(err, portal.EInvalid) {
		t.Fatalf("bad arch: %v", err)
	}
	// An empty feed is still a valid appcast.
	buf.Reset()
	if err := Appcast(&buf, product, nil, "", base); err != nil {
		t.Fatal(err)
	}
	var doc parsedRSS
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil || len(doc.Channel.Items) != 0 {
		t.Fatalf("empty appcast: %v %+v", err, doc)
	}
}

func TestElectronFileNames(t *testing.T) {
	for _, tc := range []struct{ name, channel, platform, arch string }{
		{"latest.yml", "stable", "windows", "amd64"},
		{"latest-mac.yml", "stable", "darwin", ""},
		{"latest-linux.yml", "stable", "linux", "amd64"},
		{"latest-linux-arm64.yml", "stable", "linux", "arm64"},
		{"latest-linux-ia32.yml", "stable", "linux", "386"},
		{"latest-linux-arm.yml", "stable", "linux", "arm"},
		{"beta.yml", "beta", "windows", "amd64"},
		{"beta-mac.yml", "beta", "darwin", ""},
		{"alpha-linux-arm64.yml", "alpha", "linux", "arm64"},
		{"rc-linux.yml", "rc", "linux", "amd64"},
		{"dev.yml", "dev", "windows", "amd64"},
	} {
		ch, plat, arch, err := ParseElectronFile(tc.name)
		if err != nil || ch != tc.channel || plat != tc.platform || arch != tc.arch {
			t.Errorf("ParseElectronFile(%s) = %s %s %s %v", tc.name, ch, plat, arch, err)
		}
		if got := ElectronFileName(plat, arch, ch); got != tc.name {
			t.Errorf("ElectronFileName(%s, %s, %s) = %s, want %s", plat, arch, ch, got, tc.name)
		}
	}
	// electron-builder's armv7l name is read as arm.
	if _, plat, arch, err := ParseElectronFile("latest-linux-armv7l.yml"); err != nil || plat != "linux" || arch != "arm" {
		t.Errorf("armv7l: %s %s %v", plat, arch, err)
	}
	for _, tc := range []struct{ platform, arch, channel, want string }{
		{"windows", "arm64", "", "latest.yml"}, // every Windows arch reads latest.yml
		{"win", "x64", "stable", "latest.yml"},
		{"macos", "arm64", "beta", "beta-mac.yml"},
		{"darwin", "amd64", "", "latest-mac.yml"},
		{"linux", "x64", "", "latest-linux.yml"},
		{"linux", "aarch64", "alpha", "alpha-linux-arm64.yml"},
		{"linux", "universal", "", ""},
		{"freebsd", "amd64", "", ""},
		{"linux", "amd64", "nightly", ""},
	} {
		if got := ElectronFileName(tc.platform, tc.arch, tc.channel); got != tc.want {
			t.Errorf("ElectronFileName(%s, %s, %s) = %q, want %q", tc.platform, tc.arch, tc.channel, got, tc.want)
		}
	}
	for _, name := range []string{"", ".yml", "latest", "latest.yaml", "stable.yml", "nightly.yml", "latest-.yml", "latest-win.yml",
		"latest-linux-x64.yml", "latest-linux-sparc.yml", "latest-mac-arm64.yml", "-mac.yml", "../latest.yml", "latest-linux-arm64.yml.yml"} {
		if _, _, _, err := ParseElectronFile(name); !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("ParseElectronFile(%q) = %v, want EInvalid", name, err)
		}
	}
}

func TestElectron(t *testing.T) {
	r := rel("2.1.0", "stable",
		up("App-2.1.0.deb", "linux", "amd64"),
		up("App-2.1.0.AppImage", "linux", "amd64"),
		up("App-2.1.0-arm64.AppImage", "linux", "arm64"),
		up("App Setup 2.1.0.exe", "windows", "amd64"),
		up("App-2.1.0.msi", "windows", "amd64"),
		up("App-2.1.0-arm64.dmg", "darwin", "arm64"),
		up("App-2.1.0-arm64.zip", "darwin", "arm64"),
		up("App-2.1.0.zip", "darwin", "amd64"),
		up("App-2.1.0.tar.gz", "linux", "amd64"))
	r.Notes = hostile
	r.Rollout = 25
	r.Metadata = map[string]string{"minimum_system_version": "10.15"}
	noSHA := up("App-2.1.0.rpm", "linux", "amd64")
	noSHA.SHA512 = ""
	r.Artifacts = append(r.Artifacts, noSHA)
	for _, tc := range []struct {
		platform, arch string
		files          []string
	}{
		{"linux", "amd64", []string{"App-2.1.0.AppImage", "App-2.1.0.deb"}},
		{"linux", "arm64", []string{"App-2.1.0-arm64.AppImage"}},
		{"windows", "amd64", []string{"App Setup 2.1.0.exe"}},
		// macOS: the .zip only (MacUpdater hands it to Squirrel.Mac, which
		// cannot install a disk image).
		{"darwin", "", []string{"App-2.1.0-arm64.zip", "App-2.1.0.zip"}},
		{"darwin", "arm64", []string{"App-2.1.0-arm64.zip"}},
	} {
		t.Run(tc.platform+"/"+tc.arch, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Electron(&buf, product, r, tc.platform, tc.arch, base); err != nil {
				t.Fatal(err)
			}
			var m map[string]any // parse generically: no help from our own struct tags
			if err := yaml.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			if m["version"] != "2.1.0" || m["releaseNotes"] != hostile || m["stagingPercentage"] != 25 ||
				m["releaseDate"] != "2025-03-04T05:06:07.000Z" || m["minimumSystemVersion"] != "10.15" || m["releaseName"] != "App & <Co> 2.1.0" {
				t.Fatalf("manifest:\n%s", buf.String())
			}
			files, _ := m["files"].([]any)
			if len(files) != len(tc.files) {
				t.Fatalf("%d files, want %v:\n%s", len(files), tc.files, buf.String())
			}
			for i, f := range files {
				fm := f.(map[string]any)
				want := up(tc.files[i], "", "")
				if fm["url"] != base.Download("app", "2.1.0", tc.files[i]) || fm["sha512"] != want.SHA512 || fm["size"] != int(want.Size) {
					t.Errorf("file %d = %v, want %s", i, fm, tc.files[i])
				}
			}
			if m["path"] != files[0].(map[string]any)["url"] || m["sha512"] != files[0].(map[string]any)["sha512"] {
				t.Errorf("legacy path/sha512 are not the first file:\n%s", buf.String())
			}
		})
	}
	var buf bytes.Buffer
	for _, tc := range []struct{ platform, arch, code string }{
		{"linux", "386", portal.ENotFound},
		{"freebsd", "amd64", portal.EInvalid},
		{"linux", "", portal.EInvalid},
		{"beos", "amd64", portal.EInvalid},
	} {
		if err := Electron(&buf, product, r, tc.platform, tc.arch, base); !portal.IsCode(err, tc.code) {
			t.Errorf("Electron(%s, %s) = %v, want %s", tc.platform, tc.arch, err, tc.code)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("errors wrote %q", buf.String())
	}
	// A Mac release with only a .dmg is not offered to electron-updater.
	dmgOnly := rel("3.0.0", "stable", up("App-3.0.0.dmg", "darwin", "universal"), up("App-3.0.0-arm64.dmg", "darwin", "arm64"))
	for _, arch := range []string{"", "arm64", "amd64"} {
		if err := Electron(&buf, product, dmgOnly, "darwin", arch, base); !portal.IsCode(err, portal.ENotFound) {
			t.Errorf("Electron(dmg only, darwin, %q) = %v, want not_found", arch, err)
		}
		if a, ok := ElectronArtifact(dmgOnly, "darwin", arch); ok {
			t.Errorf("ElectronArtifact(dmg only, darwin, %q) = %s", arch, a.Filename)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("a dmg-only release wrote %q", buf.String())
	}
	// Without a rollout there is no stagingPercentage at all.
	full := r
	full.Rollout = 0
	if err := Electron(&buf, product, full, "linux", "amd64", base); err != nil || strings.Contains(buf.String(), "stagingPercentage") {
		t.Fatalf("%v\n%s", err, buf.String())
	}
}

func TestTauri(t *testing.T) {
	minisig := "untrusted comment: signature from portal\nRUQ...\ntrusted comment: timestamp:1\tfile:x\thashed\nabc==\n"
	r := rel("1.4.0", "stable",
		up("App_1.4.0_x64.app.tar.gz", "darwin", "amd64", "minisign", minisig),
		up("App_1.4.0_universal.app.tar.gz", "darwin", "universal", "minisign", minisig),
		up("App_1.4.0_amd64.AppImage", "linux", "amd64", "minisign", minisig),
		up("App_1.4.0_amd64.deb", "linux", "amd64", "minisign", minisig),
		up("App_1.4.0_x64-setup.exe", "windows", "amd64"), // unsigned: never picked
		up("App_1.4.0_x64_en-US.msi", "windows", "amd64", "minisign", minisig))
	r.Notes = hostile
	for _, tc := range []struct{ target, arch, file string }{
		{"darwin", "x86_64", "App_1.4.0_x64.app.tar.gz"},
		{"darwin", "aarch64", "App_1.4.0_universal.app.tar.gz"},
		{"darwin-aarch64", "", "App_1.4.0_universal.app.tar.gz"},
		{"linux", "x86_64", "App_1.4.0_amd64.AppImage"},
		{"windows", "x86_64", "App_1.4.0_x64_en-US.msi"},
		{"linux", "aarch64", ""},
		{"windows", "i686", ""},
	} {
		plat, arch, err := TauriTarget(tc.target, tc.arch)
		if err != nil {
			t.Fatal(err)
		}
		a, ok := TauriArtifact(r, plat, arch)
		if tc.file == "" {
			if ok {
				t.Errorf("%s/%s: picked %s", tc.target, tc.arch, a.Filename)
			}
			continue
		}
		if !ok || a.Filename != tc.file {
			t.Errorf("%s/%s: picked %q, want %s", tc.target, tc.arch, a.Filename, tc.file)
			continue
		}
		resp, err := Tauri(product, r, a, base)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(resp)
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		sig, _ := base64.StdEncoding.DecodeString(m["signature"])
		if m["version"] != "1.4.0" || m["notes"] != hostile || m["pub_date"] != "2025-03-04T05:06:07Z" ||
			m["url"] != base.Download("app", "1.4.0", tc.file) || string(sig) != minisig || len(m) != 5 {
			t.Errorf("Tauri JSON %s", b)
		}
	}
	if _, err := Tauri(product, r, up("x.msi", "windows", "amd64"), base); !portal.IsCode(err, portal.EInvalid) {
		t.Errorf("unsigned artifact: %v", err)
	}
	four := rel("1.4.0.1", "stable")
	if _, err := Tauri(product, four, up("x.msi", "windows", "amd64", "minisign", minisig), base); !portal.IsCode(err, portal.EInvalid) {
		t.Errorf("four-part version: %v", err)
	}
	for _, tc := range []struct{ target, arch, plat, parch string }{
		{"linux", "x86_64", "linux", "amd64"},
		{"darwin", "aarch64", "darwin", "arm64"},
		{"windows", "i686", "windows", "386"},
		{"linux", "armv7", "linux", "arm"},
		{"linux-armv7", "", "linux", "arm"},
	} {
		if p, a, err := TauriTarget(tc.target, tc.arch); err != nil || p != tc.plat || a != tc.parch {
			t.Errorf("TauriTarget(%s, %s) = %s %s %v", tc.target, tc.arch, p, a, err)
		}
	}
	for _, tc := range [][2]string{{"android", "aarch64"}, {"linux", "amd64"}, {"linux", ""}, {"", ""}, {"darwin", "universal"}} {
		if _, _, err := TauriTarget(tc[0], tc[1]); !portal.IsCode(err, portal.EInvalid) {
			t.Errorf("TauriTarget(%q, %q) = %v, want EInvalid", tc[0], tc[1], err)
		}
	}
}

func TestSquirrel(t *testing.T) {
	r := rel("3.2.1", "stable", up("App-3.2.1.dmg", "darwin", "universal"), up("App-3.2.1-mac.zip", "darwin", "universal"), up("App-3.2.1-arm64-mac.zip", "darwin", "arm64"))
	r.Notes = hostile
	for _, tc := range []struct{ arch, file string }{{"arm64", "App-3.2.1-arm64-mac.zip"}, {"amd64", "App-3.2.1-mac.zip"}} {
		a, ok := SquirrelArtifact(r, tc.arch)
		if !ok || a.Filename != tc.file {
			t.Fatalf("SquirrelArtifact(%s) = %s %v", tc.arch, a.Filename, ok)
		}
		b, _ := json.Marshal(Squirrel(product, r, a, base))
		var m map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m["url"] != base.Download("app", "3.2.1", tc.file) || m["name"] != "App & <Co> 3.2.1" || m["notes"] != hostile || m["pub_date"] != "2025-03-04T05:06:07Z" {
			t.Errorf("Squirrel JSON %s", b)
		}
	}
	if _, ok := SquirrelArtifact(rel("1.0.0", "stable", up("App.dmg", "darwin", "universal")), "arm64"); ok {
		t.Fatal("picked a dmg for Squirrel.Mac")
	}
}
