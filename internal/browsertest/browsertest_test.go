package browsertest

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingChromium: without the browser, the tests are told how to
// install it (they fail; they never skip).
func TestMissingChromium(t *testing.T) {
	t.Setenv("PORTAL_CHROMIUM", "/nonexistent/chromium")
	b, err := start()
	if err == nil {
		b.close()
		t.Fatal("a browser started from a path that does not exist")
	}
	if !strings.Contains(err.Error(), "apt-get install chromium") || !strings.Contains(err.Error(), "/nonexistent/chromium") {
		t.Fatalf("the error does not say how to install chromium: %v", err)
	}
}

// TestScreenshotPath: a test run writes its screenshots into its temporary
// directory, so the repository's pictures change only when asked for.
func TestScreenshotPath(t *testing.T) {
	for _, tc := range []struct {
		env    string
		inDocs bool
	}{
		{"", false},
		{"0", false},
		{"yes", false},
		{"1", true},
	} {
		t.Run("env="+tc.env, func(t *testing.T) {
			t.Setenv(UpdateScreenshots, tc.env)
			const doc = "../docs/customer-page.png"
			got := screenshotPath(t, doc)
			if tc.inDocs {
				if got != doc {
					t.Fatalf("%s=%q writes %s, want %s", UpdateScreenshots, tc.env, got, doc)
				}
				return
			}
			if filepath.Base(got) != "customer-page.png" || strings.Contains(got, "docs") || !filepath.IsAbs(got) {
				t.Fatalf("%s=%q writes %s, want customer-page.png in the test's temporary directory", UpdateScreenshots, tc.env, got)
			}
		})
	}
}
