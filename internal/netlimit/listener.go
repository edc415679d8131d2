// Package netlimit bounds what one client's connections may hold on the
// server: how many connections an address may keep open at once (Listen),
// and how long a request body or a response may stall (IdleDeadlines).
package netlimit

import (
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Listener caps the connections open at once from each client address. Build
// it with Listen. A connection over the cap is closed as soon as it is
// accepted, before anything is read from it (the client sees the connection
// closed or reset), and Accept goes on to the next one: a flood from one
// address never stops the listener.
//
// IPv4 addresses count one by one; IPv6 addresses count by their /64 prefix,
// the block a single host or site is normally given, so a client cannot pass
// the cap by rotating through its own addresses.
type Listener struct {
	net.Listener
	max    int
	exempt func(netip.Addr) bool

	mu      sync.Mutex
	open    map[netip.Addr]int
	refused atomic.Int64
}

// Listen returns ln capped at perAddress connections per client address.
// perAddress <= 0 means no cap: ln is returned as it is. exempt, when not
// nil, names addresses that are never capped (trusted proxies, which carry
// many clients on their connections); it is called once per accepted
// connection with the unmapped remote address and must be safe for
// concurrent use.
func Listen(ln net.Listener, perAddress int, exempt func(netip.Addr) bool) net.Listener {
	if perAddress <= 0 {
		return ln
	}
	return &Listener{Listener: ln, max: perAddress, exempt: exempt, open: make(map[netip.Addr]int)}
}

// Accept returns the next connection whose address is under the cap. Its
// Close (idempotent) gives the address's slot back.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, ok := remoteIP(c)
		if !ok || (l.exempt != nil && l.exempt(ip)) {
			return c, nil
		}
		key := ip
		if ip.Is6() {
			key = netip.PrefixFrom(ip, 64).Masked().Addr()
		}
		l.mu.Lock()
		if l.open[key] >= l.max {
			l.mu.Unlock()
			l.refused.Add(1)
			c.Close()
			continue
		}
		l.open[key]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

// Open returns how many capped connections addr (or its /64) holds now.
func (l *Listener) Open(addr netip.Addr) int {
	addr = addr.Unmap()
	if addr.Is6() {
		addr = netip.PrefixFrom(addr, 64).Masked().Addr()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[addr]
}

// Refused returns how many connections were closed at accept for being over
// the cap.
func (l *Listener) Refused() int64 { return l.refused.Load() }

func (l *Listener) release(key netip.Addr) {
	l.mu.Lock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
	l.mu.Unlock()
}

// remoteIP is the connection's remote address, unmapped; false for
// connections that are not IP (a Unix socket), which are not capped.
func remoteIP(c net.Conn) (netip.Addr, bool) {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}, false
		}
		return ap.Addr().Unmap(), true
	}
}

// conn gives its address's slot back on its first Close.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Addr
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// ReadFrom keeps the kernel's zero-copy path (sendfile, splice) that the HTTP
// server uses when the connection is a *net.TCPConn.
func (c *conn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }
