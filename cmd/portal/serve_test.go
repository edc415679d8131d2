package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve refuses to listen on every interface without public_url, before it
// opens the data directory.
func TestServeRefusesEveryInterfaceWithoutPublicURL(t *testing.T) {
	t.Setenv("PORTAL_PUBLIC_URL", "")
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		dir := filepath.Join(t.TempDir(), "data")
		err := serve([]string{"--listen", listen, "--data-dir", dir})
		if err == nil || !strings.Contains(err.Error(), "public_url") || !strings.Contains(err.Error(), "PORTAL_PUBLIC_URL") {
			t.Fatalf("serve --listen %s: %v", listen, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("serve --listen %s opened the data directory: %v", listen, err)
		}
	}
}
