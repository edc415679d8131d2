package web_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/portaldist/portal/internal/browsertest"
	"github.com/portaldist/portal/internal/debtest"
	"github.com/portaldist/portal/internal/rpmtest"
)

// On a phone the install instructions stay readable: opened, neither the
// page nor a command block scrolls sideways (long URLs wrap), and the copy
// button copies the commands as shown, with the key's placeholder.
func TestInstallInstructionsInBrowser(t *testing.T) {
	f := newFixture(t, nil)
	const slug = "acme-enterprise-server"
	f.product(slug, "Acme Enterprise Server")
	debPath := debtest.Build(t, t.TempDir(), debtest.Package{Name: "acme-enterprise-server-daemon", Version: "1.0.0-1", Arch: "amd64"})
	rpmPath := rpmtest.Build(t, rpmtest.Spec{Name: "acme-enterprise-server-daemon", Version: "1.0.0", Target: "x86_64", Bare: true})
	f.publish(slug, "1.0.0", "stable", "",
		file{"acme-enterprise-server-daemon_1.0.0-1_amd64.deb", "linux", "amd64", readFile(t, debPath)},
		file{"acme-enterprise-server-daemon-1.0.0-1.x86_64.rpm", "linux", "amd64", readFile(t, rpmPath)})
	_, key := f.license("Initech", []string{slug}, nil)

	tab := browsertest.Shared(t).NewTab(t)
	tab.Run(
		chromedp.EmulateViewport(phoneWidth, 844),
		chromedp.Navigate(f.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("section.product")),
		chromedp.Click(chromedp.CSS("details.apt summary")),
		chromedp.Click(chromedp.CSS("details.dnf summary")),
		chromedp.WaitVisible(chromedp.CSS("#dnf-"+slug)),
	)
	wantNoOverflow(t, tab, "/ with the install instructions open")
	if wide := browsertest.Get(tab, chromedp.Evaluate[string](`[...document.querySelectorAll(".install pre")].
		filter(p => p.scrollWidth > p.clientWidth).map(p => p.textContent.slice(0, 40)).join("; ")`)); wide != "" {
		t.Errorf("command blocks scroll sideways at %d px: %s", phoneWidth, wide)
	}

	tab.Run(grantClipboard(f.URL), chromedp.Click(chromedp.CSS(`button[data-copy="apt-`+slug+`"]`)))
	got := browsertest.Get(tab, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	repo := f.URL + "/apt/" + slug
	want := "sudo install -d -m 0755 /etc/apt/keyrings\n" +
		"curl -fsSL " + repo + "/key.gpg | sudo tee /etc/apt/keyrings/" + slug + ".gpg >/dev/null\n" +
		`echo "deb [signed-by=/etc/apt/keyrings/` + slug + `.gpg] ` + repo + ` stable main" | sudo tee /etc/apt/sources.list.d/` + slug + ".list\n" +
		`echo "machine ` + repo + ` login license password YOUR_LICENSE_KEY" | sudo install -m 0600 /dev/stdin /etc/apt/auth.conf.d/` + slug + ".conf\n" +
		"sudo apt update && sudo apt install acme-enterprise-server-daemon"
	if got != want {
		t.Errorf("the apt copy button copied\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(tab.HTML("html"), key) {
		t.Error("the page holds the license key")
	}
}
