package server_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// TestAgreement asks every door that answers "which release and which
// build may this caller have" the same questions, over generated catalogs
// and every kind of caller, and checks each answer against an oracle
// written from the rule below (agreement_helpers_test.go), and the doors
// without a file-type preference against each other.
//
// The rule:
//   - Candidates: published releases (never drafts, never yanked), newest
//     version first, visible on the asked channel.
//   - A build serves (platform, arch) when its platform is the asked one or
//     "any", and its arch is the asked one, "any", or "universal" on darwin
//     for amd64 and arm64. Only uploaded artifacts count.
//   - A license's constraint, channels and platforms (an "any" build is
//     always allowed) apply per build; an expired license with on_expiry
//     maintain keeps the releases published strictly before it expired.
//   - The usable builds of a release serve the query and are permitted.
//     Doors without a file preference take the exact platform and arch,
//     else the first usable build in artifact order; feeds take their own
//     file types in their order, then arch exactness (electron-updater's
//     -mac file and Squirrel.Mac only a .zip: a Mac release with only a
//     .dmg is not theirs to offer).
//   - The answer is the newest candidate with a usable build. The upgrade
//     API, Tauri and Squirrel.Mac also skip a staged release (rollout
//     1-99) unless updates.Bucket(id, product, version) < rollout, id being
//     the license ID (license callers on the licensed product) or
//     ?client_id=; without an id no staged release is offered.
//   - Open products: no license rules, for anyone. Admins and the
//     product's publishers on the licensed product: no license rules.
//   - Hard refusals, the same status and code at every door: anonymous on
//     the licensed product 401 unauthorized, another product's publisher
//     403 forbidden, revoked 403 license_revoked, suspended 403
//     license_suspended, expired with on_expiry revoke 403
//     license_expired, another product's license 403 not_entitled. /v1/me
//     answers them 200 with "access": code and no releases; share-link
//     creation answers any API token 403 forbidden, anonymous callers 401
//     unauthorized, and a revoked, suspended or expired (revoke) license
//     its refusal on every product.
//   - Nothing available: upgrade API, Tauri, Squirrel.Mac 204; electron
//     404 not_found; appcast 200 without items; latest download, share
//     link and releases/latest 403 with the refusal code of the newest
//     candidate whose serving builds the license all refused, else 404
//     not_found.
func TestAgreement(t *testing.T) {
	specs := []catalogSpec{fixedCatalog(), macDiskImageCatalog()}
	for seed := uint64(1); seed <= 4; seed++ {
		specs = append(specs, genCatalog(seed))
	}
	for i, spec := range specs {
		t.Run(spec.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			w := buildWorld(newEnv(t), spec)
			built := time.Since(start)
			var fixed *agreeCaller
			if i == 0 {
				fixed = checkFixedOracle(t, w)
			}
			r := w.run(uint64(i))
			t.Logf("%d releases, %d rows, %d door answers compared; built in %v, asked in %v",
				len(spec.steps), r.rows, r.compared, built.Round(time.Millisecond), (time.Since(start) - built).Round(time.Millisecond))
			if fixed != nil {
				// The named case: say first which doors get it wrong.
				var lines []string
				for _, f := range r.failures {
					if strings.Contains(f.line, " "+fixed.name+" ") && strings.Contains(f.line, " app stable darwin/") {
						lines = append(lines, f.line)
					}
				}
				if len(lines) > 0 {
					t.Errorf("the fixed example (%s, app stable darwin/arm64; want 2.0.0 app-2.0.0-any.zip):\n%s", fixed.name, strings.Join(lines, "\n"))
				}
			}
			r.report(t)
		})
	}
}

