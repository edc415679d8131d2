package releases

import (
	"strings"

	"github.com/portaldist/portal"
)

// Platforms and architectures use Go's names (GOOS, GOARCH), plus
// "universal" for macOS universal binaries and "any" for platform-neutral
// files. The aliases that update clients and file names use are mapped here,
// once, so every feed and lookup compares canonical names.
var (
	platforms     = map[string]bool{"linux": true, "darwin": true, "windows": true, "freebsd": true, "any": true}
	platformAlias = map[string]string{"macos": "darwin", "mac": "darwin", "osx": "darwin", "win": "windows", "win32": "windows", "win64": "windows"}
	arches        = map[string]bool{"amd64": true, "arm64": true, "386": true, "arm": true, "universal": true, "any": true}
	archAlias     = map[string]string{"x86_64": "amd64", "x64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "x86": "386", "ia32": "386", "armv7": "arm", "armv7l": "arm", "armhf": "arm"}
)

// ParsePlatform returns the canonical platform name for s.
func ParsePlatform(s string) (string, error) {
	s = strings.ToLower(s)
	if a, ok := platformAlias[s]; ok {
		s = a
	}
	if !platforms[s] {
		return "", portal.Errorf(portal.EInvalid, "unknown platform %q: use linux, darwin, windows, freebsd or any", s)
	}
	return s, nil
}

// ParseArch returns the canonical architecture name for s.
func ParseArch(s string) (string, error) {
	s = strings.ToLower(s)
	if a, ok := archAlias[s]; ok {
		s = a
	}
	if !arches[s] {
		return "", portal.Errorf(portal.EInvalid, "unknown arch %q: use amd64, arm64, 386, arm, universal or any", s)
	}
	return s, nil
}

// Serves reports whether an artifact built for (platform, arch) can be
// offered to a client asking for (wantPlatform, wantArch): exact matches,
// "any", and macOS universal binaries for either Mac architecture.
func Serves(platform, arch, wantPlatform, wantArch string) bool {
	if platform != "any" && platform != wantPlatform {
		return false
	}
	if arch == "any" || arch == wantArch {
		return true
	}
	return arch == "universal" && platform == "darwin" && (wantArch == "amd64" || wantArch == "arm64")
}
