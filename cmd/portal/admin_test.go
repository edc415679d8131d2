package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/portaldist/portal/publishing"
)

// cmdResult is what one command line did.
type cmdResult struct {
	code        int
	out, errOut string
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.errOut)
}

// portalCmd runs one command line through the command tree, as main does,
// with env as its environment.
func portalCmd(env map[string]string, args ...string) cmdResult {
	tc := newTestCLI(env)
	code := tc.main(context.Background(), args)
	return cmdResult{code, tc.out.String(), tc.errOut.String()}
}

// ok runs a command that must succeed.
func (p *testPortal) ok(env map[string]string, args ...string) cmdResult {
	p.t.Helper()
	r := portalCmd(env, args...)
	if r.code != 0 {
		p.t.Fatalf("portal %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fails runs a command that must exit with code and say each of want.
func (p *testPortal) fails(code int, env map[string]string, args []string, want ...string) cmdResult {
	p.t.Helper()
	r := portalCmd(env, args...)
	if r.code != code {
		p.t.Fatalf("portal %s: want exit %d, got %s", strings.Join(args, " "), code, r)
	}
	for _, w := range want {
		if !strings.Contains(r.errOut, w) {
			p.t.Fatalf("portal %s: stderr does not say %q: %s", strings.Join(args, " "), w, r)
		}
	}
	return r
}

func (p *testPortal) env() map[string]string {
	return map[string]string{"PORTAL_URL": p.url, "PORTAL_TOKEN": p.admin}
}

// raw GETs an API path as the admin and returns the body.
func (p *testPortal) raw(path string) []byte {
	p.t.Helper()
	req, _ := http.NewRequest("GET", p.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.admin)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		p.t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	return b
}

// sameJSON fails unless a and b hold the same JSON value.
func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, b)
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("%s: --json printed\n%s\nthe API answers\n%s", what, a, b)
	}
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	return v
}