// checkFixedOracle pins the oracle on the example that started this test,
// so the oracle itself cannot drift: a Linux-only license asking for
// darwin/arm64 is offered 2.0.0's any/any file.
func checkFixedOracle(t *testing.T, w *world) *agreeCaller {
	t.Helper()
	for _, c := range w.callers {
		if c.kind != licenseCaller || c.lic.name != "platforms" {
			continue
		}
		q := query{product: "app", channel: "stable", platform: "darwin", arch: "arm64"}
		v := w.resolve(w.policy(c, "app"), q, servesQuery("darwin", "arm64"), pickExact("darwin", "arm64"), true)
		if v.rel == nil || v.rel.version != "2.0.0" || v.b.file != "app-2.0.0-any.zip" {
			t.Fatalf("oracle for the fixed example: %+v, want 2.0.0 app-2.0.0-any.zip", v)
		}
		return c
	}
	t.Fatal("the fixed catalog has no platforms license")
	return nil
}

// The doors.
const (
	doorUpgrade  = "upgrade"
	doorDownload = "latest/download"
	doorLink     = "share-link"
	doorMe       = "me"
	doorMeList   = "me(list)"
	doorLatest   = "releases/latest"
	doorAppcast  = "appcast"
	doorElectron = "electron"
	doorTauri    = "tauri"
	doorSquirrel = "squirrel"
	doorsAgree   = "(disagree)"
)

var doorOrder = []string{doorUpgrade, doorDownload, doorLink, doorMe, doorMeList, doorLatest, doorAppcast, doorElectron, doorTauri, doorSquirrel, doorsAgree}

// answer is a door's answer reduced to what the rule decides: the status,
// the error code (or /v1/me's access code), and the release and file.
type answer struct {
	status        int
	code          string
	version, file string
}

func (a answer) String() string {
	s := fmt.Sprint(a.status)
	if a.code != "" {
		s += " " + a.code
	}
	if a.version != "" {
		s += " " + a.version
	}
	if a.file != "" {
		s += " " + a.file
	}
	if a.status/100 == 2 && a.code == "" && a.version == "" && a.file == "" && a.status != 204 {
		s += " (nothing)"
	}
	return s
}

// errAnswer reduces a non-2xx response.
func errAnswer(r resp) answer { return answer{status: r.status, code: r.code()} }

// fromURL returns the version and file name a feed's download URL names
// (/v1/products/{p}/releases/{v}/files/{file}: the path ends with the file
// name, which electron-updater relies on).
func fromURL(raw string) (string, string) {
	u, err := url.Parse(raw)
	if err != nil {
		return "?", "? " + raw
	}
	seg := strings.Split(u.Path, "/")
	i := slices.Index(seg, "releases")
	if i < 0 || i+4 != len(seg) || seg[i+2] != "files" {
		return "?", "? " + raw
	}
	return seg[i+1], seg[i+3]
}

type failure struct{ door, line string }

type runResult struct {
	name     string
	rows     int
	compared int
	failures []failure
}

// expected and got are one row's answers by door.
type rowAnswers map[string]answer

var (
	queryChannels = []string{"stable", "beta", "dev"}
	queryTargets  = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"darwin", "arm64"}, {"darwin", "amd64"}, {"windows", "amd64"}}
	tauriArch     = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}
)

// run asks every door every question and collects the mismatches.
func (w *world) run(seed uint64) *runResult {
	rng := rand.New(rand.NewPCG(seed, 0xc1d))
	res := &runResult{name: w.spec.name}
	for _, c := range w.callers {
		var me *meDoc
		if c.kind == licenseCaller && c.lic.product == "app" {
			me = w.fetchMe(c)
			w.checkMeList(res, c, me)
		}
		for _, product := range []string{"app", "free"} {
			for _, qi := range w.queries(rng, c, product) {
				{
					ch, tg := queryChannels[qi/len(queryTargets)], queryTargets[qi%len(queryTargets)]
					q := query{product: product, channel: ch, platform: tg[0], arch: tg[1]}
					if rng.IntN(2) == 0 {
						q.clientID = fmt.Sprintf("install-%d", rng.IntN(1_000_000))
					}
					want, group := w.expect(c, q, me != nil)
					hard := w.policy(c, q.product).status != 0
					got := w.ask(c, q, me)
					res.rows++
					for _, d := range doorOrder {
						wa, ok := want[d]
						if !ok {
							continue
						}
						res.compared++
						if ga := got[d]; ga != wa {
							label := q.String()
							if d == doorElectron && q.platform == "darwin" {
								label = product + " " + ch + " darwin/* (-mac.yml)"
							}
							res.failures = append(res.failures, failure{d, fmt.Sprintf("%-16s %-40s %-42s got %s, want %s", d, c.name, label, ga, wa)})
						}
					}
					if line := disagreement(got, group, hard); line != "" {
						res.failures = append(res.failures, failure{doorsAgree, fmt.Sprintf("%-16s %-40s %-42s %s", doorsAgree, c.name, q.String(), line)})
					}
				}
			}
		}
	}
	return res
}

