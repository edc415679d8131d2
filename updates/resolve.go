package updates

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// Query is one question to the index: "which published release, and which
// of its builds, should this caller have". The upgrade API, the downloads
// of "latest", share links, the feeds and /v1/me all ask it, through
// Resolver, which adds who the caller is.
type Query struct {
	Product string
	// Current is the version the client runs; only strictly newer releases
	// are offered. "" offers the newest release that fits.
	Current string
	// Platform and Arch are the build asked for; aliases such as macos, win,
	// x64 or aarch64 are accepted. Both are required unless Filename is set
	// or AnyBuild is true; with AnyBuild, "" means any (Platform "darwin"
	// with Arch "" is any build for some Mac).
	Platform string
	Arch     string
	AnyBuild bool
	// Filename asks for the artifact of that name in the newest release
	// that has it.
	Filename string
	// Channel is the channel asked for ("" = stable); it sees its own
	// releases and those of every more stable channel.
	Channel string
	// Constraint is an optional go-version constraint the client adds
	// (">= 2.0, < 3.0"). As in go-version, a constraint without a
	// prerelease never matches a prerelease version.
	Constraint string
	// License is the license whose rules bind the caller, nil for none
	// (anonymous callers, open products, managers). Latest calls its
	// Decide, which may cache a parsed constraint inside the License: use
	// licenses from licenses.Service, whose constraints are parsed already,
	// or do not share one *License between concurrent calls.
	License *licenses.License
	// ClientID places an anonymous caller in a rollout cohort (an install
	// id the client keeps). With a License, the license ID is used instead,
	// so every install of one customer gets a staged release together.
	ClientID string
	// IgnoreRollout offers staged releases to everyone: downloads, and the
	// feeds whose clients stage updates themselves, ignore rollouts.
	IgnoreRollout bool
	// Pick, when set, chooses the build of a release instead of the default
	// preference (an exact platform and arch match, else the first build
	// that serves them): a feed's own file types. It is given the caller's
	// view of the release, holding only builds the license permits, and
	// must not modify or keep it.
	Pick func(r *releases.Release) (releases.Artifact, bool)
	// KnownProduct says the caller found the product in the catalog: if the
	// index does not hold it yet (a product created moments ago, before the
	// watch reloaded it), the answer is "nothing published", not not_found.
	KnownProduct bool
	// Now is the time entitlements are decided at; zero means time.Now().
	Now time.Time
	// Bucket, when set, replaces the package's Bucket (tests, experiments).
	Bucket func(id, product, version string) int
}

// Match is a resolved query: a release and the build chosen from it.
type Match struct {
	// Release shares its Artifacts and Metadata with the index: read them,
	// never modify them. For a license that limits platforms, Resolve and
	// Walk narrow Artifacts to the builds the license permits (a feed
	// renders exactly those).
	Release  releases.Release
	Artifact releases.Artifact
}

// Latest returns the release a client should upgrade to and its artifact
// for the client's platform and arch: the newest published release that is
//
//   - strictly newer than Current (in go-version order),
//   - visible on the channel,
//   - within Constraint,
//   - carrying an uploaded artifact that serves (Platform, Arch) and that
//     the license permits, chosen by Pick or the default preference,
//   - permitted by the license (licenses.License.Decide), and
//   - offered to this caller by its staged rollout (see Bucket), unless
//     IgnoreRollout.
//
// A release that fails any test is skipped and the next older one is
// considered, so a client outside a rollout's cohort still gets the newest
// release it may have. ok is false, with a nil error, when nothing fits (the
// API answers 204). Latest does not allocate on an update check without
// Pick.
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
	var w walk
	if err := x.prepare(&q, &w); err != nil {
		return r, a, false, err
	}
	for i := len(w.pi.entries) - 1; i >= 0; i-- {
		e := &w.pi.entries[i]
		if w.curKey != "" && e.key <= w.curKey {
			break
		}
		if art, found := w.offer(e); found {
			return e.rel, art, true, nil
		}
	}
	return r, a, false, nil
}

// Resolve is Latest for callers that need to say why nothing fits: it
// returns the match, or a *NotAvailable error naming the refusal of the
// newest release that had a build for the query but that the license
// refused (not_entitled, license_expired), else not_found. Other errors are
// Latest's.
func (x *Index) Resolve(q Query) (Match, error) {
	var m Match
	err := x.Walk(q, func(found Match) bool { m = found; return false })
	return m, err
}

