package server_test

// The catalog generator, the world builder and the in-test oracle of
// TestAgreement. The oracle is written from the rule in the test's comment,
// not from the production packages: it uses only go-version (the versions
// and constraints the API speaks) and updates.Bucket (the rollout cohort,
// which is a published formula rather than a rule of its own).

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal/updates"
)

// agreeChannels are the channels, most stable first.
var agreeChannels = []string{"stable", "rc", "beta", "alpha", "dev"}

// visibleOn reports whether a release on channel rel is seen by a caller
// asking for channel asked.
func visibleOn(asked, rel string) bool {
	r := slices.Index(agreeChannels, rel)
	return r >= 0 && r <= slices.Index(agreeChannels, asked)
}

// build is one artifact of a generated release.
type build struct{ platform, arch, file string }

// buildKinds are the builds a generated release may carry; a file of
// "dmg" asks buildFile for a Mac disk image.
var buildKinds = []build{
	{"linux", "amd64", ""}, {"linux", "arm64", ""},
	{"darwin", "arm64", ""}, {"darwin", "amd64", ""}, {"darwin", "universal", ""}, {"darwin", "universal", "dmg"},
	{"windows", "amd64", ""}, {"windows", "arm64", ""},
	{"any", "any", ""},
}

// buildFile names a build the way its platform's packaging does, with an
// extension every feed that serves the platform accepts: .AppImage on
// Linux, .exe on Windows, .zip for Macs and platform-neutral files; a Mac
// build whose file is "dmg" is a disk image, which Sparkle installs and
// electron-updater and Squirrel.Mac do not.
func buildFile(product, v string, b build) string {
	if b.platform == "darwin" && b.file == "dmg" {
		return fmt.Sprintf("%s-%s-mac-%s.dmg", product, v, b.arch)
	}
	switch b.platform {
	case "linux":
		return fmt.Sprintf("%s-%s-%s.AppImage", product, v, b.arch)
	case "windows":
		return fmt.Sprintf("%s-Setup-%s-%s.exe", product, v, b.arch)
	case "darwin":
		return fmt.Sprintf("%s-%s-mac-%s.zip", product, v, b.arch)
	}
	return fmt.Sprintf("%s-%s-any.zip", product, v)
}

// relSpec is one release of a generated catalog.
type relSpec struct {
	product, version, channel string
	builds                    []build // in artifact order
	rollout                   int     // 0 = everyone
	yank, draft               bool
	published                 time.Time // as the server recorded it
}

// licSpec is one license of a generated catalog.
type licSpec struct {
	name       string
	product    string
	constraint string
	channels   []string
	platforms  []string
	expiryStep int    // -1: never expires; else expires after this many publishes
	onExpiry   string // with expiryStep
	status     string // "", "suspended" or "revoked"
	expires    *time.Time
}

func (l *licSpec) String() string {
	s := "license " + l.name
	switch {
	case l.constraint != "":
		s += fmt.Sprintf("(constraint %q)", l.constraint)
	case l.channels != nil:
		s += fmt.Sprintf("(channels %v)", l.channels)
	case l.platforms != nil:
		s += fmt.Sprintf("(platforms %v)", l.platforms)
	case l.expiryStep >= 0:
		s += fmt.Sprintf("(after publish #%d)", l.expiryStep)
	}
	return s
}

// catalogSpec is a whole generated catalog: releases of the licensed
// product "app" and the open product "free" in the order they are created
// and published, and the licenses. The licensed product "other" has none:
// it only gives an outsider publisher and a license of another product.
type catalogSpec struct {
	name     string
	steps    []*relSpec
	licenses []*licSpec
}

// standardLicenses is one license of each kind the rule distinguishes;
// the varying rules come from pick.
func standardLicenses(constraint string, channels, platforms []string, maintainStep, revokeStep int) []*licSpec {
	return []*licSpec{
		{name: "plain", product: "app", expiryStep: -1},
		{name: "constraint", product: "app", constraint: constraint, expiryStep: -1},
		{name: "channels", product: "app", channels: channels, expiryStep: -1},
		{name: "platforms", product: "app", platforms: platforms, expiryStep: -1},
		{name: "maintain", product: "app", expiryStep: maintainStep, onExpiry: "maintain"},
		{name: "expired", product: "app", expiryStep: revokeStep, onExpiry: "revoke"},
		{name: "suspended", product: "app", expiryStep: -1, status: "suspended"},
		{name: "revoked", product: "app", expiryStep: -1, status: "revoked"},
		{name: "other-product", product: "other", expiryStep: -1},
	}
}