// queries picks the rows a caller is asked on a product, as indexes into
// queryChannels × queryTargets: all of them where license rules or no rules
// decide, a random few where the answer
// cannot depend on the query (a hard refusal) or must only equal the
// anonymous caller's (anyone but the anonymous caller on the open
// product). That keeps the test fast without leaving a caller out.
func (w *world) queries(rng *rand.Rand, c *agreeCaller, product string) []int {
	all := len(queryChannels) * len(queryTargets)
	sample := 0
	switch {
	case product == "free" && c.kind != anonymous:
		sample = 4
	case w.policy(c, product).status != 0:
		sample = 3
	}
	if sample == 0 {
		return rng.Perm(all)
	}
	return rng.Perm(all)[:sample]
}

// disagreement compares the doors without a file preference with each
// other: the release and file they name, or, when the caller is refused
// outright (hard), the refusal they give; without a hard refusal every
// other answer is "nothing", which each door says in its own way.
// releases/latest names no file. It returns "" when they agree.
func disagreement(got rowAnswers, group []string, hard bool) string {
	if len(group) < 2 {
		return ""
	}
	proj := func(d string) string {
		a := got[d]
		switch {
		case a.status/100 == 2 && a.version != "" && a.code == "":
			if d == doorLatest {
				return a.version + " *"
			}
			return a.version + " " + a.file
		case !hard:
			return "nothing"
		case d == doorMe && a.status == 200 && a.code != "":
			return "refused " + a.code
		case a.status == 401 || a.status == 403:
			return "refused " + a.code
		case a.status == 204 || (a.status == 200 && a.code == ""):
			return "nothing"
		}
		return a.String()
	}
	agree := func(x, y string) bool {
		xv, xf, _ := strings.Cut(x, " ")
		yv, yf, _ := strings.Cut(y, " ")
		return x == y || (xv == yv && (xf == "*" || yf == "*"))
	}
	ok := true
	for _, d := range group[1:] {
		if !agree(proj(d), proj(group[0])) {
			ok = false
		}
	}
	if ok {
		return ""
	}
	var parts []string
	for _, d := range group {
		parts = append(parts, d+"="+proj(d))
	}
	return strings.Join(parts, "  ")
}

