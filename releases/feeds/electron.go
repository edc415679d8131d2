package feeds

import (
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// electron-updater names a feed file {channel}{suffix}.yml, where channel
// is "latest" for stable and suffix depends on the platform the app runs
// on: "" on Windows (every architecture reads latest.yml), "-mac" on macOS
// (both architectures read one file and pick from its files), and on Linux
// "-linux" for x64 and "-linux-{process.arch}" otherwise (arm64, ia32,
// arm; electron-builder also writes armv7l).
var electronLinuxArch = map[string]string{"amd64": "", "arm64": "-arm64", "386": "-ia32", "arm": "-arm"}

// ElectronFileName returns the electron-updater feed file a client on
// (platform, arch) reads for channel ("" or "stable" = "latest"), such as
// "latest.yml", "beta-mac.yml" or "latest-linux-arm64.yml". It returns ""
// for a platform, arch or channel electron-updater has no file for.
// Windows and macOS files do not depend on arch.
func ElectronFileName(platform, arch, channel string) string {
	ch, err := releases.ParseChannel(channel)
	if err != nil {
		return ""
	}
	if ch == "stable" {
		ch = "latest"
	}
	plat, err := releases.ParsePlatform(platform)
	if err != nil {
		return ""
	}
	switch plat {
	case "windows":
		return ch + ".yml"
	case "darwin":
		return ch + "-mac.yml"
	case "linux":
		a, err := releases.ParseArch(arch)
		if err != nil {
			return ""
		}
		suffix, ok := electronLinuxArch[a]
		if !ok {
			return ""
		}
		return ch + "-linux" + suffix + ".yml"
	}
	return ""
}

// ParseElectronFile is the reverse of ElectronFileName: the portal channel,
// platform and arch a feed file name asks for. "latest.yml" is Windows
// amd64 (Windows arm64 clients read it too); "latest-mac.yml" is darwin
// with arch "": the file serves every Mac, so resolve its release with arch
// "arm64" (a universal build serves it) and render it with Electron's arch
// "" to list every Mac file; electron-updater on an Intel Mac skips files
// whose URL contains "arm64", so arm64-only Mac builds should say so in
// their file names. Any other name is an EInvalid error.
func ParseElectronFile(name string) (channel, platform, arch string, err error) {
	bad := func() (string, string, string, error) {
		return "", "", "", portal.Errorf(portal.EInvalid, "%q is not an electron-updater feed file such as latest.yml, beta-mac.yml or latest-linux-arm64.yml", truncate(name, 80))
	}
	base, ok := strings.CutSuffix(name, ".yml")
	if !ok || base == "" {
		return bad()
	}
	ch, suffix, _ := strings.Cut(base, "-")
	switch ch {
	case "latest":
		channel = "stable"
	case "stable", "":
		return bad()
	default:
		if releases.ChannelRank(ch) < 0 {
			return bad()
		}
		channel = ch
	}
	switch {
	case suffix == "" && !strings.Contains(base, "-"):
		return channel, "windows", "amd64", nil
	case suffix == "mac":
		return channel, "darwin", "", nil
	case suffix == "linux":
		return channel, "linux", "amd64", nil
	case strings.HasPrefix(suffix, "linux-"):
		a := suffix[len("linux-"):]
		switch a {
		case "arm64", "ia32", "arm", "armv7l":
		default:
			return bad()
		}
		pa, err := releases.ParseArch(a)
		if err != nil {
			return bad()
		}
		return channel, "linux", pa, nil
	}
	return bad()
}

// Files electron-updater installs, per platform, in order of preference:
// the first is the manifest's legacy path. On macOS only the .zip:
// MacUpdater hands it to Squirrel.Mac, which installs from a zip and
// nothing else, and when no URL ends in .zip it takes the first file not
// ending in .dmg or .pkg, so a listed disk image could only mislead it. A
// Mac release without a .zip is not offered at all.
var electronExts = map[string][]string{
	"windows": {".exe"},
	"darwin":  {".zip"},
	"linux":   {".appimage", ".deb", ".rpm", ".pacman"},
}

// ElectronManifest is the document of an electron-updater feed file.
type ElectronManifest struct {
	Version              string         `yaml:"version"`
	Files                []ElectronFile `yaml:"files"`
	Path                 string         `yaml:"path"`
	SHA512               string         `yaml:"sha512"`
	ReleaseDate          string         `yaml:"releaseDate"`
	ReleaseName          string         `yaml:"releaseName,omitempty"`
	ReleaseNotes         string         `yaml:"releaseNotes,omitempty"`
	StagingPercentage    int            `yaml:"stagingPercentage,omitempty"`
	MinimumSystemVersion string         `yaml:"minimumSystemVersion,omitempty"`
}

// ElectronFile is one entry of ElectronManifest.Files.
type ElectronFile struct {
	URL    string `yaml:"url"`
	SHA512 string `yaml:"sha512"`
	Size   int64  `yaml:"size"`
}

// Electron writes the electron-updater (generic provider) feed file for
// release r on (platform, arch): YAML with version, files (absolute URLs to
// the portal's download endpoint that end with the file name, see Links;
// electron-updater resolves URLs against the feed URL, so absolute ones
// are taken as they are), the legacy path
// and sha512 of the preferred file, releaseDate (ISO 8601 with
// milliseconds, as electron-builder writes it), releaseName, releaseNotes,
// minimumSystemVersion (metadata minimum_system_version) and
// stagingPercentage when r has a staged rollout (electron-updater draws
// its own per-install number against it).
//
// Files are those electron-updater can install: .exe on Windows; .zip on
// macOS (for arch "" every Mac file, else those serving arch; never a .dmg);
// .AppImage, then .deb, .rpm and .pacman on Linux. electron-updater
// verifies the base64 SHA-512 of what it downloads, so files without one
// are left out. When no file is left, or platform or arch is unknown, the
// error is EInvalid (bad input) or ENotFound (nothing to offer) and nothing
// is written.
func Electron(w io.Writer, p releases.Product, r releases.Release, platform, arch string, links Links) error {
	m, err := ElectronFeed(p, r, platform, arch, links)
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return err
	}
	return enc.Close()
}

