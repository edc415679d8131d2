package rpm

import (
	"bytes"
	"strings"

	"github.com/portaldist/portal/pkgmeta"
)

// rpm's RPMSENSE bits that primary.xml reads.
const (
	sensePostTrans  = 1 << 5
	sensePrereq     = 1 << 6
	sensePreTrans   = 1 << 7
	senseScriptPre  = 1 << 9
	senseScriptPost = 1 << 10
	senseMissingOK  = 1 << 19 // a legacy weak dependency: a recommends
)

// dep is one dependency as primary.xml writes it.
type dep struct {
	name, flags, epoch, ver, rel string
	pre                          bool
}

type depLists struct {
	provides, requires, conflicts, obsoletes, suggests, enhances, recommends, supplements []dep
}

// flagString is the comparison of a dependency ("" without one, or for a
// combination createrepo_c does not name).
func flagString(f uint32) string {
	switch f & 0xf {
	case 2:
		return "LT"
	case 4:
		return "GT"
	case 8:
		return "EQ"
	case 10:
		return "LE"
	case 12:
		return "GE"
	}
	return ""
}

// parseEVR splits "[epoch:]version[-release]" as createrepo_c does: the
// epoch defaults to "0", and ok is false for a non-numeric epoch (such a
// dependency is left out).
func parseEVR(s string) (epoch, ver, rel string, ok bool) {
	if s == "" {
		return "", "", "", true
	}
	epoch = "0"
	rest := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		e := s[:i]
		if !numericPrefix(e) {
			return "", "", "", false
		}
		if e != "" {
			epoch = e
		}
		rest = s[i+1:]
	}
	ver = rest
	if i := strings.IndexByte(rest, '-'); i >= 0 {
		ver, rel = rest[:i], rest[i+1:]
	}
	return epoch, ver, rel, true
}