// expect is the oracle's answer for every door that applies to the row,
// and the doors without a file preference that must agree on it (the
// upgrade API only when staged rollouts change nothing for the row).
func (w *world) expect(c *agreeCaller, q query, withMe bool) (rowAnswers, []string) {
	pol := w.policy(c, q.product)
	hard := answer{status: pol.status, code: pol.code}
	want := rowAnswers{}
	group := []string{doorDownload, doorLatest}
	exact := pickExact(q.platform, q.arch)
	np := w.resolve(pol, q, servesQuery(q.platform, q.arch), exact, false)
	npr := w.resolve(pol, q, servesQuery(q.platform, q.arch), exact, true)
	nothing := answer{status: 404, code: "not_found"}
	if np.refusal != "" {
		nothing = answer{status: 403, code: np.refusal}
	}
	ok := func(status int, v verdict, file bool) answer {
		a := answer{status: status, version: v.rel.version}
		if file {
			a.file = v.b.file
		}
		return a
	}
	// either is the answer of a door: the hard refusal, the verdict, or
	// the door's own "nothing".
	either := func(v verdict, status int, file bool, none answer) answer {
		switch {
		case pol.status != 0:
			return hard
		case v.rel != nil:
			return ok(status, v, file)
		}
		return none
	}
	want[doorUpgrade] = either(npr, 200, true, answer{status: 204})
	if npr.rel == np.rel && npr.b == np.b {
		group = append(group, doorUpgrade)
	}
	want[doorDownload] = either(np, 200, true, nothing)
	want[doorLatest] = either(np, 200, false, nothing)
	switch c.kind {
	case anonymous:
		want[doorLink] = answer{status: 401, code: "unauthorized"}
	case licenseCaller:
		// A dead license shares nothing, on any product (its links stop).
		if own := w.policy(c, c.lic.product); own.status != 0 {
			want[doorLink] = answer{status: own.status, code: own.code}
			break
		}
		want[doorLink] = either(np, 201, true, nothing)
		group = append(group, doorLink)
	default:
		want[doorLink] = answer{status: 403, code: "forbidden"}
	}
	if withMe && q.product == "app" {
		if pol.status != 0 {
			want[doorMe] = answer{status: 200, code: pol.code}
		} else {
			v, f, _ := meAnswer(w.meList(c.lic), q)
			want[doorMe] = answer{status: 200, version: v, file: f}
		}
		group = append(group, doorMe)
	}

	p, a := q.platform, q.arch
	if p == "darwin" {
		v := w.resolve(pol, q, feedFits(p, a, appcastExts), pickFeed(p, a, appcastExts), false)
		want[doorAppcast] = either(v, 200, true, answer{status: 200})
		v = w.resolve(pol, q, feedFits(p, a, squirrelExts), pickFeed(p, a, squirrelExts), true)
		want[doorSquirrel] = either(v, 200, true, answer{status: 204})
	}
	switch {
	case p == "darwin" && a == "arm64":
		// The -mac file serves every Mac: any build for either Mac arch.
		exts := electronExts["darwin"]
		fits := func(b build) bool {
			return (serves(b, "darwin", "arm64") || serves(b, "darwin", "amd64")) && extRank(b.file, exts) >= 0
		}
		v := w.resolve(pol, q, fits, pickFeed(p, a, exts), false)
		want[doorElectron] = either(v, 200, false, answer{status: 404, code: "not_found"})
	case p == "linux" || (p == "windows" && a == "amd64"):
		exts := electronExts[p]
		v := w.resolve(pol, q, feedFits(p, a, exts), pickFeed(p, a, exts), false)
		want[doorElectron] = either(v, 200, true, answer{status: 404, code: "not_found"})
	}
	v := w.resolve(pol, q, feedFits(p, a, tauriExts[p]), pickFeed(p, a, tauriExts[p]), true)
	want[doorTauri] = either(v, 200, true, answer{status: 204})
	return want, group
}