// genCatalog makes a catalog from seed: 3 to 7 releases per product on
// every channel, random builds in random artifact order, some staged,
// yanked or left as drafts, published in a shuffled order across products
// (so publish dates and version order disagree).
func genCatalog(seed uint64) catalogSpec {
	rng := rand.New(rand.NewPCG(seed, 0xa9ee))
	var steps []*relSpec
	for _, p := range []string{"app", "free"} {
		n := 3 + rng.IntN(5)
		seen := map[string]bool{}
		for len(seen) < n {
			ch := "stable"
			if rng.IntN(2) == 0 {
				ch = agreeChannels[1+rng.IntN(len(agreeChannels)-1)]
			}
			v := fmt.Sprintf("%d.%d.%d", 1+rng.IntN(3), rng.IntN(4), rng.IntN(2))
			if ch != "stable" {
				v += fmt.Sprintf("-%s.%d", ch, 1+rng.IntN(2))
			}
			if seen[v] {
				continue
			}
			seen[v] = true
			r := &relSpec{product: p, version: v, channel: ch}
			order := rng.Perm(len(buildKinds))
			for _, k := range order {
				if rng.IntN(100) < 40 {
					r.builds = append(r.builds, buildKinds[k])
				}
			}
			if len(r.builds) == 0 {
				r.builds = append(r.builds, buildKinds[order[0]])
			}
			for i := range r.builds {
				r.builds[i].file = buildFile(p, v, r.builds[i])
			}
			if rng.IntN(4) == 0 {
				r.rollout = 1 + rng.IntN(99)
			}
			switch x := rng.IntN(10); {
			case x == 0:
				r.draft = true
			case x <= 2:
				r.yank = true
			}
			steps = append(steps, r)
		}
	}
	rng.Shuffle(len(steps), func(i, j int) { steps[i], steps[j] = steps[j], steps[i] })
	published := 0
	for _, r := range steps {
		if !r.draft {
			published++
		}
	}
	constraints := []string{"< 2.0", ">= 2.0", ">= 1.1, < 3.0"}
	channels := [][]string{{"stable"}, {"stable", "beta"}}
	platforms := [][]string{{"linux"}, {"darwin"}, {"windows"}, {"linux", "darwin"}}
	return catalogSpec{
		name:  fmt.Sprintf("seed=%d", seed),
		steps: steps,
		licenses: standardLicenses(constraints[rng.IntN(len(constraints))], channels[rng.IntN(len(channels))],
			platforms[rng.IntN(len(platforms))], rng.IntN(published+1), rng.IntN(published+1)),
	}
}

// fixedCatalog is the disagreement that started this test: a license for
// Linux only, and a release 2.0.0 with a darwin/arm64 zip and an any/any
// file. Asked for darwin/arm64, every door must offer 2.0.0's any file.
func fixedCatalog() catalogSpec {
	rel := func(p, v string, bs ...build) *relSpec {
		r := &relSpec{product: p, version: v, channel: "stable", builds: bs}
		for i := range r.builds {
			r.builds[i].file = buildFile(p, v, r.builds[i])
		}
		return r
	}
	return catalogSpec{
		name: "fixed: platforms=[linux] license, 2.0.0 with darwin/arm64 and any/any",
		steps: []*relSpec{
			rel("app", "1.0.0", build{"linux", "amd64", ""}),
			rel("free", "1.0.0", build{"any", "any", ""}),
			rel("app", "2.0.0", build{"darwin", "arm64", ""}, build{"any", "any", ""}),
		},
		licenses: standardLicenses("< 2.0", []string{"stable"}, []string{"linux"}, 1, 0),
	}
}