// Walk calls fn with each release that Latest would offer, newest first,
// until fn returns false (feeds list several). It returns a *NotAvailable
// error when it found none, like Resolve.
func (x *Index) Walk(q Query, fn func(Match) bool) error {
	var w walk
	if err := x.prepare(&q, &w); err != nil {
		return err
	}
	found := false
	for i := len(w.pi.entries) - 1; i >= 0; i-- {
		e := &w.pi.entries[i]
		if w.curKey != "" && e.key <= w.curKey {
			break
		}
		art, ok := w.offer(e)
		if !ok {
			continue
		}
		found = true
		if !fn(Match{Release: w.view(&e.rel, e.ver), Artifact: art}) {
			return nil
		}
	}
	if found {
		return nil
	}
	return w.notAvailable()
}

// NotAvailable is the answer "nothing fits this query". Its Unwrap is the
// *portal.Error a download door shows (the license's refusal of the newest
// release that had a build, else not_found); update checks answer 204.
type NotAvailable struct {
	// Refusal is the license's refusal, or nil when no license refused
	// anything (nothing was published for the query).
	Refusal  error
	notFound error
}

func (e *NotAvailable) Error() string { return e.Unwrap().Error() }

// Unwrap returns the error a client is shown.
func (e *NotAvailable) Unwrap() error {
	if e.Refusal != nil {
		return e.Refusal
	}
	return e.notFound
}

// walk is one prepared query: its parsed parameters and the first license
// refusal seen, kept as the release and platform so that the message is
// built only if it is reported.
type walk struct {
	q          Query
	pi         *productIndex
	plat, arch string // "" = any
	rank       int
	curKey     string
	cs         version.Constraints
	lic        *licenses.License
	now        time.Time

	refusedRel      *releases.Release
	refusedVer      *version.Version
	refusedPlatform string
}

func (x *Index) prepare(q *Query, w *walk) error {
	pi, found := x.product(q.Product)
	if !found {
		// The parameters are still checked first: bad input is EInvalid
		// whatever the product.
		if err := x.prepareFor(q, w); err != nil {
			return err
		}
		if !q.KnownProduct {
			return portal.Errorf(portal.ENotFound, "no product %q", truncate(q.Product, 80))
		}
		pi = &productIndex{} // nothing published that the index has seen yet
	}
	w.pi = pi
	return x.prepareFor(q, w)
}

// prepareFor parses the query into w; w.pi, when set, resolves Current
// without parsing.
func (x *Index) prepareFor(q *Query, w *walk) (err error) {
	ch, err := releases.ParseChannel(q.Channel)
	if err != nil {
		return err
	}
	byName := q.Filename != ""
	if q.Platform != "" || !(q.AnyBuild || byName) {
		if w.plat, err = releases.ParsePlatform(q.Platform); err != nil {
			return err
		}
	}
	if q.Arch != "" || !(q.AnyBuild || byName) {
		if w.arch, err = releases.ParseArch(q.Arch); err != nil {
			return err
		}
	}
	if q.Current != "" {
		pi := w.pi
		if pi == nil {
			pi = &productIndex{}
		}
		if _, w.curKey, err = x.parseVersion(pi, q.Current); err != nil {
			return err
		}
	}
	if q.Constraint != "" {
		if w.cs, err = x.parseConstraint(q.Constraint); err != nil {
			return err
		}
	}
	w.q, w.rank, w.lic, w.now = *q, releases.ChannelRank(ch), q.License, q.Now
	if w.now.IsZero() {
		w.now = time.Now()
	}
	if w.lic != nil {
		// What refuses every release is said as such, not as "no update".
		if err := w.lic.RefusesAll(q.Product, w.now); err != nil {
			return err
		}
	}
	return nil
}

// offer applies the query to one published release: channel, constraint,
// the build, the license, the rollout. It records the first license
// refusal of a release that had a build for the query.
func (w *walk) offer(e *entry) (releases.Artifact, bool) {
	if e.rank < 0 || e.rank > w.rank {
		return releases.Artifact{}, false
	}
	if w.cs != nil && !w.cs.Check(e.ver) {
		return releases.Artifact{}, false
	}
	art, ok := w.choose(&e.rel, e.ver)
	if !ok {
		return art, false
	}
	if !w.q.IgnoreRollout && !offered(&w.q, w.lic, &e.rel) {
		return art, false
	}
	return art, true
}

