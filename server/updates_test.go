package server_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portaldist/portal/updates"
)

// get sends a GET with an Authorization header (auth may be "") and extra
// header pairs.
func (e *env) get(path, auth string, kv ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

// relPath strips the portal's base URL from an absolute URL it minted, so
// e.fetch can follow it; it fails the test for a URL pointing elsewhere.
func (e *env) relPath(u string) string {
	e.t.Helper()
	p, ok := strings.CutPrefix(u, e.url)
	if !ok || !strings.HasPrefix(p, "/") {
		e.t.Fatalf("URL %q is not on the portal (%s)", u, e.url)
	}
	return p
}

// needTool fails (never skips) when a verifier the tests rely on is
// missing: a skipped signature check would hide a broken signer.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not on PATH: run scripts/test.sh, which installs it (or apt-get install -y %s)", name, name)
	}
	return p
}

func sha512b64(b []byte) string {
	d := sha512.Sum512(b)
	return base64.StdEncoding.EncodeToString(d[:])
}

// The portal's signatures are checked with the verifiers update clients
// actually ship: minisign(1) for the .minisig (what Tauri and Go
// self-updaters check) and OpenSSL's raw Ed25519 for Sparkle's
// edSignature. Both must accept the real bytes and refuse a tampered copy.
func TestUpdateSignaturesWithRealTools(t *testing.T) {
	minisign, openssl := needTool(t, "minisign"), needTool(t, "openssl")
	e := newEnv(t)
	e.product("acme", "licensed")
	files := e.release("acme", "1.0.0", "", "linux/amd64")
	_, key := e.license(map[string]any{"customer": "c", "product": "acme"})
	lic := "License " + key
	const name = "acme_1.0.0_linux_amd64.tar.gz"

	keys := e.must(200, e.get("/v1/products/acme/keys", lic)).json(t)
	mpub, _ := keys["minisign"].(string)
	edpub, _ := keys["ed25519"].(string)
	if mpub == "" || edpub == "" || keys["sparkle"] != edpub {
		t.Fatalf("keys: %v", keys)
	}

	st, data, _ := e.fetch("/v1/products/acme/releases/1.0.0/artifacts/"+name+"/download", lic)
	if st != 200 || !bytes.Equal(data, files[name]) {
		t.Fatalf("download: %d, %d bytes", st, len(data))
	}
	sig := e.must(200, e.get("/v1/products/acme/releases/1.0.0/artifacts/"+name+".minisig", lic))
	// The .minisig is a license-checked resource like the download.
	e.must(401, e.get("/v1/products/acme/releases/1.0.0/artifacts/"+name+".minisig", ""))

	dir := t.TempDir()
	good, bad := filepath.Join(dir, name), filepath.Join(dir, "tampered.tar.gz")
	tampered := bytes.Clone(data)
	tampered[len(tampered)/2] ^= 1
	write := func(p string, b []byte) {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good, data)
	write(bad, tampered)
	write(good+".minisig", sig.body)
	write(bad+".minisig", sig.body)

	t.Run("minisign", func(t *testing.T) {
		out, err := exec.Command(minisign, "-V", "-P", mpub, "-m", good, "-x", good+".minisig").CombinedOutput()
		if err != nil {
			t.Fatalf("minisign refused the portal's signature: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "file:"+name) {
			t.Errorf("trusted comment does not name the file: %s", out)
		}
		if out, err := exec.Command(minisign, "-V", "-P", mpub, "-m", bad, "-x", bad+".minisig").CombinedOutput(); err == nil {
			t.Fatalf("minisign accepted a tampered file: %s", out)
		}
	})

	t.Run("sparkle ed25519 with openssl", func(t *testing.T) {
		rel := e.must(200, e.get("/v1/products/acme/releases/1.0.0", lic)).json(t)
		a := rel["artifacts"].([]any)[0].(map[string]any)
		edsig, _ := a["signatures"].(map[string]any)["ed25519"].(string)
		up := e.must(200, e.get("/v1/products/acme/upgrade?current=0.1.0&platform=linux&arch=amd64", lic)).json(t)
		if got := up["artifact"].(map[string]any)["signatures"].(map[string]any)["ed25519"]; got != edsig || edsig == "" {
			t.Fatalf("upgrade API signature %v, release %q", got, edsig)
		}
		rawSig, err := base64.StdEncoding.DecodeString(edsig)
		if err != nil || len(rawSig) != ed25519.SignatureSize {
			t.Fatalf("edSignature %q is not base64 of 64 bytes", edsig)
		}
		rawPub, err := base64.StdEncoding.DecodeString(edpub)
		if err != nil || len(rawPub) != ed25519.PublicKeySize {
			t.Fatalf("SUPublicEDKey %q is not base64 of 32 bytes", edpub)
		}
		der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(rawPub))
		if err != nil {
			t.Fatal(err)
		}
		pubPEM, sigBin := filepath.Join(dir, "pub.pem"), filepath.Join(dir, "sig.bin")
		write(pubPEM, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		write(sigBin, rawSig)
		verify := func(file string) ([]byte, error) {
			return exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubPEM, "-rawin", "-in", file, "-sigfile", sigBin).CombinedOutput()
		}
		if out, err := verify(good); err != nil {
			t.Fatalf("openssl refused the Sparkle signature: %v\n%s", err, out)
		}
		if out, err := verify(bad); err == nil {
			t.Fatalf("openssl accepted a tampered file: %s", out)
		}
	})
}

