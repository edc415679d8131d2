// Package browsertest drives a real browser in tests: Debian's chromium,
// headless, through the DevTools protocol (github.com/chromedp/chromedp).
//
// One browser process serves a whole test binary (Shared starts it on first
// use; Main closes it when the tests end); each test opens Tabs in fresh
// browser contexts, which share nothing (cookies, storage, cache), so a
// second Tab is "a second browser". A missing chromium fails the test with
// how to install it; it never skips.
//
//	func TestMain(m *testing.M) { os.Exit(browsertest.Main(m)) }
//
//	func TestSignIn(t *testing.T) {
//		tab := browsertest.Shared(t).NewTab(t)
//		tab.Run(chromedp.Navigate(url), chromedp.SendKeys(chromedp.CSS("#key"), key), chromedp.Submit(chromedp.CSS("#key")))
//		tab.DocScreenshot("../docs/page.png") // docs/ only with PORTAL_UPDATE_SCREENSHOTS=1
//	}
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser;
// PORTAL_CHROMIUM overrides it.
const ChromiumPath = "/usr/bin/chromium"

// Timeout bounds each Tab.Run.
const Timeout = 30 * time.Second

// Browser is one headless chromium process.
type Browser struct {
	ctx     context.Context // the browser's own (first) target
	cancel  context.CancelFunc
	cancelA context.CancelFunc
	dir     string // --user-data-dir, removed by close
}

var shared struct {
	mu  sync.Mutex
	b   *Browser
	err error
}

// Path returns the chromium binary the tests run.
func Path() string {
	if p := os.Getenv("PORTAL_CHROMIUM"); p != "" {
		return p
	}
	return ChromiumPath
}

// Shared returns the test binary's browser, starting it on first use. It
// fails t (never skips) when chromium is missing or does not start.
func Shared(t testing.TB) *Browser {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b == nil && shared.err == nil {
		shared.b, shared.err = start()
	}
	if shared.err != nil {
		t.Fatalf("browsertest: %v", shared.err)
	}
	return shared.b
}

// Main runs the tests and then ends the shared browser, if one started.
func Main(m *testing.M) int {
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b != nil {
		shared.b.close()
		shared.b = nil
	}
	return code
}

func start() (*Browser, error) {
	path := Path()
	if _, err := exec.LookPath(path); err != nil {
		return nil, fmt.Errorf("chromium is not installed at %s (%v): install Debian's package with `apt-get install chromium` (scripts/test.sh does), or set PORTAL_CHROMIUM", path, err)
	}
	dir, err := os.MkdirTemp("", "portal-chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// The browser lives as long as the context of its first Do: bctx
	// itself, not a child with a deadline.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelA()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	return &Browser{ctx: bctx, cancel: cancel, cancelA: cancelA, dir: dir}, nil
}

func (b *Browser) close() {
	b.cancel()
	b.cancelA()
	os.RemoveAll(b.dir)
}

// Tab is a page in a browser context of its own. Its methods fail the test
// on error.
type Tab struct {
	// Ctx is the chromedp context of the tab, for chromedp.Run beyond Run.
	Ctx context.Context
	t   testing.TB
	// Downloads is where files the tab downloads are saved.
	Downloads string
}

// NewTab opens a tab in a new browser context (no cookies, no storage: a
// second browser), closed when the test ends. Files it downloads are
// saved in Tab.Downloads.
func (b *Browser) NewTab(t testing.TB) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &Tab{Ctx: ctx, t: t, Downloads: t.TempDir()}
	// The tab lives as long as the context of its first Do: ctx itself,
	// not Run's child with a deadline.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: open a tab: %v", err)
	}
	tab.Run(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: tab.Downloads,
			BrowserContextID: chromedp.FromContext(ctx).BrowserContextID,
		})
		return err
	}))
	return tab
}

// Run runs actions in the tab, within Timeout, failing the test with what
// went wrong.
func (tab *Tab) Run(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if err := tab.Try(actions...); err != nil {
		tab.t.Fatalf("browser: %v%s", err, tab.state())
	}
}

// state describes the tab's page for a failure message: its URL and the
// start of its text.
func (tab *Tab) state() string {
	ctx, cancel := context.WithTimeout(tab.Ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	if len(text) > 2000 {
		text = text[:2000] + "..."
	}
	return fmt.Sprintf("\n(the tab is at %s, showing:\n%s)", loc, text)
}

// Try is Run returning the error instead of failing the test.
func (tab *Tab) Try(actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(tab.Ctx, Timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Get runs one action that returns a value, within Timeout, failing the
// test on error.
func Get[T any](tab *Tab, a chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tab.t.Fatalf("browser: %v", err)
	}
	return v
}

// Text returns the visible text of the first element matching the CSS
// selector sel.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return Get(tab, chromedp.Text(chromedp.CSS(sel)))
}

// HTML returns the outer HTML of the first element matching the CSS
// selector sel.
func (tab *Tab) HTML(sel string) string {
	tab.t.Helper()
	return Get(tab, chromedp.OuterHTML(chromedp.CSS(sel)))
}

// Location returns the tab's URL.
func (tab *Tab) Location() string {
	tab.t.Helper()
	return Get(tab, chromedp.Location())
}

// Cookies returns the cookies the tab's browser context sends to its
// current page.
func (tab *Tab) Cookies() []*network.Cookie {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, Timeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		tab.t.Fatalf("browser: cookies: %v", err)
	}
	return res.Cookies
}

// Cookie returns the value of the named cookie, or "".
func (tab *Tab) Cookie(name string) string {
	tab.t.Helper()
	for _, c := range tab.Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// Screenshot writes a PNG of the whole page to path (directories created).
func (tab *Tab) Screenshot(path string) {
	tab.t.Helper()
	png := Get(tab, chromedp.FullScreenshot(100))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tab.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Fatal(err)
	}
}

// UpdateScreenshots names the environment variable that lets DocScreenshot
// rewrite the screenshots kept in the repository ("1").
const UpdateScreenshots = "PORTAL_UPDATE_SCREENSHOTS"

// DocScreenshot takes a screenshot as Screenshot does, for a picture kept
// in the repository (such as ../docs/customer-page.png): it writes to path
// only when PORTAL_UPDATE_SCREENSHOTS=1, and otherwise to a file of the
// same name in the test's temporary directory, so a test run leaves the
// working tree as it was while the screenshot is still taken. It returns
// the path written.
func (tab *Tab) DocScreenshot(path string) string {
	tab.t.Helper()
	out := screenshotPath(tab.t, path)
	tab.Screenshot(out)
	return out
}

// screenshotPath is where DocScreenshot writes path.
func screenshotPath(t testing.TB, path string) string {
	if os.Getenv(UpdateScreenshots) == "1" {
		return path
	}
	return filepath.Join(t.TempDir(), filepath.Base(path))
}

// WaitDownload waits (up to Timeout) for a file named name to be complete
// in Tab.Downloads and returns its bytes.
func (tab *Tab) WaitDownload(name string) []byte {
	tab.t.Helper()
	deadline := time.Now().Add(Timeout)
	path := filepath.Join(tab.Downloads, name)
	for {
		b, err := os.ReadFile(path)
		if err == nil && !partial(tab.Downloads) {
			return b
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(tab.Downloads)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			tab.t.Fatalf("browser: no download %s after %s (the directory holds %v)", name, Timeout, names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partial reports whether a download is still being written in dir.
func partial(dir string) bool {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".crdownload") {
			return true
		}
	}
	return false
}