// macDiskImageCatalog: the newest Mac release of each product has only a
// disk image, which Sparkle installs and electron-updater's MacUpdater and
// Squirrel.Mac cannot (they install a .zip): their doors offer 1.0.0, the
// appcast and the doors without a file preference 2.0.0.
func macDiskImageCatalog() catalogSpec {
	rel := func(p, v string, bs ...build) *relSpec {
		r := &relSpec{product: p, version: v, channel: "stable", builds: bs}
		for i := range r.builds {
			r.builds[i].file = buildFile(p, v, r.builds[i])
		}
		return r
	}
	return catalogSpec{
		name: "fixed: newest Mac release with only a dmg",
		steps: []*relSpec{
			rel("app", "1.0.0", build{"darwin", "universal", ""}),
			rel("free", "1.0.0", build{"darwin", "universal", ""}),
			rel("app", "2.0.0", build{"darwin", "universal", "dmg"}),
			rel("free", "2.0.0", build{"darwin", "universal", "dmg"}, build{"darwin", "arm64", "dmg"}),
		},
		licenses: standardLicenses(">= 1.0", []string{"stable"}, []string{"darwin"}, 3, 1),
	}
}

// callerKind is who asks.
type callerKind int

const (
	anonymous callerKind = iota
	adminCaller
	publisherCaller // publisher of "app"
	outsiderCaller  // publisher of "other"
	licenseCaller
)

type agreeCaller struct {
	name  string
	auth  string
	kind  callerKind
	lic   *licSpec
	licID string
}

// world is a built catalog on a running portal.
type world struct {
	e       *env
	spec    catalogSpec
	now     time.Time // the clock while the doors are asked
	callers []*agreeCaller
}

// buildWorld creates the products, the licenses (expiring between two
// publishes, so they are created before any), then every release in spec
// order: created, its builds uploaded and completed, published an hour
// after the previous publish, yanked when the spec says so. Drafts keep
// one build waiting when they have several.
func buildWorld(e *env, spec catalogSpec) *world {
	t := e.t
	t.Helper()
	const gap = time.Hour
	admin := bearer(e.admin)
	e.product("app", "licensed")
	e.product("free", "open")
	e.product("other", "licensed")
	w := &world{e: e, spec: spec}
	w.callers = []*agreeCaller{
		{name: "anonymous", kind: anonymous},
		{name: "admin", auth: admin, kind: adminCaller},
		{name: "publisher(app)", auth: bearer(e.token("publisher", "app")), kind: publisherCaller},
		{name: "publisher(other)", auth: bearer(e.token("publisher", "other")), kind: outsiderCaller},
	}
	t0 := e.now()
	for _, l := range spec.licenses {
		body := map[string]any{"customer": "customer " + l.name, "product": l.product}
		if l.constraint != "" {
			body["constraint"] = l.constraint
		}
		if l.channels != nil {
			body["channels"] = l.channels
		}
		if l.platforms != nil {
			body["platforms"] = l.platforms
		}
		if l.expiryStep >= 0 {
			exp := t0.Add(time.Duration(l.expiryStep)*gap + gap/2)
			l.expires = &exp
			body["expires_at"] = exp
			body["on_expiry"] = l.onExpiry
		}
		id, key := e.license(body)
		switch l.status {
		case "suspended":
			e.must(200, e.do("POST", "/v1/licenses/"+id+"/suspend", admin, nil))
		case "revoked":
			e.must(200, e.do("POST", "/v1/licenses/"+id+"/revoke", admin, nil))
		}
		w.callers = append(w.callers, &agreeCaller{name: l.String(), auth: "License " + key, kind: licenseCaller, lic: l, licID: id})
	}
	for _, r := range spec.steps {
		base := "/v1/products/" + r.product + "/releases"
		body := map[string]any{"version": r.version, "channel": r.channel}
		if r.rollout > 0 {
			body["rollout"] = r.rollout
		}
		e.must(201, e.do("POST", base, admin, body))
		for i, b := range r.builds {
			content := []byte(strings.Repeat(b.file+" built for "+b.platform+"/"+b.arch+"\n", 8))
			if r.draft && i == len(r.builds)-1 && i > 0 {
				e.declare(admin, r.product, r.version, b.file, b.platform, b.arch, content)
				continue
			}
			e.upload(admin, r.product, r.version, b.file, b.platform, b.arch, content)
		}
		if r.draft {
			continue
		}
		e.advance(gap)
		pub := e.must(200, e.do("POST", base+"/"+r.version+"/publish", admin, nil)).json(t)
		at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(pub["published_at"]))
		if err != nil {
			t.Fatalf("%s %s: published_at %v", r.product, r.version, pub["published_at"])
		}
		r.published = at
		if r.yank {
			e.must(200, e.do("POST", base+"/"+r.version+"/yank", admin, nil))
		}
	}
	e.advance(gap)
	w.now = e.now()
	return w
}

