package releases_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/releases"
)

// FuzzVersionOrder: ParseVersion never panics and refuses only with
// EInvalid; for two versions it accepts, the bytewise order of their
// VersionKeys is SemVer 2.0.0 precedence, and agrees with go-version's
// Compare except in the two cases version.go documents (go-version puts
// the end of a prerelease above an alphanumeric identifier, and ignores
// prereleases when the numbers of segments differ).
func FuzzVersionOrder(f *testing.F) {
	for _, p := range [][2]string{
		{"1.2.3", "1.2.3"}, {"1.2.3", "v1.2.3+build.5"}, {"1.2.3", "1.2.3.0"}, {"1.2.3-rc.1", "1.2.3"},
		{"1.0.0-alpha", "1.0.0-alpha.1"}, {"1.0.0-alpha.1", "1.0.0-alpha.beta"}, {"1.0.0-x", "1.0.0-x.a"},
		{"1.2.3.0-a", "1.2.3-b"}, {"1.0.0-2", "1.0.0-10"}, {"1.0.0-a~", "1.0.0-a-"}, {"1.0.0-01", "1.0.0-1"},
		{"1.0.0--1", "1.0.0-0"}, {"1.0.0-99999999999999999999", "1.0.0-a"}, {"1.2", "1.2.0.0"}, {"1.2.3.4.5", "1"},
		{"18446744073709551615.0.0", "9223372036854775807.0.0"}, {"", "v"}, {"1.0.0-", "1.0.0+"},
	} {
		f.Add(p[0], p[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		va, errA := releases.ParseVersion(a)
		vb, errB := releases.ParseVersion(b)
		for _, err := range []error{errA, errB} {
			if err != nil && portal.ErrorCode(err) != portal.EInvalid {
				t.Fatalf("ParseVersion refused with %q, want invalid: %v", portal.ErrorCode(err), err)
			}
		}
		if errA != nil || errB != nil {
			return
		}
		key := bytes.Compare(releases.VersionKey(va), releases.VersionKey(vb))
		want := semverCompare(va, vb)
		if key != want {
			t.Fatalf("VersionKey order of %q and %q is %d, SemVer precedence %d", a, b, key, want)
		}
		if got := releases.VersionKey(va); !bytes.Equal(got, releases.VersionKey(va)) {
			t.Fatalf("VersionKey(%q) is not deterministic", a)
		}
		gv := va.Compare(vb)
		// Where go-version departs from SemVer precedence itself (an
		// alphanumeric identifier with a long run of digits, such as
		// "100000000000000000000A" against "A"), VersionKey follows SemVer,
		// checked above.
		if gv == key || gv != want || documentedException(va, vb) {
			return
		}
		t.Fatalf("%q vs %q: go-version says %d, VersionKey %d, and no documented exception applies", a, b, gv, key)
	})
}

// numbers returns v's numeric segments without trailing zeros beyond the
// third, as VersionKey reads them.
func numbers(v *version.Version) []int64 {
	s := v.Segments64()
	for len(s) > 3 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	for len(s) < 4 {
		s = append(s, 0)
	}
	return s
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// semverCompare is SemVer 2.0.0 precedence (section 11), written out from
// the specification independently of VersionKey.
func semverCompare(a, b *version.Version) int {
	na, nb := numbers(a), numbers(b)
	for i := 0; i < max(len(na), len(nb)); i++ {
		var x, y int64
		if i < len(na) {
			x = na[i]
		}
		if i < len(nb) {
			y = nb[i]
		}
		if c := cmpInt(x, y); c != 0 {
			return c
		}
	}
	pa, pb := a.Prerelease(), b.Prerelease()
	switch {
	case pa == "" && pb == "":
		return 0
	case pa == "":
		return 1
	case pb == "":
		return -1
	}
	ia, ib := strings.Split(pa, "."), strings.Split(pb, ".")
	for i := 0; i < min(len(ia), len(ib)); i++ {
		xa, errA := strconv.ParseInt(ia[i], 10, 64)
		xb, errB := strconv.ParseInt(ib[i], 10, 64)
		switch {
		case errA == nil && errB == nil:
			if c := cmpInt(xa, xb); c != 0 {
				return c
			}
		case errA == nil:
			return -1
		case errB == nil:
			return 1
		default:
			if c := strings.Compare(ia[i], ib[i]); c != 0 {
				return c
			}
		}
	}
	return cmpInt(int64(len(ia)), int64(len(ib)))
}

// documentedException reports the two cases where VersionKey follows SemVer
// and go-version does not (see the comment on preEnd in version.go).
func documentedException(a, b *version.Version) bool {
	if len(a.Segments64()) != len(b.Segments64()) && (a.Prerelease() != "" || b.Prerelease() != "") {
		return true // go-version ignores the prereleases
	}
	ia, ib := strings.Split(a.Prerelease(), "."), strings.Split(b.Prerelease(), ".")
	if a.Prerelease() == "" || b.Prerelease() == "" {
		return false
	}
	short, long := ia, ib
	if len(short) > len(long) {
		short, long = long, short
	}
	for i := range short {
		if short[i] != long[i] {
			return false
		}
	}
	_, err := strconv.ParseInt(long[len(short)], 10, 64)
	return err != nil // the end of one against an alphanumeric identifier
}

// FuzzValidateFilename: ValidateFilename never panics, refuses only with
// EInvalid, and what it accepts is one path element of valid UTF-8 of at
// most MaxFilenameLen bytes, without '/', '\\', NUL or any control
// character, not "." or "..", without surrounding white space.
func FuzzValidateFilename(f *testing.F) {
	for _, s := range []string{
		"app-1.2.3-linux-amd64.tar.gz", "", ".", "..", "../x", `..\x`, "a/b", "a\x00b", "a\nb", "a\u0085b",
		"invoice\u202eexe.pdf", "a\u2028b", "zero\u200bwidth.zip", " app.zip", "app.zip\u3000", "app\xff.zip",
		"app\uFFFD.zip", strings.Repeat("é", 128), "日本語.dmg", ".hidden", "-rf", "con.exe",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := releases.ValidateFilename(s)
		if err != nil {
			if portal.ErrorCode(err) != portal.EInvalid {
				t.Fatalf("ValidateFilename(%q) refused with %q, want invalid", s, portal.ErrorCode(err))
			}
			if !utf8.ValidString(portal.ErrorMessage(err)) {
				t.Fatalf("ValidateFilename(%q): message is not UTF-8: %q", s, portal.ErrorMessage(err))
			}
			return
		}
		switch {
		case s == "" || s == "." || s == "..":
			t.Fatalf("accepted %q", s)
		case len(s) > releases.MaxFilenameLen:
			t.Fatalf("accepted %d bytes", len(s))
		case !utf8.ValidString(s):
			t.Fatalf("accepted invalid UTF-8 %q", s)
		case strings.ContainsAny(s, "/\\\x00"):
			t.Fatalf("accepted a separator or NUL: %q", s)
		case strings.TrimSpace(s) != s:
			t.Fatalf("accepted surrounding white space: %q", s)
		}
		for _, r := range s {
			if unicode.IsControl(r) || r == utf8.RuneError {
				t.Fatalf("accepted control character %U in %q", r, s)
			}
		}
	})
}
