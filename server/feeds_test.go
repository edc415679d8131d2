package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/portaldist/portal/updates"
)

const sparkleNS = "http://www.andymatuschak.org/xml-namespaces/sparkle"

// feedFile is one artifact of a feed test release.
type feedFile struct{ name, platform, arch string }

// The builds an electron-builder / Tauri pipeline produces, by target.
func macFiles(v string) []feedFile {
	return []feedFile{{"App-" + v + "-universal-mac.zip", "darwin", "universal"}, {"App-" + v + ".dmg", "darwin", "universal"}}
}
func winFiles(v string) []feedFile {
	return []feedFile{{"App-Setup-" + v + ".exe", "windows", "amd64"}}
}
func linuxFiles(v string) []feedFile {
	// The .deb comes first on purpose: electron-updater must still be
	// pointed at the AppImage.
	return []feedFile{{"app_" + v + "_amd64.deb", "linux", "amd64"}, {"App-" + v + ".AppImage", "linux", "amd64"}}
}
func linuxArmFiles(v string) []feedFile {
	return []feedFile{{"App-" + v + "-arm64.AppImage", "linux", "arm64"}}
}
func allFiles(v string) []feedFile {
	return slices.Concat(macFiles(v), winFiles(v), linuxFiles(v), linuxArmFiles(v))
}

// catRelease is a release as the catalog API returns it.
type catRelease struct {
	Version     string
	Channel     string
	Notes       string
	Rollout     int
	PublishedAt time.Time `json:"published_at"`
	Artifacts   []struct {
		Filename   string
		Size       int64
		SHA512     string
		Signatures map[string]string
	}
}

// feedEnv is a portal with a catalog every feed reads from, and the bytes
// and catalog records the feeds are checked against.
type feedEnv struct {
	*env
	bytes    map[string][]byte     // filename -> content
	releases map[string]catRelease // version -> as the catalog has it
}

// publish creates a release with the given files and publishes it, an
// hour after the previous one so each has its own pubDate.
func (f *feedEnv) publish(product string, rel map[string]any, files []feedFile) {
	f.t.Helper()
	admin := bearer(f.admin)
	v := rel["version"].(string)
	f.advance(time.Hour)
	f.must(201, f.do("POST", "/v1/products/"+product+"/releases", admin, rel))
	for _, ff := range files {
		body := []byte(strings.Repeat(ff.name+" built for "+ff.platform+"/"+ff.arch+"\n", 40))
		if strings.HasSuffix(ff.name, ".deb") {
			// The portal reads a .deb's control fields at complete.
			body = realDeb(f.t, product, v, ff.arch)
		}
		f.upload(admin, product, v, ff.name, ff.platform, ff.arch, body)
		f.bytes[ff.name] = body
	}
	f.must(200, f.do("POST", "/v1/products/"+product+"/releases/"+v+"/publish", admin, nil))
	var cr catRelease
	if err := json.Unmarshal(f.must(200, f.get("/v1/products/"+product+"/releases/"+v, admin)).body, &cr); err != nil {
		f.t.Fatal(err)
	}
	f.releases[v] = cr
}

// artifact returns the catalog's record of a file, failing when the
// release has none.
func (f *feedEnv) artifact(t *testing.T, version, filename string) (catRelease, int) {
	t.Helper()
	r, ok := f.releases[version]
	if !ok {
		t.Fatalf("no release %s", version)
	}
	for i, a := range r.Artifacts {
		if a.Filename == filename {
			return r, i
		}
	}
	t.Fatalf("%s has no %s", version, filename)
	return r, -1
}

// downloadURL is the download URL feeds give: it ends with the file name
// (electron-updater derives its cache file and .blockmap URL from it).
func (f *feedEnv) downloadURL(version, filename string) string {
	return f.url + "/v1/products/app/releases/" + version + "/files/" + url.PathEscape(filename)
}

