package web_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/portaldist/portal/downloads/ledger"
	"github.com/portaldist/portal/internal/browsertest"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/web"
)

// TestAdminConsoleInBrowser walks a vendor's day in chromium: sign in to
// the console from the keyboard, create a license (its key shown once,
// with a copy button), renew it, and, while its customer is signed in in
// another browser, yank a release and see it vanish from the customer's
// page. It writes the console's screenshot to docs/admin-console.png.
func TestAdminConsoleInBrowser(t *testing.T) {
	f := newFixture(t, map[string]string{"web.brand_name": "Acme Studio"})
	f.product("studio", "Acme Studio")
	f.publish("studio", "2.0.0", "stable", "The first **2.x** release.",
		file{"studio-2.0.0-linux-amd64.tar.gz", "linux", "amd64", []byte("studio 2.0.0")})
	f.publish("studio", "2.1.0", "stable", "Faster export.",
		file{"studio-2.1.0-linux-amd64.tar.gz", "linux", "amd64", []byte("studio 2.1.0")})
	// A month of downloads, for the chart.
	now := time.Now().UTC()
	for d := range 30 {
		for i := range 3 + d%5 {
			f.App.Ledger.Record(ledger.Grant{Product: "studio", Version: "2.0.0", Filename: "studio-2.0.0-linux-amd64.tar.gz", Time: now.AddDate(0, 0, -29+d).Add(-time.Duration(i) * time.Minute)})
		}
		if d >= 20 {
			for range 2 + d - 20 {
				f.App.Ledger.Record(ledger.Grant{Product: "studio", Version: "2.1.0", Filename: "studio-2.1.0-linux-amd64.tar.gz", Time: now.AddDate(0, 0, -29+d)})
			}
		}
	}
	if err := f.App.Ledger.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, token := f.token("support", "admin")

	// Sign in from the keyboard: type the token, press Enter.
	admin := browsertest.Shared(t).NewTab(t)
	admin.Run(
		chromedp.Navigate(f.URL+"/admin"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.Focus(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`nav[aria-label="Console"]`)),
	)
	if loc := admin.Location(); loc != f.URL+"/admin/products" {
		t.Fatalf("after sign-in the console is at %s", loc)
	}
	if admin.Cookie(web.CookieToken) == "" {
		t.Fatal("no console session cookie")
	}

	// Create a license that has already expired.
	admin.Run(
		chromedp.Click(chromedp.CSS(`nav a[href="/admin/licenses"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/licenses/new"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/admin/licenses/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#customer")),
		chromedp.SendKeys(chromedp.CSS("#customer"), "Initech"),
		chromedp.Click(chromedp.CSS(`input[name=product][value=studio]`)),
		chromedp.SendKeys(chromedp.CSS("#expires_at"), "2020-01-31"),
		chromedp.SendKeys(chromedp.CSS("#downloads_per_day"), "20"),
		chromedp.Click(chromedp.CSS(`form[action="/admin/licenses"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#secret")),
	)
	key := browsertest.Get(admin, chromedp.Value(chromedp.CSS("#secret")))
	if !strings.HasPrefix(key, licenses.KeyPrefix) {
		t.Fatalf("shown key %q", key)
	}
	if loc := admin.Location(); strings.Contains(loc, key) || loc != f.URL+"/admin/licenses" {
		t.Fatalf("the show-once page is at %s", loc)
	}
	// The copy button shows (the script runs under the page's CSP) and
	// copies the key: the clipboard, read back with the permission
	// granted, holds it.
	admin.Run(
		chromedp.WaitVisible(chromedp.CSS(`button[data-copy="secret"]`)),
		grantClipboard(f.URL),
		chromedp.Click(chromedp.CSS(`button[data-copy="secret"]`)),
	)
	if got := browsertest.Get(admin, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise)); got != key {
		t.Fatalf("the clipboard holds %q after the copy, want the key %q", got, key)
	}
	l, err := f.App.Licenses.ByKey(context.Background(), key)
	if err != nil || l.Customer != "Initech" || l.DownloadsPerDay != 20 || l.StatusAt(time.Now()) != licenses.Expired {
		t.Fatalf("created license %+v %v", l, err)
	}

	// Renew it with the date the form proposes (a year from now).
	admin.Run(
		chromedp.Click(chromedp.CSS(`a[href="/admin/licenses/`+l.ID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#renew-expires")),
	)
	if txt := admin.Text("h1"); !strings.Contains(txt, "expired") {
		t.Fatalf("license page heading %q", txt)
	}
	admin.Run(
		chromedp.Click(chromedp.CSS(`form[action$="/renew"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	if txt := admin.Text("p.flash"); !strings.Contains(txt, "License renewed until "+now.AddDate(1, 0, 0).Format(time.DateOnly)) {
		t.Fatalf("after renew: %q", txt)
	}
	if l := f.getLicense(l.ID); l.StatusAt(time.Now()) != licenses.Active {
		t.Fatalf("renewed license is %s", l.StatusAt(time.Now()))
	}

	// The customer signs in with the new key in another browser.
	customer := browsertest.Shared(t).NewTab(t)
	customer.Run(signIn(f.URL, key)...)
	if body := customer.Text("main"); !strings.Contains(body, "Acme Studio 2.1.0") || !strings.Contains(body, "Acme Studio 2.0.0") {
		t.Fatalf("the customer page before the yank:\n%s", body)
	}

	// Yank 2.1.0 in the console.
	admin.Run(
		chromedp.Click(chromedp.CSS(`nav a[href="/admin/products"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="/admin/products/studio"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/admin/products/studio"]`)),
		chromedp.WaitVisible(chromedp.CSS(`button[aria-label="Yank 2.1.0"]`)),
		chromedp.Click(chromedp.CSS(`button[aria-label="Yank 2.1.0"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	if txt := admin.Text("h1"); !strings.Contains(txt, "yanked") {
		t.Fatalf("after the yank the release page says %q", txt)
	}
	// The customer's page no longer offers it.
	customer.Run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("section.product")))
	if body := customer.Text("main"); strings.Contains(body, "2.1.0") || !strings.Contains(body, "Acme Studio 2.0.0") {
		t.Fatalf("the customer page after the yank:\n%s", body)
	}

	// The downloads chart, drawn on the server: the console's screenshot.
	admin.Run(
		chromedp.Click(chromedp.CSS(`nav a[href="/admin/downloads"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.chart`)),
	)
	if txt := admin.Text("main"); !strings.Contains(txt, "downloads in total") {
		t.Fatalf("downloads page:\n%s", txt)
	}
	admin.DocScreenshot("../docs/admin-console.png")

	// On a phone-width screen no page is wider than the screen, and a
	// form works: create a draft release from it.
	admin.Run(chromedp.EmulateViewport(phoneWidth, 844))
	customer.Run(chromedp.EmulateViewport(phoneWidth, 844))
	for _, path := range []string{"/admin/products", "/admin/products/studio", "/admin/products/studio/releases/2.0.0",
		"/admin/licenses", "/admin/licenses/new", "/admin/licenses/" + l.ID, "/admin/tokens", "/admin/webhooks",
		"/admin/audit", "/admin/downloads", "/admin/nope"} {
		admin.Run(chromedp.Navigate(f.URL+path), chromedp.WaitVisible(chromedp.CSS("h1")))
		wantNoOverflow(t, admin, path)
	}
	admin.Run(
		chromedp.Navigate(f.URL+"/admin/products/studio"),
		chromedp.WaitVisible(chromedp.CSS("#r-version")),
		chromedp.SendKeys(chromedp.CSS("#r-version"), "2.2.0-beta.1"),
		chromedp.SetValue(chromedp.CSS("#r-channel"), "beta"),
		chromedp.SendKeys(chromedp.CSS("#r-notes"), "Typed on a phone."),
		chromedp.Click(chromedp.CSS(`form[action="/admin/products/studio/releases"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	if r, err := f.App.Catalog.Release(context.Background(), "studio", "2.2.0-beta.1"); err != nil || r.Channel != "beta" || r.Notes != "Typed on a phone." {
		t.Fatalf("the draft made at phone width: %+v %v", r, err)
	}
	wantNoOverflow(t, admin, "/admin/products/studio/releases/2.2.0-beta.1")
	customer.Run(chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("section.product")))
	wantNoOverflow(t, customer, "/")
}

// phoneWidth is the viewport width of the phone-width checks, in CSS
// pixels.
const phoneWidth = 390

// wantNoOverflow checks that the tab's page is no wider than its viewport
// (it does not scroll sideways) and that each form control outside a
// sideways-scrolling table lies within the viewport.
func wantNoOverflow(t *testing.T, tab *browsertest.Tab, name string) {
	t.Helper()
	got := browsertest.Get(tab, chromedp.Evaluate[string](`(() => {
		const w = document.documentElement.clientWidth;
		const out = [];
		if (w > `+strconv.Itoa(phoneWidth)+`) out.push("viewport " + w + " wide");
		if (document.documentElement.scrollWidth > w) out.push("page " + document.documentElement.scrollWidth + " wide in " + w);
		for (const el of document.querySelectorAll("main input:not([type=hidden]), main select, main textarea, main button")) {
			if (el.closest(".scroll") || el.offsetParent === null) continue;
			const r = el.getBoundingClientRect();
			if (r.left < 0 || r.right > w + 0.5) out.push(el.tagName + "#" + el.id + "." + el.className + " spans " + Math.round(r.left) + ".." + Math.round(r.right));
		}
		return out.join("; ");
	})()`))
	if got != "" {
		t.Errorf("%s at %d px: %s", name, phoneWidth, got)
	}
}

// grantClipboard lets the tab's pages at origin read the clipboard, so a
// test can check what a copy button put there.
func grantClipboard(origin string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		for _, name := range []string{"clipboard-read", "clipboard-write"} {
			if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
				Permission: &cdpbrowser.PermissionDescriptor{Name: name}, Setting: cdpbrowser.PermissionSettingGranted,
				Origin: origin, BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
