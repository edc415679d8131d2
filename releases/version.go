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
	}
	return v, nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Bytes that order the parts of an encoded prerelease the way go-version
// compares them: at each position a numeric identifier sorts below the end
// of the prerelease, which sorts below an alphanumeric identifier; and a
// version without prerelease sorts above every prerelease of it.
const (
	preNumeric = 0x01
	preEnd     = 0x02
	preAlpha   = 0x03
	noPre      = 0xff
)

// VersionKey encodes v so that bytewise order of keys is go-version's order
// of versions, and versions go-version holds equal (build metadata and
// trailing zero segments aside) get the same key. The catalog stores
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