// choose picks the caller's build of r, or records why the license refuses
// it. It is the one per-release rule, shared by the index walk and by
// Resolver for single releases read from the catalog.
func (w *walk) choose(r *releases.Release, ver *version.Version) (releases.Artifact, bool) {
	serving := w.firstServing(r)
	if serving == nil {
		return releases.Artifact{}, false
	}
	lic := w.lic
	if lic != nil {
		if !lic.Permits(target(r, ver, ""), w.now) {
			w.refused(r, ver, "")
			return releases.Artifact{}, false
		}
	}
	var art releases.Artifact
	var ok bool
	if w.q.Pick != nil {
		view := w.view(r, ver)
		art, ok = w.q.Pick(&view)
	} else if a := w.preferred(r, ver); a != nil {
		art, ok = *a, true
	}
	if !ok && !w.permitted(r, ver, serving) {
		// A build was there, but not for this license's platforms.
		w.refused(r, ver, serving.Platform)
	}
	return art, ok
}

func (w *walk) refused(r *releases.Release, ver *version.Version, platform string) {
	if w.refusedRel == nil {
		w.refusedRel, w.refusedVer, w.refusedPlatform = r, ver, platform
	}
}

// notAvailable builds the error for a walk that found nothing.
func (w *walk) notAvailable() *NotAvailable {
	na := &NotAvailable{}
	if w.refusedRel != nil && w.lic != nil {
		na.Refusal = w.lic.Decide(target(w.refusedRel, w.refusedVer, w.refusedPlatform), w.now)
	}
	what := w.q.Filename
	switch {
	case what != "":
	case w.plat == "":
		what = "a build"
	case w.arch == "":
		what = "a build for " + w.plat
	default:
		what = "a build for " + w.plat + "/" + w.arch
	}
	ch, _ := releases.ParseChannel(w.q.Channel)
	na.notFound = portal.Errorf(portal.ENotFound, "no %s release of %s has %s", ch, w.q.Product, what)
	return na
}

// serves reports whether a serves the query's platform and arch ("" = any).
func (w *walk) serves(a *releases.Artifact) bool {
	if a.Status != releases.Uploaded {
		return false
	}
	if w.q.Filename != "" && a.Filename != w.q.Filename {
		return false
	}
	switch {
	case w.plat == "":
		return true
	case w.arch == "":
		return a.Platform == w.plat || a.Platform == "any"
	}
	return releases.Serves(a.Platform, a.Arch, w.plat, w.arch)
}

// permitted reports whether the license lets the caller have artifact a of
// release r. Decide depends on the artifact only through its platform, so
// licenses that name no platforms are asked nothing per artifact.
func (w *walk) permitted(r *releases.Release, ver *version.Version, a *releases.Artifact) bool {
	if w.lic == nil || !w.lic.LimitsPlatforms() {
		return true
	}
	return w.lic.Permits(target(r, ver, a.Platform), w.now)
}

func target(r *releases.Release, ver *version.Version, platform string) licenses.Target {
	return licenses.Target{Product: r.Product, Version: r.Version, Channel: r.Channel, Status: r.Status,
		PublishedAt: r.PublishedAt, Platform: platform, Parsed: ver}
}

func (w *walk) firstServing(r *releases.Release) *releases.Artifact {
	for i := range r.Artifacts {
		if w.serves(&r.Artifacts[i]) {
			return &r.Artifacts[i]
		}
	}
	return nil
}

// preferred is the default choice among the builds that serve the query
// and that the license permits: the exact platform and arch, else the
// first in the release's order (universal, any).
func (w *walk) preferred(r *releases.Release, ver *version.Version) *releases.Artifact {
	var best *releases.Artifact
	for i := range r.Artifacts {
		a := &r.Artifacts[i]
		if !w.serves(a) || !w.permitted(r, ver, a) {
			continue
		}
		if a.Platform == w.plat && a.Arch == w.arch {
			return a
		}
		if best == nil {
			best = a
		}
	}
	return best
}

// view is r as the caller sees it: without the builds its license does not
// permit. It copies only when something is left out.
func (w *walk) view(r *releases.Release, ver *version.Version) releases.Release {
	if w.lic == nil || !w.lic.LimitsPlatforms() {
		return *r
	}
	keep := 0
	for i := range r.Artifacts {
		if w.permitted(r, ver, &r.Artifacts[i]) {
			keep++
		}
	}
	if keep == len(r.Artifacts) {
		return *r
	}
	v := *r
	v.Artifacts = make([]releases.Artifact, 0, keep)
	for i := range r.Artifacts {
		if w.permitted(r, ver, &r.Artifacts[i]) {
			v.Artifacts = append(v.Artifacts, r.Artifacts[i])
		}
	}
	return v
}

// offered applies a release's staged rollout to the caller.
func offered(q *Query, lic *licenses.License, r *releases.Release) bool {
	p := r.Rollout
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
	return bucket(id, q.Product, r.Version) < p
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
