package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"

	"github.com/portaldist/portal"
)

// ErrPrivateTarget is the cause of a refusal to reach (or register) an
// address that is not on the public internet.
var ErrPrivateTarget = errors.New("webhooks: target address is not public")

// Ranges refused besides what netip's predicates cover.
var refused = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),     // "this network"
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),  // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),   // reserved, and the broadcast address
	netip.MustParsePrefix("::/96"),         // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b::/96"),  // NAT64: embeds any IPv4 address
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"), // 6to4: embeds any IPv4 address
}

// CheckIP returns ErrPrivateTarget (wrapped, naming ip) when ip is loopback,
// private (RFC 1918, fc00::/7), link-local (169.254.0.0/16, the cloud
// metadata address among them, fe80::/10), unspecified, multicast,
// carrier-grade NAT (100.64.0.0/10) or another non-public range, in any of
// its forms (an IPv4-mapped IPv6 address is judged as its IPv4 address).
func CheckIP(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	bad := !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified()
	for _, p := range refused {
		bad = bad || p.Contains(ip)
	}
	if bad {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, ip)
	}
	return nil
}

// DialControl is a net.Dialer Control function that refuses to connect to
// an address CheckIP refuses. It checks the address actually dialled, after
// name resolution, so a host name that resolved to a public address when
// the webhook was created and to a private one later (DNS rebinding) is
// still refused.
func DialControl(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, address)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, address)
	}
	return CheckIP(ip)
}

// MaxURL is the longest webhook URL accepted.
const MaxURL = 2048

// Resolver looks host names up; net.DefaultResolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// CheckURL validates a webhook target: an absolute http or https URL with a
// host, no user information and no fragment. Unless allowPrivate, every
// address the host resolves to must pass CheckIP ("localhost" and names
// under .localhost are refused without a lookup). Errors are
// *portal.Error EInvalid naming the field "url".
func CheckURL(ctx context.Context, raw string, allowPrivate bool, r Resolver) (*url.URL, error) {
	bad := func(format string, args ...any) error {
		e := portal.Errorf(portal.EInvalid, format, args...)
		e.Details = map[string]any{"field": "url"}
		return e
	}
	if raw == "" || len(raw) > MaxURL {
		return nil, bad("url must be 1 to %d bytes", MaxURL)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, bad("url must be an absolute http or https URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, bad("url must use http or https, not %q", u.Scheme)
	}
	if u.User != nil {
		return nil, bad("url must not hold a user name or password")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, bad("url must not have a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return nil, bad("url has no host")
	}
	if allowPrivate {
		return u, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if CheckIP(ip) != nil {
			return nil, bad("url points at %s, an address that is not public (webhooks.allow_private_targets allows it)", ip.Unmap())
		}
		return u, nil
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") {
		return nil, bad("url points at localhost (webhooks.allow_private_targets allows it)")
	}
	if r == nil {
		r = net.DefaultResolver
	}
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(ips) == 0 {
		return nil, bad("url's host %q does not resolve", host)
	}
	for _, ip := range ips {
		if CheckIP(ip) != nil {
			return nil, bad("url's host %q resolves to %s, an address that is not public (webhooks.allow_private_targets allows it)", host, ip.Unmap())
		}
	}
	return u, nil
}