// ask puts the row's question to every door.
func (w *world) ask(c *agreeCaller, q query, me *meDoc) rowAnswers {
	e := w.e
	got := rowAnswers{}
	qs := url.Values{"platform": {q.platform}, "arch": {q.arch}, "channel": {q.channel}}
	withID := url.Values{"platform": {q.platform}, "arch": {q.arch}, "channel": {q.channel}}
	if q.clientID != "" {
		withID.Set("client_id", q.clientID)
	}
	base := "/v1/products/" + q.product

	r := e.get(base+"/upgrade?"+withID.Encode(), c.auth)
	switch r.status {
	case 200:
		var doc struct {
			Version  string
			Artifact struct{ Filename string }
		}
		json.Unmarshal(r.body, &doc)
		got[doorUpgrade] = answer{status: 200, version: doc.Version, file: doc.Artifact.Filename}
	case 204:
		got[doorUpgrade] = answer{status: 204}
	default:
		got[doorUpgrade] = errAnswer(r)
	}

	r = e.get(base+"/releases/latest/download?"+qs.Encode(), c.auth, "Accept", "application/json")
	got[doorDownload] = grantAnswer(r, 200)

	r = e.do("POST", "/v1/links", c.auth, map[string]any{
		"product": q.product, "version": "latest", "platform": q.platform, "arch": q.arch, "channel": q.channel})
	got[doorLink] = grantAnswer(r, 201)

	if me != nil {
		got[doorMe] = me.answer(q)
	}

	r = e.get(base+"/releases/latest?"+qs.Encode(), c.auth)
	if r.status == 200 {
		var doc struct{ Version string }
		json.Unmarshal(r.body, &doc)
		got[doorLatest] = answer{status: 200, version: doc.Version}
	} else {
		got[doorLatest] = errAnswer(r)
	}

	feed := "/feeds/" + q.product
	if q.platform == "darwin" {
		r = e.get(feed+"/appcast.xml?"+url.Values{"channel": {q.channel}, "arch": {q.arch}}.Encode(), c.auth)
		got[doorAppcast] = appcastAnswer(r)
		sq := url.Values{"channel": {q.channel}, "arch": {q.arch}}
		if q.clientID != "" {
			sq.Set("client_id", q.clientID)
		}
		r = e.get(feed+"/squirrel/darwin/0.0.1?"+sq.Encode(), c.auth)
		got[doorSquirrel] = oneUpdateAnswer(r)
	}

	ch := q.channel
	if ch == "stable" {
		ch = "latest"
	}
	file := ""
	switch {
	case q.platform == "darwin" && q.arch == "arm64":
		file = ch + "-mac.yml"
	case q.platform == "linux" && q.arch == "amd64":
		file = ch + "-linux.yml"
	case q.platform == "linux":
		file = ch + "-linux-" + q.arch + ".yml"
	case q.platform == "windows" && q.arch == "amd64":
		file = ch + ".yml"
	}
	if file != "" {
		r = e.get(feed+"/electron/"+file, c.auth)
		a := errAnswer(r)
		if r.status == 200 {
			var doc struct {
				Version string `yaml:"version"`
				Path    string `yaml:"path"`
			}
			if err := yaml.Unmarshal(r.body, &doc); err != nil {
				a = answer{status: 200, code: "unparsable"}
			} else {
				a = answer{status: 200, version: doc.Version}
				if q.platform != "darwin" {
					_, a.file = fromURL(doc.Path)
				}
			}
		}
		got[doorElectron] = a
	}

	tq := url.Values{"channel": {q.channel}}
	if q.clientID != "" {
		tq.Set("client_id", q.clientID)
	}
	r = e.get(feed+"/tauri/"+q.platform+"/"+tauriArch[q.arch]+"/0.0.1?"+tq.Encode(), c.auth)
	got[doorTauri] = oneUpdateAnswer(r)
	return got
}

// grantAnswer reduces a latest download (JSON) or share link answer.
func grantAnswer(r resp, okStatus int) answer {
	if r.status != okStatus {
		return errAnswer(r)
	}
	var doc struct{ Version, Filename string }
	json.Unmarshal(r.body, &doc)
	return answer{status: r.status, version: doc.Version, file: doc.Filename}
}

// appcastAnswer is the newest item of an appcast.
func appcastAnswer(r resp) answer {
	if r.status != 200 {
		return errAnswer(r)
	}
	var doc appcastDoc
	if err := xml.Unmarshal(r.body, &doc); err != nil {
		return answer{status: 200, code: "unparsable"}
	}
	if len(doc.Channel.Items) == 0 {
		return answer{status: 200}
	}
	it := doc.Channel.Items[0]
	_, f := fromURL(it.Enclosure.URL)
	return answer{status: 200, version: it.ShortVersion, file: f}
}

// oneUpdateAnswer reduces Tauri's and Squirrel.Mac's answers: the version
// and file their URL names, or 204.
func oneUpdateAnswer(r resp) answer {
	switch r.status {
	case 204:
		return answer{status: 204}
	case 200:
		var doc struct{ URL string }
		json.Unmarshal(r.body, &doc)
		v, f := fromURL(doc.URL)
		return answer{status: 200, version: v, file: f}
	}
	return errAnswer(r)
}

