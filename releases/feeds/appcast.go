package feeds

import (
	"encoding/xml"
	"io"
	"strconv"
	"time"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// SparkleNS is the Sparkle XML namespace.
const SparkleNS = "http://www.andymatuschak.org/xml-namespaces/sparkle"

// DefaultPhasedRolloutInterval is the sparkle:phasedRolloutInterval given
// to a release with a staged rollout (Rollout 1-99) and no explicit
// phased_rollout_interval: one day. Sparkle splits its clients into seven
// groups and lets one more group in per interval, counted from pubDate, so
// the release reaches every Sparkle client in a week. Sparkle cannot take a
// percentage, so the Rollout value itself only says "phase this release".
const DefaultPhasedRolloutInterval = 24 * time.Hour

// appcastExts are the archives Sparkle installs, in order of preference.
var appcastExts = []string{".zip", ".dmg", ".tar.xz", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".pkg", ".mpkg"}

// The element and attribute names carry their "sparkle:" prefix literally,
// and the root declares it: encoding/xml would otherwise invent its own
// prefixes, which Sparkle's parser does not resolve.
type rss struct {
	XMLName    xml.Name `xml:"rss"`
	Version    string   `xml:"version,attr"`
	XMLNSSpark string   `xml:"xmlns:sparkle,attr"`
	Channel    channel  `xml:"channel"`
}

type channel struct {
	Title string `xml:"title"`
	Items []item `xml:"item"`
}

type item struct {
	Title                 string    `xml:"title"`
	PubDate               string    `xml:"pubDate"`
	Version               string    `xml:"sparkle:version"`
	ShortVersion          string    `xml:"sparkle:shortVersionString"`
	Channel               string    `xml:"sparkle:channel,omitempty"`
	MinimumSystemVersion  string    `xml:"sparkle:minimumSystemVersion,omitempty"`
	MaximumSystemVersion  string    `xml:"sparkle:maximumSystemVersion,omitempty"`
	CriticalUpdate        *critical `xml:"sparkle:criticalUpdate"`
	PhasedRolloutInterval int64     `xml:"sparkle:phasedRolloutInterval,omitempty"`
	Description           *cdata    `xml:"description"`
	Enclosure             enclosure `xml:"enclosure"`
}

type critical struct {
	Version string `xml:"sparkle:version,attr,omitempty"`
}

type cdata struct {
	Text string `xml:",cdata"`
}

type enclosure struct {
	URL          string `xml:"url,attr"`
	Length       int64  `xml:"length,attr"`
	Type         string `xml:"type,attr"`
	Version      string `xml:"sparkle:version,attr"`
	ShortVersion string `xml:"sparkle:shortVersionString,attr"`
	EdSignature  string `xml:"sparkle:edSignature,attr,omitempty"`
}

// Appcast writes a Sparkle 2 appcast (RSS 2.0 with the Sparkle namespace)
// for product p: one item per release of rs, in the order given (newest
// first is what Sparkle expects, though it sorts by version itself).
// Releases that are not published are left out, and so are releases
// without a macOS archive Sparkle can install for arch.
//
// arch selects the Mac build: "arm64" or "amd64" (or their aliases) for an
// app that asks per architecture; "" for one feed every Mac reads, which
// then offers only builds that run on both (universal, or platform- or
// architecture-neutral). Among fitting files it prefers the exact arch,
// then .zip over .dmg over the other archives.
//
// Each item carries sparkle:version (metadata bundle_version, else the
// release version) and sparkle:shortVersionString (the release version);
// sparkle:channel for releases off stable; the enclosure's url (from
// links), length, type and sparkle:edSignature (the artifact's "ed25519"
// signature; without one, a Sparkle app that has SUPublicEDKey refuses the
// update); pubDate; the notes in a CDATA description (Sparkle shows it as
// HTML, so notes are the publisher's HTML); and, from metadata,
// minimumSystemVersion, maximumSystemVersion, criticalUpdate and
// phasedRolloutInterval (see the Meta constants and
// DefaultPhasedRolloutInterval). A malformed phased_rollout_interval is an
// EInvalid error and nothing is written.
func Appcast(w io.Writer, p releases.Product, rs []releases.Release, arch string, links Links) error {
	wantArch := ""
	if arch != "" {
		a, err := releases.ParseArch(arch)
		if err != nil {
			return err
		}
		wantArch = a
	}
	doc := rss{Version: "2.0", XMLNSSpark: SparkleNS, Channel: channel{Title: p.Name, Items: []item{}}}
	if doc.Channel.Title == "" {
		doc.Channel.Title = p.Slug
	}
	for i := range rs {
		r := &rs[i]
		if r.Status != releases.Published {
			continue
		}
		a, ok := macArchive(r, wantArch)
		if !ok {
			continue
		}
		it, err := appcastItem(p, r, a, links)
		if err != nil {
			return err
		}
		doc.Channel.Items = append(doc.Channel.Items, it)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// AppcastArtifact returns the archive of r that the appcast offers Macs of
// arch ("" = every Mac: only builds that run on both), as Appcast chooses
// it.
func AppcastArtifact(r releases.Release, arch string) (releases.Artifact, bool) {
	return macArchive(&r, arch)
}

// macArchive picks the archive of r Sparkle should install on arch ("" =
// any Mac).
func macArchive(r *releases.Release, arch string) (releases.Artifact, bool) {
	if arch != "" {
		return pick(r, "darwin", arch, appcastExts)
	}
	// Only files that run on both Mac architectures: Serves them for both.
	a, ok := pick(r, "darwin", "arm64", appcastExts)
	if ok && releases.Serves(a.Platform, a.Arch, "darwin", "amd64") {
		return a, true
	}
	a, ok = pick(r, "darwin", "amd64", appcastExts)
	if ok && releases.Serves(a.Platform, a.Arch, "darwin", "arm64") {
		return a, true
	}
	return releases.Artifact{}, false
}

func appcastItem(p releases.Product, r *releases.Release, a releases.Artifact, links Links) (item, error) {
	bundle := r.Version
	if v := r.Metadata[MetaBundleVersion]; v != "" {
		bundle = v
	}
	it := item{
		Title:                r.Version,
		PubDate:              published(r).Format(time.RFC1123Z),
		Version:              bundle,
		ShortVersion:         r.Version,
		MinimumSystemVersion: r.Metadata[MetaMinimumSystemVersion],
		MaximumSystemVersion: r.Metadata[MetaMaximumSystemVersion],
		Enclosure: enclosure{
			URL:          links.Download(p.Slug, r.Version, a.Filename),
			Length:       a.Size,
			Type:         "application/octet-stream",
			Version:      bundle,
			ShortVersion: r.Version,
			EdSignature:  a.Signatures["ed25519"],
		},
	}
	if p.Name != "" {
		it.Title = p.Name + " " + r.Version
	}
	if r.Channel != "" && r.Channel != "stable" {
		it.Channel = r.Channel
	}
	if r.Notes != "" {
		it.Description = &cdata{Text: r.Notes}
	}
	if r.Metadata[MetaCritical] == "true" {
		it.CriticalUpdate = &critical{Version: r.Metadata[MetaCriticalBelow]}
	}
	if s, ok := r.Metadata[MetaPhasedRolloutInterval]; ok && s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return item{}, portal.Errorf(portal.EInvalid, "%s %s: metadata %s must be a positive number of seconds", r.Product, r.Version, MetaPhasedRolloutInterval)
		}
		it.PhasedRolloutInterval = n
	} else if r.Rollout > 0 && r.Rollout < 100 {
		it.PhasedRolloutInterval = int64(DefaultPhasedRolloutInterval / time.Second)
	}
	return it, nil
}