// policy is what the rule makes of a caller on a product before looking
// at any release: a hard refusal, or the license rules that apply (nil
// for none) and the rollout identity the caller carries.
type policy struct {
	status int
	code   string
	rules  *licSpec
	licID  string // the rollout id instead of ?client_id=
}

func (w *world) policy(c *agreeCaller, product string) policy {
	if product == "free" {
		return policy{} // open: license rules do not apply, whoever asks
	}
	switch c.kind {
	case anonymous:
		return policy{status: 401, code: "unauthorized"}
	case outsiderCaller:
		return policy{status: 403, code: "forbidden"}
	case adminCaller, publisherCaller:
		return policy{}
	}
	l := c.lic
	switch {
	case l.product != product:
		return policy{status: 403, code: "not_entitled"}
	case l.status == "revoked":
		return policy{status: 403, code: "license_revoked"}
	case l.status == "suspended":
		return policy{status: 403, code: "license_suspended"}
	case l.expires != nil && !w.now.Before(*l.expires) && l.onExpiry != "maintain":
		return policy{status: 403, code: "license_expired"}
	}
	return policy{rules: l, licID: c.licID}
}

// permits is "" when license l (nil for none) may have build b of release
// r now, else the refusal code.
func (w *world) permits(l *licSpec, r *relSpec, b build) string {
	if l == nil {
		return ""
	}
	if l.expires != nil && !w.now.Before(*l.expires) && !r.published.Before(*l.expires) {
		return "license_expired" // maintained: only what was published before expiry
	}
	if l.constraint != "" {
		cs, err := version.NewConstraint(l.constraint)
		if err != nil {
			panic(err)
		}
		if !cs.Check(version.Must(version.NewVersion(r.version))) {
			return "not_entitled"
		}
	}
	if len(l.channels) > 0 && !slices.Contains(l.channels, r.channel) {
		return "not_entitled"
	}
	if len(l.platforms) > 0 && b.platform != "any" && !slices.Contains(l.platforms, b.platform) {
		return "not_entitled"
	}
	return ""
}

// published returns the product's published, unyanked releases, newest
// version first.
func (w *world) published(product string) []*relSpec {
	var rs []*relSpec
	for _, r := range w.spec.steps {
		if r.product == product && !r.draft && !r.yank {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b *relSpec) int {
		return version.Must(version.NewVersion(b.version)).Compare(version.Must(version.NewVersion(a.version)))
	})
	return rs
}

// serves reports whether build b runs on (platform, arch).
func serves(b build, platform, arch string) bool {
	if b.platform != "any" && b.platform != platform {
		return false
	}
	return b.arch == "any" || b.arch == arch ||
		(b.arch == "universal" && b.platform == "darwin" && (arch == "amd64" || arch == "arm64"))
}

// query is one question to the doors.
type query struct {
	product, channel, platform, arch string
	clientID                         string // "" = none sent
}

func (q query) String() string {
	s := q.product + " " + q.channel + " " + q.platform + "/" + q.arch
	if q.clientID != "" {
		s += " client_id=" + q.clientID
	}
	return s
}

// verdict is the oracle's answer: a release and build, or nothing and the
// refusal code of the newest release that had a serving build the license
// refused.
type verdict struct {
	rel     *relSpec
	b       build
	refusal string
}

// resolve applies the rule: the newest candidate on q's channel with a
// build that fits (serves the query, and for feeds has an extension the
// feed takes) and the license permits, skipping releases whose staged
// rollout leaves the caller out when rollout is set; pick chooses among
// the usable builds.
func (w *world) resolve(pol policy, q query, fits func(build) bool, pick func([]build) build, rollout bool) verdict {
	var v verdict
	for _, r := range w.published(q.product) {
		if !visibleOn(q.channel, r.channel) {
			continue
		}
		var serving []build
		for _, b := range r.builds {
			if fits(b) {
				serving = append(serving, b)
			}
		}
		if len(serving) == 0 {
			continue
		}
		if rollout && r.rollout > 0 && r.rollout < 100 {
			id := q.clientID
			if pol.licID != "" {
				id = pol.licID
			}
			if id == "" || updates.Bucket(id, q.product, r.version) >= r.rollout {
				continue
			}
		}
		var usable []build
		code := ""
		for _, b := range serving {
			if c := w.permits(pol.rules, r, b); c == "" {
				usable = append(usable, b)
			} else if code == "" {
				code = c
			}
		}
		if len(usable) == 0 {
			if v.refusal == "" {
				v.refusal = code
			}
			continue
		}
		v.rel, v.b = r, pick(usable)
		return v
	}
	return v
}