// follow downloads a URL a feed gave (resolved against the feed's URL, as
// electron-updater does) with the license and checks the bytes are the
// file's.
func (f *feedEnv) follow(t *testing.T, feedPath, link, auth, filename string) {
	t.Helper()
	base, _ := url.Parse(f.url + feedPath)
	ref, err := url.Parse(link)
	if err != nil {
		t.Fatalf("feed link %q: %v", link, err)
	}
	st, b, _ := f.fetch(f.relPath(base.ResolveReference(ref).String()), auth)
	if st != 200 || !bytes.Equal(b, f.bytes[filename]) {
		t.Fatalf("following %s: %d, %d bytes, want %s", link, st, len(b), filename)
	}
}

type appcastDoc struct {
	Channel struct {
		Title string `xml:"title"`
		Items []struct {
			Title        string `xml:"title"`
			PubDate      string `xml:"pubDate"`
			Version      string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version"`
			ShortVersion string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle shortVersionString"`
			Channel      *struct {
				Value string `xml:",chardata"`
			} `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle channel"`
			MinimumSystemVersion string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle minimumSystemVersion"`
			CriticalUpdate       *struct {
				Version string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version,attr"`
			} `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle criticalUpdate"`
			PhasedRolloutInterval string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle phasedRolloutInterval"`
			Description           string `xml:"description"`
			Enclosure             struct {
				URL          string `xml:"url,attr"`
				Length       int64  `xml:"length,attr"`
				Version      string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle version,attr"`
				ShortVersion string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle shortVersionString,attr"`
				EdSignature  string `xml:"http://www.andymatuschak.org/xml-namespaces/sparkle edSignature,attr"`
			} `xml:"enclosure"`
		} `xml:"item"`
	} `xml:"channel"`
}

type electronDoc struct {
	Version string `yaml:"version"`
	Files   []struct {
		URL    string `yaml:"url"`
		SHA512 string `yaml:"sha512"`
		Size   int64  `yaml:"size"`
	} `yaml:"files"`
	Path                 string `yaml:"path"`
	SHA512               string `yaml:"sha512"`
	ReleaseDate          string `yaml:"releaseDate"`
	ReleaseNotes         string `yaml:"releaseNotes"`
	StagingPercentage    int    `yaml:"stagingPercentage"`
	MinimumSystemVersion string `yaml:"minimumSystemVersion"`
}

type tauriDoc struct {
	Version   string `json:"version"`
	Notes     string `json:"notes"`
	PubDate   string `json:"pub_date"`
	URL       string `json:"url"`
	Signature string `json:"signature"`
}

type squirrelDoc struct {
	URL     string `json:"url"`
	Name    string `json:"name"`
	Notes   string `json:"notes"`
	PubDate string `json:"pub_date"`
}

