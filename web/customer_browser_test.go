package web_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/portaldist/portal/internal/browsertest"
	"github.com/portaldist/portal/web"
)

// TestCustomerInBrowser walks the customer's path in chromium: sign in,
// download a build (the bytes are the published file's), share a build and
// open the link in a second browser, revoke it and see it refused; sign out
// and see the old cookie refused; then a suspended license ends its session
// and shows the refusal.
func TestCustomerInBrowser(t *testing.T) {
	f := newFixture(t, map[string]string{"web.brand_name": "Acme Studio", "web.accent_color": "#8a2be2"})
	f.product("studio", "Acme Studio")
	data := bytes.Repeat([]byte("studio 2.1.0 linux build "), 4000)
	f.publish("studio", "2.0.0", "stable", "The first **2.x** release.",
		file{"studio-2.0.0-linux-amd64.tar.gz", "linux", "amd64", []byte("studio 2.0.0")})
	f.publish("studio", "2.1.0", "stable", "## What's new\n\n- Faster export\n- <script>alert('notes')</script> is shown as text\n\n<b>bold?</b>",
		file{"studio-2.1.0-linux-amd64.tar.gz", "linux", "amd64", data},
		file{"studio-2.1.0-windows-amd64.zip", "windows", "amd64", []byte("studio 2.1.0 windows")})
	f.publish("studio", "2.2.0-beta.1", "beta", "Beta of 2.2.",
		file{"studio-2.2.0-beta.1-linux-amd64.tar.gz", "linux", "amd64", []byte("beta")})
	lic, key := f.license("Initech", []string{"studio"}, nil)

	tab := browsertest.Shared(t).NewTab(t)
	tab.Run(signIn(f.URL, key)...)
	if loc := tab.Location(); loc != f.URL+"/" {
		t.Fatalf("after sign-in the browser is at %s, want %s (no key in any URL)", loc, f.URL+"/")
	}
	body := tab.Text("main")
	for _, want := range []string{"Initech", "Acme Studio 2.1.0", "Acme Studio 2.0.0", "Channel: beta", "Faster export",
		"<script>alert('notes')</script> is shown as text", "<b>bold?</b>", "studio-2.1.0-windows-amd64.zip"} {
		if !strings.Contains(body, want) {
			t.Errorf("the customer page lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(tab.HTML("main"), "<b>bold?</b>") || strings.Contains(tab.HTML("main"), "<script>alert") {
		t.Error("raw HTML of the release notes reached the page as markup")
	}
	if strings.Contains(tab.HTML("html"), key) {
		t.Error("the page holds the license key")
	}
	// Newest first within a channel.
	if i, j := strings.Index(body, "Acme Studio 2.1.0"), strings.Index(body, "Acme Studio 2.0.0"); i < 0 || j < i {
		t.Errorf("2.1.0 is not listed before 2.0.0")
	}
	// Download: the bytes are the published file's.
	tab.Run(chromedp.Click(chromedp.CSS(`button[data-file="studio-2.1.0-linux-amd64.tar.gz"]`)))
	if got := tab.WaitDownload("studio-2.1.0-linux-amd64.tar.gz"); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, want the %d published", len(got), len(data))
	}

	// The download is in the list (once the ledger wrote it) and counts
	// against today's quota.
	if err := f.App.Ledger.Flush(cliCtx); err != nil {
		t.Fatal(err)
	}
	tab.Run(chromedp.Navigate(f.URL + "/"))
	if txt := tab.Text("section.recent"); !strings.Contains(txt, "studio-2.1.0-linux-amd64.tar.gz") {
		t.Errorf("recent downloads:\n%s", txt)
	}
	if txt := tab.Text("section.license"); !strings.Contains(txt, "Downloads today\t1 ") && !strings.Contains(txt, "Downloads today 1 ") && !strings.Contains(txt, "1 · no daily limit") {
		t.Errorf("quota after one download:\n%q", txt)
	}

	// Share the Windows build for a day; open it in a second browser.
	tab.Run(
		chromedp.SetValue(chromedp.CSS("#share-build"), "studio|2.1.0|studio-2.1.0-windows-amd64.zip"),
		chromedp.Click(chromedp.CSS(`form[action="/share"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#newlink")),
	)
	link := browsertest.Get(tab, chromedp.Value(chromedp.CSS("#newlink")))
	if !strings.HasPrefix(link, f.URL+"/d/") {
		t.Fatalf("share link %q", link)
	}
	// The screenshot for the README: a new share link, one build's
	// verification opened, a download in the list.
	tab.Run(chromedp.Evaluate[chromedp.Void]("document.querySelector('details').open = true"))
	tab.DocScreenshot("../docs/customer-page.png")

	other := browsertest.Shared(t).NewTab(t)
	other.Run(chromedp.Navigate(f.URL + "/"))
	other.Run(chromedp.Evaluate[chromedp.Void]("location.href = " + jsString(link)))
	if got := other.WaitDownload("studio-2.1.0-windows-amd64.zip"); string(got) != "studio 2.1.0 windows" {
		t.Fatalf("the share link gave %q", got)
	}
	if other.Cookie(web.CookieLicense) != "" {
		t.Fatal("the second browser has a session")
	}

	// Revoke it: the second browser is refused.
	tab.Run(
		chromedp.Navigate(f.URL+"/"),
		chromedp.Click(chromedp.CSS(`form[action="/share/revoke"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	other.Run(chromedp.Navigate(link))
	if txt := other.Text("body"); !strings.Contains(txt, "link_revoked") {
		t.Fatalf("a revoked link answered:\n%s", txt)
	}

	// Sign out: the old cookie no longer works.
	cookie := tab.Cookie(web.CookieLicense)
	if cookie == "" {
		t.Fatal("no session cookie in the browser")
	}
	tab.Run(
		chromedp.Click(chromedp.CSS("form.signout button")),
		chromedp.WaitVisible(chromedp.CSS("#key")),
	)
	if p := f.do("GET", "/", []*http.Cookie{{Name: web.CookieLicense, Value: cookie}}, nil); !strings.Contains(p.Body, `id="key"`) {
		t.Fatalf("the cookie of a signed-out session still shows the customer page:\n%s", p.Body)
	}

	// Sign in again, then the vendor suspends the license: the next page
	// shows the refusal and the session is over.
	tab.Run(
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("section.product")),
	)
	cookie = tab.Cookie(web.CookieLicense)
	if _, err := f.App.Licenses.Suspend(cliCtx, lic.ID); err != nil {
		t.Fatal(err)
	}
	tab.Run(chromedp.Click(chromedp.CSS(`button[data-file="studio-2.0.0-linux-amd64.tar.gz"]`)),
		chromedp.WaitVisible(chromedp.CSS("section.error")))
	if txt := tab.Text("section.error"); !strings.Contains(txt, "license_suspended") {
		t.Fatalf("after suspension the download shows:\n%s", txt)
	}
	if tab.Cookie(web.CookieLicense) != "" {
		t.Error("the browser keeps the session cookie of a suspended license")
	}
	if p := f.do("GET", "/", []*http.Cookie{{Name: web.CookieLicense, Value: cookie}}, nil); strings.Contains(p.Body, "section class=\"card product\"") {
		t.Fatalf("the session of a suspended license still works:\n%s", p.Body)
	}
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// signIn is a customer's sign-in with key on the portal at url, in a
// browser: the key typed into the sign-in form, up to the customer page.
func signIn(url, key string) []chromedp.Action[chromedp.Void] {
	return []chromedp.Action[chromedp.Void]{
		chromedp.Navigate(url + "/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("section.product")),
	}
}
