// Package feeds renders the update feeds that existing update clients
// already speak: Sparkle appcasts, electron-updater's generic provider
// files, and the JSON answers of Tauri's and Squirrel.Mac's dynamic update
// servers. The renderers are pure: they take releases the caller has
// already resolved (usually with package updates) and write bytes; they do
// no HTTP, no entitlement checks and no I/O besides the writer.
//
// Every download URL in a feed points at the portal's own artifact download
// endpoint (see Links), never at object storage: the download endpoint
// checks the license and mints a short-lived URL at the time of download,
// while a feed may be cached for much longer.
package feeds

import (
	"net/url"
	"strings"
	"time"

	"github.com/portaldist/portal/releases"
)

// Links builds the URL a feed gives for one artifact. The URL's path must
// end with the path-escaped file name: electron-updater names its cached
// download and finds the .blockmap of a differential update from the
// URL's last segment, and its MacUpdater picks the file whose URL ends in
// .zip.
type Links interface {
	Download(product, version, filename string) string
}

// BaseURL is Links for a portal at a base URL such as
// "https://portal.example.com" (a trailing slash is ignored). Its download
// URLs are {base}/v1/products/{product}/releases/{version}/files/{filename},
// each segment path-escaped: the portal's artifact download, with the
// same license check as .../artifacts/{filename}/download.
type BaseURL string

// Download implements Links.
func (b BaseURL) Download(product, version, filename string) string {
	var sb strings.Builder
	sb.WriteString(strings.TrimRight(string(b), "/"))
	sb.WriteString("/v1/products/")
	sb.WriteString(url.PathEscape(product))
	sb.WriteString("/releases/")
	sb.WriteString(url.PathEscape(version))
	sb.WriteString("/files/")
	sb.WriteString(url.PathEscape(filename))
	return sb.String()
}

// Metadata keys the renderers read from releases.Release.Metadata.
const (
	// MetaMinimumSystemVersion is the oldest OS version the release runs
	// on (Sparkle's minimumSystemVersion, electron-updater's
	// minimumSystemVersion), e.g. "11.0".
	MetaMinimumSystemVersion = "minimum_system_version"
	// MetaMaximumSystemVersion is Sparkle's maximumSystemVersion.
	MetaMaximumSystemVersion = "maximum_system_version"
	// MetaCritical, "true", marks a Sparkle critical update.
	MetaCritical = "critical"
	// MetaCriticalBelow limits a critical update to clients whose bundle
	// version is below it (Sparkle's criticalUpdate sparkle:version).
	MetaCriticalBelow = "critical_below"
	// MetaPhasedRolloutInterval is Sparkle's phasedRolloutInterval, in
	// seconds.
	MetaPhasedRolloutInterval = "phased_rollout_interval"
	// MetaBundleVersion overrides sparkle:version (the app's
	// CFBundleVersion) when it differs from the release version.
	MetaBundleVersion = "bundle_version"
)

// published returns when r was published, or when it was created for a
// release that never was (feeds normally hold only published releases).
func published(r *releases.Release) time.Time {
	if r.PublishedAt != nil {
		return r.PublishedAt.UTC()
	}
	return r.CreatedAt.UTC()
}

// pick returns the uploaded artifact of r that serves (platform, arch),
// ranked by the position of its file name's suffix in exts (earlier is
// better; a file matching none is never picked) and then by how exactly it
// matches the arch (exact, then universal, then any). ok is false when none
// fits.
func pick(r *releases.Release, platform, arch string, exts []string) (releases.Artifact, bool) {
	best, bestScore := -1, 0
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		if a.Status != releases.Uploaded || !releases.Serves(a.Platform, a.Arch, platform, arch) {
			continue
		}
		e := extRank(a.Filename, exts)
		if e < 0 {
			continue
		}
		score := e*4 + archRank(a, platform, arch)
		if best < 0 || score < bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return releases.Artifact{}, false
	}
	return r.Artifacts[best], true
}

func extRank(name string, exts []string) int {
	lower := strings.ToLower(name)
	for i, e := range exts {
		if strings.HasSuffix(lower, e) {
			return i
		}
	}
	return -1
}

func archRank(a *releases.Artifact, platform, arch string) int {
	switch {
	case a.Platform == platform && a.Arch == arch:
		return 0
	case a.Arch == "universal":
		return 1
	case a.Platform == platform:
		return 2
	}
	return 3
}