// appcast fetches and parses an appcast, checking every item against the
// catalog, and returns the items' versions in feed order.
func (f *feedEnv) appcast(t *testing.T, path, auth string) []string {
	t.Helper()
	r := f.must(200, f.get(path, auth))
	if !strings.Contains(r.header.Get("Content-Type"), "xml") {
		t.Errorf("appcast Content-Type %q", r.header.Get("Content-Type"))
	}
	var doc appcastDoc
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("appcast does not parse: %v\n%s", err, r.body)
	}
	if !bytes.Contains(r.body, []byte(`xmlns:sparkle="`+sparkleNS+`"`)) {
		t.Fatalf("appcast does not declare the sparkle prefix:\n%s", r.body)
	}
	var vs []string
	for _, it := range doc.Channel.Items {
		v := it.ShortVersion
		vs = append(vs, v)
		file := "App-" + v + "-universal-mac.zip" // the .zip wins over the .dmg
		rel, i := f.artifact(t, v, file)
		a := rel.Artifacts[i]
		pub, err := time.Parse(time.RFC1123Z, it.PubDate)
		switch {
		case it.Version != v || it.Enclosure.Version != v || it.Enclosure.ShortVersion != v:
			t.Errorf("%s: sparkle versions %q / %q / %q", v, it.Version, it.Enclosure.Version, it.Enclosure.ShortVersion)
		case it.Enclosure.URL != f.downloadURL(v, file):
			t.Errorf("%s: enclosure url %q, want %q", v, it.Enclosure.URL, f.downloadURL(v, file))
		case it.Enclosure.Length != a.Size || a.Size != int64(len(f.bytes[file])):
			t.Errorf("%s: length %d, catalog %d, file %d", v, it.Enclosure.Length, a.Size, len(f.bytes[file]))
		case it.Enclosure.EdSignature == "" || it.Enclosure.EdSignature != a.Signatures["ed25519"]:
			t.Errorf("%s: edSignature %q, catalog %q", v, it.Enclosure.EdSignature, a.Signatures["ed25519"])
		case err != nil || !pub.Equal(rel.PublishedAt.Truncate(time.Second)):
			t.Errorf("%s: pubDate %q (%v), published %s", v, it.PubDate, err, rel.PublishedAt)
		case it.Description != rel.Notes:
			t.Errorf("%s: description %q, notes %q", v, it.Description, rel.Notes)
		}
		// sparkle:channel only off stable: a stable item with a channel
		// would hide it from every Sparkle client on the default channel.
		if rel.Channel == "stable" {
			if it.Channel != nil {
				t.Errorf("%s: stable release with sparkle:channel %q", v, it.Channel.Value)
			}
		} else if it.Channel == nil || it.Channel.Value != rel.Channel {
			t.Errorf("%s: sparkle:channel %v, want %s", v, it.Channel, rel.Channel)
		}
		wantPhase := ""
		if rel.Rollout > 0 {
			wantPhase = "86400"
		}
		if it.PhasedRolloutInterval != wantPhase {
			t.Errorf("%s: phasedRolloutInterval %q, want %q", v, it.PhasedRolloutInterval, wantPhase)
		}
	}
	return vs
}

// electron fetches and parses an electron-updater file and checks it
// offers version with exactly files (the first is the preferred one, path).
func (f *feedEnv) electron(t *testing.T, file, auth, version string, files ...string) electronDoc {
	t.Helper()
	path := "/feeds/app/electron/" + file
	r := f.must(200, f.get(path, auth))
	var doc electronDoc
	if err := yaml.Unmarshal(r.body, &doc); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", file, err, r.body)
	}
	if doc.Version != version {
		t.Fatalf("%s: version %q, want %s\n%s", file, doc.Version, version, r.body)
	}
	rel := f.releases[version]
	var got []string
	for _, df := range doc.Files {
		u, err := url.Parse(df.URL)
		if err != nil {
			t.Fatalf("%s: file URL %q: %v", file, df.URL, err)
		}
		name := u.Path[strings.LastIndex(u.Path, "/")+1:]
		got = append(got, name)
		_, i := f.artifact(t, version, name)
		a := rel.Artifacts[i]
		if df.URL != f.downloadURL(version, name) || df.SHA512 != sha512b64(f.bytes[name]) || df.SHA512 != a.SHA512 ||
			df.Size != int64(len(f.bytes[name])) || df.Size != a.Size {
			t.Errorf("%s: file entry %+v, want sha512 %s size %d", file, df, sha512b64(f.bytes[name]), len(f.bytes[name]))
		}
	}
	if !slices.Equal(got, files) {
		t.Fatalf("%s: files %v, want %v", file, got, files)
	}
	wantStaging := 0
	if rel.Rollout > 0 && rel.Rollout < 100 {
		wantStaging = rel.Rollout
	}
	if doc.Path != doc.Files[0].URL || doc.SHA512 != doc.Files[0].SHA512 ||
		doc.ReleaseDate != rel.PublishedAt.UTC().Format("2006-01-02T15:04:05.000Z") ||
		doc.ReleaseNotes != rel.Notes || doc.StagingPercentage != wantStaging {
		t.Errorf("%s: %+v (published %s, rollout %d)", file, doc, rel.PublishedAt, rel.Rollout)
	}
	f.follow(t, path, doc.Files[0].URL, auth, files[0])
	return doc
}

