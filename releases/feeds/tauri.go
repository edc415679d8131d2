package feeds

import (
	"strings"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
	"github.com/portaldist/portal/signing"
)

// TauriResponse is the JSON a Tauri dynamic update server answers with
// (200) when an update is available; with none, the server answers 204.
type TauriResponse struct {
	Version string `json:"version"`
	Notes   string `json:"notes"`
	PubDate string `json:"pub_date"` // RFC 3339
	URL     string `json:"url"`
	// Signature is base64 of the whole .minisig text (signing.TauriSignature).
	Signature string `json:"signature"`
}

// Tauri returns the Tauri updater's answer for release r and its artifact
// a (pick it with TauriArtifact). Tauri refuses an update without a valid
// signature and a version that is not a three-part semantic version, so an
// artifact without a "minisign" signature or a four-segment version is an
// EInvalid error rather than a response every client would reject.
func Tauri(p releases.Product, r releases.Release, a releases.Artifact, links Links) (TauriResponse, error) {
	sig := a.Signatures["minisign"]
	if sig == "" {
		return TauriResponse{}, portal.Errorf(portal.EInvalid, "%s %s: %s has no minisign signature, which Tauri requires", r.Product, r.Version, a.Filename)
	}
	main := r.Version
	if i := strings.IndexAny(main, "-+"); i >= 0 {
		main = main[:i]
	}
	if strings.Count(main, ".") > 2 {
		return TauriResponse{}, portal.Errorf(portal.EInvalid, "%s %s: Tauri accepts only three-part semantic versions", r.Product, r.Version)
	}
	return TauriResponse{
		Version:   r.Version,
		Notes:     r.Notes,
		PubDate:   published(&r).Format(time.RFC3339),
		URL:       links.Download(p.Slug, r.Version, a.Filename),
		Signature: signing.TauriSignature([]byte(sig)),
	}, nil
}

// tauriExts are the update bundles Tauri installs, per platform, in order
// of preference: Tauri 2 installs the .app.tar.gz, the .AppImage and the
// NSIS or MSI installer directly; Tauri 1 used the .tar.gz and .zip
// wrappers.
var tauriExts = map[string][]string{
	"darwin":  {".app.tar.gz", ".tar.gz"},
	"linux":   {".appimage", ".appimage.tar.gz", ".deb", ".rpm"},
	"windows": {"-setup.exe", ".exe", ".msi", ".nsis.zip", ".msi.zip"},
}

// TauriArtifact picks the artifact of r the Tauri updater should install on
// (platform, arch), given as portal names (see TauriTarget): an uploaded
// bundle Tauri installs, with a minisign signature, preferring the exact
// arch.
func TauriArtifact(r releases.Release, platform, arch string) (releases.Artifact, bool) {
	exts, ok := tauriExts[platform]
	if !ok {
		return releases.Artifact{}, false
	}
	signed := r
	signed.Artifacts = nil
	for _, a := range r.Artifacts {
		if a.Signatures["minisign"] != "" {
			signed.Artifacts = append(signed.Artifacts, a)
		}
	}
	return pick(&signed, platform, arch, exts)
}

var (
	tauriTargets = map[string]string{"linux": "linux", "darwin": "darwin", "macos": "darwin", "windows": "windows"}
	tauriArches  = map[string]string{"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7": "arm"}
)

// TauriTarget maps the Tauri updater's {{target}} and {{arch}} (linux,
// darwin or windows; x86_64, aarch64, i686 or armv7) to portal platform and
// arch names. target may also be the combined "darwin-aarch64" form of
// Tauri's static manifests, with arch "". Anything else is EInvalid.
func TauriTarget(target, arch string) (platform, portalArch string, err error) {
	if arch == "" {
		target, arch, _ = strings.Cut(target, "-")
	}
	p, ok := tauriTargets[strings.ToLower(target)]
	if !ok {
		return "", "", portal.Errorf(portal.EInvalid, "unknown Tauri target %q: use linux, darwin or windows", truncate(target, 40))
	}
	a, ok := tauriArches[strings.ToLower(arch)]
	if !ok {
		return "", "", portal.Errorf(portal.EInvalid, "unknown Tauri arch %q: use x86_64, aarch64, i686 or armv7", truncate(arch, 40))
	}
	return p, a, nil
}

// SquirrelResponse is the JSON a Squirrel.Mac update server answers with
// (200) when an update is available; with none, the server answers 204.
type SquirrelResponse struct {
	URL     string `json:"url"`
	Name    string `json:"name,omitempty"`
	Notes   string `json:"notes,omitempty"`
	PubDate string `json:"pub_date,omitempty"` // RFC 3339
}

// Squirrel returns Squirrel.Mac's answer for release r and its artifact a
// (pick it with SquirrelArtifact: Squirrel.Mac installs only .zip files).
func Squirrel(p releases.Product, r releases.Release, a releases.Artifact, links Links) SquirrelResponse {
	name := r.Version
	if p.Name != "" {
		name = p.Name + " " + r.Version
	}
	return SquirrelResponse{
		URL:     links.Download(p.Slug, r.Version, a.Filename),
		Name:    name,
		Notes:   r.Notes,
		PubDate: published(&r).Format(time.RFC3339),
	}
}

// SquirrelArtifact picks the .zip of r that serves a Mac of arch (portal
// names; "universal" is served to both), preferring the exact arch.
func SquirrelArtifact(r releases.Release, arch string) (releases.Artifact, bool) {
	return pick(&r, "darwin", arch, []string{".zip"})
}