// upgradeCheck is one call of the upgrade API and what it must answer:
// want is the version, "" for 204, or an error code.
type upgradeCheck struct {
	name, query, auth string
	status            int
	want              string
}

func (e *env) checkUpgrades(product string, cases []upgradeCheck) {
	e.t.Helper()
	for _, c := range cases {
		e.t.Run(c.name, func(t *testing.T) {
			r := e.get("/v1/products/"+product+"/upgrade?"+c.query, c.auth)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			switch {
			case c.status == 204:
				if len(r.body) != 0 {
					t.Fatalf("204 with a body: %q", r.body)
				}
			case c.status == 200:
				if v := r.json(t)["version"]; v != c.want {
					t.Fatalf("version %v, want %s", v, c.want)
				}
			default:
				if code := r.code(); code != c.want {
					t.Fatalf("code %q, want %q: %s", code, c.want, r.body)
				}
				if strings.HasPrefix(strings.ToLower(r.header.Get("WWW-Authenticate")), "basic") ||
					strings.HasPrefix(strings.ToLower(r.header.Get("WWW-Authenticate")), "digest") {
					t.Fatalf("WWW-Authenticate %q would make electron-updater wait for a login", r.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
}

func TestUpgradeAPI(t *testing.T) {
	e := newEnv(t)
	e.product("acme", "licensed")
	e.product("free", "open")
	admin := bearer(e.admin)
	files := e.release("acme", "1.0.0", "", "linux/amd64", "darwin/arm64")
	expiry := e.now().Add(time.Hour)
	e.advance(2 * time.Hour) // everything below is published after expiry
	e.release("acme", "1.1.0", "", "linux/amd64")
	e.release("acme", "1.2.0-rc.1", "rc", "linux/amd64")
	e.release("acme", "1.3.0-beta.1", "beta", "linux/amd64")
	e.release("free", "0.5.0", "", "linux/amd64")

	lic := func(body map[string]any) (string, string) {
		body["customer"], body["product"] = "c", "acme"
		id, key := e.license(body)
		return id, "License " + key
	}
	_, plain := lic(map[string]any{})
	_, v10 := lic(map[string]any{"constraint": "< 1.1"})
	// maintain and revoke were issued before the clock moved past expiry.
	_, maintain := lic(map[string]any{"expires_at": expiry, "on_expiry": "maintain"})
	_, revoke := lic(map[string]any{"expires_at": expiry, "on_expiry": "revoke"})
	_, rcOnly := lic(map[string]any{"channels": []string{"stable", "rc"}})
	suspendedID, suspended := lic(map[string]any{})
	e.must(200, e.do("POST", "/v1/licenses/"+suspendedID+"/suspend", admin, nil))
	revokedID, revoked := lic(map[string]any{})
	e.must(200, e.do("POST", "/v1/licenses/"+revokedID+"/revoke", admin, nil))
	_, otherKey := e.license(map[string]any{"customer": "c", "product": "free"})

	q := func(current, plat, arch, extra string) string {
		return "current=" + current + "&platform=" + plat + "&arch=" + arch + extra
	}
	e.checkUpgrades("acme", []upgradeCheck{
		{"newer stable", q("1.0.0", "linux", "amd64", ""), plain, 200, "1.1.0"},
		{"from scratch", q("", "linux", "amd64", ""), plain, 200, "1.1.0"},
		{"current is newest", q("1.1.0", "linux", "amd64", ""), plain, 204, ""},
		{"current is ahead", q("9.0.0", "linux", "amd64", ""), plain, 204, ""},
		{"equal version spelled differently", q("1.1", "linux", "amd64", ""), plain, 204, ""},
		{"stable never sees prereleases", q("1.1.0", "linux", "amd64", "&channel=stable"), plain, 204, ""},
		{"rc sees rc", q("1.1.0", "linux", "amd64", "&channel=rc"), plain, 200, "1.2.0-rc.1"},
		{"beta sees beta", q("1.1.0", "linux", "amd64", "&channel=beta"), plain, 200, "1.3.0-beta.1"},
		{"beta sees rc and stable", q("1.0.0", "linux", "amd64", "&channel=beta&constraint=%3C%3D1.1.0"), plain, 200, "1.1.0"},
		{"alpha sees beta", q("1.2.0-rc.1", "linux", "amd64", "&channel=alpha"), plain, 200, "1.3.0-beta.1"},
		{"from a prerelease", q("1.2.0-rc.1", "linux", "amd64", "&channel=rc"), plain, 204, ""},
		{"client constraint", q("0.1.0", "linux", "amd64", "&constraint="+url.QueryEscape("< 1.1")), plain, 200, "1.0.0"},
		{"client constraint, nothing newer", q("1.0.0", "linux", "amd64", "&constraint="+url.QueryEscape("< 1.1")), plain, 204, ""},
		{"license constraint", q("0.1.0", "linux", "amd64", ""), v10, 200, "1.0.0"},
		{"license constraint, nothing newer", q("1.0.0", "linux", "amd64", "&channel=beta"), v10, 204, ""},
		{"license channels", q("1.1.0", "linux", "amd64", "&channel=beta"), rcOnly, 200, "1.2.0-rc.1"},
		{"expired, maintain keeps what came before", q("0.1.0", "linux", "amd64", ""), maintain, 200, "1.0.0"},
		{"expired, maintain gets nothing later", q("1.0.0", "linux", "amd64", ""), maintain, 204, ""},
		{"expired, revoke", q("0.1.0", "linux", "amd64", ""), revoke, 403, "license_expired"},
		{"platform with an older build", q("0.1.0", "darwin", "arm64", ""), plain, 200, "1.0.0"},
		{"platform without a newer build", q("1.0.0", "darwin", "arm64", ""), plain, 204, ""},
		{"arch never built", q("0.1.0", "darwin", "amd64", ""), plain, 204, ""},
		{"platform never built", q("0.1.0", "windows", "amd64", ""), plain, 204, ""},
		{"no license", q("1.0.0", "linux", "amd64", ""), "", 401, "unauthorized"},
		{"suspended", q("1.0.0", "linux", "amd64", ""), suspended, 403, "license_suspended"},
		{"revoked", q("1.0.0", "linux", "amd64", ""), revoked, 403, "license_revoked"},
		{"license of another product", q("1.0.0", "linux", "amd64", ""), "License " + otherKey, 403, "not_entitled"},
		{"admin token", q("1.0.0", "linux", "amd64", ""), admin, 200, "1.1.0"},
		{"bad current", q("one", "linux", "amd64", ""), plain, 400, "invalid"},
		{"bad platform", q("1.0.0", "beos", "amd64", ""), plain, 400, "invalid"},
		{"missing platform", "current=1.0.0&arch=amd64", plain, 400, "invalid"},
		{"bad arch", q("1.0.0", "linux", "z80", ""), plain, 400, "invalid"},
		{"bad channel", q("1.0.0", "linux", "amd64", "&channel=nightly"), plain, 400, "invalid"},
		{"bad constraint", q("1.0.0", "linux", "amd64", "&constraint=%3E%3E%3E"), plain, 400, "invalid"},
	})
	e.checkUpgrades("free", []upgradeCheck{
		{"open product, no auth", q("0.1.0", "linux", "amd64", ""), "", 200, "0.5.0"},
		{"open product, nothing newer", q("0.5.0", "linux", "amd64", ""), "", 204, ""},
	})
	if t.Failed() {
		return
	}

	t.Run("unauthorized challenge", func(t *testing.T) {
		r := e.get("/v1/products/acme/upgrade?"+q("1.0.0", "linux", "amd64", ""), "")
		if h := r.header.Get("WWW-Authenticate"); h != "" && !strings.HasPrefix(h, "License") {
			t.Fatalf("WWW-Authenticate %q", h)
		}
	})

	t.Run("answer matches the catalog and downloads", func(t *testing.T) {
		r := e.must(200, e.get("/v1/products/acme/upgrade?"+q("0.1.0", "darwin", "arm64", ""), plain))
		var got struct {
			Version, Channel string
			PublishedAt      time.Time `json:"published_at"`
			Artifact         struct {
				Filename, Platform, Arch, SHA256, SHA512 string
				Size                                     int64
				Signatures                               map[string]string
			}
			DownloadURL string `json:"download_url"`
		}
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		const name = "acme_1.0.0_darwin_arm64.tar.gz"
		body := files[name]
		a := got.Artifact
		if got.Version != "1.0.0" || got.Channel != "stable" || got.PublishedAt.IsZero() ||
			a.Filename != name || a.Platform != "darwin" || a.Arch != "arm64" || a.Size != int64(len(body)) ||
			a.SHA256 != sha(body) || a.SHA512 != sha512b64(body) || a.Signatures["ed25519"] == "" || a.Signatures["minisign"] == "" {
			t.Fatalf("upgrade answer: %s", r.body)
		}
		if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "private") {
			t.Errorf("Cache-Control %q: a per-license answer must not be shared", cc)
		}
		st, b, _ := e.fetch(e.relPath(got.DownloadURL), plain)
		if st != 200 || !bytes.Equal(b, body) {
			t.Fatalf("download_url: %d, %d bytes", st, len(b))
		}
		// The download URL re-checks the license: without one it is refused.
		if st, _, _ := e.fetch(e.relPath(got.DownloadURL), ""); st != 401 {
			t.Fatalf("download_url without a license: %d", st)
		}
	})

	t.Run("etag", func(t *testing.T) {
		path := "/v1/products/acme/upgrade?" + q("0.1.0", "linux", "amd64", "")
		r := e.must(200, e.get(path, plain))
		tag := r.header.Get("ETag")
		if tag == "" {
			t.Fatal("no ETag")
		}
		nm := e.get(path, plain, "If-None-Match", tag)
		if nm.status != 304 || len(nm.body) != 0 {
			t.Fatalf("If-None-Match: %d %q", nm.status, nm.body)
		}
		if st := e.get(path, plain, "If-None-Match", `"stale"`).status; st != 200 {
			t.Fatalf("stale If-None-Match: %d", st)
		}
		// v10 gets 1.0.0, not 1.1.0: its tag differs, and plain's tag does not
		// make it a 304.
		other := e.must(200, e.get(path, v10))
		if other.header.Get("ETag") == tag {
			t.Fatal("two different answers share an ETag")
		}
		if st := e.get(path, v10, "If-None-Match", tag).status; st != 200 {
			t.Fatalf("another license's ETag: %d", st)
		}
	})

	t.Run("yank", func(t *testing.T) {
		path := "/v1/products/acme/upgrade?" + q("0.1.0", "linux", "amd64", "")
		tag := e.must(200, e.get(path, plain)).header.Get("ETag")
		e.must(200, e.do("POST", "/v1/products/acme/releases/1.1.0/yank", admin, nil))
		r := e.get(path, plain, "If-None-Match", tag)
		if r.status != 200 || r.json(t)["version"] != "1.0.0" {
			t.Fatalf("after yanking 1.1.0: %d %s", r.status, r.body)
		}
		e.must(204, e.get("/v1/products/acme/upgrade?"+q("1.0.0", "linux", "amd64", ""), plain))
	})
}

// A staged rollout offers the release to a deterministic share of
// licenses (updates.Bucket) and the previous release to the rest.
func TestUpgradeRollout(t *testing.T) {
	e := newEnv(t)
	e.product("roll", "licensed")
	admin := bearer(e.admin)
	e.release("roll", "1.0.0", "", "linux/amd64")
	e.must(201, e.do("POST", "/v1/products/roll/releases", admin, map[string]any{"version": "2.0.0", "rollout": 30}))
	body := []byte(strings.Repeat("roll 2.0.0 ", 100))
	e.upload(admin, "roll", "2.0.0", "roll-2.0.0.tar.gz", "linux", "amd64", body)
	e.must(200, e.do("POST", "/v1/products/roll/releases/2.0.0/publish", admin, nil))

	const path = "/v1/products/roll/upgrade?current=0.9.0&platform=linux&arch=amd64"
	got := map[string]int{}
	for i := range 40 {
		id, key := e.license(map[string]any{"customer": "c" + string(rune('a'+i%26)), "product": "roll"})
		want := "1.0.0"
		if updates.Bucket(id, "roll", "2.0.0") < 30 {
			want = "2.0.0"
		}
		first := e.must(200, e.get(path, "License "+key))
		second := e.must(200, e.get(path, "License "+key))
		v := first.json(t)["version"]
		if v != want || second.json(t)["version"] != v || first.header.Get("ETag") != second.header.Get("ETag") {
			t.Fatalf("license %s: %v then %v, want %s", id, v, second.json(t)["version"], want)
		}
		got[want]++
	}
	// 40 random license ids all on one side of 30% happens with odds below
	// one in a million; seeing both sides shows the cohort split is real.
	if got["2.0.0"] == 0 || got["1.0.0"] == 0 {
		t.Fatalf("cohorts: %v", got)
	}
	t.Logf("rollout 30%%: %v", got)
}
