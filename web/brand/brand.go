// Package brand checks the vendor's branding of the web pages (accent
// colour, logo URL), for the configuration to refuse a bad value at load
// and the pages to refuse it at start. It imports nothing of the portal.
package brand

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

var colorRE = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// CheckAccentColor reports whether s is a colour the pages accept: "#rgb"
// or "#rrggbb". Nothing else reaches the stylesheet.
func CheckAccentColor(s string) error {
	if !colorRE.MatchString(s) {
		return fmt.Errorf("%q is not a colour like #2f5fd0 or #25d", s)
	}
	return nil
}

// CheckLogoURL reports whether s is a logo URL the pages accept: "" or an
// absolute http or https URL with a host, no credentials, and none of the
// characters that could break out of an attribute or a policy.
func CheckLogoURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		strings.ContainsAny(s, " \t\r\n\"'<>;,\\") {
		return fmt.Errorf("%q is not an absolute http(s) URL", s)
	}
	return nil
}
