package etcdtest

import (
	"io"
	"net"
	"sync"
)

// proxy forwards TCP connections from a fixed front address to a member's
// client port, and can cut every connection it carries.
type proxy struct {
	l       net.Listener
	backend string

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	down  bool // refuse connections: the member is stopping or stopped
}

func newProxy(front, backend string) (*proxy, error) {
	l, err := net.Listen("tcp", front)
	if err != nil {
		return nil, err
	}
	p := &proxy{l: l, backend: backend, conns: make(map[net.Conn]struct{})}
	go p.serve()
	return p, nil
}

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *proxy) forward(c net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	var b net.Conn
	var err error
	if !down {
		b, err = net.Dial("tcp", p.backend)
	}
	if down || err != nil {
		// The member is down: the client sees its connection closed.
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		b.Close()
		return
	}
	p.conns[c] = struct{}{}
	p.conns[b] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done
	c.Close()
	b.Close()
	<-done
	p.track(c, false)
	p.track(b, false)
}

// cut closes every connection carried now and refuses new ones until
// up is called.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

// up lets connections through again.
func (p *proxy) up() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// close stops accepting and cuts every connection.
func (p *proxy) close() {
	p.l.Close()
	p.cut()
}
