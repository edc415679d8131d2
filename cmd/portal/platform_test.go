package main

import (
	"strings"
	"testing"

	"github.com/portaldist/portal/releases"
)

func TestDetectPlatform(t *testing.T) {
	for _, c := range []struct {
		name, platform, arch string
	}{
		{"acme_1.2.0_linux_amd64.tar.gz", "linux", "amd64"},
		{"acme-1.2.0-linux-x86_64.tar.gz", "linux", "amd64"},
		{"acme-1.2.0-linux-x86-64.tar.xz", "linux", "amd64"},
		{"acme-1.2.0-darwin-arm64.tar.gz", "darwin", "arm64"},
		{"acme_1.2.0_windows_386.zip", "windows", "386"},
		{"acme_1.2.0_Linux_ARM64.tar.gz", "linux", "arm64"},
		{"acme-1.2.0-linux-aarch64.tar.gz", "linux", "arm64"},
		{"acme-1.2.0-linux-armv7l.tar.gz", "linux", "arm"},
		{"acme_1.2.0_freebsd_amd64.tar.gz", "freebsd", "amd64"},
		{"Acme-1.2.0.dmg", "darwin", "universal"},
		{"Acme-1.2.0-universal.dmg", "darwin", "universal"},
		{"Acme-1.2.0-arm64.dmg", "darwin", "arm64"},
		{"Acme-1.2.0-x64.dmg", "darwin", "amd64"},
		{"Acme-1.2.0.pkg", "darwin", "universal"},
		{"Acme-1.2.0-mac.zip", "darwin", "universal"},
		{"Acme-1.2.0-macos-arm64.zip", "darwin", "arm64"},
		{"acme-osx-x64.tar.gz", "darwin", "amd64"},
		{"Acme Setup 1.2.0.exe", "windows", "amd64"},
		{"Acme-Setup-1.2.0-ia32.exe", "windows", "386"},
		{"Acme-1.2.0-arm64.msi", "windows", "arm64"},
		{"acme-1.2.0-win32-x64.zip", "windows", "amd64"},
		{"acme-1.2.0-win64.zip", "windows", "amd64"},
		{"acme-1.2.0-windows.zip", "windows", "amd64"},
		{"Acme-1.2.0.AppImage", "linux", "amd64"},
		{"Acme-1.2.0-arm64.AppImage", "linux", "arm64"},
		{"acme_1.2.0_amd64.deb", "linux", "amd64"},
		{"acme_1.2.0_arm64.deb", "linux", "arm64"},
		{"acme_1.2.0_i386.deb", "linux", "386"},
		{"acme_1.2.0_armhf.deb", "linux", "arm"},
		{"acme-1.2.0-1.x86_64.rpm", "linux", "amd64"},
		{"acme-1.2.0-1.aarch64.rpm", "linux", "arm64"},
		{"acme-1.2.0-1.noarch.rpm", "linux", "any"},
		{"acme-1.2.0-1.i686.rpm", "linux", "386"},
	} {
		p, a, err := detectPlatform(c.name)
		if err != nil || p != c.platform || a != c.arch {
			t.Errorf("%q: %q %q %v, want %q %q", c.name, p, a, err, c.platform, c.arch)
			continue
		}
		// What is detected must be what the catalog accepts.
		if _, err := releases.ParsePlatform(p); err != nil {
			t.Errorf("%q: platform %q: %v", c.name, p, err)
		}
		if _, err := releases.ParseArch(a); err != nil {
			t.Errorf("%q: arch %q: %v", c.name, a, err)
		}
	}

	for _, name := range []string{
		"acme-1.2.0.tar.gz",                 // nothing
		"acme-1.2.0-linux.tar.gz",           // no arch for a Linux archive
		"acme-1.2.0-arm64.tar.gz",           // no platform
		"acme-linux-darwin-amd64.tar.gz",    // two platforms
		"acme-linux-amd64-arm64.tar.gz",     // two arches
		"acme-1.2.0-linux-amd64.exe",        // a Windows installer named for Linux
		"acme.apk",                          // not a platform the portal knows
		"machine-1.0.tar.gz",                // "mac" only inside a word
		"acme-1.2.0.pkg.tar.zst",            // an Arch Linux package, not a macOS .pkg
		"winamp-armada-1.0-universe.tar.gz", // near misses only
	} {
		p, a, err := detectPlatform(name)
		if err == nil {
			t.Errorf("%q: detected %q %q, want an error", name, p, a)
		} else if !strings.Contains(err.Error(), "--platform and --arch") {
			t.Errorf("%q: error %q does not say what to do", name, err)
		}
	}
}
