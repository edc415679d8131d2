package accesslog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portaldist/portal/internal/accesslog"
)

// syncBuffer is a bytes.Buffer safe for the flusher goroutine.
type syncBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var at = time.Date(2026, 12, 2, 22, 15, 5, 123_000_000, time.UTC)

// The line is the one slog's TextHandler writes for the same record, so
// the access log and the server's log read as one.
func TestLineMatchesSlog(t *testing.T) {
	for _, e := range []accesslog.Entry{
		{Time: at, Method: "GET", Route: "/v1/products/:product/upgrade", Status: 200, Bytes: 1109, Duration: 3 * time.Millisecond, Client: "127.0.0.1", RequestID: "abc-1"},
		{Time: at.In(time.FixedZone("x", 3600)), Method: "POST", Route: "(no route)", Status: 404, Bytes: 0, Client: "::1", RequestID: "a=b"},
		{Time: at, Method: "GET", Route: `we"ird`, Status: 500, Client: "", RequestID: "x\ny"},
	} {
		var got bytes.Buffer
		l := accesslog.New(&got, 0)
		l.Record(e)
		var want bytes.Buffer
		h := slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				a.Value = slog.TimeValue(e.Time)
			}
			return a
		}})
		slog.New(h).Info("request", "method", e.Method, "route", e.Route, "status", e.Status,
			"bytes", e.Bytes, "ms", e.Duration.Milliseconds(), "client", e.Client, "request_id", e.RequestID)
		if got.String() != want.String() {
			t.Errorf("line\n got %q\nwant %q", got.String(), want.String())
		}
	}
}

// Buffered lines reach the writer within the flush interval, in few
// writes, and Close writes the rest; nothing is lost or reordered.
func TestBufferedFlushAndClose(t *testing.T) {
	var out syncBuffer
	l := accesslog.New(&out, 20*time.Millisecond)
	for i := range 1000 {
		l.Record(accesslog.Entry{Time: at, Method: "GET", Route: "/r", Status: 200, Bytes: i, Client: "c", RequestID: "id"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(out.String(), "\n") < 1000 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := strings.Count(out.String(), "\n"); n != 1000 {
		t.Fatalf("%d lines after the flush interval, want 1000", n)
	}
	out.mu.Lock()
	writes := out.writes
	out.mu.Unlock()
	if writes > 10 {
		t.Errorf("%d writes for 1000 lines: not buffered", writes)
	}
	l.Record(accesslog.Entry{Time: at, Method: "GET", Route: "/last", Status: 200, Client: "c", RequestID: "id"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1001 || !strings.Contains(lines[1000], "route=/last") || !strings.Contains(lines[999], "bytes=999 ") {
		t.Fatalf("after Close: %d lines, last %q", len(lines), lines[len(lines)-1])
	}
	// After Close a line is written at once; a second Close is harmless.
	l.Record(accesslog.Entry{Time: at, Method: "GET", Route: "/after", Status: 200, Client: "c", RequestID: "id"})
	if !strings.Contains(out.String(), "route=/after") {
		t.Error("a line recorded after Close was not written")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// Concurrent recorders never interleave inside a line.
func TestConcurrentLinesStayWhole(t *testing.T) {
	var out syncBuffer
	l := accesslog.New(&out, time.Millisecond)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 500 {
				l.Record(accesslog.Entry{Time: at, Method: "GET", Route: "/g", Status: 200 + g, Client: "c", RequestID: "id"})
			}
		})
	}
	wg.Wait()
	l.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4000 {
		t.Fatalf("%d lines, want 4000", len(lines))
	}
	for _, line := range lines {
		if !strings.HasPrefix(line, "time=") || !strings.HasSuffix(line, " request_id=id") {
			t.Fatalf("torn line %q", line)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	l := accesslog.New(discard{}, time.Second)
	defer l.Close()
	e := accesslog.Entry{Time: at, Method: "GET", Route: "/v1/products/:product/upgrade", Status: 200, Bytes: 1109, Client: "127.0.0.1", RequestID: "0123456789abcdef0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		l.Record(e)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