// TestAdminCatalog: products and releases from the command line, their
// --json output being the API's objects, and a rollout moved from 10 to 50
// to 100 as the electron feed sees it.
func TestAdminCatalog(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	env := p.env()

	p.ok(env, "product", "create", "roll", "--name", "Roll", "--distribution", "open")
	r := p.ok(env, "product", "list")
	if !strings.Contains(r.out, "SLUG") || !strings.Contains(r.out, "roll") || !strings.Contains(r.out, "open") {
		t.Fatalf("product list:\n%s", r.out)
	}
	p.ok(env, "product", "edit", "roll", "--name", "Roll Deluxe")
	r = p.ok(env, "product", "show", "roll", "--json")
	sameJSON(t, "product show", []byte(r.out), p.raw("/v1/products/roll"))
	if !strings.Contains(r.out, "Roll Deluxe") {
		t.Fatalf("rename lost:\n%s", r.out)
	}

	dir := t.TempDir()
	path, _ := writeFile(t, dir, "roll_2.0.0_linux_amd64.AppImage", 5000, 1)
	p.ok(env, "publish", path, "--product", "roll", "--version", "2.0.0", "--rollout", "10", "--metadata", "build=42", "--publish")
	r = p.ok(env, "release", "show", "roll", "2.0.0", "--json")
	sameJSON(t, "release show", []byte(r.out), p.raw("/v1/products/roll/releases/2.0.0"))
	rel := decode[struct {
		Rollout  int
		Metadata map[string]string
		Status   string
	}](t, r.out)
	if rel.Rollout != 10 || rel.Metadata["build"] != "42" || rel.Status != "published" {
		t.Fatalf("published release: %+v", rel)
	}

	staging := func() int {
		t.Helper()
		var doc struct {
			Version           string `yaml:"version"`
			StagingPercentage int    `yaml:"stagingPercentage"`
		}
		if err := yaml.Unmarshal(p.raw("/feeds/roll/electron/latest-linux.yml"), &doc); err != nil || doc.Version != "2.0.0" {
			t.Fatalf("feed: %+v %v", doc, err)
		}
		return doc.StagingPercentage
	}
	if got := staging(); got != 10 {
		t.Fatalf("stagingPercentage %d at rollout 10", got)
	}
	r = p.ok(env, "release", "rollout", "roll", "2.0.0", "50")
	if !strings.Contains(r.out, "50%") {
		t.Fatalf("rollout 50:\n%s", r.out)
	}
	if got := staging(); got != 50 {
		t.Fatalf("stagingPercentage %d at rollout 50", got)
	}
	p.ok(env, "release", "rollout", "roll", "2.0.0", "100")
	if got := staging(); got != 0 {
		t.Fatalf("stagingPercentage %d at rollout 100, want none", got)
	}

	// Notes from a file, yank and unyank, and a draft deleted.
	notes := filepath.Join(dir, "NOTES.md")
	os.WriteFile(notes, []byte("Fixed.\n"), 0o644)
	p.ok(env, "release", "edit", "roll", "2.0.0", "--notes", notes)
	if got := p.release("roll", "2.0.0").Notes; got != "Fixed.\n" {
		t.Fatalf("notes %q", got)
	}
	p.ok(env, "release", "yank", "roll", "2.0.0")
	r = p.ok(env, "release", "list", "roll")
	if !strings.Contains(r.out, "yanked") {
		t.Fatalf("release list after yank:\n%s", r.out)
	}
	p.ok(env, "release", "unyank", "roll", "2.0.0")
	if s := p.release("roll", "2.0.0").Status; s != "published" {
		t.Fatalf("after unyank: %s", s)
	}
	p.fails(exitRefused, env, []string{"release", "unyank", "roll", "2.0.0"}, "refused: conflict")
	p.ok(env, "release", "create", "roll", "2.1.0-beta.1", "--channel", "beta")
	p.ok(env, "release", "edit", "roll", "2.1.0-beta.1", "--channel", "alpha")
	p.ok(env, "release", "delete", "roll", "2.1.0-beta.1")
	p.fails(exitRefused, env, []string{"release", "show", "roll", "2.1.0-beta.1"}, "refused: not_found")
	// A product with a published release cannot be deleted; an empty one can.
	p.fails(exitRefused, env, []string{"product", "delete", "roll"}, "refused: conflict")
	p.ok(env, "product", "create", "spare")
	p.ok(env, "product", "delete", "spare")

	// Audit: the changes above, newest first, as the API lists them.
	r = p.ok(env, "audit", "list", "--target", "release/roll/2.0.0", "--json")
	recs := decode[struct {
		Records []struct{ Action string }
	}](t, r.out)
	if len(recs.Records) < 4 {
		t.Fatalf("audit list: %s", r.out)
	}
	r = p.ok(env, "audit", "list", "--action", "release.unyank")
	if !strings.Contains(r.out, "release.unyank") || !strings.Contains(r.out, "release/roll/2.0.0") {
		t.Fatalf("audit table:\n%s", r.out)
	}
	p.fails(exitUsage, env, []string{"audit", "list", "--since", "yesterday-ish"}, "--since")
}

