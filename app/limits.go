package app

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/portaldist/portal/configs"
)

// CheckPublicURL judges the address the portal listens on (host:port, as
// configured or as bound) against cfg's public_url. Without public_url the
// portal builds every link it hands out (feeds, share links, /blobs/ links)
// from the listen address, which works only from this machine unless that
// address is one clients can reach:
//
//   - an unspecified address (0.0.0.0, ::, or no host) is refused: the
//     links would say localhost, unusable from anywhere else;
//   - any other address that is not loopback gives a warning to log: the
//     links name that address, wrong behind a proxy or a NAT;
//   - loopback, or public_url set, is fine.
func CheckPublicURL(cfg *configs.Config, addr string) (warning string, err error) {
	if cfg.PublicURLSetting != "" {
		return "", nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("app: listen address %q: %w", addr, err)
	}
	ip, ipErr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	switch {
	case host == "" || (ipErr == nil && ip.IsUnspecified()):
		return "", fmt.Errorf("public_url is not set while listening on every interface (%s): the links the portal hands out "+
			"would point to %s, which no other machine can reach; set public_url (PORTAL_PUBLIC_URL) to the URL "+
			"clients reach the portal at, or listen on one address", addr, cfg.PublicURL())
	case strings.EqualFold(host, "localhost") || (ipErr == nil && ip.IsLoopback()):
		return "", nil
	}
	return fmt.Sprintf("public_url is not set while listening on %s, which is not loopback: every link the portal hands out "+
		"starts with %s; if clients reach the portal at another URL (a proxy, a load balancer, a DNS name), set "+
		"public_url (PORTAL_PUBLIC_URL)", addr, cfg.PublicURL()), nil
}

// trustedAddrs reports whether an address is one of cfg's trusted proxies,
// which the per-address connection cap does not count. configs.Load has
// checked every entry.
func trustedAddrs(cfg *configs.Config) func(netip.Addr) bool {
	var prefixes []netip.Prefix
	for _, p := range cfg.TrustedProxyList() {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			prefixes = append(prefixes, pfx.Masked())
		} else if ip, err := netip.ParseAddr(p); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		}
	}
	if len(prefixes) == 0 {
		return nil
	}
	return func(a netip.Addr) bool {
		for _, p := range prefixes {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
}
