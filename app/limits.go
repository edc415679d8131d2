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
// from the listen address, which is right only for clients on this
// machine: behind a proxy, a load balancer, a NAT or a DNS name the links
// would name an address clients cannot use. So without public_url any
// address that is not loopback (an unspecified one such as 0.0.0.0, :: or
// no host; another IP; a host name other than localhost) is refused with
// an error naming the key to set. Loopback, or public_url set, is fine.
//
// The warning result is always "" today; it stays for callers that log
// what is allowed but doubtful.
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
	case strings.EqualFold(host, "localhost") || (ipErr == nil && ip.IsLoopback()):
		return "", nil
	case host == "" || (ipErr == nil && ip.IsUnspecified()):
		return "", fmt.Errorf("public_url is not set while listening on every interface (%s): the links the portal hands out "+
			"would point to %s, which no other machine can reach; set public_url (PORTAL_PUBLIC_URL) to the URL "+
			"clients reach the portal at, or listen on loopback (127.0.0.1)", addr, cfg.PublicURL())
	}
	return "", fmt.Errorf("public_url is not set while listening on %s, which is not loopback: the links the portal hands "+
		"out would start with %s, wrong for clients that reach it through a proxy, a load balancer or a DNS name; set "+
		"public_url (PORTAL_PUBLIC_URL) to the URL clients reach the portal at, or listen on loopback (127.0.0.1)",
		addr, cfg.PublicURL())
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