// TestAdminLicenses: renew an expired license and download again;
// reissue a key and see the old one refused; tokens, me and share links.
func TestAdminLicenses(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	env := p.env()
	p.product("acme", "licensed")
	dir := t.TempDir()
	path, body := writeFile(t, dir, "acme_1.0.0_linux_amd64.tar.gz", 3000, 2)
	p.ok(env, "publish", path, "--product", "acme", "--version", "1.0.0", "--publish")

	r := p.ok(env, "license", "create", "--customer", "Bob Builder", "--product", "acme", "--downloads-per-day", "5", "--json")
	created := decode[struct {
		License struct{ ID string }
		Key     string
	}](t, r.out)
	id, key := created.License.ID, created.Key
	if id == "" || !strings.HasPrefix(key, "lic_") {
		t.Fatalf("license create: %s", r.out)
	}
	lic := map[string]string{"PORTAL_URL": p.url, "PORTAL_LICENSE": key}
	out := t.TempDir()
	download := func(env map[string]string) cmdResult {
		return portalCmd(env, "download", "--product", "acme", "--platform", "linux", "--arch", "amd64", "-o", out)
	}
	if r := download(lic); r.code != 0 {
		t.Fatalf("download: %s", r)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "acme_1.0.0_linux_amd64.tar.gz")); !bytes.Equal(got, body) {
		t.Fatal("downloaded bytes differ")
	}

	// Expired (an expiry in the past), refused; renewed, downloads again.
	p.ok(env, "license", "edit", id, "--expires-at", "2020-01-01")
	r = p.ok(env, "license", "show", id)
	if !strings.Contains(r.out, "expired") {
		t.Fatalf("license show after expiry:\n%s", r.out)
	}
	if r := download(lic); r.code != exitRefused || !strings.Contains(r.errOut, "license_expired") {
		t.Fatalf("download with an expired license: %s", r)
	}
	p.ok(env, "license", "edit", id, "--expires-at", "2099-12-31T00:00:00Z", "--downloads-per-day", "10")
	if r := download(lic); r.code != 0 {
		t.Fatalf("download after renewal: %s", r)
	}
	r = p.ok(env, "license", "show", id, "--json")
	sameJSON(t, "license show", []byte(r.out), p.raw("/v1/licenses/"+id))

	// me, as the license: its quota.
	r = p.ok(lic, "me")
	if !strings.Contains(r.out, "Bob Builder") || !strings.Contains(r.out, "left today") {
		t.Fatalf("me:\n%s", r.out)
	}
	r = p.ok(lic, "me", "--json")
	sameJSON(t, "me", []byte(r.out), func() []byte {
		req, _ := http.NewRequest("GET", p.url+"/v1/me", nil)
		req.Header.Set("Authorization", "License "+key)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return b
	}())

	// Reissue: the new key works, the old one is refused at once.
	r = p.ok(env, "license", "reissue", id)
	newKey := strings.TrimSpace(r.out[strings.LastIndex(strings.TrimSpace(r.out), "\n")+1:])
	if !strings.HasPrefix(newKey, "lic_") || newKey == key {
		t.Fatalf("reissue printed:\n%s", r.out)
	}
	if r := download(lic); r.code != exitRefused || !strings.Contains(r.errOut, "unauthorized") {
		t.Fatalf("download with the old key: %s", r)
	}
	lic["PORTAL_LICENSE"] = newKey
	if r := download(lic); r.code != 0 {
		t.Fatalf("download with the new key: %s", r)
	}

	// Find by customer, suspend, reinstate, revoke.
	p.ok(env, "license", "create", "--customer", "Alice", "--product", "acme")
	r = p.ok(env, "license", "list", "--customer", "bob")
	if !strings.Contains(r.out, id) || strings.Contains(r.out, "Alice") {
		t.Fatalf("license list --customer bob:\n%s", r.out)
	}
	p.ok(env, "license", "suspend", id)
	if r := download(lic); r.code != exitRefused || !strings.Contains(r.errOut, "license_suspended") {
		t.Fatalf("download while suspended: %s", r)
	}
	p.ok(env, "license", "reinstate", id)

	// Share links: made by the license, listed by the admin, revoked.
	r = p.ok(lic, "link", "create", "--product", "acme", "--platform", "linux", "--arch", "amd64", "--json")
	link := decode[struct{ ID, URL string }](t, r.out)
	if link.ID == "" || link.URL == "" {
		t.Fatalf("link create: %s", r.out)
	}
	r = p.ok(env, "link", "list", "--for", id)
	if !strings.Contains(r.out, link.ID) {
		t.Fatalf("link list --for:\n%s", r.out)
	}
	p.ok(lic, "link", "delete", link.ID)

	p.ok(env, "license", "revoke", id)
	p.fails(exitRefused, env, []string{"license", "reissue", id}, "refused: conflict")

	// Tokens: listed without secrets, deleted.
	r = p.ok(env, "token", "list", "--json")
	if strings.Contains(r.out, p.admin) {
		t.Fatal("token list shows a secret")
	}
	toks := decode[struct{ Tokens []struct{ ID, Name string } }](t, r.out)
	var ci string
	p.publisher("acme")
	for _, tk := range decode[struct{ Tokens []struct{ ID, Name string } }](t, p.ok(env, "token", "list", "--json").out).Tokens {
		if tk.Name == "ci" {
			ci = tk.ID
		}
	}
	if len(toks.Tokens) != 1 || ci == "" {
		t.Fatalf("tokens: %+v, ci %q", toks, ci)
	}
	p.ok(env, "token", "show", ci)
	p.ok(env, "token", "delete", ci)
	p.fails(exitRefused, env, []string{"token", "show", ci}, "not_found")
}