// tauri checks the Tauri endpoint answers version with file, or 204 when
// version is "".
func (f *feedEnv) tauri(t *testing.T, path, auth, version, file string) {
	t.Helper()
	r := f.get("/feeds/app/tauri/"+path, auth)
	if version == "" {
		if r.status != 204 {
			t.Fatalf("tauri %s: %d %s, want 204", path, r.status, r.body)
		}
		return
	}
	f.must(200, r)
	var doc tauriDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	rel, _ := f.artifact(t, version, file)
	minisig := f.must(200, f.get("/v1/products/app/releases/"+version+"/artifacts/"+file+".minisig", auth)).body
	sig, err := base64.StdEncoding.DecodeString(doc.Signature)
	pub, perr := time.Parse(time.RFC3339, doc.PubDate)
	switch {
	case doc.Version != version || doc.URL != f.downloadURL(version, file) || doc.Notes != rel.Notes:
		t.Fatalf("tauri %s: %s, want %s %s", path, r.body, version, file)
	case err != nil || !bytes.Equal(sig, minisig) || strings.Count(string(sig), "\n") != 4:
		t.Fatalf("tauri %s: signature is not base64 of the .minisig:\n%s\n---\n%s", path, sig, minisig)
	case perr != nil || !pub.Equal(rel.PublishedAt.Truncate(time.Second)):
		t.Fatalf("tauri %s: pub_date %q, published %s", path, doc.PubDate, rel.PublishedAt)
	}
	f.follow(t, "/feeds/app/tauri/"+path, doc.URL, auth, file)
}

// squirrel checks Squirrel.Mac's endpoint answers version's zip, or 204
// when version is "".
func (f *feedEnv) squirrel(t *testing.T, current, auth, version string) {
	t.Helper()
	r := f.get("/feeds/app/squirrel/darwin/"+current, auth)
	if version == "" {
		if r.status != 204 {
			t.Fatalf("squirrel from %s: %d %s, want 204", current, r.status, r.body)
		}
		return
	}
	f.must(200, r)
	var doc squirrelDoc
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	file := "App-" + version + "-universal-mac.zip"
	rel, _ := f.artifact(t, version, file)
	pub, err := time.Parse(time.RFC3339, doc.PubDate)
	if doc.URL != f.downloadURL(version, file) || doc.Name != "app "+version || doc.Notes != rel.Notes ||
		err != nil || !pub.Equal(rel.PublishedAt.Truncate(time.Second)) {
		t.Fatalf("squirrel from %s: %s, want %s", current, r.body, version)
	}
	f.follow(t, "/feeds/app/squirrel/darwin/"+current, doc.URL, auth, file)
}

