package releases_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		ok      bool
		segs    []int64 // want Segments64 when ok
		pre     string
		meta    string
		comment string
	}{
		{in: "", comment: "empty"},
		{in: "v", comment: "prefix only"},
		{in: "1.2.3.4.5.x", comment: "junk after segments"},
		{in: strings.Repeat("1", 300), comment: "300 characters"},
		{in: "1." + strings.Repeat("0", releases.MaxVersionLen), comment: "just over the length limit"},
		{in: "1.2.3.4.5", comment: "five segments"},
		{in: "1.2.3.4.5-rc.1", comment: "five segments with prerelease"},
		{in: "1.0.0-01", comment: "leading zero numeric prerelease"},
		{in: "1.0.0-rc.007", comment: "leading zero in a later identifier"},
		{in: "1.0.0-00", comment: "double zero identifier"},
		{in: "1.0.0-alpha.-1", comment: "negative numeric identifier: go-version orders it as -1"},
		{in: "1.0.0--1", comment: "negative numeric identifier first"},
		{in: "1.0.0-rc.-0", comment: "negative zero identifier"},
		{in: "1.0.0-99999999999999999999", comment: "numeric identifier beyond int64: go-version compares it inconsistently"},
		{in: "1.0.0-rc.-99999999999999999999", comment: "negative numeric identifier beyond int64"},
		{in: "1.2.3 ", comment: "trailing space"},
		{in: " 1.2.3", comment: "leading space"},
		{in: "1.2.3-", comment: "empty prerelease"},
		{in: "1.2.3+", comment: "empty build"},
		{in: "1.2.3-rc..1", comment: "empty identifier"},
		{in: "1.2.3-rc.1\x00", comment: "NUL"},
		{in: "V1.2.3", comment: "capital V"},
		{in: "1.2.3rc1", comment: "prerelease without separator (not semver)"},
		{in: "99999999999999999999.0.0", comment: "segment overflows int64"},
		{in: "-1.2.3", comment: "negative major"},
		{in: "1.-2.3", comment: "negative minor"},
		{in: "1.2.3-ü", comment: "non-ASCII prerelease"},

		{in: "1", ok: true, segs: []int64{1, 0, 0}},
		{in: "1.2", ok: true, segs: []int64{1, 2, 0}},
		{in: "1.2.3", ok: true, segs: []int64{1, 2, 3}},
		{in: "1.2.3.4", ok: true, segs: []int64{1, 2, 3, 4}},
		{in: "v1.2.3", ok: true, segs: []int64{1, 2, 3}},
		{in: "1.2.3+build.5", ok: true, segs: []int64{1, 2, 3}, meta: "build.5"},
		{in: "1.2.3-rc.1+b", ok: true, segs: []int64{1, 2, 3}, pre: "rc.1", meta: "b"},
		{in: "1.0.0-0", ok: true, segs: []int64{1, 0, 0}, pre: "0"},
		{in: "1.0.0-10", ok: true, segs: []int64{1, 0, 0}, pre: "10"},
		{in: "1.0.0-alpha-1", ok: true, segs: []int64{1, 0, 0}, pre: "alpha-1"},
		{in: "1.0.0-rc.1.x-y", ok: true, segs: []int64{1, 0, 0}, pre: "rc.1.x-y"},
		{in: "1.0.0-9223372036854775807", ok: true, segs: []int64{1, 0, 0}, pre: "9223372036854775807", comment: "largest numeric identifier"},
		{in: "1.0.0--", ok: true, segs: []int64{1, 0, 0}, pre: "-", comment: "a lone hyphen is alphanumeric"},
		{in: "1.0.0-rc.-a.1-", ok: true, segs: []int64{1, 0, 0}, pre: "rc.-a.1-"},
		{in: "1.0.0-0a", ok: true, segs: []int64{1, 0, 0}, pre: "0a", comment: "alphanumeric with a leading zero is fine"},
		{in: "1.0.0+001", ok: true, segs: []int64{1, 0, 0}, meta: "001", comment: "build metadata may have leading zeros"},
		{in: "1.2.3.4-beta.2", ok: true, segs: []int64{1, 2, 3, 4}, pre: "beta.2"},
		{in: "1." + strings.Repeat("0", releases.MaxVersionLen-2), ok: true, segs: []int64{1, 0, 0}, comment: "exactly the length limit"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			v, err := releases.ParseVersion(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseVersion(%q) = %v, want an error (%s)", tt.in, v, tt.comment)
				}
				if c := portal.ErrorCode(err); c != portal.EInvalid {
					t.Fatalf("ParseVersion(%q): code %q, want %q", tt.in, c, portal.EInvalid)
				}
				if m := portal.ErrorMessage(err); len(m) > 400 {
					t.Errorf("message echoes too much input (%d bytes)", len(m))
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseVersion(%q): %v", tt.in, err)
			}
			if got := v.Segments64(); fmt.Sprint(got) != fmt.Sprint(tt.segs) {
				t.Errorf("segments %v, want %v", got, tt.segs)
			}
			if v.Prerelease() != tt.pre {
				t.Errorf("prerelease %q, want %q", v.Prerelease(), tt.pre)
			}
			if v.Metadata() != tt.meta {
				t.Errorf("metadata %q, want %q", v.Metadata(), tt.meta)
			}
		})
	}
}