// numericPrefix reports whether C's strtol would consume all of s (what
// createrepo_c checks): optional white space and sign, then digits. The
// empty string counts, as strtol stops at once.
func numericPrefix(s string) bool {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	t = strings.TrimPrefix(strings.TrimPrefix(t, "+"), "-")
	if t == "" {
		return s == ""
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func makeDep(d pkgmeta.RPMDep) (dep, bool) {
	e, v, r, ok := parseEVR(d.Version)
	if !ok {
		return dep{}, false
	}
	return dep{name: d.Name, flags: flagString(d.Flags), epoch: e, ver: v, rel: r}, true
}

// primaryDeps applies createrepo_c's rules: requires drop rpmlib()
// dependencies, the package's own primary files, what the package itself
// provides and exact duplicates; "pre" marks requires needed by scripts;
// of the libc.so.6 requires only the highest version is kept, last; a
// requires flagged missing-ok is a recommends.
func primaryDeps(m *pkgmeta.RPM) depLists {
	var out depLists
	conv := func(in []pkgmeta.RPMDep) []dep {
		var ds []dep
		for _, d := range in {
			if x, ok := makeDep(d); ok {
				ds = append(ds, x)
			}
		}
		return ds
	}
	out.provides = conv(m.Provides)
	out.conflicts = conv(m.Conflicts)
	out.obsoletes = conv(m.Obsoletes)
	out.suggests = conv(m.Suggests)
	out.enhances = conv(m.Enhances)
	out.supplements = conv(m.Supplements)

	provided := make(map[string]bool, len(m.Provides))
	for _, d := range m.Provides {
		if _, ok := makeDep(d); ok {
			provided[d.Name+flagString(d.Flags)+d.Version] = true
		}
	}
	files := make(map[string]bool, len(m.Files))
	for _, f := range m.Files {
		files[f.Path] = true
	}
	type seenReq struct {
		flags, version string
		pre            bool
	}
	seen := map[string]seenReq{}
	var libc *dep
	var legacyRecommends []dep
	for _, d := range m.Requires {
		flags := flagString(d.Flags)
		if strings.HasPrefix(d.Name, "rpmlib(") {
			continue
		}
		if strings.HasPrefix(d.Name, "/") && files[d.Name] && isPrimaryFile(d.Name) {
			continue
		}
		if provided[d.Name+flags+d.Version] {
			continue
		}
		pre := d.Flags&(sensePrereq|senseScriptPre|sensePostTrans|sensePreTrans|senseScriptPost) != 0
		if s, ok := seen[d.Name]; ok && s.flags == flags && s.version == d.Version && s.pre == pre {
			continue
		}
		x, ok := makeDep(d)
		if !ok {
			continue
		}
		if d.Flags&senseMissingOK != 0 {
			legacyRecommends = append(legacyRecommends, x)
			continue
		}
		x.pre = pre
		if strings.HasPrefix(x.name, "libc.so.6") {
			if libc == nil || compareLibc(libc.name, x.name) == 2 {
				c := x
				libc = &c
			}
			continue
		}
		out.requires = append(out.requires, x)
		seen[d.Name] = seenReq{flags, d.Version, pre}
	}
	if libc != nil {
		out.requires = append(out.requires, *libc)
	}
	out.recommends = append(legacyRecommends, conv(m.Recommends)...)
	return out
}

func writeDeps(w *bytes.Buffer, elem string, ds []dep) {
	if len(ds) == 0 {
		return
	}
	w.WriteString("    <" + elem + ">\n")
	for _, d := range ds {
		if d.name == "" {
			continue
		}
		w.WriteString(`      <rpm:entry name="` + attr(d.name) + `"`)
		if d.flags != "" {
			w.WriteString(` flags="` + d.flags + `"`)
			if d.epoch != "" {
				w.WriteString(` epoch="` + attr(d.epoch) + `"`)
			}
			if d.ver != "" {
				w.WriteString(` ver="` + attr(d.ver) + `"`)
			}
			if d.rel != "" {
				w.WriteString(` rel="` + attr(d.rel) + `"`)
			}
		}
		if d.pre {
			w.WriteString(` pre="1"`)
		}
		w.WriteString("/>\n")
	}
	w.WriteString("    </" + elem + ">\n")
}

// compareLibc compares two "libc.so.6(GLIBC_x.y)..." names as createrepo_c
// does: 0 same, 1 the first is higher, 2 the second is.
func compareLibc(a, b string) int {
	ai, bi := strings.IndexByte(a, '('), strings.IndexByte(b, '(')
	if r, ok := byPresence(ai >= 0, bi >= 0); ok {
		return r
	}
	ae, be := strings.IndexByte(a[ai:], ')'), strings.IndexByte(b[bi:], ')')
	if r, ok := byPresence(ae >= 0, be >= 0); ok {
		return r
	}
	av, bv := a[ai+1:ai+ae], b[bi+1:bi+be]
	if r, ok := byPresence(av != "", bv != ""); ok {
		return r
	}
	av = strings.TrimLeftFunc(av, func(r rune) bool { return r < '0' || r > '9' })
	bv = strings.TrimLeftFunc(bv, func(r rune) bool { return r < '0' || r > '9' })
	if r, ok := byPresence(av != "", bv != ""); ok {
		return r
	}
	switch Vercmp(av, bv) {
	case 1:
		return 1
	case -1:
		return 2
	}
	return 0
}

// byPresence is compareLibc's answer from whether each side has a part
// (0 neither, 1 the first only, 2 the second only); ok is false when both
// have it and the parts themselves decide.
func byPresence(a, b bool) (r int, ok bool) {
	switch {
	case !a && !b:
		return 0, true
	case !a:
		return 2, true
	case !b:
		return 1, true
	}
	return 0, false
}

// Vercmp is rpm's rpmvercmp: -1, 0 or 1 as a is older than, the same as,
// or newer than b. Segments of digits compare as numbers and beat letters,
// "~" sorts before anything (pre-releases), "^" after the end (snapshots).
func Vercmp(a, b string) int {
	if a == b {
		return 0
	}
	isAlnum := func(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isDigit := func(c byte) bool { return c >= '0' && c <= '9' }
	for len(a) > 0 || len(b) > 0 {
		for len(a) > 0 && !isAlnum(a[0]) && a[0] != '~' && a[0] != '^' {
			a = a[1:]
		}
		for len(b) > 0 && !isAlnum(b[0]) && b[0] != '~' && b[0] != '^' {
			b = b[1:]
		}
		if len(a) > 0 && a[0] == '~' || len(b) > 0 && b[0] == '~' {
			if len(a) == 0 || a[0] != '~' {
				return 1
			}
			if len(b) == 0 || b[0] != '~' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) > 0 && a[0] == '^' || len(b) > 0 && b[0] == '^' {
			if len(a) == 0 {
				return -1
			}
			if len(b) == 0 {
				return 1
			}
			if a[0] != '^' {
				return 1
			}
			if b[0] != '^' {
				return -1
			}
			a, b = a[1:], b[1:]
			continue
		}
		if len(a) == 0 || len(b) == 0 {
			break
		}
		numeric := isDigit(a[0])
		span := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
		if numeric {
			span = isDigit
		}
		i, j := 0, 0
		for i < len(a) && span(a[i]) {
			i++
		}
		for j < len(b) && span(b[j]) {
			j++
		}
		sa, sb := a[:i], b[:j]
		if sb == "" {
			// Segments of different kinds: numbers are newer.
			if numeric {
				return 1
			}
			return -1
		}
		if numeric {
			sa, sb = strings.TrimLeft(sa, "0"), strings.TrimLeft(sb, "0")
			if len(sa) != len(sb) {
				if len(sa) > len(sb) {
					return 1
				}
				return -1
			}
		}
		if c := strings.Compare(sa, sb); c != 0 {
			return c
		}
		a, b = a[i:], b[j:]
	}
	if len(a) == 0 && len(b) == 0 {
		return 0
	}
	if len(a) == 0 {
		return -1
	}
	return 1
}
