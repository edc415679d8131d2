package updates

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// Query is one update check.
type Query struct {
	Product string
	// Current is the version the client runs; only strictly newer releases
	// are offered. "" offers the newest release that fits.
	Current  string
	Platform string // required; aliases such as macos or win are accepted
	Arch     string // required; aliases such as x64 or aarch64 are accepted
	// Channel is the channel asked for ("" = stable); it sees its own
	// releases and those of every more stable channel.
	Channel string
	// Constraint is an optional go-version constraint the client adds
	// (">= 2.0, < 3.0"). As in go-version, a constraint without a
	// prerelease never matches a prerelease version.
	Constraint string
	// License is the caller's license, nil for an anonymous caller (open
	// products, or licensed products whose update checks are public).
	// Latest may call its Decide, which caches a parsed constraint inside
	// the License: do not share one *License between concurrent calls.
	License *licenses.License
	// ClientID places an anonymous caller in a rollout cohort (an install
	// id the client keeps). With a License, the license ID is used instead,
	// so every install of one customer gets a staged release together.
	ClientID string
	// Now is the time entitlements are decided at; zero means time.Now().
	Now time.Time
	// Bucket, when set, replaces the package's Bucket (tests, experiments).
	Bucket func(id, product, version string) int
}

// Latest returns the release a client should upgrade to and its artifact
// for the client's platform and arch: the newest published release that is
//
//   - strictly newer than Current (in go-version order),
//   - visible on the channel,
//   - within Constraint,
//   - carrying an uploaded artifact that serves (Platform, Arch), with the
//     preference of releases.Release.ArtifactFor,
//   - permitted by the license (licenses.License.Decide), and
//   - offered to this caller by its staged rollout (see Bucket).
//
// A release that fails any test is skipped and the next older one is
// considered, so a client outside a rollout's cohort still gets the newest
// release it may have. ok is false, with a nil error, when nothing fits (the
// API answers 204).
//
// Errors: EInvalid for a malformed channel, platform, arch, current version
// or constraint; ENotFound for a product the index does not hold; and the
// license's own refusal (license_revoked, license_suspended,
// license_expired for an expired license that keeps nothing, not_entitled
// for a license of another product) when the license refuses everything, so
// the caller can say why rather than answer "no update".
//
// The returned Release shares its Artifacts and Metadata with the index:
// read them, never modify them.
func (x *Index) Latest(q Query) (r releases.Release, a releases.Artifact, ok bool, err error) {
	ch, err := releases.ParseChannel(q.Channel)
	if err != nil {
		return r, a, false, err
	}
	plat, err := releases.ParsePlatform(q.Platform)
	if err != nil {
		return r, a, false, err
	}
	arch, err := releases.ParseArch(q.Arch)
	if err != nil {
		return r, a, false, err
	}
	pi, found := x.product(q.Product)
	if !found {
		return r, a, false, portal.Errorf(portal.ENotFound, "no product %q", truncate(q.Product, 80))
	}
	var curKey string
	if q.Current != "" {
		if _, curKey, err = x.parseVersion(pi, q.Current); err != nil {
			return r, a, false, err
		}
	}
	var cs version.Constraints
	if q.Constraint != "" {
		if cs, err = x.parseConstraint(q.Constraint); err != nil {
			return r, a, false, err
		}
	}
	now := q.Now
	if now.IsZero() {
		now = time.Now()
	}

	// With a license, check up front what refuses everything, then mirror
	// Decide's per-release rules cheaply (parsed constraint, no messages)
	// while walking; Decide itself confirms the one release chosen.
	lic := q.License
	var lcs version.Constraints
	anyOnly, maintainedUntil := false, (*time.Time)(nil)
	if lic != nil {
		if err := lic.RefusesAll(q.Product, now); err != nil {
			return r, a, false, err
		}
		if lic.Constraint != "" {
			if lcs, err = x.parseConstraint(lic.Constraint); err != nil {
				return r, a, false, err
			}
		}
		// A license without the asked platform may still have
		// platform-neutral ("any") artifacts.
		anyOnly = len(lic.Platforms) > 0 && !slices.Contains(lic.Platforms, plat)
		if lic.ExpiresAt != nil && !now.Before(*lic.ExpiresAt) {
			maintainedUntil = lic.ExpiresAt // RefusesAll passed: on_expiry is maintain
		}
	}
	asked := releases.ChannelRank(ch)

	for i := len(pi.entries) - 1; i >= 0; i-- {
		e := &pi.entries[i]
		if curKey != "" && e.key <= curKey {
			break // entries are ascending: nothing below is newer either
		}
		if e.rank < 0 || e.rank > asked {
			continue
		}
		if cs != nil && !cs.Check(e.ver) {
			continue
		}
		art := artifactFor(&e.rel, plat, arch, anyOnly)
		if art == nil {
			continue
		}
		if lic != nil {
			if lcs != nil && !lcs.Check(e.ver) {
				continue
			}
			if len(lic.Channels) > 0 && !slices.Contains(lic.Channels, e.rel.Channel) {
				continue
			}
			if maintainedUntil != nil && (e.rel.PublishedAt == nil || !e.rel.PublishedAt.Before(*maintainedUntil)) {
				continue
			}
		}
		if !offered(&q, lic, e) {
			continue
		}
		if lic != nil && lic.Decide(licenses.TargetOf(e.rel, art.Platform), now) != nil {
			continue
		}
		return e.rel, *art, true, nil
	}
	return r, a, false, nil
}

// artifactFor is releases.Release.ArtifactFor, optionally restricted to
// platform-neutral artifacts.
func artifactFor(r *releases.Release, plat, arch string, anyOnly bool) *releases.Artifact {
	if !anyOnly {
		a, _ := r.ArtifactFor(plat, arch)
		return a
	}
	var best *releases.Artifact
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		if a.Platform != "any" || a.Status != releases.Uploaded || !releases.Serves(a.Platform, a.Arch, plat, arch) {
			continue
		}
		if a.Arch == arch {
			return a
		}
		if best == nil {
			best = a
		}
	}
	return best
}

// offered applies a release's staged rollout to the caller.
func offered(q *Query, lic *licenses.License, e *entry) bool {
	p := e.rel.Rollout
	if p <= 0 || p >= 100 {
		return true
	}
	id := q.ClientID
	if lic != nil {
		id = lic.ID
	}
	if id == "" {
		return false // no identity, no cohort: only full releases
	}
	bucket := Bucket
	if q.Bucket != nil {
		bucket = q.Bucket
	}
	return bucket(id, q.Product, e.rel.Version) < p
}

// Bucket places id in one of 100 rollout cohorts for one release: the first
// 8 bytes of SHA-256(id + "/" + product + "/" + version), big-endian, mod
// 100. A release with Rollout p is offered to the ids whose bucket is below
// p, so raising p only ever adds ids, and because the version is hashed in,
// each release samples a different cohort (the same customers are not
// always the first to get a risky build). It does not allocate for ids,
// products and versions up to about 200 bytes together.
func Bucket(id, product, version string) int {
	var buf [256]byte
	b := append(buf[:0], id...)
	b = append(b, '/')
	b = append(b, product...)
	b = append(b, '/')
	b = append(b, version...)
	sum := sha256.Sum256(b)
	return int(binary.BigEndian.Uint64(sum[:8]) % 100)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