func mustVersion(t testing.TB, s string) *version.Version {
	t.Helper()
	v, err := releases.ParseVersion(s)
	if err != nil {
		t.Fatalf("ParseVersion(%q): %v", s, err)
	}
	return v
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func TestVersionKeyOrderExamples(t *testing.T) {
	ordered := []string{
		"0.0.1",
		"0.9",
		"1.0.0-0",
		"1.0.0-1",
		"1.0.0-2",
		"1.0.0-10",
		"1.0.0-alpha",
		"1.0.0-alpha.1",
		"1.0.0-alpha.2",
		"1.0.0-alpha.10",
		"1.0.0-alpha.beta",
		"1.0.0-beta",
		"1.0.0-beta.2",
		"1.0.0-beta.11",
		"1.0.0-rc.1",
		"1.0.0",
		"1.0.1-rc.1",
		"1.0.1",
		"1.0.1.1",
		"1.0.2",
		"1.1",
		"1.10.0",
		"2.0.0.0.0"[:7], // "2.0.0.0": a fourth zero segment is 2.0.0
		"10.0.0",
	}
	for i := 1; i < len(ordered); i++ {
		a, b := mustVersion(t, ordered[i-1]), mustVersion(t, ordered[i])
		if bytes.Compare(releases.VersionKey(a), releases.VersionKey(b)) >= 0 {
			t.Errorf("VersionKey(%s) >= VersionKey(%s)", ordered[i-1], ordered[i])
		}
		if a.Compare(b) >= 0 {
			t.Errorf("go-version disagrees with the example: %s >= %s", ordered[i-1], ordered[i])
		}
	}
}

func TestVersionKeyEqualSpellings(t *testing.T) {
	groups := [][]string{
		{"1.2.3", "v1.2.3", "1.2.3+x", "v1.2.3+build.5", "1.2.3.0", "01.02.03"},
		{"1", "1.0", "1.0.0", "v1.0.0.0", "1.0.0+b"},
		{"1.0.0-rc.1", "v1.0.0-rc.1+b", "1.0.0.0-rc.1"},
	}
	for _, g := range groups {
		want := releases.VersionKey(mustVersion(t, g[0]))
		for _, s := range g[1:] {
			if got := releases.VersionKey(mustVersion(t, s)); !bytes.Equal(got, want) {
				t.Errorf("VersionKey(%s) = %x, want VersionKey(%s) = %x", s, got, g[0], want)
			}
		}
	}
	// And different versions never share a key.
	distinct := []string{"1.2.3", "1.2.3.1", "1.2.3-0", "1.2.3-rc", "1.2.3-rc.0", "1.2.4", "1.2.3-rc.1", "1.2.3-rc1", "1.2.3-rc-1"}
	seen := map[string]string{}
	for _, s := range distinct {
		k := string(releases.VersionKey(mustVersion(t, s)))
		if o, dup := seen[k]; dup {
			t.Errorf("VersionKey(%s) == VersionKey(%s)", s, o)
		}
		seen[k] = s
	}
}

// genVersion returns a random version string ParseVersion accepts: 1 to 4
// numeric segments (small values, so that collisions and ties are
// frequent), an optional prerelease of numeric and alphanumeric identifiers,
// optional build metadata and an optional "v".
func genVersion(r *rand.Rand) string {
	var b strings.Builder
	if r.IntN(4) == 0 {
		b.WriteByte('v')
	}
	n := 1 + r.IntN(4)
	for i := range n {
		if i > 0 {
			b.WriteByte('.')
		}
		// Mostly 0-3; sometimes big.
		if r.IntN(10) == 0 {
			fmt.Fprint(&b, r.Int64N(1<<62))
		} else {
			fmt.Fprint(&b, r.IntN(4))
		}
	}
	if r.IntN(3) > 0 {
		b.WriteByte('-')
		ids := 1 + r.IntN(3)
		for i := range ids {
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(genIdent(r))
		}
	}
	if r.IntN(4) == 0 {
		b.WriteByte('+')
		b.WriteString([]string{"b", "build.5", "001", "x-y.z", "sha.abc123"}[r.IntN(5)])
	}
	return b.String()
}

// neighbours returns versions close to v: its prerelease extended by one
// identifier, cut by one, changed in its last identifier or dropped, and its
// last segment bumped, with and without build metadata.
func neighbours(r *rand.Rand, v *version.Version) []string {
	segs := v.Segments64()
	core := make([]string, len(segs))
	for i, s := range segs {
		core[i] = strconv.FormatInt(s, 10)
	}
	c := strings.Join(core, ".")
	pre := v.Prerelease()
	out := []string{c, c + "+other"}
	bumped := append([]string(nil), core...)
	bumped[len(bumped)-1] = strconv.FormatInt(segs[len(segs)-1]+1, 10)
	out = append(out, strings.Join(bumped, ".")+"-"+genIdent(r))
	if pre == "" {
		return append(out, c+"-"+genIdent(r), c+"-"+genIdent(r)+"."+genIdent(r))
	}
	ids := strings.Split(pre, ".")
	out = append(out,
		c+"-"+pre+"."+genIdent(r),
		c+"-"+pre+"."+genIdent(r),
		c+"-"+pre+"."+genIdent(r)+"+b",
	)
	if len(ids) > 1 {
		out = append(out, c+"-"+strings.Join(ids[:len(ids)-1], "."))
	}
	ids[len(ids)-1] = genIdent(r)
	return append(out, c+"-"+strings.Join(ids, "."))
}

func genIdent(r *rand.Rand) string {
	switch r.IntN(5) {
	case 0, 1:
		return fmt.Sprint(r.IntN(12)) // numeric, no leading zeros
	case 2:
		return fmt.Sprint(r.Int64N(1 << 62)) // big numeric
	case 3:
		return []string{"alpha", "beta", "rc", "a", "b", "alpha1", "beta-2", "rc~1", "Z", "zz"}[r.IntN(10)]
	default:
		return []string{"1a", "0a", "2b3", "10x", "9-9", "-", "-a", "1-"}[r.IntN(8)] // digit-led and hyphen alphanumerics
	}
}

// goVersionQuirk reports whether go-version's Compare of a and b is one of
// the two cases where it is not a total order, and so where VersionKey
// deliberately differs from it. Every other pair is guaranteed to agree.
//
//  1. Different segment counts (after go-version pads to three) with equal
//     numeric values: go-version compares segments only, treating missing
//     ones as zero, and ignores the prereleases: 1.2.3.0-alpha == 1.2.3-beta
//     == 1.2.3, while it holds 1.2.3-alpha < 1.2.3. VersionKey drops a fourth zero segment and
//     orders 1.2.3.0-alpha exactly like 1.2.3-alpha.
//  2. Equal segments, and the first difference of the prereleases is the end
//     of one against an alphanumeric identifier of the other: go-version
//     says 1.0.0-x.a < 1.0.0-x, yet also 1.0.0-x < 1.0.0-x.1 < 1.0.0-x.a, a
//     cycle. VersionKey follows SemVer: 1.0.0-x < 1.0.0-x.a.
func goVersionQuirk(a, b *version.Version) bool {
	sa, sb := a.Segments64(), b.Segments64()
	if len(sa) != len(sb) {
		if a.Prerelease() == "" && b.Prerelease() == "" {
			return false
		}
		for len(sa) < len(sb) {
			sa = append(sa, 0)
		}
		for len(sb) < len(sa) {
			sb = append(sb, 0)
		}
		return fmt.Sprint(sa) == fmt.Sprint(sb)
	}
	if fmt.Sprint(sa) != fmt.Sprint(sb) || a.Prerelease() == "" || b.Prerelease() == "" {
		return false
	}
	pa, pb := strings.Split(a.Prerelease(), "."), strings.Split(b.Prerelease(), ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		switch {
		case i >= len(pa):
			return !isNumeric(pb[i])
		case i >= len(pb):
			return !isNumeric(pa[i])
		case pa[i] != pb[i]:
			return false
		}
	}
	return false
}

func isNumeric(id string) bool {
	_, err := strconv.ParseInt(id, 10, 64)
	return err == nil
}

func TestVersionKeyMatchesGoVersionCompare(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	vs := make([]*version.Version, 0, n)
	for len(vs) < n {
		s := genVersion(r)
		v, err := releases.ParseVersion(s)
		if err != nil {
			if len(s) > releases.MaxVersionLen {
				continue
			}
			t.Fatalf("generated version %q refused: %v", s, err)
		}
		vs = append(vs, v)
	}
	keys := make([][]byte, n)
	for i, v := range vs {
		keys[i] = releases.VersionKey(v)
	}
	compared, skipped, failures := 0, 0, 0
	check := func(a, b *version.Version, ka, kb []byte) {
		want := a.Compare(b)
		got := sign(bytes.Compare(ka, kb))
		if got != want {
			failures++
			if failures <= 20 {
				t.Errorf("%s vs %s: VersionKey order %d, go-version Compare %d", a.Original(), b.Original(), got, want)
			}
		}
	}
	for i := range vs {
		// Every version against its neighbours in generation order and
		// against a sample of the rest: n*40 pairs, plenty of ties.
		for k := 0; k < 40; k++ {
			j := r.IntN(n)
			a, b := vs[i], vs[j]
			if goVersionQuirk(a, b) {
				skipped++
				continue
			}
			compared++
			check(a, b, keys[i], keys[j])
		}
		// Random pairs rarely share segments and a prerelease prefix, where
		// the subtle cases are: compare with close relatives too.
		for _, s := range neighbours(r, vs[i]) {
			b, err := releases.ParseVersion(s)
			if err != nil {
				continue // grew past MaxVersionLen
			}
			if goVersionQuirk(vs[i], b) {
				skipped++
				continue
			}
			compared++
			check(vs[i], b, keys[i], releases.VersionKey(b))
		}
	}
	if failures > 0 {
		t.Fatalf("%d of %d pairs disagree", failures, compared)
	}
	if compared < n*30 {
		t.Fatalf("only %d pairs compared (%d skipped as go-version quirks): generator too narrow", compared, skipped)
	}
	t.Logf("%d pairs agree; %d skipped as go-version quirks", compared, skipped)
}

// TestVersionKeyGoVersionQuirks pins the documented disagreements, so a
// go-version upgrade that changes them is noticed, and checks what
// VersionKey does instead.
func TestVersionKeyGoVersionQuirks(t *testing.T) {
	tests := []struct {
		lo, hi string // VersionKey order: lo < hi
		goCmp  int    // go-version's Compare(lo, hi)
	}{
		{"1.2.3.0-alpha", "1.2.3-beta", 0},
		{"1.2.3.0-alpha", "1.2.3", 0},
		{"1.2.3-alpha", "1.2.3.0", 0},
		{"1.0.0-x", "1.0.0-x.a", 1},
		{"1.0.0-alpha", "1.0.0-alpha.beta", 1},
		{"1.0.0-rc.1", "1.0.0-rc.1.x-y", 1},
	}
	for _, tt := range tests {
		lo, hi := mustVersion(t, tt.lo), mustVersion(t, tt.hi)
		if !goVersionQuirk(lo, hi) || !goVersionQuirk(hi, lo) {
			t.Errorf("quirk predicate does not cover %s vs %s", tt.lo, tt.hi)
		}
		if got := lo.Compare(hi); got != tt.goCmp {
			t.Errorf("go-version now says %s vs %s = %d, not %d: revisit goVersionQuirk and the comment on VersionKey", tt.lo, tt.hi, got, tt.goCmp)
		}
		if bytes.Compare(releases.VersionKey(lo), releases.VersionKey(hi)) >= 0 {
			t.Errorf("VersionKey(%s) >= VersionKey(%s)", tt.lo, tt.hi)
		}
	}
	// The cycle that makes case 2 unavoidable: x < x.1 < x.a < x.
	x, x1, xa := mustVersion(t, "1.0.0-x"), mustVersion(t, "1.0.0-x.1"), mustVersion(t, "1.0.0-x.a")
	if !(x.LessThan(x1) && x1.LessThan(xa) && xa.LessThan(x)) {
		t.Log("go-version's prerelease order is no longer cyclic: VersionKey could now match it everywhere")
	}
	// VersionKey treats 1.2.3.0-x as 1.2.3-x.
	if !bytes.Equal(releases.VersionKey(mustVersion(t, "1.2.3.0-alpha")), releases.VersionKey(mustVersion(t, "1.2.3-alpha"))) {
		t.Error("VersionKey(1.2.3.0-alpha) != VersionKey(1.2.3-alpha)")
	}
}

func TestVersionKeyIsAPrefixFreeTotalOrder(t *testing.T) {
	// Keys become store keys after "rel/r/<slug>/": they must fit the store's
	// key limit with the longest version and slug.
	long := "1.2.3-" + strings.Repeat("a.", 60) + "b"
	v := mustVersion(t, long)
	if n := len("rel/r/") + 64 + 1 + len(releases.VersionKey(v)); n > 1024 {
		t.Fatalf("key for %q is %d bytes, above the store's limit", long, n)
	}
	// Distinct prereleases whose identifiers are prefixes of one another.
	a := releases.VersionKey(mustVersion(t, "1.0.0-a"))
	b := releases.VersionKey(mustVersion(t, "1.0.0-a.a"))
	c := releases.VersionKey(mustVersion(t, "1.0.0-aa"))
	if !(bytes.Compare(a, b) < 0 && bytes.Compare(b, c) < 0) {
		t.Errorf("want 1.0.0-a < 1.0.0-a.a < 1.0.0-aa by key")
	}
}