// pickExact is the choice of the doors without a file preference: the
// exact platform and arch, else the first usable build in artifact order.
func pickExact(platform, arch string) func([]build) build {
	return func(bs []build) build {
		for _, b := range bs {
			if b.platform == platform && b.arch == arch {
				return b
			}
		}
		return bs[0]
	}
}

func servesQuery(platform, arch string) func(build) bool {
	return func(b build) bool { return serves(b, platform, arch) }
}

// The feeds' file types, in their order of preference (releases/feeds).
var (
	appcastExts  = []string{".zip", ".dmg", ".tar.xz", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".pkg", ".mpkg"}
	electronExts = map[string][]string{
		"windows": {".exe"},
		"darwin":  {".zip"}, // Squirrel.Mac installs a zip, never a disk image
		"linux":   {".appimage", ".deb", ".rpm", ".pacman"},
	}
	tauriExts = map[string][]string{
		"darwin":  {".app.tar.gz", ".tar.gz"},
		"linux":   {".appimage", ".appimage.tar.gz", ".deb", ".rpm"},
		"windows": {"-setup.exe", ".exe", ".msi", ".nsis.zip", ".msi.zip"},
	}
	squirrelExts = []string{".zip"}
)

func extRank(name string, exts []string) int {
	lower := strings.ToLower(name)
	for i, e := range exts {
		if strings.HasSuffix(lower, e) {
			return i
		}
	}
	return -1
}

// archRank is how exactly b matches: exact, universal, same platform, any.
func archRank(b build, platform, arch string) int {
	switch {
	case b.platform == platform && b.arch == arch:
		return 0
	case b.arch == "universal":
		return 1
	case b.platform == platform:
		return 2
	}
	return 3
}

// feedFits is servesQuery restricted to the feed's file types.
func feedFits(platform, arch string, exts []string) func(build) bool {
	return func(b build) bool { return serves(b, platform, arch) && extRank(b.file, exts) >= 0 }
}

// pickFeed is a feed's choice: by file type, then arch exactness, then
// artifact order.
func pickFeed(platform, arch string, exts []string) func([]build) build {
	return func(bs []build) build {
		best, score := 0, 1<<30
		for i, b := range bs {
			if s := extRank(b.file, exts)*4 + archRank(b, platform, arch); s < score {
				best, score = i, s
			}
		}
		return bs[best]
	}
}

// meRelease is one entry of /v1/me's releases.
type meRelease struct {
	version, channel string
	builds           []build
}

// meList is what /v1/me must list for a license of the licensed product
// that no hard refusal stops: every published release, newest first, with
// the builds the license may have, leaving out releases with none; at
// most 20.
func (w *world) meList(l *licSpec) []meRelease {
	var out []meRelease
	for _, r := range w.published(l.product) {
		var bs []build
		for _, b := range r.builds {
			if w.permits(l, r, b) == "" {
				bs = append(bs, b)
			}
		}
		if len(bs) > 0 {
			out = append(out, meRelease{r.version, r.channel, bs})
		}
		if len(out) == 20 {
			break
		}
	}
	return out
}

// meAnswer is a query's answer read from a /v1/me list: the first listed
// release visible on the channel with a build serving the query.
func meAnswer(list []meRelease, q query) (string, string, bool) {
	for _, r := range list {
		if !visibleOn(q.channel, r.channel) {
			continue
		}
		var bs []build
		for _, b := range r.builds {
			if serves(b, q.platform, q.arch) {
				bs = append(bs, b)
			}
		}
		if len(bs) > 0 {
			return r.version, pickExact(q.platform, q.arch)(bs).file, true
		}
	}
	return "", "", false
}
