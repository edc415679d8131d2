package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/portaldist/portal/internal/browsertest"
	"github.com/portaldist/portal/web"
)

// TestCustomerWithoutJavaScript: with scripts off, and from the keyboard,
// a customer signs in, downloads, creates a share link (its URL selectable
// text) and revokes it.
func TestCustomerWithoutJavaScript(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "Notes.", file{"app-1.0.0.zip", "windows", "amd64", []byte("windows build")})
	l, key := f.license("ACME", []string{"app"}, nil)

	tab := browsertest.Shared(t).NewTab(t)
	tab.Run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	}))
	// From the keyboard: Tab past the skip link and the brand to the key
	// field, type the key, Enter.
	tab.Run(
		chromedp.Navigate(f.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"), chromedp.KeyEvent("\t"),
	)
	if id := browsertest.Get(tab, chromedp.Evaluate[string]("document.activeElement.id")); id != "key" {
		t.Fatalf("the third Tab focuses %q, want the key field", id)
	}
	// (Evaluate runs through the protocol, not the page's scripts, so it
	// works with scripts off.)
	tab.Run(
		chromedp.KeyEvent(key), chromedp.KeyEvent("\r"),
		chromedp.WaitVisible(chromedp.CSS("section.product")),
	)
	if cs := browsertest.Get(tab, chromedp.Evaluate[bool]("document.documentElement.classList.contains('js')")); cs {
		t.Fatal("app.js ran: scripts are not off")
	}
	// The copy buttons are hidden without scripts; the link is text.
	tab.Run(
		chromedp.Click(chromedp.CSS(`button[data-file="app-1.0.0.zip"]`)),
	)
	if got := tab.WaitDownload("app-1.0.0.zip"); string(got) != "windows build" {
		t.Fatalf("downloaded %q", got)
	}
	tab.Run(
		chromedp.Click(chromedp.CSS(`form[action="/share"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#newlink")),
	)
	if vis := browsertest.Get(tab, chromedp.Evaluate[bool]("getComputedStyle(document.querySelector('button.copy')).display !== 'none'")); vis {
		t.Error("a copy button shows without scripts")
	}
	link := browsertest.Get(tab, chromedp.Value(chromedp.CSS("#newlink")))
	if !strings.Contains(link, "/d/") {
		t.Fatalf("share link %q", link)
	}
	tab.Run(
		chromedp.Click(chromedp.CSS(`form[action="/share/revoke"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.flash")),
	)
	links, _ := f.App.Links.List(cliCtx, l.ID)
	if len(links) != 1 || links[0].RevokedAt == nil {
		t.Fatalf("links after revoking: %+v", links)
	}
}

// TestCustomerRefusalsInBrowser: a wrong key shows the error and sets no
// cookie; a form whose CSRF field was removed is refused with 403 and
// changes nothing; the copy button copies the link.
func TestCustomerRefusalsInBrowser(t *testing.T) {
	f := newFixture(t, nil)
	f.product("app", "App")
	f.publish("app", "1.0.0", "", "", file{"app.tar.gz", "linux", "amd64", []byte("app")})
	l, key := f.license("ACME", []string{"app"}, nil)

	tab := browsertest.Shared(t).NewTab(t)
	tab.Run(
		chromedp.Navigate(f.URL+"/"),
		chromedp.SendKeys(chromedp.CSS("#key"), "lic_"+strings.Repeat("w", 40)),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("section.error")),
	)
	if txt := tab.Text("section.error"); !strings.Contains(txt, "unauthorized") || !strings.Contains(txt, "unknown license key") {
		t.Fatalf("wrong key:\n%s", txt)
	}
	if tab.Cookie(web.CookieLicense) != "" {
		t.Fatal("a wrong key set a session cookie")
	}
	if loc := tab.Location(); loc != f.URL+"/signin" {
		t.Fatalf("the error page is at %s", loc)
	}

	tab.Run(
		chromedp.Navigate(f.URL+"/"),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Submit(chromedp.CSS("#key")),
		chromedp.WaitVisible(chromedp.CSS("section.product")),
		// The share form without its CSRF field.
		chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action="/share"] input[name=csrf]').remove()`),
		chromedp.Click(chromedp.CSS(`form[action="/share"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("section.error")),
	)
	if txt := tab.Text("section.error"); !strings.Contains(txt, "forbidden") {
		t.Fatalf("a post without the CSRF field:\n%s", txt)
	}
	status := browsertest.Get(tab, chromedp.Evaluate[int](`performance.getEntriesByType("navigation")[0].responseStatus`))
	if status != http.StatusForbidden {
		t.Fatalf("the refused post answered %d, want 403", status)
	}
	if links, _ := f.App.Links.List(cliCtx, l.ID); len(links) != 0 {
		t.Fatalf("a refused post made a link: %+v", links)
	}

	// The session still works; the copy button copies the new link.
	tab.Run(
		chromedp.Navigate(f.URL+"/"),
		chromedp.Click(chromedp.CSS(`form[action="/share"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#newlink")),
	)
	// Every field has a label; on a phone-width screen nothing is wider
	// than the screen.
	unlabelled := `[...document.querySelectorAll('input:not([type=hidden]), select, textarea')].filter(e => !e.labels || e.labels.length === 0).map(e => e.outerHTML)`
	if got := browsertest.Get(tab, chromedp.Evaluate[[]string](unlabelled)); len(got) != 0 {
		t.Errorf("fields without a label: %v", got)
	}
	tab.Run(chromedp.EmulateViewport(360, 740), chromedp.Navigate(f.URL+"/"))
	if over := browsertest.Get(tab, chromedp.Evaluate[int]("document.documentElement.scrollWidth - window.innerWidth")); over > 0 {
		t.Errorf("at 360 px the page is %d px wider than the screen", over)
	}
	tab.Run(chromedp.ResetViewport(), chromedp.Navigate(f.URL+"/"),
		chromedp.Click(chromedp.CSS(`form[action="/share"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#newlink")),
		chromedp.Click(chromedp.CSS("button.copy")),
	)
	// The button says so once the clipboard took the text.
	if err := tab.Try(chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool]("document.querySelector('button.copy').textContent === 'Copied'",
			chromedp.WithPollingTimeout(10*time.Second))(ctx, t)
		return err
	})); err != nil {
		t.Errorf("the copy button does not say Copied after a click: %v (it says %q)", err, tab.Text("button.copy"))
	}
}
