package netlimit_test

import (
	"net"
	"net/netip"
	"testing"

	"github.com/portaldist/portal/internal/netlimit"
)

// accepted serves ln's accepted connections on a channel until ln closes.
func accepted(t *testing.T, ln net.Listener) <-chan net.Conn {
	t.Helper()
	ch := make(chan net.Conn, 16)
	go func() {
		defer close(ch)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ch <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ch
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer reports whether the server closed c: the tests never write
// to accepted connections, so a read returns only when the server closed
// (EOF) or reset the connection.
func closedByServer(c net.Conn) bool {
	_, err := c.Read(make([]byte, 1))
	return err != nil
}

func TestListenerCapsConnectionsPerAddress(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := netlimit.Listen(raw, 2, nil).(*netlimit.Listener)
	conns := accepted(t, ln)
	addr := raw.Addr().String()
	loop := netip.MustParseAddr("127.0.0.1")

	dial(t, addr)
	dial(t, addr)
	first, second := <-conns, <-conns
	if n := ln.Open(loop); n != 2 {
		t.Fatalf("open = %d, want 2", n)
	}

	// The third is over the cap: closed at accept, never handed out.
	third := dial(t, addr)
	if !closedByServer(third) {
		t.Fatal("the connection over the cap was not closed")
	}
	if ln.Refused() != 1 {
		t.Fatalf("refused = %d, want 1", ln.Refused())
	}

	// Closing one (twice: Close is idempotent) frees exactly one slot.
	first.Close()
	first.Close()
	if n := ln.Open(loop); n != 1 {
		t.Fatalf("open after close = %d, want 1", n)
	}
	dial(t, addr)
	fourth := <-conns
	if n := ln.Open(loop); n != 2 {
		t.Fatalf("open = %d, want 2", n)
	}
	fifth := dial(t, addr)
	if !closedByServer(fifth) {
		t.Fatal("the connection over the cap was not closed")
	}
	second.Close()
	fourth.Close()
	if n := ln.Open(loop); n != 0 {
		t.Fatalf("open after all closed = %d, want 0", n)
	}
}

func TestListenerExempt(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := netlimit.Listen(raw, 1, func(a netip.Addr) bool { return a.IsLoopback() })
	conns := accepted(t, ln)
	for range 5 {
		dial(t, raw.Addr().String())
		<-conns
	}
	if n := ln.(*netlimit.Listener).Refused(); n != 0 {
		t.Fatalf("refused %d exempt connections", n)
	}
}

func TestListenZeroIsUnlimited(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if netlimit.Listen(raw, 0, nil) != raw {
		t.Fatal("a zero cap wrapped the listener")
	}
}

// fakeListener hands out pipe connections with the remote addresses given.
type fakeListener struct {
	addrs []string
	peers []net.Conn
}

type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

func (f *fakeListener) Accept() (net.Conn, error) {
	if len(f.addrs) == 0 {
		return nil, net.ErrClosed
	}
	a := f.addrs[0]
	f.addrs = f.addrs[1:]
	srv, cli := net.Pipe()
	f.peers = append(f.peers, cli)
	return addrConn{srv, net.TCPAddrFromAddrPort(netip.MustParseAddrPort(a))}, nil
}
func (f *fakeListener) Close() error   { return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// IPv6 clients count by /64, IPv4 ones (mapped or not) one by one.
func TestListenerGroupsIPv6By64(t *testing.T) {
	f := &fakeListener{addrs: []string{
		"[2001:db8:1:2::1]:1000", "[2001:db8:1:2:ffff::9]:1001", // one /64: the second is refused
		"[2001:db8:1:3::1]:1002",                    // another /64
		"192.0.2.1:1003", "[::ffff:192.0.2.1]:1004", // one IPv4 address, plain and mapped: refused
		"192.0.2.2:1005",
	}}
	ln := netlimit.Listen(f, 1, nil).(*netlimit.Listener)
	var got []string
	for {
		c, err := ln.Accept()
		if err != nil {
			break
		}
		got = append(got, c.RemoteAddr().String())
	}
	want := []string{"[2001:db8:1:2::1]:1000", "[2001:db8:1:3::1]:1002", "192.0.2.1:1003", "192.0.2.2:1005"}
	if len(got) != len(want) {
		t.Fatalf("accepted %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("accepted %v, want %v", got, want)
		}
	}
	if ln.Refused() != 2 {
		t.Fatalf("refused = %d, want 2", ln.Refused())
	}
	if n := ln.Open(netip.MustParseAddr("2001:db8:1:2::77")); n != 1 {
		t.Fatalf("open in the /64 = %d, want 1", n)
	}
}
