package web_test

import (
	"html"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/internal/rpmtest"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// The customer page tells how to install each product that has packages
// with apt and dnf: for the channels the license may install from, with
// this portal's URLs, the license key only as a placeholder; and what it
// tells works: the key URL answers, the repository answers the license,
// the .repo file is the placeholder version until fetched with the key.
func TestInstallInstructions(t *testing.T) {
	f := newFixture(t, nil)
	f.product("acme", "Acme Server")
	f.product("tools", "Tools")
	f.product("lib", "Lib")
	open := releases.Open
	if _, _, err := f.App.Catalog.EditProduct(cliCtx, "lib", releases.ProductEdit{Distribution: &open}); err != nil {
		t.Fatal(err)
	}
	deb := func(name, version, arch string) []byte {
		return readFile(t, debtest.Build(t, t.TempDir(), debtest.Package{Name: name, Version: version, Arch: arch}))
	}
	rpmPath := rpmtest.Build(t, rpmtest.Spec{Name: "acme-server", Version: "1.0.0", Target: "x86_64", Bare: true})
	f.publish("acme", "1.0.0", "stable", "",
		file{"acme-server_1.0.0-1_amd64.deb", "linux", "amd64", deb("acme-server", "1.0.0-1", "amd64")},
		file{"acme-cli_1.0.0-1_all.deb", "linux", "any", deb("acme-cli", "1.0.0-1", "all")},
		file{filepath.Base(rpmPath), "linux", "amd64", readFile(t, rpmPath)},
		file{"acme-1.0.0-windows-amd64.zip", "windows", "amd64", []byte("zip of acme 1.0.0")})
	f.publish("acme", "1.1.0-beta.1", "beta", "",
		file{"acme-server_1.1.0~beta.1-1_amd64.deb", "linux", "amd64", deb("acme-server", "1.1.0~beta.1-1", "amd64")})
	f.publish("tools", "1.0.0", "stable", "", file{"tools-1.0.0-linux-amd64.tar.gz", "linux", "amd64", []byte("tools")})
	libRPM := rpmtest.Build(t, rpmtest.Spec{Name: "lib-tools", Version: "2.0.0", Bare: true})
	f.publish("lib", "2.0.0", "stable", "", file{"lib-tools_2.0.0-1_all.deb", "linux", "any", deb("lib-tools", "2.0.0-1", "all")},
		file{filepath.Base(libRPM), "linux", "any", readFile(t, libRPM)})

	keys := map[string]string{}
	_, keys["all"] = f.license("all", []string{"acme", "tools", "lib"}, nil)
	_, keys["stable"] = f.license("stable", []string{"acme"}, func(l *licenses.License) { l.Channels = []string{"stable"} })
	_, keys["windows"] = f.license("windows", []string{"acme"}, func(l *licenses.License) { l.Platforms = []string{"windows"} })
	fp, err := f.App.Keys.Describe(cliCtx, "acme")
	if err != nil || fp.OpenPGP == nil {
		t.Fatalf("acme's keys: %v %+v", err, fp)
	}

	for _, tc := range []struct {
		license, product string
		apt, dnf         []string // channels offered, most stable first
		aptPackages      string
		dnfPackages      string
		licensed         bool
	}{
		{license: "all", product: "acme", apt: []string{"stable", "beta"}, dnf: []string{"stable"},
			aptPackages: "acme-cli acme-server", dnfPackages: "acme-server", licensed: true},
		{license: "stable", product: "acme", apt: []string{"stable"}, dnf: []string{"stable"},
			aptPackages: "acme-cli acme-server", dnfPackages: "acme-server", licensed: true},
		{license: "windows", product: "acme"},
		{license: "all", product: "tools"},
		{license: "all", product: "lib", apt: []string{"stable"}, aptPackages: "lib-tools", dnf: []string{"stable"}, dnfPackages: "lib-tools"},
	} {
		t.Run(tc.license+"/"+tc.product, func(t *testing.T) {
			key := keys[tc.license]
			b := f.browser()
			if p := b.signIn(key); p.Status != http.StatusSeeOther {
				t.Fatalf("sign-in: %d\n%s", p.Status, p.Body)
			}
			p := b.do("GET", "/", nil)
			if p.Status != http.StatusOK {
				t.Fatalf("GET /: %d\n%s", p.Status, p.Body)
			}
			if strings.Contains(p.Body, key) {
				t.Fatal("the page shows the license key")
			}
			sec := productSection(t, p.Body, tc.product)
			text := html.UnescapeString(sec)
			if tc.apt == nil && tc.dnf == nil {
				if strings.Contains(sec, `class="install"`) || strings.Contains(text, "apt install") || strings.Contains(text, "dnf install") {
					t.Fatalf("install instructions for a product without packages for this license:\n%s", sec)
				}
				return
			}
			if !strings.Contains(strings.ReplaceAll(text, " ", ""), fp.OpenPGP.Fingerprint) && tc.product == "acme" {
				t.Errorf("no key fingerprint %s:\n%s", fp.OpenPGP.Fingerprint, text)
			}
			repo := f.URL + "/apt/" + tc.product

			// apt: the keyring, one sources line per channel, the
			// auth.conf line with the placeholder, the packages.
			keyURL := match(t, text, `curl -fsSL (\S+) \| sudo tee /etc/apt/keyrings/`+tc.product+`\.gpg >/dev/null`)
			if keyURL != repo+"/key.gpg" {
				t.Errorf("keyring URL %s, want %s", keyURL, repo+"/key.gpg")
			}
			var lines []string
			for _, m := range regexp.MustCompile(`deb \[signed-by=/etc/apt/keyrings/`+tc.product+`\.gpg\] (\S+) (\S+) main`).FindAllStringSubmatch(text, -1) {
				if m[1] != repo {
					t.Errorf("sources line for %s", m[1])
				}
				if !slices.Contains(lines, m[2]) {
					lines = append(lines, m[2])
				}
			}
			if !slices.Equal(lines, tc.apt) {
				t.Errorf("sources lines for channels %v, want %v", lines, tc.apt)
			}
			auth := "machine " + repo + " login license password YOUR_LICENSE_KEY"
			if strings.Contains(text, auth) != tc.licensed || strings.Contains(text, "auth.conf.d") != tc.licensed {
				t.Errorf("auth.conf line %q shown: %v, want %v", auth, !tc.licensed, tc.licensed)
			}
			if !strings.Contains(text, "sudo apt install "+tc.aptPackages+"\n") && !strings.Contains(text, "sudo apt install "+tc.aptPackages+"</pre>") {
				t.Errorf("no `apt install %s`:\n%s", tc.aptPackages, text)
			}

			// The key is public; each channel's repository answers the
			// license (and only it, for a licensed product) and lists the
			// packages named.
			r := get(t, f, keyURL, "")
			if r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/pgp-keys" || len(r.body) == 0 || r.body[0]&0x80 == 0 {
				t.Errorf("GET %s: %s %s (%d bytes)", keyURL, r.Status, r.Header.Get("Content-Type"), len(r.body))
			}
			for _, ch := range lines {
				u := repo + "/dists/" + ch + "/InRelease"
				if r := get(t, f, u, key); r.StatusCode != http.StatusOK || !strings.HasPrefix(string(r.body), "-----BEGIN PGP SIGNED MESSAGE-----") {
					t.Errorf("GET %s with the license: %s\n%s", u, r.Status, r.body)
				}
				if r := get(t, f, u, ""); (r.StatusCode == http.StatusUnauthorized) != tc.licensed {
					t.Errorf("GET %s without credentials: %s", u, r.Status)
				}
				u = repo + "/dists/" + ch + "/main/binary-amd64/Packages"
				r := get(t, f, u, key)
				for _, name := range strings.Fields(tc.aptPackages) {
					if !strings.Contains(string(r.body), "Package: "+name+"\n") {
						t.Errorf("GET %s: %s, no %s\n%s", u, r.Status, name, r.body)
					}
				}
			}

			// dnf: the .repo files (placeholder version), the command
			// that fetches one with the key, the packages.
			var repoURLs []string
			for _, m := range regexp.MustCompile(`href="([^"]+\.repo)"`).FindAllStringSubmatch(sec, -1) {
				repoURLs = append(repoURLs, html.UnescapeString(m[1]))
			}
			var want []string
			for _, ch := range tc.dnf {
				want = append(want, f.URL+"/rpm/"+tc.product+"/"+ch+".repo")
			}
			if !slices.Equal(repoURLs, want) {
				t.Errorf(".repo links %v, want %v", repoURLs, want)
			}
			if tc.dnf == nil {
				if strings.Contains(text, "dnf install") {
					t.Errorf("dnf instructions without rpm packages:\n%s", text)
				}
				return
			}
			creds := ""
			if tc.licensed {
				creds = "-u license:YOUR_LICENSE_KEY "
			}
			cmd := "curl -fsS " + creds + want[0] + " |\n  sudo install -m 0600 /dev/stdin /etc/yum.repos.d/" + tc.product + ".repo\nsudo dnf install " + tc.dnfPackages
			if !strings.Contains(text, cmd) {
				t.Errorf("no dnf commands %q:\n%s", cmd, text)
			}
			for _, u := range repoURLs {
				r := get(t, f, u, "")
				if r.StatusCode != http.StatusOK || strings.Contains(string(r.body), "password=YOUR_LICENSE_KEY\n") != tc.licensed {
					t.Errorf("GET %s (the page's link): %s\n%s", u, r.Status, r.body)
				}
				if !tc.licensed {
					if strings.Contains(string(r.body), "password=") || strings.Contains(text, "YOUR_LICENSE_KEY") {
						t.Errorf("credentials for an open product: %s\n%s", r.body, text)
					}
					base := strings.ReplaceAll(match(t, string(r.body), `baseurl=(\S+)`), "$basearch", "x86_64")
					if r := get(t, f, base+"/repodata/repomd.xml", ""); r.StatusCode != http.StatusOK {
						t.Errorf("GET %s/repodata/repomd.xml of an open product: %s", base, r.Status)
					}
					continue
				}
				r = get(t, f, u, key) // what the page's curl -u does
				if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "password="+key+"\n") {
					t.Errorf("GET %s with the license: %s\n%s", u, r.Status, r.body)
				}
				base := strings.ReplaceAll(match(t, string(r.body), `baseurl=(\S+)`), "$basearch", "x86_64")
				if r := get(t, f, base+"/repodata/repomd.xml", key); r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "<repomd") {
					t.Errorf("GET %s/repodata/repomd.xml: %s", base, r.Status)
				}
				if r := get(t, f, base+"/repodata/repomd.xml", ""); r.StatusCode != http.StatusUnauthorized {
					t.Errorf("GET %s/repodata/repomd.xml without credentials: %s", base, r.Status)
				}
			}
		})
	}
}

// productSection is the customer page's section of product slug.
func productSection(t *testing.T, body, slug string) string {
	t.Helper()
	i := strings.Index(body, `aria-labelledby="p-`+slug+`"`)
	if i < 0 {
		t.Fatalf("no section for %s:\n%s", slug, body)
	}
	j := strings.Index(body[i:], "</section>")
	if j < 0 {
		t.Fatalf("section %s does not end", slug)
	}
	return body[i : i+j]
}

// match returns the first group of re's first match in s.
func match(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	return m[1]
}

type answer struct {
	*http.Response
	body []byte
}

// get sends GET u, with HTTP Basic license:key unless key is "".
func get(t *testing.T, f *fixture, u, key string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.SetBasicAuth("license", key)
	}
	res, err := f.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{res, b}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