func TestFeeds(t *testing.T) {
	f := &feedEnv{env: newEnv(t), bytes: map[string][]byte{}, releases: map[string]catRelease{}}
	f.product("app", "licensed")
	f.product("free", "open")
	admin := bearer(f.admin)

	f.publish("app", map[string]any{"version": "1.0.0", "notes": "First.",
		"metadata": map[string]string{"minimum_system_version": "10.15"}}, allFiles("1.0.0"))
	f.publish("app", map[string]any{"version": "1.1.0", "notes": "<p>Security fixes.</p>",
		"metadata": map[string]string{"minimum_system_version": "11.0", "critical": "true"}}, allFiles("1.1.0"))
	f.publish("app", map[string]any{"version": "1.2.0", "notes": "Staged.", "rollout": 30}, allFiles("1.2.0"))
	// Linux only, and on arm64 only a bundle Tauri installs and
	// electron-updater does not: every other feed must skip this release.
	f.publish("app", map[string]any{"version": "1.3.0", "notes": "Linux fix."}, append(linuxFiles("1.3.0"),
		feedFile{"app_1.3.0_aarch64.AppImage.tar.gz", "linux", "arm64"}))
	f.publish("app", map[string]any{"version": "2.0.0-beta.1", "channel": "beta", "notes": "Beta."}, allFiles("2.0.0-beta.1"))
	f.publish("free", map[string]any{"version": "0.9.0"}, macFiles("0.9.0"))

	// Tauri and Squirrel.Mac apply the 1.2.0 rollout on the server, per
	// license: find one license inside its cohort and one outside.
	var in, out string
	for i := 0; i < 200 && (in == "" || out == ""); i++ {
		id, key := f.license(map[string]any{"customer": "c", "product": "app"})
		if updates.Bucket(id, "app", "1.2.0") < 30 {
			in = "License " + key
		} else {
			out = "License " + key
		}
	}
	if in == "" || out == "" {
		t.Fatal("no license on each side of the 1.2.0 rollout")
	}
	lic := in

	// check runs every feed against the catalog; newest is a stable release
	// with every build that should be on top of each feed, or "".
	check := func(t *testing.T, newest string) {
		or := func(v string) string {
			if newest != "" {
				return newest
			}
			return v
		}
		t.Run("appcast", func(t *testing.T) {
			want := []string{"1.2.0", "1.1.0", "1.0.0"} // 1.3.0 has no Mac build
			if newest != "" {
				want = append([]string{newest}, want...)
			}
			if got := f.appcast(t, "/feeds/app/appcast.xml", lic); !slices.Equal(got, want) {
				t.Fatalf("stable appcast items %v, want %v", got, want)
			}
			beta := slices.Insert(slices.Clone(want), 1, "2.0.0-beta.1")
			if newest == "" {
				beta = slices.Insert(slices.Clone(want), 0, "2.0.0-beta.1")
			}
			if got := f.appcast(t, "/feeds/app/appcast.xml?channel=beta", lic); !slices.Equal(got, beta) {
				t.Fatalf("beta appcast items %v, want %v", got, beta)
			}
		})
		t.Run("electron", func(t *testing.T) {
			v := or("1.2.0")
			f.electron(t, "latest.yml", lic, v, "App-Setup-"+v+".exe")
			f.electron(t, "latest-mac.yml", lic, v, "App-"+v+"-universal-mac.zip") // never the .dmg
			lv := or("1.3.0")
			f.electron(t, "latest-linux.yml", lic, lv, "App-"+lv+".AppImage", "app_"+lv+"_amd64.deb")
			f.electron(t, "latest-linux-arm64.yml", lic, v, "App-"+v+"-arm64.AppImage")
			bv := or("2.0.0-beta.1")
			f.electron(t, "beta.yml", lic, bv, "App-Setup-"+bv+".exe")
			f.electron(t, "beta-mac.yml", lic, bv, "App-"+bv+"-universal-mac.zip")
		})
		t.Run("tauri", func(t *testing.T) {
			lv := or("1.3.0")
			f.tauri(t, "linux/x86_64/1.0.0", lic, lv, "App-"+lv+".AppImage")
			f.tauri(t, "linux/aarch64/1.0.0", lic, lv, map[bool]string{true: "App-" + lv + "-arm64.AppImage", false: "app_1.3.0_aarch64.AppImage.tar.gz"}[newest != ""])
			f.tauri(t, "linux/x86_64/"+lv, lic, "", "")
			f.tauri(t, "linux/x86_64/1.3.0?channel=beta", lic, or("2.0.0-beta.1"), "App-"+or("2.0.0-beta.1")+".AppImage")
			// No Mac bundle Tauri installs (.app.tar.gz) was ever uploaded.
			f.tauri(t, "darwin/aarch64/0.1.0", lic, "", "")
			f.tauri(t, "windows/x86_64/1.0.0", in, or("1.2.0"), "App-Setup-"+or("1.2.0")+".exe")
			f.tauri(t, "windows/x86_64/1.0.0", out, or("1.1.0"), "App-Setup-"+or("1.1.0")+".exe")
		})
		t.Run("squirrel", func(t *testing.T) {
			f.squirrel(t, "1.0.0", in, or("1.2.0"))
			f.squirrel(t, "1.0.0", out, or("1.1.0"))
			f.squirrel(t, "1.1.0", out, map[bool]string{true: newest, false: ""}[newest != ""])
			f.squirrel(t, or("1.2.0"), in, "")
		})
	}
	t.Run("catalog", func(t *testing.T) { check(t, "") })

	t.Run("metadata", func(t *testing.T) {
		var doc appcastDoc
		xml.Unmarshal(f.must(200, f.get("/feeds/app/appcast.xml", lic)).body, &doc)
		byVer := map[string]int{}
		for i, it := range doc.Channel.Items {
			byVer[it.ShortVersion] = i
		}
		items := doc.Channel.Items
		if it := items[byVer["1.1.0"]]; it.MinimumSystemVersion != "11.0" || it.CriticalUpdate == nil {
			t.Errorf("1.1.0: minimumSystemVersion %q, critical %v", it.MinimumSystemVersion, it.CriticalUpdate)
		}
		if it := items[byVer["1.0.0"]]; it.MinimumSystemVersion != "10.15" || it.CriticalUpdate != nil {
			t.Errorf("1.0.0: minimumSystemVersion %q, critical %v", it.MinimumSystemVersion, it.CriticalUpdate)
		}
		if it := items[byVer["1.2.0"]]; it.MinimumSystemVersion != "" || it.CriticalUpdate != nil {
			t.Errorf("1.2.0: minimumSystemVersion %q, critical %v", it.MinimumSystemVersion, it.CriticalUpdate)
		}
	})

	t.Run("auth", func(t *testing.T) {
		key := strings.TrimPrefix(lic, "License ")
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("license:"+key))
		paths := []string{"/feeds/app/appcast.xml", "/feeds/app/electron/latest.yml", "/feeds/app/tauri/linux/x86_64/1.0.0", "/feeds/app/squirrel/darwin/1.0.0"}
		for _, p := range paths {
			a, b := f.get(p, lic), f.get(p, basic)
			if a.status != 200 || b.status != 200 || !bytes.Equal(a.body, b.body) {
				t.Errorf("%s: License %d, Basic %d", p, a.status, b.status)
			}
			r := f.get(p, "")
			if r.status != 401 || r.code() != "unauthorized" {
				t.Errorf("%s without a license: %d %s", p, r.status, r.body)
			}
			if h := strings.ToLower(r.header.Get("WWW-Authenticate")); strings.HasPrefix(h, "basic") || strings.HasPrefix(h, "digest") {
				t.Errorf("%s: WWW-Authenticate %q", p, h)
			}
			if st := f.get(p, "Basic "+base64.StdEncoding.EncodeToString([]byte("license:nope"))).status; st != 401 {
				t.Errorf("%s with a wrong key: %d", p, st)
			}
		}
		// Feeds are polled: an unchanged feed costs a 304.
		for _, p := range paths {
			tag := f.must(200, f.get(p, lic)).header.Get("ETag")
			if r := f.get(p, lic, "If-None-Match", tag); tag == "" || r.status != 304 || len(r.body) != 0 {
				t.Errorf("%s: ETag %q, then %d", p, tag, r.status)
			}
		}
		for _, p := range []string{"/feeds/free/appcast.xml", "/feeds/free/electron/latest-mac.yml", "/feeds/free/squirrel/darwin/0.1.0"} {
			if r := f.get(p, ""); r.status != 200 {
				t.Errorf("open product %s: %d %s", p, r.status, r.body)
			}
		}
	})

	t.Run("yanked release leaves every feed", func(t *testing.T) {
		f.publish("app", map[string]any{"version": "3.0.0", "notes": "Everything."}, allFiles("3.0.0"))
		t.Run("published", func(t *testing.T) { check(t, "3.0.0") })
		f.must(200, f.do("POST", "/v1/products/app/releases/3.0.0/yank", admin, nil))
		t.Run("yanked", func(t *testing.T) { check(t, "") })
	})

	// A Mac app built for one architecture only: its feeds serve the Macs
	// it runs on and no others.
	t.Run("single-arch Mac builds", func(t *testing.T) {
		f.product("intel", "open")
		f.product("silicon", "open")
		f.publish("intel", map[string]any{"version": "1.0.0"}, []feedFile{{"Intel-1.0.0-mac.zip", "darwin", "amd64"}})
		f.publish("silicon", map[string]any{"version": "1.0.0"}, []feedFile{{"Silicon-1.0.0-arm64-mac.zip", "darwin", "arm64"}})
		for _, c := range []struct{ product, file string }{{"intel", "Intel-1.0.0-mac.zip"}, {"silicon", "Silicon-1.0.0-arm64-mac.zip"}} {
			var doc electronDoc
			r := f.get("/feeds/"+c.product+"/electron/latest-mac.yml", "")
			if r.status != 200 {
				t.Errorf("%s latest-mac.yml: %d %s", c.product, r.status, r.body)
				continue
			}
			if err := yaml.Unmarshal(r.body, &doc); err != nil || len(doc.Files) != 1 || !strings.HasSuffix(doc.Files[0].URL, "/files/"+c.file) {
				t.Errorf("%s latest-mac.yml: %v\n%s", c.product, err, r.body)
			}
		}
		// The default appcast lists only builds every Mac runs; ?arch=
		// narrows to one architecture.
		for _, c := range []struct {
			path  string
			items int
		}{
			{"/feeds/intel/appcast.xml", 0}, {"/feeds/intel/appcast.xml?arch=amd64", 1}, {"/feeds/intel/appcast.xml?arch=arm64", 0},
			{"/feeds/silicon/appcast.xml", 0}, {"/feeds/silicon/appcast.xml?arch=arm64", 1}, {"/feeds/silicon/appcast.xml?arch=x64", 0},
		} {
			var doc appcastDoc
			if err := xml.Unmarshal(f.must(200, f.get(c.path, "")).body, &doc); err != nil || len(doc.Channel.Items) != c.items {
				t.Errorf("%s: %d items, want %d (%v)", c.path, len(doc.Channel.Items), c.items, err)
			}
		}
		if r := f.get("/feeds/intel/squirrel/darwin/0.1.0?arch=amd64", ""); r.status != 200 {
			t.Errorf("intel squirrel on amd64: %d", r.status)
		}
		if r := f.get("/feeds/intel/squirrel/darwin/0.1.0?arch=arm64", ""); r.status != 204 {
			t.Errorf("intel squirrel on arm64: %d", r.status)
		}
	})

	// electron-updater's MacUpdater and Squirrel.Mac install a .zip: a Mac
	// release with only a disk image is left out of their feeds (Sparkle
	// installs a .dmg, so the appcast keeps it).
	t.Run("Mac release with only a dmg", func(t *testing.T) {
		f.product("dmgs", "open")
		f.publish("dmgs", map[string]any{"version": "1.0.0"}, []feedFile{{"Dmgs-1.0.0-mac.zip", "darwin", "universal"}})
		f.publish("dmgs", map[string]any{"version": "2.0.0"}, []feedFile{{"Dmgs-2.0.0.dmg", "darwin", "universal"}})
		var doc electronDoc
		r := f.must(200, f.get("/feeds/dmgs/electron/latest-mac.yml", ""))
		if err := yaml.Unmarshal(r.body, &doc); err != nil || doc.Version != "1.0.0" || len(doc.Files) != 1 ||
			!strings.HasSuffix(doc.Files[0].URL, "/files/Dmgs-1.0.0-mac.zip") || doc.Path != doc.Files[0].URL {
			t.Errorf("latest-mac.yml with a dmg-only 2.0.0: %v\n%s", err, r.body)
		}
		if r := f.get("/feeds/dmgs/squirrel/darwin/1.0.0", ""); r.status != 204 {
			t.Errorf("squirrel from 1.0.0 with a dmg-only 2.0.0: %d %s", r.status, r.body)
		}
		var ac appcastDoc
		if err := xml.Unmarshal(f.must(200, f.get("/feeds/dmgs/appcast.xml", "")).body, &ac); err != nil || len(ac.Channel.Items) != 2 {
			t.Errorf("appcast: %d items (%v), want both releases", len(ac.Channel.Items), err)
		}
	})

	// The feeds' download route (.../files/{filename}) is the artifact
	// download: the same resolver, license checks and refusals as
	// .../artifacts/{filename}/download, which keeps working.
	t.Run("files route", func(t *testing.T) {
		f.product("rival", "licensed")
		_, otherKey := f.license(map[string]any{"customer": "c", "product": "rival"})
		other := "License " + otherKey
		file := "App-1.0.0-universal-mac.zip"
		for _, p := range []string{
			"/v1/products/app/releases/1.0.0/files/" + file,
			"/v1/products/app/releases/1.0.0/artifacts/" + file + "/download",
			"/v1/products/app/releases/latest/files/App-1.2.0-universal-mac.zip",
		} {
			want := f.bytes[file]
			if strings.Contains(p, "latest") {
				want = f.bytes["App-1.2.0-universal-mac.zip"]
			}
			if st, b, _ := f.fetch(p, lic); st != 200 || !bytes.Equal(b, want) {
				t.Errorf("%s: %d, %d bytes", p, st, len(b))
			}
			for _, c := range []struct {
				auth   string
				status int
				code   string
			}{{"", 401, "unauthorized"}, {other, 403, "not_entitled"}, {"License nope", 401, "unauthorized"}} {
				if r := f.get(p, c.auth); r.status != c.status || r.code() != c.code {
					t.Errorf("%s as %q: %d %s, want %d %s", p, c.auth, r.status, r.body, c.status, c.code)
				}
			}
		}
		if r := f.get("/v1/products/app/releases/1.0.0/files/nope.zip", lic); r.status != 404 || r.code() != "not_found" {
			t.Errorf("unknown file: %d %s", r.status, r.body)
		}
		if r := f.get("/v1/products/app/releases/1.0.0/files/"+file+"?ttl=soon", lic); r.status != 400 || r.code() != "invalid" {
			t.Errorf("bad ttl: %d %s", r.status, r.body)
		}
		// A Go self-updater finds the signature at the download URL plus
		// ".minisig".
		sig := f.must(200, f.get("/v1/products/app/releases/1.0.0/files/"+file+".minisig", lic))
		if want := f.must(200, f.get("/v1/products/app/releases/1.0.0/artifacts/"+file+".minisig", lic)).body; !bytes.Equal(sig.body, want) ||
			!strings.HasPrefix(string(sig.body), "untrusted comment:") {
			t.Errorf("files/...minisig: %q", sig.body)
		}
		if r := f.get("/v1/products/app/releases/1.0.0/files/"+file+".minisig", ""); r.status != 401 {
			t.Errorf("files/...minisig without a license: %d", r.status)
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for _, p := range []string{
			"/feeds/app/electron/latest.json", "/feeds/app/electron/nightly.yml", "/feeds/app/electron/latest-linux-sparc.yml",
			"/feeds/app/tauri/beos/x86_64/1.0.0", "/feeds/app/tauri/linux/z80/1.0.0", "/feeds/app/tauri/linux/x86_64/one",
			"/feeds/app/squirrel/linux/1.0.0", "/feeds/app/appcast.xml?channel=nightly",
		} {
			if r := f.get(p, lic); r.status != 400 {
				t.Errorf("%s: %d %s", p, r.status, r.body)
			}
		}
		if r := f.get("/feeds/nope/appcast.xml", lic); r.status != 404 {
			t.Errorf("unknown product: %d", r.status)
		}
	})
}
