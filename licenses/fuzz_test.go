package licenses_test

import (
	"testing"

	"github.com/portaldist/portal"
	"github.com/portaldist/portal/licenses"
	"github.com/portaldist/portal/releases"
)

// FuzzParseConstraint: ParseConstraint never panics and refuses only with
// EInvalid; an accepted constraint checks any version ParseVersion accepts
// without panicking, and its String form parses back to a constraint that
// gives the same answer (licenses store the text and re-parse it on load).
func FuzzParseConstraint(f *testing.F) {
	for _, s := range [][2]string{
		{">= 2.0, < 3.0", "2.5.1"}, {"~> 1.2", "1.3.0"}, {"~> 1.2.3", "1.3.0"}, {"= 1.0.0-beta.1", "1.0.0-beta.1"},
		{"!= 1.0", "1.0.0"}, {"", "1.0.0"}, {",", "1"}, {">=", "1"}, {"> 1.0 , , < 2", "1.5"},
		{"~> 0", "0.0.1"}, {">= 1.0.0-rc.1", "1.0.0-rc.2"}, {"< 99999999999999999999", "1"},
		{"=v1.0.0+build", "1.0.0"}, {">=1.0.0-\x00", "1"}, {"~>1.0.0-a.b.c", "1.0.0-a.b.d"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, c, v string) {
		cs, err := licenses.ParseConstraint(c)
		if err != nil {
			if portal.ErrorCode(err) != portal.EInvalid {
				t.Fatalf("ParseConstraint(%q) refused with %q, want invalid", c, portal.ErrorCode(err))
			}
			return
		}
		ver, err := releases.ParseVersion(v)
		if err != nil {
			return
		}
		ok := cs.Check(ver)
		again, err := licenses.ParseConstraint(cs.String())
		if err != nil {
			if len(cs.String()) > 256 {
				return // the normal form may be longer than the text
			}
			t.Fatalf("ParseConstraint(%q) accepted, its String %q refused: %v", c, cs.String(), err)
		}
		if again.Check(ver) != ok {
			t.Fatalf("%q and its String %q disagree on %q", c, cs.String(), v)
		}
	})
}
