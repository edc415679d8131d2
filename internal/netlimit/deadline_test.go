package netlimit_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/netlimit"
)

const idle = 300 * time.Millisecond

// counter reads the whole body and answers how many bytes it read, or 408
// with the error when the read failed.
func counter(errs chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			errs <- err
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprint(w, n)
	})
}

// A client that sends its headers and then a byte now and then, slower than
// the idle time, is cut off at the first gap.
func TestTrickledBodyIsCutOff(t *testing.T) {
	errs := make(chan error, 1)
	srv := httptest.NewServer(netlimit.IdleDeadlines(counter(errs), idle, idle))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const size = 10
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: portal\r\nContent-Length: %d\r\n\r\n", size)
	var sent atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range size {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			sent.Add(1)
			time.Sleep(4 * idle)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if n := sent.Load(); n >= size {
		t.Fatalf("the server waited for the whole trickled body (%d bytes)", n)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("body read error %v, want a deadline", err)
	}
	c.Close()
	<-done
}

// An upload that keeps sending, for much longer than the idle time, is read
// to its end.
func TestSteadyUploadLongerThanIdle(t *testing.T) {
	errs := make(chan error, 1)
	srv := httptest.NewServer(netlimit.IdleDeadlines(counter(errs), idle, idle))
	defer srv.Close()
	pr, pw := io.Pipe()
	const chunks, chunk = 40, 1024
	go func() {
		buf := make([]byte, chunk)
		for range chunks {
			if _, err := pw.Write(buf); err != nil {
				return
			}
			time.Sleep(idle / 10) // 40 × 30ms: four times the idle time in all
		}
		pw.Close()
	}()
	resp, err := http.Post(srv.URL, "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != strconv.Itoa(chunks*chunk) {
		t.Fatalf("status %d, body %q; want 200 and %d", resp.StatusCode, body, chunks*chunk)
	}
}

// A client that asks for a large response and never reads it makes the
// handler's write fail once the socket buffers are full.
func TestStalledReaderIsCutOff(t *testing.T) {
	errs := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 32<<10)
		for range 1 << 14 { // 512 MiB: far more than any socket buffer
			if _, err := w.Write(buf); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	})
	srv := httptest.NewServer(netlimit.IdleDeadlines(h, idle, idle))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: portal\r\n\r\n")
	if err := <-errs; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write error %v, want a deadline", err)
	}
}

// A reader that keeps reading, for longer than the idle time, gets the
// whole response.
func TestSlowSteadyReaderGetsEverything(t *testing.T) {
	const size = 8 << 20
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 32<<10)
		for range size / len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(netlimit.IdleDeadlines(h, idle, idle))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n int
	buf := make([]byte, 512<<10)
	for {
		m, err := io.ReadFull(resp.Body, buf)
		n += m
		if err != nil {
			break
		}
		time.Sleep(idle / 10)
	}
	if n != size {
		t.Fatalf("read %d bytes, want %d", n, size)
	}
}

// A body the handler never reads does not hold the answer back or keep the
// connection: the answer says Connection: close and the server hangs up
// within the idle time, though the client never sends the rest.
func TestUnreadBodyClosesConnection(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	srv := httptest.NewServer(netlimit.IdleDeadlines(h, idle, idle))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "POST / HTTP/1.1\r\nHost: portal\r\nContent-Length: 100\r\n\r\nx")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "ok" || !resp.Close {
		t.Fatalf("status %d, body %q, close %v", resp.StatusCode, body, resp.Close)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the server sent more after the answer")
	}
}

// Keep-alive still works for requests whose bodies are read to the end, and
// the cleared deadlines do not leak into the next request on the connection.
func TestKeepAliveAcrossRequests(t *testing.T) {
	errs := make(chan error, 4)
	srv := httptest.NewServer(netlimit.IdleDeadlines(counter(errs), idle, idle))
	defer srv.Close()
	var conns atomic.Int32
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conns.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	for i := range 3 {
		if i > 0 {
			time.Sleep(2 * idle) // longer than any deadline set by the last request
		}
		resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "5" {
			t.Fatalf("request %d: %s", i, body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want 1 kept alive", n)
	}
}