// meDoc is /v1/me as this test reads it.
type meDoc struct {
	status int
	code   string
	Access string
	list   []meRelease
}

func (w *world) fetchMe(c *agreeCaller) *meDoc {
	r := w.e.get("/v1/me", c.auth)
	if r.status != 200 {
		return &meDoc{status: r.status, code: r.code()}
	}
	var doc struct {
		Access   string
		Releases []struct {
			Version, Channel string
			Builds           []struct{ Filename, Platform, Arch string }
		}
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		return &meDoc{status: 200, code: "unparsable"}
	}
	m := &meDoc{status: 200, Access: doc.Access}
	for _, rel := range doc.Releases {
		mr := meRelease{version: rel.Version, channel: rel.Channel}
		for _, b := range rel.Builds {
			mr.builds = append(mr.builds, build{b.Platform, b.Arch, b.Filename})
		}
		m.list = append(m.list, mr)
	}
	return m
}

// refusedAccess reports whether /v1/me's access names a refusal rather
// than ok or maintained.
func refusedAccess(access string) bool {
	return access != "" && access != "ok" && access != "maintained"
}

// answer is the query's answer read from the list.
func (m *meDoc) answer(q query) answer {
	switch {
	case m.status != 200 || m.code != "":
		return answer{status: m.status, code: m.code}
	case refusedAccess(m.Access):
		a := answer{status: 200, code: m.Access}
		if len(m.list) > 0 {
			a.version = fmt.Sprintf("(and %d releases listed)", len(m.list))
		}
		return a
	}
	v, f, _ := meAnswer(m.list, q)
	return answer{status: 200, version: v, file: f}
}

// checkMeList compares /v1/me's whole list (versions in order, and the
// set of builds of each) with the oracle's, once per license.
func (w *world) checkMeList(res *runResult, c *agreeCaller, m *meDoc) {
	show := func(list []meRelease) string {
		var parts []string
		for _, r := range list {
			var fs []string
			for _, b := range r.builds {
				fs = append(fs, b.file)
			}
			slices.Sort(fs)
			parts = append(parts, r.version+"["+strings.Join(fs, ",")+"]")
		}
		return "[" + strings.Join(parts, " ") + "]"
	}
	pol := w.policy(c, c.lic.product)
	var want []meRelease
	if pol.status == 0 {
		want = w.meList(c.lic)
	}
	if m.status != 200 || m.code != "" {
		res.failures = append(res.failures, failure{doorMeList, fmt.Sprintf("%-16s %-40s got %d %s", doorMeList, c.name, m.status, m.code)})
		return
	}
	res.compared++
	if g, wa := show(m.list), show(want); g != wa {
		res.failures = append(res.failures, failure{doorMeList, fmt.Sprintf("%-16s %-40s got %s, want %s", doorMeList, c.name, g, wa)})
	}
}

// report fails the test with the mismatches: the count per door, then at
// most 40 lines (all with AGREEMENT_ALL=1) taken in turn from each
// failing door, so every door that disagrees shows.
func (res *runResult) report(t *testing.T) {
	t.Helper()
	if len(res.failures) == 0 {
		return
	}
	byDoor := map[string][]string{}
	for _, f := range res.failures {
		byDoor[f.door] = append(byDoor[f.door], f.line)
	}
	var counts []string
	for _, d := range doorOrder {
		if n := len(byDoor[d]); n > 0 {
			counts = append(counts, fmt.Sprintf("%s %d", d, n))
		}
	}
	limit := 40
	if os.Getenv("AGREEMENT_ALL") != "" {
		limit = len(res.failures)
	}
	var lines []string
	for i := 0; len(lines) < limit; i++ {
		added := false
		for _, d := range doorOrder {
			if i < len(byDoor[d]) && len(lines) < limit {
				lines = append(lines, byDoor[d][i])
				added = true
			}
		}
		if !added {
			break
		}
	}
	t.Errorf("%d mismatches in %d answers (%s); %d shown:\n%s", len(res.failures), res.compared,
		strings.Join(counts, ", "), len(lines), strings.Join(lines, "\n"))
}