// TestLicenseImportExport: 1,000 licenses imported from CSV and exported
// back identical, in CSV and in JSON lines; a bad row imports nothing and
// is named; --dry-run creates nothing.
func TestLicenseImportExport(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	env := p.env()
	p.product("acme", "licensed")
	p.product("tools", "licensed")
	dir := t.TempDir()

	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.Write(licenseColumns)
	for i := range 1000 {
		rec := []string{fmt.Sprintf("Customer %04d, Inc.", i), "acme", "", "", "", "", "revoke", "", ""}
		switch i % 4 {
		case 1:
			rec[1], rec[2], rec[3] = "acme tools", ">= 2.0, < 3.0", "stable beta"
		case 2:
			rec[4], rec[5], rec[6], rec[7] = "linux darwin", "2030-01-31T00:00:00Z", "maintain", "25"
		case 3:
			rec[8] = `{"crm":"C-` + fmt.Sprint(i) + `","order":"x y"}`
		}
		w.Write(rec)
	}
	w.Flush()
	in := filepath.Join(dir, "licenses.csv")
	os.WriteFile(in, buf.Bytes(), 0o644)

	count := func() int {
		r := p.ok(env, "license", "list", "--all", "--json")
		return len(decode[struct{ Licenses []json.RawMessage }](t, r.out).Licenses)
	}

	// One bad row among good ones: nothing is imported, the line is named.
	bad := bytes.Replace(buf.Bytes(), []byte("Customer 0500, Inc.\",acme"), []byte("Customer 0500, Inc.\",nosuch"), 1)
	badCons := bytes.Replace(buf.Bytes(), []byte(`Customer 0701, Inc.",acme tools,">= 2.0, < 3.0"`), []byte(`Customer 0701, Inc.",acme tools,">= banana"`), 1)
	for name, data := range map[string][]byte{"product.csv": bad, "constraint.csv": badCons} {
		f := filepath.Join(dir, name)
		os.WriteFile(f, data, 0o644)
		want := map[string]string{"product.csv": "line 502", "constraint.csv": "line 703"}[name]
		p.fails(exitUsage, env, []string{"license", "import", f}, want, "nothing was imported")
	}
	p.ok(env, "license", "import", in, "--dry-run")
	if n := count(); n != 0 {
		t.Fatalf("%d licenses after refused imports and a dry run", n)
	}

	r := p.ok(env, "license", "import", in)
	if got := strings.Count(r.out, "lic_"); got != 1000 {
		t.Fatalf("import printed %d keys", got)
	}
	if n := count(); n != 1000 {
		t.Fatalf("%d licenses after import", n)
	}
	out := filepath.Join(dir, "export.csv")
	p.ok(env, "license", "export", "-o", out)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(got, buf.Bytes()) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(buf.String(), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("export differs at line %d:\n got %s\nwant %s", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("export has %d lines, import %d", len(gl), len(wl))
	}

	// JSON lines: the export imports (on a second portal) and exports
	// back identical.
	jl := p.ok(env, "license", "export", "--format", "jsonl", "--product", "tools").out
	if n := strings.Count(jl, "\n"); n != 250 {
		t.Fatalf("jsonl export of tools: %d lines", n)
	}
	q := newTestPortal(t, nil, publishing.Options{})
	q.product("acme", "licensed")
	q.product("tools", "licensed")
	f := filepath.Join(dir, "tools.jsonl")
	os.WriteFile(f, []byte(jl), 0o644)
	q.ok(q.env(), "license", "import", f, "--json")
	if again := q.ok(q.env(), "license", "export", "--format", "jsonl").out; again != jl {
		t.Fatalf("jsonl round trip differs:\n%s\n---\n%s", again[:min(300, len(again))], jl[:min(300, len(jl))])
	}
}

// TestExitCodes: 0 done, 1 failure, 2 usage, 3 refused, with the cause
// named; through the real binary, as a script sees them.
func TestExitCodes(t *testing.T) {
	p := newTestPortal(t, nil, publishing.Options{})
	notPortal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "404 page not found", http.StatusNotFound)
	}))
	defer notPortal.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(500)
		w.Write([]byte(`{"error":{"code":"internal","message":"internal error"}}`))
	}))
	defer failing.Close()

	bin := filepath.Join(t.TempDir(), "portal")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, c := range []struct {
		name string
		env  []string
		args []string
		code int
		want []string
	}{
		{"done", []string{"PORTAL_URL=" + p.url, "PORTAL_TOKEN=" + p.admin}, []string{"product", "list"}, 0, nil},
		{"version", nil, []string{"version"}, 0, nil},
		{"network", []string{"PORTAL_URL=http://127.0.0.1:1", "PORTAL_TOKEN=x"}, []string{"product", "list"}, 1, []string{"127.0.0.1:1", "PORTAL_URL"}},
		{"server", []string{"PORTAL_URL=" + failing.URL, "PORTAL_TOKEN=x"}, []string{"license", "show", "abc"}, 1, []string{"internal"}},
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{"unknown command"}},
		{"unknown flag", nil, []string{"license", "list", "--bogus"}, 2, []string{"--bogus"}},
		{"missing args", nil, []string{"release", "show", "acme"}, 2, []string{"2 arg"}},
		{"no token", []string{"PORTAL_URL=" + p.url}, []string{"product", "list"}, 2, []string{"PORTAL_TOKEN"}},
		{"no such file", []string{"PORTAL_URL=" + p.url, "PORTAL_TOKEN=" + p.admin}, []string{"publish", "dist/x.zip", "--product", "acme", "--version", "1.0.0", "--platform", "linux", "--arch", "amd64"}, 2, []string{"no such file dist/x.zip"}},
		{"bad token", []string{"PORTAL_URL=" + p.url, "PORTAL_TOKEN=ptk_nonsense"}, []string{"product", "list"}, 3, []string{"refused: unauthorized"}},
		{"not found", []string{"PORTAL_URL=" + p.url, "PORTAL_TOKEN=" + p.admin}, []string{"product", "show", "nosuch"}, 3, []string{"refused: not_found"}},
		{"not a portal", []string{"PORTAL_URL=" + notPortal.URL, "PORTAL_TOKEN=x"}, []string{"product", "list"}, 3, []string{notPortal.URL + "/v1/products", "not the portal's API"}},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = append([]string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH")}, c.env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code {
			t.Errorf("%s: exit %d, want %d\n%s", c.name, code, c.code, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stderr.String(), w) {
				t.Errorf("%s: stderr does not say %q:\n%s", c.name, w, stderr.String())
			}
		}
	}
}

// TestCompletion: the scripts of the three shells name the commands.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := portalCmd(nil, "completion", sh)
		if r.code != 0 || !strings.Contains(r.out, "portal") {
			t.Fatalf("completion %s: %s", sh, r)
		}
	}
	if r := portalCmd(nil, "completion", "tcsh"); r.code != exitUsage {
		t.Fatalf("completion tcsh: %s", r)
	}
	r := portalCmd(nil, "__complete", "license", "")
	for _, verb := range []string{"import", "export", "reissue", "suspend"} {
		if !strings.Contains(r.out, verb) {
			t.Fatalf("completion of license verbs lacks %s:\n%s", verb, r.out)
		}
	}
}
