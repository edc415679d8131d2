package web_test

import (
	"os"
	"testing"

	"github.com/portaldist/portal/internal/browsertest"
)

// TestMain ends the browser the tests share (browsertest.Shared) once they
// are done.
func TestMain(m *testing.M) { os.Exit(browsertest.Main(m)) }
