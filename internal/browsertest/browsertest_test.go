package browsertest

import (
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
