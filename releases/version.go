package releases

import (
	"encoding/binary"
	"strconv"
	"strings"

	version "github.com/hashicorp/go-version"

	"github.com/portaldist/portal"
)

// MaxVersionLen bounds a version string; longer ones are refused.
const MaxVersionLen = 128

// ParseVersion parses a release version: a semantic version (go-version's
// semver form, an optional leading "v"), with one to four numeric segments,
// an optional prerelease and optional build metadata. Numeric prerelease
// identifiers must not have leading zeros (go-version would order "01" and
// "1" inconsistently).
func ParseVersion(s string) (*version.Version, error) {
	if s == "" || len(s) > MaxVersionLen {
		return nil, portal.Errorf(portal.EInvalid, "version must be 1 to %d characters of a semantic version such as 1.2.3 or 2.0.0-beta.1", MaxVersionLen)
	}
	v, err := version.NewSemver(s)
	if err != nil {
		return nil, portal.Errorf(portal.EInvalid, "%q is not a semantic version such as 1.2.3 or 2.0.0-beta.1", s)
	}
	main := s
	if i := strings.IndexAny(main, "-+"); i >= 0 {
		main = main[:i]
	}
	if strings.Count(main, ".") > 3 {
		return nil, portal.Errorf(portal.EInvalid, "version %q has more than four numeric segments", s)
	}
	for _, id := range strings.Split(v.Prerelease(), ".") {
		if len(id) > 1 && id[0] == '0' && isDigits(id) {
			return nil, portal.Errorf(portal.EInvalid, "version %q: numeric prerelease identifier %q has a leading zero", s, id)
		}
		// go-version reads identifiers with strconv.ParseInt: "-1" becomes
		// the number -1, and digits beyond int64 compare by the clamped
		// value ParseInt returns with its range error, so that both
		// "a" > "99999999999999999999" and the reverse hold. Refuse both
		// rather than store versions no order can place.
		if digits, neg := strings.CutPrefix(id, "-"); isDigits(digits) && (neg || !fitsInt64(digits)) {
			return nil, portal.Errorf(portal.EInvalid, "version %q: prerelease identifier %q must be alphanumeric or a number from 0 to %d", s, truncate(id, 40), int64(1<<63-1))
		}
	}
	return v, nil
}

func fitsInt64(digits string) bool {
	_, err := strconv.ParseInt(digits, 10, 64)
	return err == nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Bytes that order the parts of an encoded prerelease: at each position the
// end of the prerelease sorts below a numeric identifier, which sorts below
// an alphanumeric one (SemVer 2.0.0 section 11: 1.0.0-alpha < 1.0.0-alpha.1
// < 1.0.0-alpha.beta); and a version without prerelease sorts above every
// prerelease of it.
//
// This is go-version's order in every case but one: go-version puts the end
// of a prerelease above an alphanumeric identifier (1.0.0-x.a < 1.0.0-x)
// while it also holds 1.0.0-x < 1.0.0-x.1 < 1.0.0-x.a, a cycle that no key
// order can follow. The catalog follows SemVer there. (go-version also
// ignores prereleases when the segment counts differ, 1.2.3.0-a == 1.2.3-b;
// VersionKey orders 1.2.3.0-a exactly like 1.2.3-a.)
const (
	preEnd     = 0x01
	preNumeric = 0x02
	preAlpha   = 0x03
	noPre      = 0xff
)

// VersionKey encodes v so that bytewise order of keys is go-version's order
// of versions (but for the exceptions above), and versions go-version holds
// equal (build metadata and trailing zero segments aside) get the same key. The catalog stores
// releases under this key, so a duplicate version is a key collision and a
// prefix scan lists releases in version order.
func VersionKey(v *version.Version) []byte {
	segs := v.Segments64()
	for len(segs) > 3 && segs[len(segs)-1] == 0 {
		segs = segs[:len(segs)-1]
	}
	key := make([]byte, 0, 8*len(segs)+16)
	for _, s := range segs {
		key = binary.BigEndian.AppendUint64(key, uint64(s))
	}
	// Pad to four segments so 1.2.3 sorts below 1.2.3.1 by bytes.
	for i := len(segs); i < 4; i++ {
		key = binary.BigEndian.AppendUint64(key, 0)
	}
	pre := v.Prerelease()
	if pre == "" {
		return append(key, noPre)
	}
	for _, id := range strings.Split(pre, ".") {
		if n, err := strconv.ParseInt(id, 10, 64); err == nil {
			key = append(key, preNumeric)
			key = binary.BigEndian.AppendUint64(key, uint64(n))
		} else {
			key = append(key, preAlpha)
			key = append(key, id...)
			key = append(key, 0)
		}
	}
	return append(key, preEnd)
}
