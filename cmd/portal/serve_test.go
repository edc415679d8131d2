package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// serve refuses to listen beyond loopback without public_url, before it
// opens the data directory.
func TestServeRefusesEveryInterfaceWithoutPublicURL(t *testing.T) {
	t.Setenv("PORTAL_PUBLIC_URL", "")
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.7:8080", "[2001:db8::7]:8080", "portal.example:8080"} {
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