// ElectronFeed returns the manifest Electron writes.
func ElectronFeed(p releases.Product, r releases.Release, platform, arch string, links Links) (ElectronManifest, error) {
	plat, err := releases.ParsePlatform(platform)
	if err != nil {
		return ElectronManifest{}, err
	}
	exts, ok := electronExts[plat]
	if !ok {
		return ElectronManifest{}, portal.Errorf(portal.EInvalid, "electron-updater has no feed for %s", plat)
	}
	anyArch := plat == "darwin" && arch == ""
	if !anyArch {
		if arch, err = releases.ParseArch(arch); err != nil {
			return ElectronManifest{}, err
		}
	}
	files := electronFiles(&r, plat, arch, anyArch, exts)
	if len(files) == 0 {
		return ElectronManifest{}, portal.Errorf(portal.ENotFound, "%s %s has no file electron-updater can install on %s", r.Product, r.Version, plat)
	}
	m := ElectronManifest{
		Version:              r.Version,
		ReleaseDate:          published(&r).Format("2006-01-02T15:04:05.000Z"),
		ReleaseNotes:         r.Notes,
		MinimumSystemVersion: r.Metadata[MetaMinimumSystemVersion],
	}
	if p.Name != "" {
		m.ReleaseName = p.Name + " " + r.Version
	}
	if r.Rollout > 0 && r.Rollout < 100 {
		m.StagingPercentage = r.Rollout
	}
	for _, a := range files {
		m.Files = append(m.Files, ElectronFile{URL: links.Download(p.Slug, r.Version, a.Filename), SHA512: a.SHA512, Size: a.Size})
	}
	m.Path, m.SHA512 = m.Files[0].URL, m.Files[0].SHA512
	return m, nil
}

// ElectronArtifact returns the file an electron-updater client on
// (platform, arch) installs from r: the first of the feed's files (arch ""
// on darwin: any Mac). ok is false when r has none.
func ElectronArtifact(r releases.Release, platform, arch string) (releases.Artifact, bool) {
	plat, err := releases.ParsePlatform(platform)
	if err != nil {
		return releases.Artifact{}, false
	}
	exts, ok := electronExts[plat]
	if !ok {
		return releases.Artifact{}, false
	}
	anyArch := plat == "darwin" && arch == ""
	if !anyArch {
		if arch, err = releases.ParseArch(arch); err != nil {
			return releases.Artifact{}, false
		}
	}
	files := electronFiles(&r, plat, arch, anyArch, exts)
	if len(files) == 0 {
		return releases.Artifact{}, false
	}
	return files[0], true
}

// electronFiles returns the files of r electron-updater can install on
// (plat, arch), best first: by extension, then by how exactly they match
// the arch, then as the release lists them.
func electronFiles(r *releases.Release, plat, arch string, anyArch bool, exts []string) []releases.Artifact {
	type cand struct {
		a    releases.Artifact
		rank int
	}
	var cs []cand
	for _, a := range r.Artifacts {
		if a.Status != releases.Uploaded || a.SHA512 == "" {
			continue
		}
		if anyArch {
			if a.Platform != "darwin" && a.Platform != "any" {
				continue
			}
		} else if !releases.Serves(a.Platform, a.Arch, plat, arch) {
			continue
		}
		e := extRank(a.Filename, exts)
		if e < 0 {
			continue
		}
		rank := e * 4
		if !anyArch {
			rank += archRank(&a, plat, arch)
		}
		cs = append(cs, cand{a, rank})
	}
	// Stable order: by rank, then as the release lists them.
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].rank < cs[j-1].rank; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	files := make([]releases.Artifact, len(cs))
	for i, c := range cs {
		files[i] = c.a
	}
	return files
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
