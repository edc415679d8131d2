package releases

import (
	"github.com/portaldist/portal"
)

// Channels, most stable first. A channel sees its own releases and those of
// every more stable channel: beta sees beta, rc and stable.
var Channels = []string{"stable", "rc", "beta", "alpha", "dev"}

// ChannelRank is the position of ch in Channels, or -1.
func ChannelRank(ch string) int {
	for i, c := range Channels {
		if c == ch {
			return i
		}
	}
	return -1
}

// ParseChannel validates ch; "" means stable.
func ParseChannel(ch string) (string, error) {
	if ch == "" {
		return "stable", nil
	}
	if ChannelRank(ch) < 0 {
		return "", portal.Errorf(portal.EInvalid, "unknown channel %q: use stable, rc, beta, alpha or dev", ch)
	}
	return ch, nil
}

// Visible reports whether a release on channel release is offered to a
// caller asking for channel asked.
func Visible(asked, release string) bool {
	r := ChannelRank(release)
	return r >= 0 && r <= ChannelRank(asked)
}
